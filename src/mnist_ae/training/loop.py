"""Fit an auto-encoder with Adam on its objective: one loop for every family, loss, precision,
device and rank count. The split sits in memory on the device, batches are gathered by index (a
per-sample ``DataLoader`` spends most of its time collating), and the losses are looked at once a
window of ``CHECK_EVERY`` steps, so the device never waits for the host. What a step does:
``steps.py``; the CPU's threads and denormals: ``cpu.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from tqdm import tqdm

from ..core.errors import UserError
from ..models.base import AutoEncoder
from ..params import TrainParams
from .cpu import NoTuning, same_bits_at_every_thread_count, tuning_for
from .steps import Step, StepImplementation, choose_step

# Each check waits for the device (and, under DDP, for the other ranks), so it is not made every step.
CHECK_EVERY = 50


def fit(
    model: AutoEncoder,
    data: torch.Tensor,
    config: TrainParams,
    progress: bool = True,
    on_epoch_end: Callable[[int, float], None] | None = None,
    distributed: bool = False,
    implementation: StepImplementation | None = None,
) -> list[float]:
    """Train ``model`` in place on ``data`` (N, D), on ``data``'s device; returns each epoch's mean loss.

    The epoch's loss is the mean over its batches of the batch's objective per element (for the MSE
    loss, the batch's mean squared error), as a tutorial loop reports it. ``on_epoch_end(epoch,
    loss)`` sees the model with that epoch's weights. ``distributed``: this process is one rank of a
    ``torch.distributed`` group (``distributed.py``); every rank calls ``fit`` with the same arguments.
    ``implementation``: the step the caller chose with ``choose_step`` (the train stage, before any rank
    starts, to refuse one that does not apply once); None: ``fit`` chooses it.
    """
    if len(data) == 0:
        raise UserError("the training split is empty: nothing to train on")
    batch_size = min(config.batch_size, len(data))
    implementation = implementation or choose_step(model, config, data.device, distributed)
    step = implementation.build(model, config, batch_size, distributed)
    # Ranks keep their threads: each rank's count is its own affair, and the check is one process's.
    same_bits = (None if distributed
                 else lambda: same_bits_at_every_thread_count(implementation, model, config, data, batch_size))
    tuning = tuning_for(data.device, same_bits, config.threads)
    generator = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = math.ceil(len(data) / batch_size)
    # constant: no step is handed a rate, so the run is the one of before schedules existed, bit for bit.
    schedule = None if config.schedule == "constant" else (
        lambda done: cosine_learning_rate(config.lr, done, config.epochs * steps_per_epoch))
    history = []
    model.train()
    with tuning:
        for epoch in range(1, config.epochs + 1):
            batches = torch.randperm(len(data), generator=generator).to(data.device).split(batch_size)
            history.append(train_epoch(step, data, batches, tuning, (epoch, config.epochs), progress, distributed,
                                       schedule, (epoch - 1) * steps_per_epoch))
            step.sync_model()
            if on_epoch_end is not None:
                model.eval()
                on_epoch_end(epoch, history[-1])
                model.train()
    if progress and tuning.summary():
        print(f"threads: {tuning.summary()}")
    return history


def cosine_learning_rate(lr: float, done: int, total: int) -> float:
    """``train.schedule: cosine``: Adam's learning rate for the step after ``done`` of the run's
    ``total``, half a cosine from ``lr`` down to 0 (SGDR without restarts, Loshchilov & Hutter;
    torch's ``CosineAnnealingLR`` stepped once a batch): a long run's large early steps explore, its
    small last ones settle into the minimum they found."""
    return lr * 0.5 * (1.0 + math.cos(math.pi * done / total))


def train_epoch(step: Step, data: torch.Tensor, batches: tuple[torch.Tensor, ...], tuning: NoTuning,
                epoch: tuple[int, int], progress: bool, distributed: bool,
                schedule: Callable[[int], float] | None = None, done: int = 0) -> float:
    """One pass over ``batches`` (indices into ``data``), the ``epoch`` (number, of how many)
    with the progress bar; returns the mean over the batches of their loss per element.
    ``schedule(steps done)``: the learning rate of each step, after ``done`` steps of earlier epochs."""
    losses = torch.empty(len(batches), device=data.device)  # each batch's summed objective
    with tqdm(total=len(batches), desc="epoch {}/{}".format(*epoch), unit="batch", disable=not progress) as bar:
        for window in _windows(len(batches), CHECK_EVERY):
            with tuning.window(len(window), step.moments):
                for i in window:
                    if schedule is not None:
                        step.set_lr(schedule(done + i))
                    step(data, batches[i], losses[i])
            _check_finite(losses, window, epoch[0], distributed)
            bar.update(len(window))
        elements = torch.tensor([len(batch) * data.shape[1] for batch in batches], dtype=torch.float32,
                                device=data.device)
        mean_loss = float((losses / elements).mean())
        bar.set_postfix(loss=f"{mean_loss:.4f}")
    return mean_loss


def _check_finite(losses: torch.Tensor, window: range, epoch: int, distributed: bool) -> None:
    """Stop on a NaN or infinite loss; under DDP every rank sees the summed losses and stops alike."""
    in_window = losses[window.start : window.stop]
    if distributed:  # each rank summed its own slice of every batch: add them up, on every rank
        torch.distributed.all_reduce(in_window)
    finite = torch.isfinite(in_window)
    if not bool(finite.all()):
        bad = window.start + int((~finite).nonzero()[0, 0])
        raise UserError(f"training diverged at epoch {epoch}, step {bad + 1}: the loss is {float(losses[bad])}; "
                        f"lower train.lr")


def _windows(n_steps: int, size: int) -> list[range]:
    return [range(start, min(start + size, n_steps)) for start in range(0, n_steps, size)]
