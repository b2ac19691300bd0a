"""What every model family is: an encoder to a code and a decoder back, trained on one objective.

Images come flat, ``(N, PIXELS)``, as the prepared splits store them, and reconstructions go back
flat, in [0, 1]; a family that needs the image's layout views a batch as ``IMAGE_SHAPE`` itself.
Everything outside ``models/`` (training, evaluate, embed, checkpoints) uses only ``encode``,
``decode``, ``objective`` (its ``objective_terms``, combined by ``combine``) and ``config``, so a new
family needs no change anywhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any, ClassVar

import torch
from pydantic import BaseModel
from torch import nn

# A reconstruction loss: (reconstruction, target) -> the sum over every element (models/losses.py).
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class AutoEncoder(nn.Module):
    kind: ClassVar[str]  # the family's name in params.yaml (model.kind) and in checkpoints
    Params: ClassVar[type[BaseModel]]  # its section of params.yaml, model.<kind>
    # Whether codes drawn from N(0, I) decode to images (a VAE's prior); if not, evaluate samples
    # from a Gaussian fitted to the training split's codes instead.
    has_prior: ClassVar[bool] = False

    def __init__(self, code_dim: int, params: BaseModel) -> None:
        super().__init__()
        self.code_dim = code_dim
        # Everything needed to rebuild the model, stored in the checkpoint beside the weights.
        self.config: dict[str, Any] = {"kind": self.kind, "code_dim": code_dim, self.kind: params.model_dump()}

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(N, PIXELS) images -> (N, code_dim) codes."""
        raise NotImplementedError

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(N, code_dim) codes -> (N, PIXELS) reconstructions in [0, 1]."""
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(images))

    def objective_terms(self, images: torch.Tensor, loss: Loss, *, reconstruction: torch.Tensor | None = None,
                        generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The terms of the objective, each summed over the batch: the training log shows them apart.
        Here the reconstruction loss alone, of ``reconstruction`` where the caller has computed
        ``self(images)`` already (evaluation: one pass of the model, not two). ``generator``: where a
        family's objective draws at random, what it draws from (evaluation: seeded; training: torch's own)."""
        return {"reconstruction": loss(self(images) if reconstruction is None else reconstruction, images)}

    def combine(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """The objective from its terms: here the reconstruction loss."""
        return terms["reconstruction"]

    def objective(self, images: torch.Tensor, loss: Loss) -> torch.Tensor:
        """What training minimises, summed over the batch."""
        return self.combine(self.objective_terms(images, loss))


def mlp(widths: list[int], last_activation: nn.Module | None) -> nn.Sequential:
    """Linear layers through ``widths``, ReLU between them, ``last_activation`` (if any) at the end."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(pairwise(widths)):
        layers.append(nn.Linear(fan_in, fan_out))
        is_last = i == len(widths) - 2
        if not is_last:
            layers.append(nn.ReLU())
        elif last_activation is not None:
            layers.append(last_activation)
    return nn.Sequential(*layers)
