"""How well a model reconstructs images: per-image MSE, codes and its objective over a split, in one
pass (``assess``), and the trivial reconstruction (every image as the training set's mean image)
that a model which learned anything beats by far. Training logs and checks these; evaluate reports them."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.errors import UserError
from .base import AutoEncoder, Loss

CHUNK = 1024  # rows at once: bounds memory, and keeps a chunk's activations in the CPU's cache from layer to layer


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


@torch.no_grad()
def decode(model: AutoEncoder, codes: torch.Tensor) -> torch.Tensor:
    """The images ``codes`` decode to, in chunks, on the CPU."""
    return torch.cat([model.decode(chunk.to(_device(model))).cpu() for chunk in codes.split(CHUNK)])


@dataclass(frozen=True)
class Assessment:
    """A model's work on a split of ``n`` images of ``pixels`` each, with the model as it is evaluated
    (a VAE's code is its mean, not a sample)."""

    codes: torch.Tensor  # (n, code_dim), on the CPU
    mse: torch.Tensor  # (n,): each image's mean squared error over its pixels
    objective: float  # the training objective, summed over the split
    terms: dict[str, float]  # the objective's terms (objective_terms), each summed over the split
    pixels: int

    @property
    def objective_per_element(self) -> float:
        """As the training loss is reported: per pixel."""
        return self.objective / (len(self.mse) * self.pixels)

    def terms_per_image(self) -> dict[str, float]:
        return {name: total / len(self.mse) for name, total in self.terms.items()}


@torch.no_grad()
def assess(model: AutoEncoder, images: torch.Tensor, loss: Loss | None) -> Assessment:
    """Codes, per-image MSE and the objective over ``images``, in chunks on the model's device.
    ``loss=None``: no objective (it takes another pass of the model), 0 in its place."""
    codes, mse, objective, terms = [], [], 0.0, {}
    for chunk in images.split(CHUNK):
        chunk = chunk.to(_device(model))
        code = model.encode(chunk)
        codes.append(code.cpu())
        mse.append((model.decode(code) - chunk).pow(2).mean(dim=1).cpu())
        if loss is not None:
            chunk_terms = model.objective_terms(chunk, loss)
            objective += float(model.combine(chunk_terms))
            for name, value in chunk_terms.items():
                terms[name] = terms.get(name, 0.0) + float(value)
    return Assessment(torch.cat(codes), torch.cat(mse), objective, terms, images.shape[1])


def mean_image_mse(train_images: torch.Tensor, images: torch.Tensor) -> float:
    """MSE of reconstructing each of ``images`` as the mean of ``train_images``: the baseline. The
    squares in float32, each chunk's sum in float64."""
    mean = train_images.mean(dim=0, dtype=torch.float64).float()
    total = sum(float((chunk - mean).pow(2).sum(dtype=torch.float64)) for chunk in images.split(CHUNK))
    return total / images.numel()


def check_learned(mse: float, baseline: float) -> None:
    """Refuse a trained model whose validation MSE is no better than the mean image's (``baseline``).

    Such a network is dead (a too high learning rate drives every unit to a constant output) and
    every later number about it would be noise: better stop than save it. The MSE is the last
    epoch's, which the training log has computed already.
    """
    if not mse < baseline:
        raise UserError(f"training learned nothing: the model's MSE on the validation split, {mse:.4f}, is no "
                        f"better than {baseline:.4f}, that of reconstructing every image as the training set's mean "
                        f"image; lower train.lr")
