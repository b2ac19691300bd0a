"""Per-epoch metrics through dvclive, written into the declared log folder as each epoch ends.

Written in place, not staged: VS Code's DVC extension, Studio and ``dvc exp show`` read the folder
while training runs, so the curves grow epoch by epoch. Each epoch's values are handed to dvclive
together once the epoch is over, and the summary is replaced by an atomic rename, so a killed run
leaves the log of the epochs it finished (each line whole), or no folder before the first one.
DVC does not commit that log: the stage failed, and its next run starts a fresh one.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch
from dvclive import Live

from ..core.atomic import write_json, write_table
from ..models.base import AutoEncoder, Loss
from ..models.reconstruction import assess
from .cpu import thread_count


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
        self._pending: dict[str, tuple[float, bool]] = {}
        self._live: _Live | None = None

    def log_metric(self, name: str, value: float, plot: bool = True) -> None:
        """``plot=False``: into the summary (``dvc exp show``) alone, not into a per-epoch curve."""
        self._pending[name] = value, plot

    def next_step(self) -> None:
        if self._live is None:
            # resume=False: dvclive clears any earlier log; dvcyaml=False: dvc.yaml declares the
            # metrics and plots itself; save_dvc_exp=False: `dvc exp run` makes experiments.
            self._live = _Live(str(self.folder), resume=False, dvcyaml=False, save_dvc_exp=False, report=None)
        self._live.step = self.step
        for name, (value, plot) in self._pending.items():
            self._live.log_metric(name, value, plot=plot)
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


class EpochMetrics:
    """``fit``'s ``on_epoch_end``: each epoch's training loss, and on the validation split the
    objective (per pixel, as the training loss) and the MSE, as dvclive curves; and the objective's
    terms per image (a VAE's reconstruction and KL; the reconstruction alone for other families) in
    one table, ``TERMS``, that every family writes, so that ``dvc plots`` finds it in every revision
    (a curve file that only some families write would be missing in the others). ``last`` keeps the
    last epoch's values."""

    TERMS = "terms.csv"  # step, term, value: one row per term and epoch

    def __init__(self, log: EpochLog, model: AutoEncoder, validation: torch.Tensor, loss: Loss) -> None:
        self.log, self.model, self.validation, self.loss = log, model, validation, loss
        self.last: dict[str, float] = {}
        self.terms: list[dict[str, object]] = []
        # The sums over the split are split between threads: at the thread count the run started
        # with, whatever the training has now (training/cpu.py), every run logs the same bits.
        self.threads = torch.get_num_threads()

    def __call__(self, epoch: int, train_loss: float) -> None:
        with thread_count(self.threads):
            result = assess(self.model, self.validation, self.loss)
        self.last = {"train_loss": train_loss, "val_loss": result.objective_per_element,
                     "val_mse": float(result.mse.mean())}
        terms = {name: round(value, 6) for name, value in result.terms_per_image().items()}
        self.log.step = epoch
        for name, value in self.last.items():
            self.log.log_metric(name, round(value, 6))
        for name, value in terms.items():  # the last epoch's terms, for `dvc exp show`
            self.log.log_metric(f"val_{name}", value, plot=False)
        self.log.next_step()
        self.terms += [{"step": epoch, "term": name, "value": value} for name, value in terms.items()]
        write_table(self.log.folder / self.TERMS, pd.DataFrame(self.terms))


@contextmanager
def epoch_log(folder: Path, model: AutoEncoder, validation: torch.Tensor, loss: Loss,
              enabled: bool = True) -> Iterator[EpochMetrics | None]:
    """Per-epoch metrics (``EpochMetrics``) into a fresh log in ``folder``. ``enabled=False`` (a rank
    other than 0) logs nothing and yields None."""
    if not enabled:
        yield None
        return
    with live_log(folder) as log:
        yield EpochMetrics(log, model, validation, loss)
