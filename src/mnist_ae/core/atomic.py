"""Write files so that a reader, or DVC, never sees a half-written one.

Every output goes to a temporary file in the same folder and is renamed into place once complete:
a rename within one file system is atomic, so a killed stage leaves either the old file or none.
The temporary file is flushed to disk (fsync) before the rename and the folder after it, so a power
cut right after a stage cannot leave the new name pointing at data that never reached the disk.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import DISK_FULL, UserError

if TYPE_CHECKING:  # only the stages that write tables import pandas
    import pandas as pd


def _pid_alive(pid: int) -> bool:
    """Whether a process with this id runs here (signal 0 checks without sending anything)."""
    if pid <= 0:  # 0 and negative ids name process groups to os.kill, never one writer
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, but belongs to another user
        return True
    except (OSError, OverflowError):  # not a valid process id at all: nobody's
        return False
    return True


def _writer_pid(final: Path, leftover: Path) -> int | None:
    """The PID in ``.NAME.PID.tmp`` (or ``.NAME.PID.<more>.tmp``); None if the name holds none."""
    middle = leftover.name[len(f".{final.name}."):-len(".tmp")]
    pid = middle.split(".")[0]
    return int(pid) if pid.isdigit() else None


def temporary_sibling(final: Path) -> Path:
    """A hidden name beside ``final`` for this process to write to (git and DVC ignore ``.*.tmp``).

    A process killed mid-write (SIGKILL) cannot clean up, so leftovers of earlier writes to
    ``final``, files or folders, are removed here first; but only those whose writer (the PID in
    the name) is gone: another process still writing the same output keeps its temporary file.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.*.tmp"):
        pid = _writer_pid(final, stale)
        if pid is None or (pid != os.getpid() and _pid_alive(pid)):
            continue
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    # Unique to this process (not mkstemp, whose 0600 mode would stick to the output).
    return final.with_name(f".{final.name}.{os.getpid()}.tmp")


def fsync_path(path: Path) -> None:
    """Flush a file's data, or a folder's entries, to disk (folders: POSIX only, Windows cannot)."""
    if path.is_dir() and os.name != "posix":
        return
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    A full disk is the user's to fix, so it ends in one line that names the file and the space left.
    """
    final = Path(path)
    tmp = temporary_sibling(final)
    try:
        yield tmp
        fsync_path(tmp)  # the data on disk before the name points at it
        os.replace(tmp, final)
        fsync_path(final.parent)  # and the rename itself
    except OSError as error:
        if error.errno not in DISK_FULL:
            raise
        raise UserError(f"the disk is full: {final} could not be written ({disk_space(final.parent)}); "
                        f"the previous {final.name}, if any, is unchanged. Free some space and rerun.") from None
    finally:
        tmp.unlink(missing_ok=True)


def disk_space(folder: Path) -> str:
    """How much space is left where ``folder`` is, in words."""
    try:
        return f"{shutil.disk_usage(folder).free / 2**20:,.0f} MiB free there"
    except OSError:
        return "free space unknown"


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON with a trailing newline, atomically."""
    with atomic_path(path) as tmp:
        # allow_nan=False: NaN is not JSON, and DVC could not read the metrics back.
        tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def save_torch(path: str | os.PathLike[str], obj: Any) -> None:
    """``torch.save`` atomically; read it back with ``torch.load(..., weights_only=True)``."""
    import torch  # here: the embed stage writes no tensor, and torch takes over a second to import

    # Into memory first, then one write: torch's zip writer reports a full disk as a RuntimeError
    # ("unexpected pos"), a plain write as the OSError (ENOSPC) ``atomic_path`` names. Through a
    # buffer, not a path: torch names the archive's records after the file, so the temporary name
    # would make every save's bytes (and DVC's hash) different.
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def save_arrays(path: str | os.PathLike[str], arrays: dict[str, np.ndarray]) -> None:
    """numpy arrays into one uncompressed ``.npz`` file, atomically; read back with ``np.load``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        np.savez(file, **arrays)


def save_figure(path: str | os.PathLike[str], figure: Any, dpi: int = 100) -> None:
    """Save a matplotlib figure as PNG atomically (the format is given, as the temp name has none)."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")


def write_table(path: str | os.PathLike[str], frame: pd.DataFrame, float_format: str | None = None) -> None:
    """Write a pandas table as CSV (the form ``dvc plots`` reads and a spreadsheet opens), atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format=float_format, lineterminator="\n")
