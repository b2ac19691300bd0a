"""The fully connected auto-encoder: PIXELS -> hidden... -> code -> ...hidden -> PIXELS.

``hidden`` lists the encoder's hidden widths; the decoder mirrors them. ReLU follows every hidden
layer, the code is linear, and a Sigmoid maps the output into the pixels' range [0, 1]. At the
defaults, 784 -> 256 -> 16 -> 256 -> 784. The hand-written training step (``training/fast_step.py``)
covers this family on the MSE loss, as long as its layers stay plain Linear/ReLU/Sigmoid.
"""

from __future__ import annotations

import torch

from ..core.dataset import PIXELS
from ..core.params import MLPParams
from .base import AutoEncoder, mlp


class MLP(AutoEncoder):
    kind = "mlp"

    def __init__(self, code_dim: int, params: MLPParams) -> None:
        super().__init__(code_dim, params)
        widths = [PIXELS, *params.hidden, code_dim]
        self.encoder = mlp(widths, last_activation=None)
        self.decoder = mlp(widths[::-1], last_activation=torch.nn.Sigmoid())

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.decoder(codes)
