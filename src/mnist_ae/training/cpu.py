"""The CPU's speed layer: threads that yield to busy neighbours without changing a bit, and no
denormal floats. ``fit`` calls ``tuning_for`` once, before its loop, and wraps each window of steps
in the hook it returns; off the CPU the hook does nothing. Why each piece exists, and what it was
measured to give on which CPU: docs/performance.md.

``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS``, when set, fix the count: the user's choice wins.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from ..models.base import AutoEncoder
from ..params import TrainParams

if TYPE_CHECKING:
    from .steps import StepImplementation

USER_THREAD_SETTINGS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
# MKL's strict mode sums gemm in an order that does not depend on the thread count (on its AVX2 and
# AVX-512 paths): float32's products. Read at MKL's first call: set before any product.
MKL_REPRODUCIBILITY = ("MKL_CBWR", "AUTO,STRICT")
# Steps the thread check takes at each batch size the run uses, after a first one: Adam's first step
# moves each weight by about ``lr`` times its gradient's sign, which hides the gradient's last bits.
# In float32 a sum split otherwise changes nearly every output's last bits, seen in one step more.
# bfloat16's products (oneDNN's, which MKL's mode does not cover) round each float32 sum to 8 bits,
# which hides a split in nearly every output (docs/reproducibility.md#threads-and-bits): there the
# check takes a window's worth.
CHECK_STEPS = {"fp32": 1, "bf16": 50}
# Windows of steps between two looks at the cores other processes leave free; the first look is
# after the first window, since a window with too many threads beside a busy neighbour is slow.
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
    """Before the process's first product: MKL's strict reproducibility (unless the user set
    ``MKL_CBWR``) and one thread per usable core (at most torch's default) unless the user chose;
    returns the thread count."""
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


def same_bits_at_every_thread_count(implementation: StepImplementation, model: AutoEncoder, config: TrainParams,
                                    data: torch.Tensor, batch_size: int) -> bool:
    """Whether the run's step ``implementation``, from the model's weights, gives the same bits at
    every thread count up to the current one: the losses, the weights and Adam's moments after ``CHECK_STEPS``
    steps (and a first) at the full batch size, then as many at the short last batch's, if the run
    has one, each on the next rows of ``data``."""
    last = len(data) - (math.ceil(len(data) / batch_size) - 1) * batch_size
    steps = CHECK_STEPS[config.precision]
    sizes = [batch_size] * (1 + steps) + ([last] * steps if last != batch_size else [])
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    trials = []
    for threads in range(1, torch.get_num_threads() + 1):
        trial = copy.deepcopy(model)
        with thread_count(threads), torch.random.fork_rng(devices=[]):  # the run's random stream untouched
            torch.manual_seed(0)  # the same noise (a VAE's) in every trial
            step = implementation.build(trial, config, batch_size, False)
            losses = torch.empty(len(sizes), device=data.device)
            for i, (start, size) in enumerate(zip(starts, sizes, strict=True)):
                step(data, (start + torch.arange(size, device=data.device)) % len(data), losses[i])
            step.sync_model()
        trials.append([losses, *trial.state_dict().values(), *step.moments()])
    return all(torch.equal(a, b) for trial in trials[1:] for a, b in zip(trials[0], trial, strict=True))


class NoTuning:
    """The hook off the CPU (and the interface of ``CpuTuning``): nothing around the steps."""

    def __enter__(self) -> NoTuning:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def window(self, steps: int, moments: Callable[[], list[torch.Tensor]]) -> AbstractContextManager[None]:
        return nullcontext()

    def summary(self) -> str:
        return ""


class CpuTuning(NoTuning):
    """Around each window of steps on the CPU: denormals flushed, then (after the first and every
    ``LOOK_EVERY`` windows, with ``free_cores``) as many threads as cores the other processes left
    free. ``one_thread``: the run's bits depend on the count, so it trains on one."""

    def __init__(self, one_thread: bool = False, free_cores: FreeCores | None = None) -> None:
        self.one_thread, self.free_cores = one_thread, free_cores
        self.all_threads = torch.get_num_threads()
        self.windows = 0
        self.steps_at: dict[int, int] = {}  # steps trained at each thread count

    def __enter__(self) -> CpuTuning:
        if self.one_thread:
            torch.set_num_threads(1)
        return self

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.all_threads)  # the next run in this process starts where this one did

    @contextmanager
    def window(self, steps: int, moments: Callable[[], list[torch.Tensor]]) -> Iterator[None]:
        with flushed_denormals():
            yield
        zero_denormal_moments(moments())
        threads = torch.get_num_threads()
        self.steps_at[threads] = self.steps_at.get(threads, 0) + steps
        self.windows += 1
        if self.free_cores is not None and (self.windows == 1 or self.windows % LOOK_EVERY == 0):
            free = self.free_cores.since_last_look()
            if free is not None:
                torch.set_num_threads(max(1, min(self.all_threads, free)))

    def summary(self) -> str:
        """The threads the run trained with, for the stage's last line."""
        if len(self.steps_at) <= 1:
            threads = next(iter(self.steps_at), torch.get_num_threads())
            why = (": this model's kernels sum in an order that depends on the thread count here, so it trains "
                   "on one, whatever the cores and the load (train.threads: all_cores, or OMP_NUM_THREADS=N, "
                   "trades the bits for speed)" if self.one_thread else "")
            return f"{threads} thread{'s' * (threads > 1)}{why}"
        total = sum(self.steps_at.values())
        return ", ".join(f"{count} thread{'s' * (count > 1)} for {self.steps_at[count] / total:.0%} of the steps"
                         for count in sorted(self.steps_at, reverse=True)) + " (other processes kept cores busy)"


def tuning_for(device: torch.device, same_bits: Callable[[], bool] | None,
               threads: Literal["same_bits", "all_cores"] = "same_bits") -> NoTuning:
    """The hook ``fit`` wraps its windows in, decided here, once: nothing off the CPU; on it,
    denormals flushed and, where the count is ours to choose (several threads, none set by the user,
    ``same_bits`` given: one process), one thread if ``threads`` (``train.threads``) asks for the same
    bits and ``same_bits()`` says they depend on the count, else a count that follows the free cores
    where the OS says how busy they are."""
    if device.type != "cpu":
        return NoTuning()
    if same_bits is None or torch.get_num_threads() == 1 or user_chose_threads():
        return CpuTuning()
    if threads == "same_bits" and not same_bits():
        return CpuTuning(one_thread=True)
    cores = FreeCores()
    return CpuTuning(free_cores=cores if cores.known else None)


class FreeCores:
    """How many of the cores this process may use the other processes left free since the last look:
    their CPU time in /proc/stat less this process's own, within any cgroup CPU quota. Linux only:
    ``known`` is False elsewhere."""

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
    """Zero Adam's moment estimates that decayed below float32's smallest normal: the flush mode
    covers the calling thread only, not the threads running Adam's kernel."""
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
