"""Training fast on a CPU, whatever else the machine runs, without changing a bit of the result.

Three things, all here, none of them in the loop's logic:

- **Threads.** PyTorch's CPU kernels run on OpenMP threads that spin at the end of every parallel
  region, waiting for each other. At batch 32 a step is some twenty short regions: on idle cores
  the spinning is what makes them cheap, but when another process holds a core, a spinning thread
  burns the time its partner needs, and every region waits for the scheduler: several times slower
  (docs/performance.md). And the machine's load can change during a run: a neighbour starts, or
  ``dvc queue start -j 2`` runs two trainings. So every few windows of steps the thread count is set
  to the cores other processes left free since the last look, measured (on Linux, /proc/stat less
  this process's own CPU time, over the cores it may use): one per usable core on an idle machine,
  fewer beside busy neighbours, never fewer than one.
- **Bits that do not depend on the thread count.** Changing the count is safe only if the sums
  inside the kernels do not depend on how many threads split them. MKL splits long dot products
  between threads unless its strict conditional numerical reproducibility mode is on, which
  ``configure_process`` turns on; oneDNN's convolutions split their sums whatever the mode. So
  before training, ``loop.same_bits_at_every_thread_count`` takes steps from the same weights at
  each count up to every thread. Where the bits differ, the run trains on one thread throughout:
  several threads, fixed, would stall beside a busy neighbour with no way out, and one thread gives
  the same weights whatever the cores and the load, at the price of the little a second thread
  buys such kernels (oneDNN's convolutions at batch 32) idle: docs/performance.md. The check
  measures this machine's kernels, not its load, so a run decides the same way every time.
- **No denormal floats.** Adam's moment estimates of a weight whose gradient stays zero (a dead ReLU
  unit) decay through the denormal range, below 1.2e-38, where x86 CPUs take a slow microcode path
  for every multiply. The CPU's flush-to-zero mode covers the calling thread only, not the worker
  threads running Adam's kernel, so the moments that reach that range are also zeroed after each
  window. What is flushed is far below float32's resolution of the weights it would update: no
  weight changes (``tests/test_train.py``).

``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS``, when set, fix the count: the user's choice wins.
Measured figures, on Intel and AMD machines: docs/performance.md.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

USER_THREAD_SETTINGS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
# MKL's strict mode gives the same bits at every thread count for gemm on its AVX2 and AVX-512 code
# paths, on whichever of them AUTO picks here. Read at MKL's first call: set before any product.
MKL_REPRODUCIBILITY = ("MKL_CBWR", "AUTO,STRICT")
# Windows of steps between two looks at how many cores the other processes leave free; the first
# look is after the first window, since a window with too many threads beside a busy neighbour is slow.
LOOK_EVERY = 5


def user_chose_threads() -> bool:
    return any(os.environ.get(name) for name in USER_THREAD_SETTINGS)


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity mask, capped by a cgroup CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, max(1, math.floor(quota)))
    return cores


def configure_process() -> int:
    """Set up this process's CPU kernels before its first product; returns the thread count.

    Turns on MKL's strict reproducibility (unless the user set ``MKL_CBWR``) and sets torch's threads
    to the cores this process may use (at most torch's default), not to the load of the moment.
    Leaves the count alone when ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` is set: torch has read it.
    """
    name, value = MKL_REPRODUCIBILITY
    os.environ.setdefault(name, value)
    if user_chose_threads():
        return torch.get_num_threads()
    threads = min(torch.get_num_threads(), usable_cores())
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return threads


@contextmanager
def thread_count(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` threads, then restore the count."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class CpuTuning:
    """What ``fit`` does around each window of steps on a CPU: flush denormals, and fit the thread
    count to the cores the other processes leave free.

    On a CPU with several threads, none chosen by the user, ``same_bits()`` (asked then, and once)
    says whether the run's bits depend on the count: if they do, the run takes one thread; if not,
    the count follows the free cores where the OS says how busy they are. ``same_bits=None`` keeps
    the count as it is.
    """

    def __init__(self, device: torch.device, same_bits: Callable[[], bool] | None) -> None:
        self.on_cpu = device.type == "cpu"
        self.all_threads = torch.get_num_threads()
        ours_to_choose = self.on_cpu and same_bits is not None and self.all_threads > 1 and not user_chose_threads()
        same = ours_to_choose and same_bits()
        self.fixed_by_kernels = ours_to_choose and not same
        if self.fixed_by_kernels:
            torch.set_num_threads(1)
        self.free_cores = FreeCores() if same else None
        self.adaptive = same and self.free_cores.known
        self.windows = 0
        self.steps_at: dict[int, int] = {}  # steps trained at each thread count

    def __enter__(self) -> CpuTuning:
        return self

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.all_threads)  # the next run in this process starts where this one did

    @contextmanager
    def window(self, steps: int, moments: Callable[[], list[torch.Tensor]]) -> Iterator[None]:
        """Around a window of ``steps`` steps: flush denormals; after it, zero the denormals among
        Adam's ``moments()`` and, after the first and every LOOK_EVERY windows, set the threads to the
        cores left free."""
        if not self.on_cpu:
            yield
            return
        with flushed_denormals():
            yield
        zero_denormal_moments(moments())
        self.steps_at[torch.get_num_threads()] = self.steps_at.get(torch.get_num_threads(), 0) + steps
        self.windows += 1
        if self.adaptive and (self.windows == 1 or self.windows % LOOK_EVERY == 0):
            free = self.free_cores.since_last_look()
            if free is not None:
                torch.set_num_threads(max(1, min(self.all_threads, free)))

    def summary(self) -> str:
        """The threads the run trained with, for the stage's last line."""
        if not self.on_cpu:
            return ""
        if len(self.steps_at) <= 1:
            threads = next(iter(self.steps_at), torch.get_num_threads())
            why = (": this model's kernels sum in an order that depends on the thread count here, so it trains "
                   "on one, whatever the cores and the load (OMP_NUM_THREADS=N chooses N)"
                   if self.fixed_by_kernels else "")
            return f"{threads} thread{'s' * (threads > 1)}{why}"
        total = sum(self.steps_at.values())
        return ", ".join(f"{count} thread{'s' * (count > 1)} for {self.steps_at[count] / total:.0%} of the steps"
                         for count in sorted(self.steps_at, reverse=True)) + " (other processes kept cores busy)"


