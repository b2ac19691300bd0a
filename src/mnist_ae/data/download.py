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
import time
import urllib.request
from pathlib import Path

from tqdm import tqdm

from ..core.atomic import atomic_path
from ..core.errors import UserError
from .rawfiles import find_verified
from .sources import MIRROR_ENV, Source

TIMEOUT_SECONDS = 30  # a mirror silent this long is skipped
# A mirror that keeps sending, however slowly, is abandoned past either bound. The largest file of
# the datasets offered is Fashion-MNIST's training images, 26 MB (MNIST's: 9.9 MB; KMNIST's: 18 MB),
# and at 1 MB/s it comes within 30 s: these bounds leave room for slow links and larger custom files.
MAX_BYTES = 100 * 2**20
MAX_SECONDS = 5 * 60  # for one file, from the request to its last byte


def md5_of(path: Path) -> str:
    """The MD5 of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class _Abandoned(Exception):
    """A mirror's file failed its MD5 check or went past a bound: drop it, try the next mirror."""


def _fetch(url: str, destination: Path) -> None:
    """Copy ``url`` to ``destination``, within ``MAX_BYTES`` and ``MAX_SECONDS``.

    ``read1`` returns what has arrived instead of waiting for a full chunk, so a mirror that trickles
    a byte at a time is measured against the clock at every byte, not once per 64 KiB.
    """
    deadline = time.monotonic() + MAX_SECONDS
    request = urllib.request.Request(url, headers={"User-Agent": "mnist-ae"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response, open(destination, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        if total is not None and total > MAX_BYTES:
            raise _Abandoned(f"it announces {total} bytes, more than the {MAX_BYTES} accepted")
        received = 0
        with tqdm(total=total, unit="B", unit_scale=True, desc=Path(url).name, leave=False) as bar:
            while chunk := response.read1(1 << 16):
                received += len(chunk)
                if received > MAX_BYTES:
                    raise _Abandoned(f"abandoned after {MAX_BYTES} bytes, more than any file it should send")
                if time.monotonic() > deadline:
                    raise _Abandoned(f"abandoned after {MAX_SECONDS} s, with {received} bytes received")
                out.write(chunk)
                bar.update(len(chunk))


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
                    raise _Abandoned(f"MD5 {actual}, expected {source.md5[filename]}")
            return
        except (OSError, http.client.HTTPException, ValueError, _Abandoned) as error:  # URLError is an OSError
            failures.append(f"{url}: {getattr(error, 'reason', error)}")
    fix = (f"put the four files ({', '.join(source.md5)}) in {target.parent}/ by hand, "
           f"or point {MIRROR_ENV} at a folder or URL that has them.")
    # The user's own files have no mirror but theirs: "without network" would suggest there is one.
    fix = f"Without network, {fix}" if source.user_folder is None else fix[0].upper() + fix[1:]
    raise UserError(f"could not download {filename} ({'; '.join(failures) or 'no mirror to try'}). {fix}")


def _missing_user_file(source: Source, path: Path) -> UserError:
    """The user's own file is not there, and there is no mirror: nothing to download from."""
    return UserError(
        f"{path} not found: data.dataset is {source.name!r}, so put your four files ({', '.join(source.md5)}) "
        f"in {path.parent}/ (or point {MIRROR_ENV} at a folder or URL that has them)."
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
            if source.user_folder is not None and not source.mirrors:
                raise _missing_user_file(source, path)
            _download(source, filename, path)  # checks the MD5 before the file is put in place
        paths[filename] = path
    return paths
