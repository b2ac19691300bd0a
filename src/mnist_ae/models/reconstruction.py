"""How well a model reconstructs images: per-image MSE, its objective over a split, and the trivial
reconstruction (every image as the training set's mean image) that a model which learned anything
beats by far. Training logs and checks these; evaluate reports them."""

from __future__ import annotations

import torch

from ..core.errors import UserError
from .base import AutoEncoder, Loss

CHUNK = 10_000  # rows reconstructed at once: bounds memory on the full training split


def _device(model: AutoEncoder) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def reconstruct(model: AutoEncoder, images: torch.Tensor) -> torch.Tensor:
    """The model's reconstructions of ``images``, computed in chunks on the model's device."""
    return torch.cat([model(chunk.to(_device(model))).cpu() for chunk in images.split(CHUNK)])


@torch.no_grad()
def encode(model: AutoEncoder, images: torch.Tensor) -> torch.Tensor:
    """The codes of ``images``, in chunks, on the CPU."""
    return torch.cat([model.encode(chunk.to(_device(model))).cpu() for chunk in images.split(CHUNK)])


def per_sample_mse(model: AutoEncoder, images: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the pixels of each image."""
    return (reconstruct(model, images) - images).pow(2).mean(dim=1)


@torch.no_grad()
def mean_objective(model: AutoEncoder, images: torch.Tensor, loss: Loss) -> float:
    """The training objective per element over ``images`` (as the training loss is reported), with
    the model as it is evaluated: a VAE's code is then its mean, not a sample."""
    total = sum(float(model.objective(chunk.to(_device(model)), loss)) for chunk in images.split(CHUNK))
    return total / images.numel()


def mean_image_mse(train_images: torch.Tensor, images: torch.Tensor) -> float:
    """MSE of reconstructing each of ``images`` as the mean of ``train_images``: the baseline."""
    mean = train_images.mean(dim=0, dtype=torch.float64)
    total = sum(float((chunk.double() - mean).pow(2).sum()) for chunk in images.split(CHUNK))
    return total / images.numel()


def check_learned(model: AutoEncoder, train_images: torch.Tensor) -> None:
    """Refuse a trained model that reconstructs the training split no better than the mean image.

    Such a network is dead (a too high learning rate drives every unit to a constant output) and
    every later number about it would be noise: better stop than save it.
    """
    mse = float(per_sample_mse(model, train_images).mean())
    baseline = mean_image_mse(train_images, train_images)
    if not mse < baseline:
        raise UserError(f"training learned nothing: the model's MSE on the training split, {mse:.4f}, is no better "
                        f"than {baseline:.4f}, that of reconstructing every image as the training set's mean image; "
                        f"lower train.lr")
