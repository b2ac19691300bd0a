"""Get a dataset's four files into place and prove they are the right ones, on every run.

Files already in the raw folder are checked against their MD5 each time; a missing file is fetched
from the mirrors in turn, into a temporary name, and renamed into place only once its MD5 matches,
so a partial or wrong download is never left where a later run would find it.

The fetch is hand-written rather than torchvision's ``download_url``: that one has no time-out
(a stalled mirror hangs forever), cannot read ``file://`` mirrors and writes straight to the final
name. The names, checksums and mirrors still come from torchvision (see ``sources``).
"""

from __future__ import annotations

import hashlib
import http.client
import urllib.request
from pathlib import Path

from tqdm import tqdm

from .atomic import atomic_path
from .errors import UserError
from .rawfiles import find_verified
from .sources import MIRROR_ENV, Source

TIMEOUT_SECONDS = 30


def md5_of(path: Path) -> str:
    """The MD5 of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, destination: Path) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "mnist-ae"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response, open(destination, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=Path(url).name, leave=False) as bar:
            while chunk := response.read(1 << 16):
                out.write(chunk)
                bar.update(len(chunk))


class _WrongFile(Exception):
    """A mirror's file failed its MD5 check: abandon the temporary file, try the next mirror."""


def _download(source: Source, filename: str, target: Path) -> None:
    """Try each mirror until one gives a file with the right MD5; only that one is renamed into place."""
    failures = []
    for mirror in source.mirrors:
        url = mirror + filename
        try:
            with atomic_path(target) as tmp:
                _fetch(url, tmp)
                actual = md5_of(tmp)
                if actual != source.md5[filename]:
                    raise _WrongFile(f"MD5 {actual}, expected {source.md5[filename]}")
            return
        except (OSError, http.client.HTTPException, ValueError, _WrongFile) as error:  # URLError is an OSError
            failures.append(f"{url}: {getattr(error, 'reason', error)}")
    raise UserError(
        f"could not download {filename} ({'; '.join(failures) or 'no mirror to try'}). "
        f"Without network, put the four files ({', '.join(source.md5)}) in {target.parent}/ by hand, "
        f"or point {MIRROR_ENV} at a folder or URL that has them."
    )


def ensure_raw_files(source: Source, root: Path) -> dict[str, Path]:
    """Make sure the four files are in the raw folder with the right MD5s; fetch what is missing.

    A file already there is checked every time: it may have been placed by hand or damaged since.
    """
    folder = source.raw_folder(root)
    paths = {}
    for filename in source.md5:
        path = find_verified(folder, filename, source)  # as is, uncompressed or recompressed; checked
        if path is None:
            path = folder / filename
            _download(source, filename, path)  # checks the MD5 before the file is put in place
        paths[filename] = path
    return paths
