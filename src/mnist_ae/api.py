"""The trained encoder in your own code: load a model (this checkout's, another revision's, or any
checkpoint file), load the prepared splits, encode and decode; export the encoder and the decoder for
code that has torch but no copy of this package.

    from mnist_ae.api import load_model, load_split, encode
    model = load_model()                       # data/models/autoencoder.pt
    test = load_split("test")
    codes = encode(model, test.images)         # (10000, model.code_dim), no gradients

``examples/classify_codes.py`` trains a classifier on the codes; the README's "Use the encoder"
section says more.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

import torch
from torch import nn

from .core import paths
from .core.dataset import Split
from .core.dataset import load_split as _load_split
from .models.base import AutoEncoder
from .models.checkpoint import load_checkpoint
from .models.reconstruction import decode, encode

__all__ = ["AutoEncoder", "Split", "decode", "encode", "export", "load_model", "load_model_at", "load_split"]


def load_model(source: str | os.PathLike[str] | IO[bytes] = paths.CHECKPOINT,
               device: torch.device | str = "cpu") -> AutoEncoder:
    """A trained model, in evaluation mode, from a checkpoint's path or an open binary file."""
    return load_checkpoint(source, device)[0]


def load_model_at(rev: str, repo: str | None = None, device: torch.device | str = "cpu") -> AutoEncoder:
    """The model of another revision (a tag, a branch, a commit, an experiment's name) of this
    repository, or of the git repository ``repo`` (a path or URL): ``dvc.api`` reads it from the DVC
    cache, or from the remote when the cache lacks it, without checking anything out."""
    import dvc.api  # here: it is slow to import, and only this needs it

    with dvc.api.open(paths.CHECKPOINT.as_posix(), repo=repo, rev=rev, mode="rb") as file:
        return load_model(file, device)


def load_split(name: str, prepared: str | os.PathLike[str] = paths.PREPARED) -> Split:
    """A prepared split (``train``, ``validation`` or ``test``): images (N, 784) in [0, 1], labels,
    the classes' names."""
    return _load_split(prepared, name)


class _Half(nn.Module):
    """One of the model's halves as a module's ``forward``: what ``torch.export`` records."""

    def __init__(self, model: AutoEncoder, half: str) -> None:
        super().__init__()
        self.model, self.half = model, half

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return getattr(self.model, self.half)(batch)


def export(model: AutoEncoder, folder: str | os.PathLike[str]) -> dict[str, Path]:
    """Save the encoder and the decoder as ``torch.export`` programs, ``encoder.pt2`` and
    ``decoder.pt2`` in ``folder``, for code that has torch but not this package:
    ``torch.export.load("encoder.pt2").module()(images)`` gives the codes of an (N, 784) batch of
    any N. Recorded in evaluation mode: a VAE's code is its mean. Returns the two paths."""
    from torch.export import Dim, save
    from torch.export import export as record

    from .core.atomic import atomic_path
    from .core.dataset import PIXELS

    model, batch, device = model.eval(), Dim("batch"), next(model.parameters()).device
    examples = {"encoder": ("encode", torch.rand(2, PIXELS, device=device)),
                "decoder": ("decode", torch.rand(2, model.code_dim, device=device))}
    written = {}
    for name, (half, example) in examples.items():
        program = record(_Half(model, half), (example,), dynamic_shapes=({0: batch},))
        written[name] = Path(folder) / f"{name}.pt2"
        with atomic_path(written[name]) as tmp, open(tmp, "wb") as file:
            save(program, file)
    return written
