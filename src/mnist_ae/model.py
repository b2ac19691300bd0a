"""The fully connected auto-encoder: 784 -> hidden... -> code -> ...hidden -> 784.

``hidden`` lists the encoder's hidden widths; the decoder mirrors them. ReLU follows every hidden
layer, the code is linear, and a Sigmoid maps the output into the pixels' range [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the model; stored in the checkpoint beside the weights."""

    input_dim: int = 784
    hidden: tuple[int, ...] = (256,)
    code_dim: int = 16

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))  # a list from params or a checkpoint

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> ModelConfig:
        """Read a checkpoint's config; checkpoints of the first release stored one hidden width."""
        hidden = config["hidden"]
        return cls(config["input_dim"], (hidden,) if isinstance(hidden, int) else tuple(hidden), config["code_dim"])

    def to_dict(self) -> dict[str, Any]:
        return {"input_dim": self.input_dim, "hidden": list(self.hidden), "code_dim": self.code_dim}

    @property
    def widths(self) -> list[int]:
        """Every layer's width from input to output, e.g. [784, 256, 16, 256, 784]."""
        encoder = [self.input_dim, *self.hidden, self.code_dim]
        return encoder + encoder[-2::-1]

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """The ``state_dict``'s names and shapes, computed without allocating anything.

        A checkpoint's config is checked against its weights with this before a model is built,
        so a foreign file cannot make us allocate whatever its config claims.
        """
        shapes = {}
        for part, (start, stop) in {"encoder": (0, len(self.hidden) + 1),
                                    "decoder": (len(self.hidden) + 1, 2 * len(self.hidden) + 2)}.items():
            for position, layer in enumerate(range(start, stop)):
                fan_in, fan_out = self.widths[layer], self.widths[layer + 1]
                shapes[f"{part}.{2 * position}.weight"] = (fan_out, fan_in)
                shapes[f"{part}.{2 * position}.bias"] = (fan_out,)
        return shapes


def _mlp(widths: list[int], last_activation: nn.Module | None) -> nn.Sequential:
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


class AutoEncoder(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        middle = len(config.hidden) + 1  # index of the code in config.widths
        self.encoder = _mlp(config.widths[: middle + 1], last_activation=None)
        self.decoder = _mlp(config.widths[middle:], last_activation=nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
