"""Pick the device to train on: CUDA, then Apple MPS, then the CPU, or exactly the one asked for."""

from __future__ import annotations

import torch

from .errors import UserError


def _available(name: str) -> bool:
    if name == "cuda":
        return torch.cuda.is_available()
    if name == "mps":
        return torch.backends.mps.is_available()
    return name == "cpu"


def select_device(requested: str) -> torch.device:
    """``auto`` takes the fastest device present; a named device that is absent is an error."""
    if requested == "auto":
        return torch.device(next(name for name in ("cuda", "mps", "cpu") if _available(name)))
    if not _available(requested):
        raise UserError(f"train.device is {requested!r} but no such device is available here; use 'auto' or 'cpu'")
    return torch.device(requested)
