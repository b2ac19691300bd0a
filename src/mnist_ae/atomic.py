"""Write files so that a reader, or DVC, never sees a half-written one.

Every output goes to a temporary file in the same folder and is renamed into place once complete:
a rename within one file system is atomic, so a killed stage leaves either the old file or none.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch


def temporary_sibling(final: Path) -> Path:
    """A hidden name beside ``final`` for this process to write to (git and DVC ignore ``.*.tmp``).

    A process killed mid-write (SIGKILL) cannot clean up: leftovers of earlier writes to ``final``,
    files or folders, are removed here first.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    # Unique to this process (not mkstemp, whose 0600 mode would stick to the output).
    return final.with_name(f".{final.name}.{os.getpid()}.tmp")


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds."""
    final = Path(path)
    tmp = temporary_sibling(final)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON with a trailing newline, atomically."""
    with atomic_path(path) as tmp:
        # allow_nan=False: NaN is not JSON, and DVC could not read the metrics back.
        tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def save_torch(path: str | os.PathLike[str], obj: Any) -> None:
    """``torch.save`` atomically; read it back with ``torch.load(..., weights_only=True)``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        # Through a file object, not the path: torch names the records inside the archive after the
        # file, and the temporary name would make every save's bytes (and DVC's hash) different.
        torch.save(obj, file)


def save_figure(path: str | os.PathLike[str], figure: Any, dpi: int = 100) -> None:
    """Save a matplotlib figure as PNG atomically (the format is given, as the temp name has none)."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
