"""The train stage's CPU threads: as many as the cores it actually gets, now and while it runs.

PyTorch's CPU kernels run on OpenMP threads (libgomp in the Linux wheels). A training step at batch
32 is some twenty short parallel regions, each ending at a barrier where the threads wait for one
another, spinning. On an idle machine that is what makes a small region cheap; when another process
holds a core it is ruinous: a spinning thread burns the time slice its partner needs to finish its
share, and every region waits for the scheduler. Measured on a 2-core VM (``make bench``,
docs/performance.md), 2 threads fall to a tenth of their idle speed beside one or two busy
processes, while 1 thread keeps most of its own; but idle, 1 thread is slower than 2. Sleeping
instead of spinning (``OMP_WAIT_POLICY=passive``) fixes the contended case and costs the idle one
about two thirds of its speed, so it is not used. Hence, for a process on the CPU:

- at the start, one thread per core that is free: the cores of its CPU affinity mask and cgroup
  quota, less those that other processes keep busy (``configure_threads``);
- while it trains, one thread from the moment a few windows of steps in a row run several times
  slower than the fastest so far (``ContentionGuard``): a neighbour has taken a core since.

``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS``, when set, win over both. The weights do not depend on
the thread count (the products and Adam split rows, not sums); the per-step losses do, in their
last bits (a dot product's partial sums), so a run that had to drop to 1 thread may log a loss
differing by ~1e-8 and its checkpoint's metadata differs (docs/reproducibility.md).
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import torch

USER_THREAD_SETTINGS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
SAMPLE_SECONDS = 0.25  # how long the other processes' load is sampled at the start
# A window this many times slower than the fastest so far: another process now holds a core (a
# spinning 2-thread run then loses 5-10x; noise on a shared VM stays within 2x).
SLOWDOWN = 2.5
MIN_WINDOW_SECONDS = 0.05  # shorter windows (tiny models or data) are all noise: not judged
PATIENCE = 3  # slow windows in a row before acting: a neighbour stays, a hiccup of the VM does not


def user_chose_threads() -> bool:
    return any(os.environ.get(name) for name in USER_THREAD_SETTINGS)


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity mask, capped by a cgroup CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, max(1, math.floor(quota)))
    return cores


def busy_cores(seconds: float = SAMPLE_SECONDS) -> float:
    """How many cores other processes keep busy, sampled over ``seconds`` (Linux's /proc/stat; 0
    elsewhere). This process sleeps meanwhile, so what is counted is the others."""
    def busy_and_total() -> tuple[int, int] | None:
        try:
            fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:8]]
        except (OSError, ValueError, IndexError):
            return None
        return sum(fields) - fields[3] - fields[4], sum(fields)  # all but idle and iowait

    before = busy_and_total()
    time.sleep(seconds)
    after = busy_and_total()
    if before is None or after is None or after[1] == before[1]:
        return 0.0
    return (os.cpu_count() or 1) * (after[0] - before[0]) / (after[1] - before[1])


def configure_threads() -> int:
    """Set torch's threads to the free cores (at most torch's default, at least 1); returns the count.

    Leaves the count alone when ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` is set: torch has read it.
    """
    if user_chose_threads():
        return torch.get_num_threads()
    free = max(1, round(usable_cores() - busy_cores()))
    threads = min(torch.get_num_threads(), usable_cores(), free)
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return threads


class ContentionGuard:
    """Drops to one thread when training slows down several-fold: threads fighting for cores."""

    def __init__(self, device: torch.device) -> None:
        self.active = device.type == "cpu" and torch.get_num_threads() > 1 and not user_chose_threads()
        self.fastest = math.inf
        self.slow_windows = 0

    def window(self, steps: int, seconds: float) -> None:
        """Judge a window of ``steps`` steps that took ``seconds``."""
        if not self.active or seconds < MIN_WINDOW_SECONDS:
            return
        seconds_per_step = seconds / steps
        self.fastest = min(self.fastest, seconds_per_step)
        self.slow_windows = self.slow_windows + 1 if seconds_per_step > SLOWDOWN * self.fastest else 0
        if self.slow_windows >= PATIENCE:
            torch.set_num_threads(1)
            self.active = False
            print(f"training slowed {seconds_per_step / self.fastest:.1f}x: another process holds a core; "
                  f"going on with 1 thread (set OMP_NUM_THREADS to choose)", file=sys.stderr)


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
