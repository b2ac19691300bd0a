"""Per-epoch metrics through dvclive, written so that DVC never sees a half-written log.

dvclive appends to its files as training goes. It writes here into a hidden staging folder that
git and DVC ignore, which takes the place of the real folder only once training has finished: a
killed run leaves the previous log or none, never a partial one.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dvclive import Live

from .atomic import temporary_sibling


@contextmanager
def atomic_live(folder: Path) -> Iterator[Live]:
    """A ``dvclive.Live`` whose folder appears at ``folder`` only if the block succeeds."""
    staging = temporary_sibling(folder)
    try:
        # dvcyaml=False: dvc.yaml declares the metrics and plots itself; save_dvc_exp=False: an
        # experiment is made by `dvc exp run`, not by the logger.
        with Live(str(staging), dvcyaml=False, save_dvc_exp=False, report=None) as live:
            yield live
        old = folder.with_name(f"{staging.name.removesuffix('.tmp')}.old.tmp")
        if folder.exists():
            folder.rename(old)
        staging.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
