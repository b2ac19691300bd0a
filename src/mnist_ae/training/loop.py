"""Fit an auto-encoder with Adam on its objective: one loop for every family, loss, precision and rank count.

The whole split sits in memory on the device and batches are gathered by index from one seeded
permutation per epoch (a per-sample ``DataLoader`` spends most of its time collating 32 tensors).
The loop keeps each step's loss on the device and looks at it only every ``CHECK_EVERY`` steps, for
the progress bar and the divergence check, so the device never waits for the host.

What a step does is chosen once: ``fast_step.FusedMLPStep`` (hand-written) for the (family, loss)
pairs it implements exactly, in a single process; ``AutogradStep`` for anything else, under DDP, and
whenever ``train.step`` is ``autograd``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Protocol

import torch
from torch import nn
from tqdm import tqdm

from ..core.errors import UserError
from ..core.params import TrainParams
from ..models.base import AutoEncoder, Loss
from ..models.losses import LOSSES
from .fast_step import FusedMLPStep, implements
from .threads import ContentionGuard

# How often (in steps) the progress bar is advanced, the loss checked for NaN/inf and denormal
# moments zeroed: each check waits for the device (and, under DDP, for the other ranks), so it is not
# done every step; Adam's moments pass through the denormal range in a few hundred steps.
CHECK_EVERY = 50
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


class Step(Protocol):
    optimizer: torch.optim.Optimizer

    def __call__(self, data: torch.Tensor, index: torch.Tensor, loss_out: torch.Tensor) -> None:
        """One optimisation step on ``data[index]``; this rank's summed objective to ``loss_out``."""

    def sync_model(self) -> None:
        """Make the model's parameters hold the trained weights (a step may train a copy)."""


class AutogradStep:
    """One step through autograd and ``torch.optim.Adam``: any family and loss, and DDP.

    In a group of ranks, each takes its slice of the same global batch and DDP averages the
    gradients over the ranks during the backward pass. In bf16 the forward pass runs under
    ``torch.autocast``; the weights, Adam and the loss stay in float32.
    """

    def __init__(self, model: AutoEncoder, loss: Loss, lr: float, dtype: torch.dtype, distributed: bool) -> None:
        self.device = next(model.parameters()).device
        self.rank, self.world_size = 0, 1
        self.objective: nn.Module = _Objective(model, loss)
        if distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.objective = DistributedDataParallel(
                self.objective, device_ids=[self.device] if self.device.type == "cuda" else None)
            self.rank, self.world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
        self.autocast = torch.autocast(self.device.type, dtype=dtype) if dtype != torch.float32 else nullcontext()
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=True)

    def __call__(self, data: torch.Tensor, index: torch.Tensor, loss_out: torch.Tensor) -> None:
        x = data[index.tensor_split(self.world_size)[self.rank]]
        with self.autocast:
            total = self.objective(x)
        # DDP divides the summed gradients by the number of ranks: scaled so, the result is the
        # gradient of the whole batch's mean, whatever the slices' sizes (even an empty one).
        mean = total * (self.world_size / (len(index) * data.shape[1]))
        self.optimizer.zero_grad(set_to_none=False)
        mean.backward()
        self.optimizer.step()
        loss_out.copy_(total.detach())

    def sync_model(self) -> None:
        pass  # trains the model's own parameters


class _Objective(nn.Module):
    """The model's objective as a module's ``forward``: DDP wraps a module and syncs the gradients of
    what its ``forward`` computed, so the objective (a VAE's KL term included) must be that forward."""

    def __init__(self, model: AutoEncoder, loss: Loss) -> None:
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.objective(images, self.loss)


def make_step(model: AutoEncoder, config: TrainParams, max_batch: int, distributed: bool) -> Step:
    """The hand-written step where it is exact (its own pairs, one process), autograd otherwise."""
    dtype = PRECISIONS[config.precision]
    if config.step == "auto" and not distributed and implements(model, config.loss):
        return FusedMLPStep(model, max_batch, config.lr, dtype)
    return AutogradStep(model, LOSSES[config.loss], config.lr, dtype, distributed)


