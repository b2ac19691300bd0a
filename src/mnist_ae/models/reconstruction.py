"""How well a model reconstructs images: per-image MSE, codes and its objective over a split, in one
pass (``assess``), and the trivial reconstruction (every image as the training set's mean image)
that a model which learned anything beats by far. Training logs and checks these; evaluate reports them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..core.errors import UserError
from .base import AutoEncoder, Loss

CHUNK = 1024  # rows at once: bounds memory, and keeps a chunk's activations in the CPU's cache from layer to layer
# The seed of what an objective draws in evaluation (a VAE's sampled code): the same draws at every
# epoch's validation pass and in every run, so a change in val_loss or test_loss is the model's.
NOISE_SEED = 0


def _device(model: AutoEncoder) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def _in_chunks(function: Callable[[torch.Tensor], torch.Tensor], model: AutoEncoder,
              rows: torch.Tensor) -> torch.Tensor:
    """``function`` (the model's ``encode``, ``decode`` or itself) of ``rows``, computed in chunks on the
    model's device, gathered on the CPU."""
    return torch.cat([function(chunk.to(_device(model))).cpu() for chunk in rows.split(CHUNK)])


def encode(model: AutoEncoder, images: torch.Tensor) -> torch.Tensor:
    """The codes of ``images``, on the CPU, without gradients."""
    return _in_chunks(model.encode, model, images)


def decode(model: AutoEncoder, codes: torch.Tensor) -> torch.Tensor:
    """The images ``codes`` decode to, on the CPU, without gradients."""
    return _in_chunks(model.decode, model, codes)


@dataclass(frozen=True)
class Assessment:
    """A model's work on a split of ``n`` images of ``pixels`` each, with the model as it is evaluated:
    a VAE's code is its mean, its objective that of a sampled code, as trained."""

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
    """Codes, per-image MSE and the objective over ``images``, in chunks on the model's device: a family
    whose objective is of the reconstruction (mlp, conv) runs once per chunk; a VAE, whose objective
    decodes a sampled code, runs its encoder and decoder again for it, the code drawn from a generator
    seeded with ``NOISE_SEED``. ``loss=None``: no objective, 0 in its place."""
    device = _device(model)
    generator = torch.Generator(device).manual_seed(NOISE_SEED)
    codes, mse, objective, terms = [], [], 0.0, {}
    for chunk in images.split(CHUNK):
        chunk = chunk.to(device)
        code = model.encode(chunk)
        reconstruction = model.decode(code)
        codes.append(code.cpu())
        mse.append((reconstruction - chunk).pow(2).mean(dim=1).cpu())
        if loss is not None:
            chunk_terms = model.objective_terms(chunk, loss, reconstruction=reconstruction, generator=generator)
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
