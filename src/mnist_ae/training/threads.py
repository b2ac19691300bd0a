"""The train stage's CPU threads: as many as the cores it actually gets, now and while it runs.

PyTorch's CPU kernels run on OpenMP threads (libgomp in the Linux wheels). A training step at batch
32 is some twenty short parallel regions, each ending at a barrier where the threads wait for one
another, spinning. On an idle machine that is what makes a small region cheap; when another process
holds a core it is ruinous: a spinning thread burns the time slice its partner needs to finish its
share, and every region waits for the scheduler. Measured on a 2-core VM (``make bench``,
docs/performance.md), 2 threads fall to a third of their idle speed beside one busy process and
to a fifth beside two, while 1 thread keeps most of its own; but idle, 1 thread is slower than 2. Sleeping
instead of spinning (``OMP_WAIT_POLICY=passive``) fixes the contended case and costs the idle one
about two thirds of its speed, so it is not used. Hence, for a process on the CPU:

- at the start, one thread per core it may use: its CPU affinity mask and cgroup quota
  (``configure_threads``);
- while it trains, one thread where one trains faster, measured early in the run, or from the moment
  a few windows of steps in a row run several times slower than the fastest (``ContentionGuard``).

``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS``, when set, win over both. No result depends on the
thread count: the products and Adam split rows, not sums, and the loss is summed by torch below its
parallel grain (``tests/test_threads.py`` trains with 1 and 2 threads and compares the bits).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import torch

USER_THREAD_SETTINGS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
# A window this many times slower than the fastest so far: another process now holds a core (a
# spinning 2-thread run then loses 3-10x; noise on a shared VM reaches 2-2.5x now and then).
SLOWDOWN = 3.0
MIN_WINDOW_SECONDS = 0.05  # shorter windows (tiny models or data) are all noise: they decide nothing
PATIENCE = 5  # slow windows in a row before acting: a neighbour stays, a hiccup of the VM does not
# The window timed with every thread (the first is the warm-up), before the one with one thread;
# counted in windows, not time, so every run computes the same steps with the same threads.
PROBE_AT = 2
# One thread stays if it takes under this share of the time: idle it is 10-30 % slower than two,
# with the cores taken 2-10x faster.
ONE_THREAD_WINS = 0.6


def user_chose_threads() -> bool:
    return any(os.environ.get(name) for name in USER_THREAD_SETTINGS)


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity mask, capped by a cgroup CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, max(1, math.floor(quota)))
    return cores


def configure_threads() -> int:
    """Set torch's threads to the cores this process may use (at most torch's default); returns the count.

    Not from the load of the moment, which differs from run to run (a stage just ending, a browser)
    while the count must not: ``ContentionGuard`` measures instead. Leaves the count alone when
    ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` is set: torch has read it.
    """
    if user_chose_threads():
        return torch.get_num_threads()
    threads = min(torch.get_num_threads(), usable_cores())
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return threads


class ContentionGuard:
    """Keeps the thread count that trains fastest on the cores this process actually gets.

    Early in training it times one window of steps with every thread and the next with one; if one
    thread is clearly faster, the cores are taken (by a neighbour, or by another training started
    with it, as ``dvc queue start -j 2`` does) and it stays at one. Later, at more than one thread,
    a few windows in a row several times slower than the fastest mean a neighbour came since: it
    drops to one. The probe happens at the same window in every run, so on an idle machine a rerun
    computes every step with the same threads as before: the same bits.
    """

    def __init__(self, device: torch.device) -> None:
        self.threads = torch.get_num_threads()
        self.active = device.type == "cpu" and self.threads > 1 and not user_chose_threads()
        self.windows = 0
        self.with_all = math.inf  # seconds per step of the probe's window with every thread
        self.fastest = math.inf
        self.slow_windows = 0

    def window(self, steps: int, seconds: float) -> None:
        """Judge a window of ``steps`` steps that took ``seconds``."""
        if not self.active:
            return
        seconds_per_step = seconds / steps
        self.windows += 1
        if self.windows == PROBE_AT:
            self.with_all = seconds_per_step
            torch.set_num_threads(1)
            return
        if self.windows == PROBE_AT + 1:
            if seconds >= MIN_WINDOW_SECONDS and seconds_per_step < ONE_THREAD_WINS * self.with_all:
                self._stay_at_one(f"one thread trained {self.with_all / seconds_per_step:.1f}x faster than "
                                  f"{self.threads}: the cores are shared")
            else:
                torch.set_num_threads(self.threads)
            return
        if seconds < MIN_WINDOW_SECONDS:
            return
        self.fastest = min(self.fastest, seconds_per_step)
        self.slow_windows = self.slow_windows + 1 if seconds_per_step > SLOWDOWN * self.fastest else 0
        if self.slow_windows >= PATIENCE:
            self._stay_at_one(f"training slowed {seconds_per_step / self.fastest:.1f}x: another process holds a core")

    def _stay_at_one(self, why: str) -> None:
        torch.set_num_threads(1)
        self.active = False
        print(f"{why}; going on with 1 thread (set OMP_NUM_THREADS to choose)", file=sys.stderr)


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
