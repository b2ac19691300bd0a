"""The train stage's thread settings: passive waiting and one thread per usable core, unless the user chose."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mnist_ae.training import threads

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str, **env: str) -> str:
    """Run ``code`` in a fresh interpreter with the OpenMP variables of ``env`` only; its stdout."""
    child_env = {k: v for k, v in os.environ.items()
                 if k not in threads.USER_WAIT_SETTINGS + threads.USER_THREAD_SETTINGS}
    child_env["PYTHONPATH"] = str(ROOT / "src")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**child_env, **env},
                            capture_output=True, text=True, check=True)
    return result.stdout.strip()


def test_the_module_loads_before_torch() -> None:
    # The wait policy only takes effect if it is set before torch (and libgomp) load.
    assert _python("import sys; from mnist_ae.training import threads; print('torch' in sys.modules)") == "False"


@pytest.mark.parametrize(("env", "expected"), [
    ({}, "passive True"),
    ({"OMP_WAIT_POLICY": "active"}, "active True"),  # the user's own wins
    ({"GOMP_SPINCOUNT": "10000"}, "None True"),  # so does a spin count: passive would override it
])
def test_wait_policy_defaults_to_passive(env: dict[str, str], expected: str) -> None:
    code = ("import os; from mnist_ae.training import threads; ok = threads.wait_passively_by_default(); "
            "print(os.environ.get('OMP_WAIT_POLICY'), ok)")
    assert _python(code, **env) == expected


def test_the_stage_script_sets_it_before_torch_loads() -> None:
    code = ("import runpy, sys; from mnist_ae.training import threads; calls = []; "
            "original = threads.wait_passively_by_default; "
            "threads.wait_passively_by_default = lambda: calls.append('torch' in sys.modules) or original(); "
            "runpy.run_path('stages/train.py'); print(calls)")
    assert _python(code) == "[False]"


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
