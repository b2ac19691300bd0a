"""Reconstruction error of a trained auto-encoder: overall, per split and per digit."""

from __future__ import annotations

import torch

from .dataset import Split
from .errors import UserError
from .model import AutoEncoder

CHUNK = 10_000  # rows reconstructed at once: bounds memory on the full training split


@torch.no_grad()
def reconstruct(model: AutoEncoder, images: torch.Tensor) -> torch.Tensor:
    """The model's reconstructions of ``images``, computed in chunks on the model's device."""
    device = next(model.parameters()).device
    return torch.cat([model(chunk.to(device)).cpu() for chunk in images.split(CHUNK)])


def per_sample_mse(model: AutoEncoder, images: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the pixels of each image."""
    return (reconstruct(model, images) - images).pow(2).mean(dim=1)


def reconstruction_metrics(model: AutoEncoder, train: Split, test: Split) -> dict[str, object]:
    """Mean per-pixel MSE on both splits and, on the test split, for each digit."""
    train_mse = per_sample_mse(model, train.images)
    test_mse = per_sample_mse(model, test.images)
    per_digit = {
        str(digit): round(float(test_mse[test.labels == digit].mean()), 6)
        for digit in sorted(set(test.labels.tolist()))
    }
    return {
        "train_mse": round(float(train_mse.mean()), 6),
        "test_mse": round(float(test_mse.mean()), 6),
        "test_mse_per_digit": per_digit,
    }


def check_examples(examples: list[int], split: Split) -> None:
    """The figure's indices must exist in the split; checked before any work is done."""
    outside = [i for i in examples if not 0 <= i < len(split)]
    if outside:
        raise UserError(f"evaluate.examples {outside} are outside the training split (0..{len(split) - 1})")
