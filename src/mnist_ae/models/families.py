"""The registry of model families, by ``model.kind``, and building a model from params or from a
checkpoint's config."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import torch
from pydantic import ValidationError

from ..core.errors import UserError
from .base import AutoEncoder
from .conv import ConvAutoEncoder
from .mlp import MLP
from .vae import VAE

if TYPE_CHECKING:
    from .sections import ModelParams

FAMILIES: dict[str, type[AutoEncoder]] = {family.kind: family for family in (MLP, ConvAutoEncoder, VAE)}
# Bytes a float32 parameter takes while it trains: the weight, its gradient and Adam's two moments.
TRAINING_BYTES_PER_PARAMETER = 4 * 4


def build_model(params: ModelParams, seed: int | None = None) -> AutoEncoder:
    """The family ``params.kind`` names, with its section's knobs; ``seed`` seeds its initial weights.

    Its size is checked first, on PyTorch's meta device, which allocates nothing: a typo such as
    ``code_dim: 1000000000`` is a one-line error, not a terabyte allocation that fails deep in torch.
    """
    check_fits_in_memory(params.kind, params.code_dim, params.family)
    if seed is not None:
        torch.manual_seed(seed)
    return FAMILIES[params.kind](params.code_dim, params.family)


def check_fits_in_memory(kind: str, code_dim: int, family: Any) -> None:
    """Refuse a model whose training state alone (weights, gradients, Adam) exceeds this machine's memory."""
    with torch.device("meta"):
        parameters = sum(p.numel() for p in FAMILIES[kind](code_dim, family).parameters())
    needed, memory = parameters * TRAINING_BYTES_PER_PARAMETER, physical_memory()
    if memory is not None and needed > memory:
        raise UserError(f"model.code_dim {code_dim} with model.{kind} {family.model_dump()} makes a model of "
                        f"{parameters:,} parameters, {needed / 2**30:,.0f} GiB to train with Adam: more than this "
                        f"machine's {memory / 2**30:,.0f} GiB of memory. Make them smaller.")


def physical_memory() -> int | None:
    """This machine's memory in bytes, where the OS says (Linux, macOS); None elsewhere."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def build_from_config(config: dict[str, Any]) -> AutoEncoder:
    """Rebuild a model from its ``config`` (as a checkpoint stores it), validated like params.yaml."""
    missing = [key for key in ("kind", "code_dim") if key not in config]
    if missing:
        raise ValueError(f"its model config has no {' or '.join(map(repr, missing))}")
    kind = config["kind"]
    if kind not in FAMILIES:
        raise ValueError(f"unknown model kind {kind!r}")
    if kind not in config:
        raise ValueError(f"no {kind!r} section in the model's config")
    family = FAMILIES[kind]
    try:
        section = family.Params.model_validate(config[kind])
    except ValidationError as error:
        raise ValueError(_knobs_changed(kind, error)) from None
    code_dim = config["code_dim"]
    if not isinstance(code_dim, int) or code_dim < 1:
        raise ValueError(f"code_dim {code_dim!r} is not a positive integer")
    return family(code_dim, section)


def _knobs_changed(kind: str, error: ValidationError) -> str:
    """Why a saved section no longer fits its family's knobs: one knob named, and what to do."""
    problem = error.errors()[0]
    knob = ".".join(str(part) for part in problem["loc"])
    if problem["type"] == "missing":
        return (f"its model.{kind} has no {knob!r}, a knob the {kind} family gained since it was saved; "
                f"retrain it (dvc repro train)")
    if problem["type"] == "extra_forbidden":
        return f"its model.{kind} has {knob!r}, a knob the {kind} family no longer has; retrain it (dvc repro train)"
    return f"its model.{kind}.{knob} is not valid now ({problem['msg']}); retrain it (dvc repro train)"
