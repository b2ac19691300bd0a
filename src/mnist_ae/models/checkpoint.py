"""Save a trained model with what it takes to rebuild it, and load it back safely."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..core.atomic import save_torch
from ..core.dataset import PIXELS
from ..core.errors import UserError, first_line
from . import build_from_config
from .base import AutoEncoder


def save_checkpoint(path: Path, model: AutoEncoder, metadata: dict[str, Any]) -> None:
    """Weights (on the CPU, so any machine can load them), the model's config and run metadata."""
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    save_torch(path, {"state_dict": state, "model": model.config, "metadata": metadata})


def _model_config(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The file's model config; checkpoints from before model families held one MLP's ``config``
    (``hidden`` an integer in the first release), which reads as the ``mlp`` family."""
    if "model" in checkpoint:
        return checkpoint["model"]
    old = checkpoint["config"]
    if old["input_dim"] != PIXELS:
        raise ValueError(f"a model of {old['input_dim']} inputs, not {PIXELS}")
    hidden = [old["hidden"]] if isinstance(old["hidden"], int) else list(old["hidden"])
    return {"kind": "mlp", "code_dim": old["code_dim"], "mlp": {"hidden": hidden}}


def _read(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any]]:
    """The file's model config, weights and metadata, the weights' shapes checked against the config.

    The expected shapes come from the model built on PyTorch's meta device, which allocates nothing:
    a foreign config (``hidden: [10**9]``) cannot make us allocate what it claims, and whatever
    layers a family has (a Dropout, a convolution), the check is the model's own ``state_dict``.
    """
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    config = _model_config(checkpoint)
    with torch.device("meta"):
        expected = {name: tuple(tensor.shape) for name, tensor in build_from_config(config).state_dict().items()}
    found = {name: tuple(tensor.shape) for name, tensor in checkpoint["state_dict"].items()}
    if found != expected:
        wrong = sorted(name for name in expected.keys() | found.keys() if expected.get(name) != found.get(name))
        raise ValueError(f"weights of another model: {wrong[0]} is {found.get(wrong[0])} in the file, "
                         f"{expected.get(wrong[0])} for its config {config}")
    return config, checkpoint["state_dict"], checkpoint.get("metadata", {})


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> tuple[AutoEncoder, dict[str, Any]]:
    """Rebuild the model from a checkpoint; ``weights_only=True`` so a file cannot run code."""
    if not path.exists():
        raise UserError(f"{path} not found: run the train stage first (dvc repro train)")
    try:
        config, state, metadata = _read(path)
        model = build_from_config(config)
        model.load_state_dict(state)
    except Exception as error:  # truncated, foreign or mismatched files fail in many ways
        raise UserError(f"{path} is not a checkpoint of this project's models ({first_line(error)}); "
                        "rerun the train stage") from None
    return model.to(device).eval(), metadata
