"""The train stage's threads: one per usable core, one where one trains faster, the user's choice first;
no bit depends on them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from mnist_ae.training import threads

ROOT = Path(__file__).resolve().parents[1]


def test_the_stage_sets_its_threads_before_training() -> None:
    text = (ROOT / "stages" / "train.py").read_text()
    assert text.index("configure_threads()") < text.index("fit(")


def test_threads_follow_the_usable_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    for name in threads.USER_THREAD_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    try:
        monkeypatch.setattr(threads, "usable_cores", lambda: 1)
        assert threads.configure_threads() == 1 == torch.get_num_threads()
        monkeypatch.setattr(threads, "usable_cores", lambda: 10_000)  # never more than torch's default
        torch.set_num_threads(before)
        assert threads.configure_threads() == before
        monkeypatch.setenv("OMP_NUM_THREADS", str(before))  # the user's count wins
        monkeypatch.setattr(threads, "usable_cores", lambda: 1)
        assert threads.configure_threads() == before == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_usable_cores_is_at_least_one_and_at_most_the_affinity() -> None:
    assert 1 <= threads.usable_cores() <= len(os.sched_getaffinity(0))


@pytest.mark.parametrize(("contents", "expected"), [
    (["max 100000\n"], None),
    (["150000 100000\n"], 1.5),
    (["-1\n", "100000\n"], None),  # cgroup v1: no quota
    (["200000\n", "100000\n"], 2.0),
    (["garbage\n"], None),
])
def test_cgroup_quotas_are_read(tmp_path: Path, contents: list[str], expected: float | None) -> None:
    files = []
    for i, text in enumerate(contents):
        files.append(tmp_path / f"file{i}")
        files[-1].write_text(text)
    assert threads._read_quota(files) == expected


@pytest.fixture
def two_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Two torch threads the user did not choose, whatever this shell says; the count restored after."""
    before = torch.get_num_threads()
    for name in threads.USER_THREAD_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.usefixtures("two_threads")
def test_the_guard_drops_to_one_thread_on_a_slowdown(monkeypatch: pytest.MonkeyPatch) -> None:
    guard = threads.ContentionGuard(torch.device("cpu"))
    guard.window(50, 0.3)  # the warm-up
    guard.window(50, 0.2)  # every thread
    assert torch.get_num_threads() == 1  # the probe's window with one
    guard.window(50, 0.3)  # one thread is slower: back to two
    assert torch.get_num_threads() == 2
    guard.window(50, 0.001)  # too short a window to judge
    guard.window(50, 0.4)  # 2x: noise
    assert torch.get_num_threads() == 2
    guard.window(50, 0.8)  # 4x the fastest, once: a hiccup
    guard.window(50, 0.2)
    assert torch.get_num_threads() == 2
    for _ in range(threads.PATIENCE):  # and again and again: contention
        guard.window(50, 0.8)
    assert torch.get_num_threads() == 1 and not guard.active
    torch.set_num_threads(2)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user's choice: never touched
    chosen = threads.ContentionGuard(torch.device("cpu"))
    chosen.window(50, 0.2)
    chosen.window(50, 0.2)
    for _ in range(threads.PATIENCE):
        chosen.window(50, 2.0)
    assert torch.get_num_threads() == 2


@pytest.mark.usefixtures("two_threads")
def test_the_guard_keeps_one_thread_where_it_is_faster() -> None:
    guard = threads.ContentionGuard(torch.device("cpu"))
    for seconds in (1.0, 1.0, 0.3):  # warm-up, every thread, one thread: 3x faster alone
        guard.window(50, seconds)
    assert torch.get_num_threads() == 1 and not guard.active
    torch.set_num_threads(2)
    tiny = threads.ContentionGuard(torch.device("cpu"))
    for seconds in (0.004, 0.004, 0.001):  # the same ratio in windows too short to tell: noise
        tiny.window(50, seconds)
    assert torch.get_num_threads() == 2 and tiny.active


def test_the_thread_count_changes_no_bit() -> None:
    """What lets the guard change the count mid-run: weights and logged losses do not depend on it."""
    code = ("import sys, torch; torch.set_num_threads(int(sys.argv[1])); sys.path.insert(0, 'tests'); "
            "from helpers import model_params, train_params; from mnist_ae.models import build_model; "
            "from mnist_ae.training.loop import fit; torch.manual_seed(1); data = torch.rand(256, 784); "
            "model = build_model(model_params('mlp', hidden=[256]), seed=0); "
            "print(fit(model, data, train_params(epochs=2), progress=False), "
            "float(sum(p.double().sum() for p in model.parameters())).hex())")
    runs = [subprocess.run([sys.executable, "-c", code, str(n)], cwd=ROOT, capture_output=True, text=True,
                           check=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")}).stdout for n in (1, 2)]
    assert runs[0] == runs[1] and runs[0]