@contextmanager
def flushed_denormals() -> Iterator[None]:
    """Flush denormal floats to zero on the CPU while training, then back to the default (off).

    Adam's moment estimates of a weight whose gradient stays zero (a dead ReLU unit) decay through
    the denormal range, below 1.2e-38, where x86 CPUs take a slow microcode path for every multiply,
    and Adam, half of a step, runs several times slower. The CPU's flush mode covers this thread
    only, not the worker threads that run Adam's kernel on the other cores, so ``fit`` also zeroes
    the moments that reach that range (``zero_denormal_moments``). What is flushed is far below
    float32's resolution of the weights it would update, so no weight changes (``tests/test_train.py``
    checks it); ``make bench`` shows the time it saves. On GPUs this does nothing.
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def zero_denormal_moments(optimizer: torch.optim.Optimizer) -> None:
    """Set Adam's moment estimates that have decayed into the denormal range to zero."""
    tiny = torch.finfo(torch.float32).tiny
    for state in optimizer.state.values():
        for moment in ("exp_avg", "exp_avg_sq"):
            if moment in state and state[moment].device.type == "cpu":
                state[moment].masked_fill_(state[moment].abs() < tiny, 0.0)


def _check_finite(step_losses: torch.Tensor, start: int, stop: int, epoch: int, distributed: bool) -> None:
    """Stop on a NaN or infinite loss; under DDP every rank sees the summed losses and stops alike."""
    window = step_losses[start:stop]
    if distributed:  # each rank summed its own slice of every batch: add them up, on every rank
        torch.distributed.all_reduce(window)
    finite = torch.isfinite(window)
    if not bool(finite.all()):
        bad = start + int((~finite).nonzero()[0, 0])
        raise UserError(
            f"training diverged at epoch {epoch}, step {bad + 1}: the loss is {float(step_losses[bad])}; "
            f"lower train.lr"
        )


def fit(
    model: AutoEncoder,
    data: torch.Tensor,
    config: TrainParams,
    progress: bool = True,
    on_epoch_end: Callable[[int, float], None] | None = None,
    distributed: bool = False,
) -> list[float]:
    """Train ``model`` in place on ``data`` (N, D), on ``data``'s device; returns each epoch's mean loss.

    The epoch's loss is the mean over its batches of the batch's objective per element (for the MSE
    loss, the batch's mean squared error), as a tutorial loop reports it. ``on_epoch_end(epoch,
    loss)`` sees the model with that epoch's weights.
    ``distributed``: this process is one rank of a ``torch.distributed`` group (see
    ``distributed.py``); every rank must call ``fit`` with the same arguments.
    """
    n_samples = len(data)
    if n_samples == 0:
        raise UserError("the training split is empty: nothing to train on")
    model.train()
    batch_size = min(config.batch_size, n_samples)
    n_steps = math.ceil(n_samples / batch_size)
    step = make_step(model, config, batch_size, distributed)
    generator = torch.Generator().manual_seed(config.seed)
    batch_sizes = torch.full((n_steps,), float(batch_size), device=data.device)
    batch_sizes[-1] = n_samples - (n_steps - 1) * batch_size
    elements_per_step = batch_sizes * data.shape[1]
    step_losses = torch.empty(n_steps, dtype=torch.float32, device=data.device)
    history = []
    guard = ContentionGuard(data.device)
    for epoch in range(1, config.epochs + 1):
        order = torch.randperm(n_samples, generator=generator).to(data.device)
        with tqdm(total=n_steps, desc=f"epoch {epoch}/{config.epochs}", unit="batch", disable=not progress) as bar:
            for start in range(0, n_steps, CHECK_EVERY):
                stop = min(start + CHECK_EVERY, n_steps)
                started = time.perf_counter()
                with flushed_denormals():
                    for i in range(start, stop):
                        step(data, order[i * batch_size : (i + 1) * batch_size], step_losses[i])
                guard.window(stop - start, time.perf_counter() - started)
                zero_denormal_moments(step.optimizer)
                _check_finite(step_losses, start, stop, epoch, distributed)
                bar.update(stop - start)
            mean_loss = float((step_losses / elements_per_step).mean())
            bar.set_postfix(loss=f"{mean_loss:.4f}")
        history.append(mean_loss)
        step.sync_model()
        if on_epoch_end is not None:
            model.eval()
            on_epoch_end(epoch, mean_loss)
            model.train()
    return history
