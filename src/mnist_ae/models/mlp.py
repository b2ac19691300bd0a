"""The fully connected auto-encoder: PIXELS -> hidden... -> code -> ...hidden -> PIXELS.

``hidden`` lists the encoder's hidden widths; the decoder mirrors them. ReLU follows every hidden
layer, the code is linear, and a Sigmoid maps the output into the pixels' range [0, 1]. At the
defaults, 784 -> 256 -> 16 -> 256 -> 784. The hand-written training step (``training/fast_step.py``)
trains this family on the MSE loss from the chain of layers ``dense_layers`` gives; add another kind
of layer here and it says None, and the family trains through autograd like the others.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.dataset import PIXELS
from .base import AutoEncoder, mlp
from .sections import MLPParams


class MLP(AutoEncoder):
    kind = "mlp"
    Params = MLPParams

    def __init__(self, code_dim: int, params: MLPParams) -> None:
        super().__init__(code_dim, params)
        widths = [PIXELS, *params.hidden, code_dim]
        self.encoder = mlp(widths, last_activation=None)
        self.decoder = mlp(widths[::-1], last_activation=torch.nn.Sigmoid())

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.decoder(codes)

    def dense_layers(self) -> list[tuple[nn.Linear, str]] | None:
        """The network from input to output as (Linear, the activation after it: "relu", "sigmoid" or
        "identity"), or None if it is not such a chain ending in a Sigmoid (a Dropout, a Tanh or a
        Linear without bias in it): what the hand-written step can train."""
        activations = {nn.ReLU: "relu", nn.Sigmoid: "sigmoid"}
        layers: list[tuple[nn.Linear, str]] = []
        for module in [*self.encoder, *self.decoder]:
            if type(module) is nn.Linear and module.bias is not None:
                layers.append((module, "identity"))
            elif type(module) in activations and layers and layers[-1][1] == "identity":
                layers[-1] = (layers[-1][0], activations[type(module)])
            else:
                return None
        kinds = [activation for _, activation in layers]
        if not layers or kinds[-1] != "sigmoid" or "sigmoid" in kinds[:-1]:
            return None
        return layers
