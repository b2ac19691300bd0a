"""Per-epoch metrics through dvclive, written into the declared log folder as each epoch ends.

Written in place, not staged: VS Code's DVC extension, Studio and ``dvc exp show`` read the folder
while training runs, so the curves grow epoch by epoch. Each epoch's values are handed to dvclive
together once the epoch is over, and the summary is replaced by an atomic rename, so a killed run
leaves the log of the epochs it finished (each line whole), or no folder before the first one.
DVC does not commit that log: the stage failed, and its next run starts a fresh one.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from dvclive import Live

from ..core.atomic import write_json
from ..models.base import AutoEncoder
from ..models.reconstruction import per_sample_mse


class _Live(Live):
    """dvclive rewrites ``metrics.json`` in place at every step; here it is replaced atomically."""

    def make_summary(self) -> None:
        if self._step is not None:
            self.summary["step"] = self.step
        write_json(self.metrics_file, self.summary)


class EpochLog:
    """The part of ``dvclive.Live`` the train stage uses; dvclive sees an epoch only once it ends.

    The ``Live`` is made at the first epoch's end (it creates the folder), so until then the
    folder is absent rather than present without a summary.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.step = 0
        self._pending: dict[str, float] = {}
        self._live: _Live | None = None

    def log_metric(self, name: str, value: float) -> None:
        self._pending[name] = value

    def next_step(self) -> None:
        if self._live is None:
            # resume=False: dvclive clears any earlier log; dvcyaml=False: dvc.yaml declares the
            # metrics and plots itself; save_dvc_exp=False: `dvc exp run` makes experiments.
            self._live = _Live(str(self.folder), resume=False, dvcyaml=False, save_dvc_exp=False, report=None)
        self._live.step = self.step
        for name, value in self._pending.items():
            self._live.log_metric(name, value)
        self._pending.clear()
        self._live.next_step()

    def end(self) -> None:
        if self._live is not None:
            self._live.end()


@contextmanager
def live_log(folder: Path) -> Iterator[EpochLog]:
    """A fresh per-epoch log in ``folder``: the previous run's log is removed first."""
    shutil.rmtree(folder, ignore_errors=True)
    log = EpochLog(folder)
    try:
        yield log
    finally:
        log.end()


@contextmanager
def epoch_log(folder: Path, model: AutoEncoder, test_images: torch.Tensor,
              enabled: bool = True) -> Iterator[Callable[[int, float], None] | None]:
    """``fit``'s ``on_epoch_end``: each epoch's training loss and test MSE into a fresh log in
    ``folder``. ``enabled=False`` (a rank other than 0) logs nothing and yields None."""
    if not enabled:
        yield None
        return
    with live_log(folder) as log:

        def on_epoch_end(epoch: int, loss: float) -> None:
            log.step = epoch
            log.log_metric("train_loss", round(loss, 6))
            log.log_metric("test_mse", round(float(per_sample_mse(model, test_images).mean()), 6))
            log.next_step()

        yield on_epoch_end
