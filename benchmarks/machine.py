"""The machine a benchmark ran on, named in every report: figures mean nothing without it, and
machines of the same name differ in what their matrix kernels can use."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

# /proc/cpuinfo's flags that change which kernels run: AVX-512, bfloat16 in AVX-512, Intel's AMX tiles.
KERNEL_FLAGS = {"avx512f": "AVX-512", "avx512_bf16": "AVX512-BF16", "amx_tile": "AMX"}


def describe_machine() -> str:
    """The CPU's name and kernel-relevant features, the cores, torch's version and thread count."""
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu in (platform.processor(), platform.machine()):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    features = [name for flag, name in KERNEL_FLAGS.items() if flag in flags]
    cpu += f" ({', '.join(features)})" if features else " (no AVX-512)"
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
