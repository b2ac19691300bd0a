"""Per-epoch metrics through dvclive, written into the declared log folder as each epoch ends.

Written in place, not staged: VS Code's DVC extension, Studio and ``dvc exp show`` read the folder
while training runs, so the curves grow epoch by epoch. dvclive sees an epoch's values once the
epoch is over, and the summary is replaced by an atomic rename, so a killed run leaves the log of
the epochs it finished (each line whole), or no folder before the first one. DVC does not commit
that log: the stage failed, and its next run starts a fresh one.
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


class EpochMetrics:
    """``fit``'s ``on_epoch_end``: each epoch's training loss, and on the validation split the
    objective (per pixel, as the training loss) and the MSE, as dvclive curves; and the objective's
    terms per image (a VAE's reconstruction and KL; the reconstruction alone for other families) in
    one table, ``TERMS``, that every family writes, so that ``dvc plots`` finds it in every revision.
    ``last`` keeps the last epoch's values."""

    TERMS = "terms.csv"  # step, term, value: one row per term and epoch

    def __init__(self, folder: Path, model: AutoEncoder, validation: torch.Tensor, loss: Loss) -> None:
        self.folder, self.model, self.validation, self.loss = folder, model, validation, loss
        self.last: dict[str, float] = {}
        self.terms: list[dict[str, object]] = []
        # Made at the first epoch's end (it creates the folder): until then no folder, rather than one
        # without a summary.
        self.live: _Live | None = None
        # The sums over the split are split between threads: at the thread count the run started
        # with, whatever the training has now (training/cpu.py), every run logs the same bits.
        self.threads = torch.get_num_threads()

    def __call__(self, epoch: int, train_loss: float) -> None:
        with thread_count(self.threads):
            result = assess(self.model, self.validation, self.loss)
        self.last = {"train_loss": train_loss, "val_loss": result.objective_per_element,
                     "val_mse": float(result.mse.mean())}
        terms = {name: round(value, 6) for name, value in result.terms_per_image().items()}
        if self.live is None:
            # resume=False: dvclive clears any earlier log; dvcyaml=False: dvc.yaml declares the
            # metrics and plots itself; save_dvc_exp=False: `dvc exp run` makes experiments.
            self.live = _Live(str(self.folder), resume=False, dvcyaml=False, save_dvc_exp=False, report=None)
        self.live.step = epoch
        for name, value in self.last.items():
            self.live.log_metric(name, round(value, 6))
        for name, value in terms.items():  # the last epoch's terms, in the summary alone (`dvc exp show`)
            self.live.log_metric(f"val_{name}", value, plot=False)
        self.live.next_step()
        self.terms += [{"step": epoch, "term": name, "value": value} for name, value in terms.items()]
        write_table(self.folder / self.TERMS, pd.DataFrame(self.terms))


@contextmanager
def epoch_log(folder: Path, model: AutoEncoder, validation: torch.Tensor, loss: Loss,
              enabled: bool = True) -> Iterator[EpochMetrics | None]:
    """Per-epoch metrics (``EpochMetrics``) into ``folder``, the previous run's log removed first.
    ``enabled=False`` (a rank other than 0) logs nothing and yields None."""
    if not enabled:
        yield None
        return
    shutil.rmtree(folder, ignore_errors=True)
    metrics = EpochMetrics(folder, model, validation, loss)
    try:
        yield metrics
    finally:
        if metrics.live is not None:
            metrics.live.end()
