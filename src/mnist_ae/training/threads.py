"""The train stage's CPU threads: how many, and how they wait, chosen for the cores the process gets.

PyTorch's CPU kernels and MKL's matrix products run on OpenMP threads (libgomp in the Linux wheels).
A training step at batch 32 is some twenty short parallel regions, each ending at a barrier where
the threads wait for one another. By default libgomp's waiting threads spin (for up to 300,000
iterations, about a millisecond) before they sleep. On an idle machine that is what makes a small
region cheap; beside another busy process it is ruinous: three runnable threads share two cores, a
spinning thread burns the time slice that its partner needs to finish its share of the region, and
every region waits for the scheduler. On a 2-core VM the 2-thread training fell from 213-247
batches/s idle to 69 beside one busy process and to 6 beside two (1 thread: 203, 188, 110).

So, in the train stage:

- waiting threads sleep at once (``OMP_WAIT_POLICY=passive``), unless the user set
  ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``: ``wait_passively_by_default``, which has to run before
  ``import torch`` (libgomp reads its settings once, when it is loaded);
- one thread per core that this process may use (``configure_threads``): never more than torch's own
  default, fewer where the CPU affinity mask or the cgroup's CPU quota allow fewer, and
  ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS``, when set, win.

The thread count is not chosen from the machine's load of the moment: it changes the rounding of
the loss's sums (1 against 2 threads: the logged losses differ in their last bits, the weights do
not), and the same params on the same machine must give the same bits. How threads wait changes no
result. ``benchmarks/contention.py`` measures all of this beside busy neighbours.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

WAIT_POLICY = "passive"
USER_WAIT_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
USER_THREAD_SETTINGS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def wait_passively_by_default() -> bool:
    """Make OpenMP's waiting threads sleep rather than spin, unless the user chose how they wait.

    Call it before anything imports torch. It sets the environment variable, which torchrun's ranks
    and any other child process inherit too. Returns False when torch was already imported, so that
    libgomp in this process keeps the settings it read then.
    """
    if not any(os.environ.get(name) for name in USER_WAIT_SETTINGS):
        os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY
    return "torch" not in sys.modules


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity mask, capped by a cgroup CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, max(1, math.floor(quota)))
    return cores


def configure_threads() -> int:
    """Set torch's intra-op threads to ``usable_cores()`` (at most torch's default); returns the count.

    Leaves the count alone when ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` is set: torch has read it.
    """
    import torch  # here, not at the top: this module is imported before torch must be

    if any(os.environ.get(name) for name in USER_THREAD_SETTINGS):
        return torch.get_num_threads()
    threads = min(torch.get_num_threads(), usable_cores())
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return threads


def _cgroup_cpu_quota() -> float | None:
    """The smallest CPU quota, in cores, of this process's cgroup and those above it, or None."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2: cpu.max holds "QUOTA PERIOD", or "max PERIOD"
            root, files = Path("/sys/fs/cgroup"), ("cpu.max",)
        elif "cpu" in controllers.split(","):  # cgroup v1: the quota and the period in two files
            root, files = Path("/sys/fs/cgroup/cpu"), ("cpu.cfs_quota_us", "cpu.cfs_period_us")
        else:
            continue
        folder = root / path.lstrip("/")
        for level in (folder, *folder.parents):  # a container sees its own cgroup as the root
            quotas.append(_read_quota([level / name for name in files]))
            if level == root:
                break
    known = [q for q in quotas if q is not None]
    return min(known) if known else None


def _read_quota(files: list[Path]) -> float | None:
    try:
        fields = " ".join(f.read_text() for f in files).split()
        if fields[0] in ("max", "-1"):
            return None
        return int(fields[0]) / int(fields[1])
    except (OSError, ValueError, IndexError):
        return None