class FreeCores:
    """How many of the cores this process may use the other processes left free: the CPU time of
    those cores in /proc/stat, less this process's own, over the time since the last look, and no
    more than a cgroup CPU quota allows. Linux only: ``known`` is False elsewhere."""

    def __init__(self) -> None:
        self.cpus = {f"cpu{cpu}" for cpu in os.sched_getaffinity(0)} if hasattr(os, "sched_getaffinity") else set()
        self.quota = _cgroup_cpu_quota()
        self.last = self._read()
        self.known = self.last is not None

    def since_last_look(self) -> int | None:
        now, last = self._read(), self.last
        self.last = now
        if now is None or last is None or now[2] <= last[2]:
            return None
        others = ((now[0] - last[0]) - (now[1] - last[1])) / (now[2] - last[2])
        free = len(self.cpus) - others
        return round(min(free, self.quota) if self.quota is not None else free)

    def _read(self) -> tuple[float, float, float] | None:
        """CPU seconds of this process's cores (all but idle and iowait) and of this process, and the time."""
        try:
            lines = Path("/proc/stat").read_text().splitlines()
        except OSError:
            return None
        busy = 0
        for line in lines:
            name, *fields = line.split() or [""]
            if name in self.cpus:
                ticks = [int(field) for field in fields[:8]]
                busy += sum(ticks) - ticks[3] - ticks[4]
        own = os.times()
        return busy / os.sysconf("SC_CLK_TCK"), own.user + own.system, time.monotonic()


@contextmanager
def flushed_denormals() -> Iterator[None]:
    """Flush denormal floats to zero in this thread while the block runs, then back to the default (off)."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def zero_denormal_moments(moments: list[torch.Tensor]) -> None:
    """Set Adam's moment estimates that have decayed into the denormal range to zero."""
    tiny = torch.finfo(torch.float32).tiny
    for moment in moments:
        if moment.device.type == "cpu":
            moment.masked_fill_(moment.abs() < tiny, 0.0)


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
