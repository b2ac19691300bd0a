"""Save a trained model with what it takes to rebuild it, and load it back safely."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import IO, Any

import torch

from ..core.atomic import save_torch
from ..core.errors import UserError, first_line
from .base import AutoEncoder
from .families import build_from_config
from .losses import LOSSES

# What a checkpoint holds: the weights, the model's config (kind, code_dim and the family's section),
# and the run's metadata (the train params, among them the loss it was trained on).
KEYS = ("state_dict", "model", "metadata")


def save_checkpoint(path: Path, model: AutoEncoder, metadata: dict[str, Any]) -> None:
    """Weights (on the CPU, so any machine can load them), the model's config and run metadata."""
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    save_torch(path, {"state_dict": state, "model": model.config, "metadata": metadata})


def _read(source: Path | IO[bytes]) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any]]:
    """The file's model config, weights and metadata, the weights' shapes checked against the config
    and their values finite.

    The expected shapes come from the model built on PyTorch's meta device, which allocates nothing:
    a foreign config (``hidden: [10**9]``) cannot make us allocate what it claims, and whatever
    layers a family has (a Dropout, a convolution), the check is the model's own ``state_dict``.
    """
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict):
        raise ValueError(f"it holds a {type(checkpoint).__name__}, not a dict of {', '.join(KEYS)}")
    missing = [key for key in KEYS if key not in checkpoint]
    if missing:
        raise ValueError(f"it has no {' or '.join(map(repr, missing))} (it has {', '.join(map(repr, checkpoint))})")
    config = checkpoint["model"]
    with torch.device("meta"):
        expected = {name: tuple(tensor.shape) for name, tensor in build_from_config(config).state_dict().items()}
    found = {name: tuple(tensor.shape) for name, tensor in checkpoint["state_dict"].items()}
    if found != expected:
        wrong = sorted(name for name in expected.keys() | found.keys() if expected.get(name) != found.get(name))
        raise ValueError(f"weights of another model: {wrong[0]} is {found.get(wrong[0])} in the file, "
                         f"{expected.get(wrong[0])} for its config {config}")
    # A NaN weight runs silently to NaN codes, which end the evaluate stage inside torch.linalg; the
    # train stage never saves one (it stops on a diverged loss), so such a file is damaged.
    broken = next((name for name, tensor in checkpoint["state_dict"].items()
                   if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())), None)
    if broken:
        raise ValueError(f"its weight {broken} holds NaN or inf")
    if not isinstance(checkpoint["metadata"], dict):  # the evaluate stage reads it (trained_loss)
        raise ValueError(f"its metadata is a {type(checkpoint['metadata']).__name__}, not a dict")
    return config, checkpoint["state_dict"], checkpoint["metadata"]


def load_checkpoint(source: str | os.PathLike[str] | IO[bytes],
                    device: torch.device | str = "cpu") -> tuple[AutoEncoder, dict[str, Any]]:
    """Rebuild the model from a checkpoint: a path, or an open binary file (what ``dvc.api.open``
    gives for another revision). ``weights_only=True``: a file cannot run code."""
    name = source if isinstance(source, str | os.PathLike) else getattr(source, "name", "the checkpoint")
    if isinstance(source, str | os.PathLike):
        source = Path(source)
        if not source.exists():
            raise UserError(f"{source} not found: run the train stage first (dvc repro train)")
    try:
        # A stream is read whole first: torch.load seeks, and a stream from a remote (dvc.api.open) may not.
        config, state, metadata = _read(source if isinstance(source, Path) else io.BytesIO(source.read()))
        model = build_from_config(config)
        model.load_state_dict(state)
    except Exception as error:  # truncated, foreign or mismatched files fail in many ways
        raise UserError(f"{name} is not a checkpoint of this project's models ({first_line(error)}); "
                        "rerun the train stage") from None
    return model.to(device).eval(), metadata


def trained_loss(metadata: dict[str, Any], name: str | os.PathLike[str]) -> str:
    """The reconstruction loss (``train.loss``) the checkpoint's model was trained on."""
    train = metadata.get("train")
    loss = train.get("loss") if isinstance(train, dict) else None
    if not isinstance(loss, str) or loss not in LOSSES:  # a list (unhashable) would raise in the lookup
        raise UserError(f"{name} does not say which loss trained it (metadata train.loss is {loss!r}); "
                        f"rerun the train stage")
    return loss
