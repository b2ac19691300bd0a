"""What one training step does, and which implementation of it trains a run.

``AutogradStep`` is the reference: forward, the family's objective, ``zero_grad``, ``backward``,
Adam, as in pytorch/examples. Every other step computes exactly what it computes, faster on the
devices it was measured on, and is one entry of ``STEPS``: the first entry that applies trains the
run, or the one ``train.step`` names. Adding a step (a compiled one, a CUDA graph) is one entry.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from ..core.errors import UserError
from ..models.base import AutoEncoder, Loss
from ..models.losses import LOSSES
from ..params import TrainParams
from .fast_step import FusedMLPStep, implements

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


class Step(Protocol):
    def __call__(self, data: torch.Tensor, index: torch.Tensor, loss_out: torch.Tensor) -> None:
        """One optimisation step on ``data[index]``; this rank's summed objective to ``loss_out``."""

    def moments(self) -> list[torch.Tensor]:
        """Adam's moment estimates (empty before the first step)."""

    def sync_model(self) -> None:
        """Make the model's parameters hold the trained weights (a step may train a copy)."""

    def set_lr(self, lr: float) -> None:
        """Adam's learning rate from the next step on (``train.schedule``)."""


class AutogradStep:
    """The reference step: any family, loss and device, and DDP.

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
        images = data[index.tensor_split(self.world_size)[self.rank]]
        with self.autocast:
            total = self.objective(images)  # summed over the slice's elements
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

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr


class _Objective(nn.Module):
    """The model's objective as a module's ``forward``: DDP wraps a module and syncs the gradients of
    what its ``forward`` computed, so the objective (a VAE's KL term included) must be that forward."""

    def __init__(self, model: AutoEncoder, loss: Loss) -> None:
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.objective(images, self.loss)


@dataclass(frozen=True)
class StepImplementation:
    """An implementation of the step: its name (a value of ``train.step``), where it applies
    (model, params, device, several ranks), and how it is built (model, params, largest batch,
    several ranks)."""

    name: str
    applies: Callable[[AutoEncoder, TrainParams, torch.device, bool], bool]
    build: Callable[[AutoEncoder, TrainParams, int, bool], Step]


# In order of preference: the first that applies trains the run under ``train.step: auto``.
STEPS = (
    # Hand-written for the pairs it writes out, one process, on the CPU (the device it was measured on).
    StepImplementation("fused_mlp",
             applies=lambda model, config, device, distributed: (
                 device.type == "cpu" and not distributed and implements(model, config.loss)),
             build=lambda model, config, max_batch, distributed: FusedMLPStep(
                 model, max_batch, config.lr, PRECISIONS[config.precision])),
    StepImplementation("autograd",
             applies=lambda model, config, device, distributed: True,
             build=lambda model, config, max_batch, distributed: AutogradStep(
                 model, LOSSES[config.loss], config.lr, PRECISIONS[config.precision], distributed)),
)


def choose_step(model: AutoEncoder, config: TrainParams, device: torch.device, distributed: bool) -> StepImplementation:
    """The step ``train.step`` names, or under ``auto`` the first of ``STEPS`` that applies."""
    for entry in STEPS:
        if config.step in ("auto", entry.name) and entry.applies(model, config, device, distributed):
            return entry
    applicable = [entry.name for entry in STEPS if entry.applies(model, config, device, distributed)]
    kind = getattr(model, "kind", type(model).__name__)
    raise UserError(f"train.step is {config.step!r}, which does not apply to model.kind {kind!r} on "
                    f"{config.loss} on {device.type}{' with several ranks' * distributed}; use auto or one of: "
                    f"{', '.join(applicable)}")
