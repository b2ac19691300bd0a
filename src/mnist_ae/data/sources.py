"""Where each dataset's four IDX files come from and what their checksums must be.

torchvision's MNIST-family classes are the authority for file names, MD5s and mirrors, so this
module reads them from there rather than keeping a copy that could drift.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..core import paths

# A URL prefix (https://, file://) or a local folder holding the four files, tried before the
# dataset's own mirrors: an internal mirror, or a folder of files fetched once by hand.
MIRROR_ENV = "MNIST_AE_MIRROR"


@dataclass(frozen=True)
class Source:
    """One dataset: the folder its files live in, their expected MD5s, and the mirrors to try."""

    name: str
    md5: dict[str, str]
    mirrors: tuple[str, ...]
    # The user's own files live here, not under the download root; None: a downloadable dataset.
    user_folder: Path | None = None

    def raw_folder(self, root: Path) -> Path:
        """The user's folder, or torchvision's layout (``<root>/<name>/raw``) so that a folder it
        downloaded can be reused."""
        return self.user_folder if self.user_folder is not None else root / self.name / "raw"


def _env_mirrors() -> tuple[str, ...]:
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if not mirror:
        return ()
    if "://" not in mirror:
        mirror = Path(mirror).resolve().as_uri()
    return (mirror.rstrip("/") + "/",)


def get_source(name: str, custom_md5: dict[str, str] | None = None) -> Source:
    """The source of dataset ``name``; ``custom`` is the user's own IDX files in ``data/custom/``,
    with their own MD5s, and no mirror but ``MNIST_AE_MIRROR``."""
    if name == "custom":
        return Source(name, dict(custom_md5 or {}), _env_mirrors(), user_folder=paths.CUSTOM)
    from torchvision import datasets  # imported here: it is slow to import, and only prepare needs it

    dataset_class = getattr(datasets, name)
    md5 = {Path(url).name: checksum for url, checksum in dataset_class.resources}
    return Source(name, md5, _env_mirrors() + tuple(dataset_class.mirrors))
