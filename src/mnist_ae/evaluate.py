"""Reconstruction error of a trained auto-encoder: overall, per split and per class, and against
the trivial reconstruction (every image as the training set's mean image), which a model that
learned anything beats by far."""

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


def per_class_mse(errors: torch.Tensor, labels: torch.Tensor, names: list[str]) -> dict[str, float]:
    """Mean of ``errors`` over the samples of each class present, keyed by the class's name."""
    return {names[label]: round(float(errors[labels == label].mean()), 6) for label in sorted(set(labels.tolist()))}


def reconstruction_metrics(model: AutoEncoder, train: Split, test: Split, names: list[str]) -> dict[str, object]:
    """Mean per-pixel MSE on both splits, its mean-image baseline, and on the test split per class."""
    train_mse = per_sample_mse(model, train.images)
    test_mse = per_sample_mse(model, test.images)
    return {
        "train_mse": round(float(train_mse.mean()), 6),
        "test_mse": round(float(test_mse.mean()), 6),
        "baseline_train_mse": round(mean_image_mse(train.images, train.images), 6),
        "baseline_test_mse": round(mean_image_mse(train.images, test.images), 6),
        "test_mse_per_class": per_class_mse(test_mse, test.labels, names),
    }


def check_examples(examples: list[int], split: Split) -> None:
    """The figure's indices must exist in the split; checked before any work is done."""
    outside = [i for i in examples if not 0 <= i < len(split)]
    if outside:
        raise UserError(f"evaluate.examples {outside} are outside the training split (0..{len(split) - 1})")
