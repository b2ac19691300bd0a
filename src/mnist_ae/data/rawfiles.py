"""Find a dataset's raw files in the forms users have them, and accept only the right content.

Users get MNIST from many places: the original ``.gz`` files, the uncompressed IDX files Kaggle
ships (``train-images-idx3-ubyte``, also spelt ``train-images.idx3-ubyte``), or ``.gz`` files
compressed again with other settings (other bytes, other MD5, same content). A file is accepted when
its MD5, or the MD5 of its decompressed content, is a checksum known for it: torchvision's MD5 of
the original ``.gz``, or the MD5 of its content where that is known (MNIST's, below). A custom
dataset's ``data.md5`` may give either.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..core.errors import UserError
from .idx import GZIP_MAGIC, IMAGES_MAGIC, LABELS_MAGIC, gunzip, parse_idx
from .sources import Source

# MD5 of each original MNIST file's decompressed content: computed with `gzip -dc FILE | md5sum` from
# the four originals, whose .gz MD5s match torchvision's. FashionMNIST's and KMNIST's are not known
# here, so for them only torchvision's .gz MD5s apply.
CONTENT_MD5 = {
    "MNIST": {
        "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
    },
}


def candidates(folder: Path, filename: str) -> list[Path]:
    """Where the file ``filename`` (an original ``.gz`` name) may be: as is, uncompressed, or with
    the uncompressed name's dot spelling (``train-images.idx3-ubyte``)."""
    plain = filename.removesuffix(".gz")
    dotted = plain.replace("-idx", ".idx", 1)
    return [folder / name for name in dict.fromkeys((filename, plain, dotted))]


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _content(data: bytes) -> bytes | None:
    """The decompressed bytes of gzip data, None if ``data`` is not readable gzip."""
    if not data.startswith(GZIP_MAGIC):
        return None
    try:
        return gunzip(data, "")
    except UserError:
        return None


def _is_idx(data: bytes, filename: str) -> bool:
    try:
        parse_idx(data, IMAGES_MAGIC if "images" in filename else LABELS_MAGIC)
    except UserError:
        return False
    return True


def verify(path: Path, filename: str, source: Source) -> None:
    """Accept ``path`` as the file ``filename`` of ``source``, or raise a ``UserError`` naming the fix."""
    data = path.read_bytes()  # 47 MB at most: MNIST's uncompressed training images
    expected = source.md5[filename]
    known = {expected, CONTENT_MD5.get(source.name, {}).get(filename)}
    actual = _md5(data)
    content = _content(data)
    if actual in known or (content is not None and _md5(content) in known):
        return
    if source.user_folder is not None:  # the user's own file: no original to download again
        raise UserError(f"{path} has MD5 {actual}, but data.md5 in params.yaml gives {expected}: the file is "
                        f"damaged or not the one listed. Put back the right file, or, if this one is right, "
                        f"give its MD5 in data.md5.")
    message = (f"{path} has MD5 {actual}, expected {expected}: the file is corrupt or from another dataset. "
               f"Delete it and run again to download it afresh, or replace it with the original file.")
    content = data if content is None else content
    if source.name != "custom" and filename not in CONTENT_MD5.get(source.name, {}) and _is_idx(content, filename):
        message = (f"{path} has MD5 {actual}, expected {expected} (the original .gz): it is a valid IDX file, but "
                   f"no checksum of {source.name}'s decompressed files is known here to verify it by. Put the "
                   f"original .gz there instead, or use the four files as your own dataset: move them to data/custom/ "
                   f"and set in params.yaml:\n"
                   f"  data:\n    dataset: custom\n    md5:\n      {filename}: {_md5(content)}\n"
                   f"      (and the same line for each of the other three files)")
    raise UserError(message)


def find_verified(folder: Path, filename: str, source: Source) -> Path | None:
    """The verified local copy of ``filename`` in any of its accepted forms, or None if there is none."""
    for path in candidates(folder, filename):
        if path.is_file():
            verify(path, filename, source)
            return path
    return None
