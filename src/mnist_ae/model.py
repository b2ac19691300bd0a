"""The fully connected auto-encoder: 784 -> hidden -> code -> hidden -> 784."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the model; stored in the checkpoint beside the weights."""

    input_dim: int = 784
    hidden: int = 256
    code_dim: int = 16

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class AutoEncoder(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = nn.Sequential(
            nn.Linear(config.input_dim, config.hidden),
            nn.ReLU(),
            nn.Linear(config.hidden, config.code_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(config.code_dim, config.hidden),
            nn.ReLU(),
            nn.Linear(config.hidden, config.input_dim),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def linears(self) -> list[nn.Linear]:
        """The four linear layers in forward order (the trainer's hand-written backward needs them)."""
        return [self.encoder[0], self.encoder[2], self.decoder[0], self.decoder[2]]
