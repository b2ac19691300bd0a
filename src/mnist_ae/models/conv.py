"""A convolutional auto-encoder: strided convolutions down to the code, transposed ones back up.

Each 3x3 convolution with stride 2 halves the image's side (1x28x28 -> 16x14x14 -> 32x7x7 at the
defaults), a linear layer maps the last feature map to the code, and the decoder mirrors it all,
each transposed convolution doubling the side back to the size its encoder layer started from.
ReLU between layers, a Sigmoid at the end.
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from ..core.dataset import IMAGE_SHAPE
from .base import AutoEncoder
from .sections import ConvParams


def _halved(side: int) -> int:
    """The side after a 3x3 convolution with stride 2 and padding 1."""
    return (side + 1) // 2


class ConvAutoEncoder(AutoEncoder):
    kind = "conv"
    Params = ConvParams

    def __init__(self, code_dim: int, params: ConvParams) -> None:
        super().__init__(code_dim, params)
        channels = [IMAGE_SHAPE[0], *params.channels]
        sides = [IMAGE_SHAPE[1:]]  # (height, width) before each convolution, and after the last
        for _ in params.channels:
            sides.append(tuple(_halved(side) for side in sides[-1]))
        innermost = (channels[-1], *sides[-1])
        features = channels[-1] * sides[-1][0] * sides[-1][1]

        encoder: list[nn.Module] = []
        for fan_in, fan_out in pairwise(channels):
            encoder += [nn.Conv2d(fan_in, fan_out, 3, stride=2, padding=1), nn.ReLU()]
        self.encoder = nn.Sequential(*encoder, nn.Flatten(), nn.Linear(features, code_dim))

        decoder: list[nn.Module] = [nn.Linear(code_dim, features), nn.ReLU(), nn.Unflatten(1, innermost)]
        layers = list(pairwise(channels))[::-1]
        for i, (fan_out, fan_in) in enumerate(layers):
            small, large = sides[len(layers) - i], sides[len(layers) - i - 1]
            # A transposed convolution makes 2 * side - 1; output_padding adds the row an odd side lost.
            padding = tuple(target - (2 * side - 1) for side, target in zip(small, large))
            decoder.append(nn.ConvTranspose2d(fan_in, fan_out, 3, stride=2, padding=1, output_padding=padding))
            decoder.append(nn.ReLU() if i < len(layers) - 1 else nn.Sigmoid())
        self.decoder = nn.Sequential(*decoder)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images.view(-1, *IMAGE_SHAPE))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.decoder(codes).flatten(1)
