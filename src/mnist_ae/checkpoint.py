"""Save a trained model with what it takes to rebuild it, and load it back safely."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .atomic import save_torch
from .errors import UserError, first_line
from .model import AutoEncoder, ModelConfig


def save_checkpoint(path: Path, model: AutoEncoder, metadata: dict[str, Any]) -> None:
    """Weights (on the CPU, so any machine can load them), model config and run metadata."""
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    save_torch(path, {"state_dict": state, "config": model.config.to_dict(), "metadata": metadata})


def _read(path: Path) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """The file's config, weights and metadata, the weights' shapes checked against the config.

    The shapes are compared before a model is built: a foreign config (``hidden: [10**9]``) must
    not make us allocate what it claims.
    """
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    config = ModelConfig.from_dict(checkpoint["config"])
    expected = config.parameter_shapes()
    found = {name: tuple(tensor.shape) for name, tensor in checkpoint["state_dict"].items()}
    if found != expected:
        wrong = sorted(name for name in expected.keys() | found.keys() if expected.get(name) != found.get(name))
        raise ValueError(f"weights of another model size: {wrong[0]} is {found.get(wrong[0])} in the file, "
                         f"{expected.get(wrong[0])} for its config {checkpoint['config']}")
    return config, checkpoint["state_dict"], checkpoint.get("metadata", {})


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> tuple[AutoEncoder, dict[str, Any]]:
    """Rebuild the model from a checkpoint; ``weights_only=True`` so a file cannot run code."""
    if not path.exists():
        raise UserError(f"{path} not found: run the train stage first (dvc repro train)")
    try:
        config, state, metadata = _read(path)
        model = AutoEncoder(config)
        model.load_state_dict(state)
    except Exception as error:  # truncated, foreign or mismatched files fail in many ways
        raise UserError(f"{path} is not a checkpoint of this model ({first_line(error)}); "
                        "rerun the train stage") from None
    return model.to(device).eval(), metadata
