"""The model families, by ``model.kind``: a family is one module here and one entry in ``FAMILIES``
(with its section in ``core/params.py`` and its defaults in params.yaml)."""

from __future__ import annotations

from typing import Any

import torch

from ..core.params import ModelParams
from .base import AutoEncoder
from .conv import ConvAutoEncoder
from .mlp import MLP
from .vae import VAE

FAMILIES: dict[str, type[AutoEncoder]] = {family.kind: family for family in (MLP, ConvAutoEncoder, VAE)}


def build_model(params: ModelParams, seed: int | None = None) -> AutoEncoder:
    """The family ``params.kind`` names, with its section's knobs; ``seed`` seeds its initial weights."""
    if seed is not None:
        torch.manual_seed(seed)
    return FAMILIES[params.kind](params.code_dim, params.family)


def build_from_config(config: dict[str, Any]) -> AutoEncoder:
    """Rebuild a model from its ``config`` (as a checkpoint stores it), validated like params.yaml."""
    kind = config["kind"]
    if kind not in FAMILIES:
        raise ValueError(f"unknown model kind {kind!r}")
    if kind not in config:
        raise ValueError(f"no {kind!r} section in the model's config")
    section = ModelParams.model_fields[kind].annotation.model_validate(config[kind])
    code_dim = config["code_dim"]
    if not isinstance(code_dim, int) or code_dim < 1:
        raise ValueError(f"code_dim {code_dim!r} is not a positive integer")
    return FAMILIES[kind](code_dim, section)
