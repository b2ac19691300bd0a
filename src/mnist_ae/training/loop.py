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

import copy
import math
from collections.abc import Callable
from contextlib import nullcontext
from typing import Protocol

import torch
from torch import nn
from tqdm import tqdm

from ..core.errors import UserError
from ..models.base import AutoEncoder, Loss
from ..models.losses import LOSSES
from ..params import TrainParams
from .cpu import CpuTuning, thread_count
from .fast_step import FusedMLPStep, implements

# Steps in a window: once a window the progress bar advances, the loss is checked for NaN/inf and the
# CPU tuning runs (denormals, threads). Each check waits for the device (and, under DDP, for the
# other ranks), so it is not done every step; Adam's moments pass through the denormal range in a few
# hundred steps.
CHECK_EVERY = 50
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


class Step(Protocol):
    def __call__(self, data: torch.Tensor, index: torch.Tensor, loss_out: torch.Tensor) -> None:
        """One optimisation step on ``data[index]``; this rank's summed objective to ``loss_out``."""

    def moments(self) -> list[torch.Tensor]:
        """Adam's moment estimates (empty before the first step)."""

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

    def moments(self) -> list[torch.Tensor]:
        return [state[name] for state in self.optimizer.state.values() for name in ("exp_avg", "exp_avg_sq")]

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


def hand_written(model: AutoEncoder, config: TrainParams, distributed: bool) -> bool:
    """Whether the hand-written step trains this run: where it is exact (its own pairs), in one
    process, unless ``train.step`` asks for autograd."""
    return config.step == "auto" and not distributed and implements(model, config.loss)


def step_name(model: AutoEncoder, config: TrainParams, distributed: bool) -> str:
    """What trains the run, in words, for the stage's last line."""
    return "the hand-written step" if hand_written(model, config, distributed) else "autograd"


def make_step(model: AutoEncoder, config: TrainParams, max_batch: int, distributed: bool) -> Step:
    """The hand-written step where it is exact, autograd otherwise."""
    dtype = PRECISIONS[config.precision]
    if hand_written(model, config, distributed):
        return FusedMLPStep(model, max_batch, config.lr, dtype)
    return AutogradStep(model, LOSSES[config.loss], config.lr, dtype, distributed)


def same_bits_at_every_thread_count(model: AutoEncoder, config: TrainParams, data: torch.Tensor,
                                    batch_size: int) -> bool:
    """Whether training steps from the model's weights give the same bits at every thread count up
    to the current one: the losses, the weights and Adam's moments (the gradients' trace), after two
    steps at the full batch size and one at the short last batch's, if the run has one.

    Two steps, not one: Adam's first step moves each weight by about ``lr`` times the sign of its
    gradient, which hides a gradient's last bits; its moments do not.
    """
    last = len(data) - (math.ceil(len(data) / batch_size) - 1) * batch_size
    sizes = [batch_size, batch_size] + ([last] if last != batch_size else [])
    trials = []
    for threads in range(1, torch.get_num_threads() + 1):
        trial = copy.deepcopy(model)
        with thread_count(threads), torch.random.fork_rng(devices=[]):  # the run's random stream untouched
            torch.manual_seed(0)  # the same noise (a VAE's) in both trials
            step = make_step(trial, config, batch_size, distributed=False)
            losses = torch.empty(len(sizes), device=data.device)
            for i, size in enumerate(sizes):
                step(data, torch.arange(size, device=data.device), losses[i])
            step.sync_model()
        trials.append([losses, *trial.state_dict().values(), *step.moments()])
    return all(torch.equal(a, b) for trial in trials[1:] for a, b in zip(trials[0], trial, strict=True))


def _check_finite(step_losses: torch.Tensor, window: range, epoch: int, distributed: bool) -> None:
    """Stop on a NaN or infinite loss; under DDP every rank sees the summed losses and stops alike."""
    losses = step_losses[window.start : window.stop]
    if distributed:  # each rank summed its own slice of every batch: add them up, on every rank
        torch.distributed.all_reduce(losses)
    finite = torch.isfinite(losses)
    if not bool(finite.all()):
        bad = window.start + int((~finite).nonzero()[0, 0])
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
    step_losses = torch.empty(n_steps, dtype=torch.float32, device=data.device)
    elements_per_step = torch.full((n_steps,), float(batch_size * data.shape[1]), device=data.device)
    elements_per_step[-1] = (n_samples - (n_steps - 1) * batch_size) * data.shape[1]
    history = []
    # Ranks keep their threads: each rank's count is its own affair, and the check is one process's.
    same_bits = None if distributed else lambda: same_bits_at_every_thread_count(model, config, data, batch_size)
    with CpuTuning(data.device, same_bits) as cpu:  # the thread count is back where it was after it
        for epoch in range(1, config.epochs + 1):
            batches = torch.randperm(n_samples, generator=generator).to(data.device).split(batch_size)
            with tqdm(total=n_steps, desc=f"epoch {epoch}/{config.epochs}", unit="batch", disable=not progress) as bar:
                for window in _windows(n_steps, CHECK_EVERY):
                    with cpu.window(len(window), step.moments):
                        for i in window:
                            step(data, batches[i], step_losses[i])
                    _check_finite(step_losses, window, epoch, distributed)
                    bar.update(len(window))
                mean_loss = float((step_losses / elements_per_step).mean())
                bar.set_postfix(loss=f"{mean_loss:.4f}")
            history.append(mean_loss)
            step.sync_model()
            if on_epoch_end is not None:
                model.eval()
                on_epoch_end(epoch, mean_loss)
                model.train()
    if progress and cpu.summary():
        print(f"threads: {cpu.summary()}")
    return history


def _windows(n_steps: int, size: int) -> list[range]:
    """The steps of an epoch in windows of ``size``: once a window the loop checks the loss, and the
    CPU tuning its threads."""
    return [range(start, min(start + size, n_steps)) for start in range(0, n_steps, size)]
