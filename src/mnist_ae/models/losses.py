"""The reconstruction losses, each defined once: every training path, and evaluate, call these.

Each returns the sum over every element of the batch, in float32 whatever the precision of the
forward pass (under bf16 autocast too); callers divide by the number of elements for the mean
they report. ``train.loss`` in params.yaml names one of ``LOSSES``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch.nn import functional

from .base import Loss


def in_float32(loss: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """Compute ``loss`` in float32 outside any autocast region: a sum over 25,000 elements in
    bfloat16 would lose most of its digits, and torch refuses BCE under CUDA's autocast."""

    @functools.wraps(loss)
    def wrapped(*tensors: torch.Tensor) -> torch.Tensor:
        with torch.autocast(tensors[0].device.type, enabled=False):
            return loss(*(tensor.float() for tensor in tensors))

    return wrapped


@in_float32
def mse(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error: treats each pixel as a Gaussian around the reconstruction."""
    return functional.mse_loss(reconstruction, target, reduction="sum")


@in_float32
def bce(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy: each pixel as the probability of ink, as PyTorch's VAE example trains.

    torch's BCE refuses a NaN input with "all elements of input should be between 0 and 1" (on CUDA,
    a device-side assert), and a diverging training produces NaNs: here they reach the loss instead
    (``reconstruction - finite`` is 0, with a zero gradient, where the input is a number, and NaN or
    inf where not), so the loop stops with its own divergence message.
    """
    finite = reconstruction.nan_to_num(nan=0.5, posinf=1.0, neginf=0.0)
    return functional.binary_cross_entropy(finite, target, reduction="sum") + (reconstruction - finite).sum()


LOSSES: dict[str, Loss] = {"mse": mse, "bce": bce}
