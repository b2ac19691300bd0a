"""Run the train stage on several processes with PyTorch's own launcher, torchrun.

``train.nproc: 1`` (the default) trains in the plain single process. With ``train.nproc: N`` the
stage hands itself to ``torch.distributed.run`` (what the ``torchrun`` command runs) for N ranks
on this machine; started by ``torchrun`` directly (several machines), it joins the group it finds
in the environment. Rank 0 alone writes outputs, progress bars and logs; a rank that fails brings
the whole run down through torchrun, with its error shown.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch

from ..core.errors import UserError

# How long a rank waits for the others, at the start and in each collective, before the run fails.
# PyTorch's defaults (10 minutes for NCCL, 30 for gloo) would leave the other machines of a
# multi-node run idle that long after one fails; this model's largest all-reduce takes milliseconds.
PROCESS_GROUP_TIMEOUT = timedelta(seconds=120)


@dataclass(frozen=True)
class Rank:
    """This process's place in the run: its device, its rank and how many ranks there are."""

    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """Whether torchrun started this process (it sets these variables for every rank)."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def world_size(nproc: int) -> int:
    """How many ranks the run trains on, known before any starts: torchrun's count in a rank it
    started (several machines' ranks, whatever ``train.nproc`` says), else ``train.nproc``."""
    return int(os.environ["WORLD_SIZE"]) if launched_by_torchrun() else nproc


def needs_torchrun(nproc: int) -> bool:
    """Whether this process must start the ranks: more than one asked for, and none started yet."""
    return nproc > 1 and not launched_by_torchrun()


def relaunch_with_torchrun(nproc: int, script: str, device: torch.device) -> int:
    """Start ``script`` as ``nproc`` ranks on this machine through torchrun; returns the exit code.

    The caller checks first what would fail alike in every rank. What only a rank finds (a loss
    that diverged) each rank prints (a user error as one line, exit 2); the exit code passed on is
    that of the rank that failed first, so a user error still ends the stage with 2, Ctrl-C with 130.
    """
    if device.type == "cuda" and nproc > torch.cuda.device_count():
        raise UserError(f"train.nproc is {nproc} but this machine has {torch.cuda.device_count()} CUDA devices; "
                        f"use at most one rank a GPU")
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    try:
        torchrun(["--standalone", f"--nproc-per-node={nproc}", script, *sys.argv[1:]])
    except ChildFailedError as error:
        rank, failure = error.get_first_failure()
        print(f"error: rank {rank} of {nproc} failed (exit code {failure.exitcode}); its message is above",
              file=sys.stderr)
        return failure.exitcode if failure.exitcode > 0 else 1
    except (SignalException, KeyboardInterrupt):
        print("interrupted: no output of this stage was kept", file=sys.stderr)
        return 130
    return 0


@contextmanager
def process_group(device: torch.device) -> Iterator[Rank]:
    """Join the torchrun group (gloo on the CPU, NCCL on CUDA, one GPU a rank), or stand alone."""
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        yield Rank(device)
        return
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                         timeout=PROCESS_GROUP_TIMEOUT)
    try:
        yield Rank(device, torch.distributed.get_rank(), torch.distributed.get_world_size())
    finally:
        torch.distributed.destroy_process_group()
