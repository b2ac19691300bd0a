"""Pick the device to train on: CUDA, then Apple MPS, then the CPU, or exactly the one asked for."""

from __future__ import annotations

import os

import torch

from ..core.errors import UserError


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


def has_native_bf16(device: torch.device) -> bool:
    """Whether bfloat16 matrix products run in hardware here, rather than emulated (and slower)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        # torch.cpu's private probes of the x86 CPU's features; absent elsewhere (then: no).
        probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        return any(probe() for probe in probes if probe is not None)
    return False


def check_precision(device: torch.device, precision: str) -> None:
    """bf16 only where the hardware does it natively: emulated it would be slower than fp32."""
    if precision == "bf16" and not has_native_bf16(device):
        what = "this CPU has neither AVX512-BF16 nor AMX" if device.type == "cpu" else f"{device.type} is not supported"
        raise UserError(f"train.precision is 'bf16' but {what}: bfloat16 would run emulated, slower than "
                        f"float32 here; use 'fp32'")


def make_deterministic(device: torch.device) -> None:
    """Same params, same data, same machine: same bits. On the CPU every op used is deterministic
    already, and torch's switch would import its compiler for nothing; elsewhere
    torch warns about any op that is not. cuBLAS reorders its sums between runs unless its workspace
    is fixed, read when CUDA's first matrix product runs: set before it."""
    if device.type == "cpu":
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
