"""Plain helpers the tests share: a small MNIST-format dataset made on the spot (so the suite needs no
download), and the commands that build and drive a throwaway copy of the project. Tests import them as
`from helpers import ...` (pyproject.toml puts tests/ on the path); the fixtures stay in conftest.py."""

from __future__ import annotations

import os
import selectors
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytest
import yaml

from mnist_ae.core.dataset import IDX_FILES
from mnist_ae.data.download import md5_of
from mnist_ae.data.idx import write_idx_gz
from mnist_ae.params import ModelParams, TrainParams


def in_ci() -> bool:
    """Whether this runs in CI (GitHub Actions and most others set ``CI=true``; so does ``.ci/run``)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def skip_or_fail(reason: str) -> NoReturn:
    """Skip a test that cannot run here, with the reason; in CI, fail it: a skip there would hide a
    check that CI is meant to make (a missing browser, data that should be there)."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: a check that cannot run fails instead of being skipped)", pytrace=False)
    pytest.skip(reason)


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """28x28 uint8 images: each digit is a fixed random stroke pattern plus noise, so classes separate."""
    rng = np.random.default_rng(seed)
    prototypes = (np.random.default_rng(1234).random((10, 28, 28)) > 0.8) * 220.0
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    images = prototypes[labels] + rng.normal(0, 20, size=(n, 28, 28))
    return np.clip(images, 0, 255).astype(np.uint8), labels


def write_dataset(folder: Path, n_train: int = 600, n_test: int = 200) -> dict[str, str]:
    """Write the four IDX files into ``folder``; returns their MD5s by file name."""
    folder.mkdir(parents=True, exist_ok=True)
    train_images, train_labels = synthetic_digits(n_train, seed=0)
    test_images, test_labels = synthetic_digits(n_test, seed=1)
    for name, array in zip(IDX_FILES, (train_images, train_labels, test_images, test_labels)):
        write_idx_gz(folder / name, array)
    return {name: md5_of(folder / name) for name in IDX_FILES}


# --- A throwaway copy of the project, built with the real `dvc repro` on the small dataset. ---

PROJECT = Path(__file__).resolve().parents[1]


def venv_env() -> dict[str, str]:
    """The environment a stage needs: this interpreter's folder first on PATH, as `make repro` arranges."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": "src"}  # run from a copy's root, the copy's own code, as its dvc.yaml does


# --- Child processes: every wait is bounded, and a child past its bound is killed with all it started. ---

# The longest any one command of the suite may run: far above the slowest (a whole `dvc repro` of the
# small project, docs/reliability.md), and a hang then costs CI ten of its 90 minutes, not all.
CHILD_TIMEOUT_S = 600.0


def _sigint_as_under_a_terminal() -> None:
    """Run in the child before exec. A shell without job control starts a background command with SIGINT
    ignored (POSIX), an ignored signal stays ignored across exec, and Python then installs no
    KeyboardInterrupt handler: a stage started from a `make test &` would shrug off a test's Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def child(args: Sequence[str | Path], cwd: Path | None = None, *, env: dict[str, str] | None = None,
          stdout: int = subprocess.DEVNULL, stderr: int = subprocess.DEVNULL, text: bool = False,
          sigint_as_under_a_terminal: bool = False) -> Iterator[subprocess.Popen]:
    """A child process for the length of a ``with`` block; however the block ends (a failed assert, a
    bound passed, Ctrl-C), the child is killed if still running, with its process group. It runs in a
    session of its own, so that the group is everything it started (dvc's stages, torchrun's ranks,
    Chromium's helpers) and nothing in it can wait on a terminal; stdin is /dev/null; the environment
    `venv_env()` unless ``env`` is given. A test that sends the child SIGINT asks for
    ``sigint_as_under_a_terminal``: SIGINT at its default, whatever pytest's own disposition."""
    with subprocess.Popen(args, cwd=cwd, env=venv_env() if env is None else env, stdin=subprocess.DEVNULL,
                          stdout=stdout, stderr=stderr, text=text, start_new_session=True,
                          preexec_fn=_sigint_as_under_a_terminal if sigint_as_under_a_terminal else None) as process:
        try:
            yield process
        finally:
            _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """Kill a child and its process group, unless it has exited and been reaped already (its id may then
    be another process's), and reap it. SIGKILL cannot be ignored, so the wait is short."""
    if process.returncode is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _tail(output: bytes | str | None, lines: int = 20) -> str:
    text = output.decode(errors="replace") if isinstance(output, bytes) else output or ""
    return "\n".join(text.splitlines()[-lines:])


def _hung(process: subprocess.Popen, seconds: float, waiting_for: str,
          stdout: bytes | str | None = None, stderr: bytes | str | None = None) -> NoReturn:
    """Kill a child still running at its bound and fail the test, naming the command, the bound and what
    the test waited for; the end of what it printed helps find where it hung."""
    _stop(process)
    message = (f"`{shlex.join(map(str, process.args))}` was killed, with its process group, after waiting "
               f"{seconds:g} s for it {waiting_for}")
    for name, output in (("stdout", stdout), ("stderr", stderr)):
        if _tail(output):
            message += f"\n--- the end of its {name}:\n{_tail(output)}"
    pytest.fail(message, pytrace=False)


def finish(process: subprocess.Popen, timeout_s: float = CHILD_TIMEOUT_S,
           waiting_for: str = "to exit") -> subprocess.CompletedProcess:
    """Wait at most ``timeout_s`` for a `child` to exit, reading its pipes to the end."""
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as timed_out:
        so_far = timed_out  # what the child printed before the bound; failed outside, without the chained error
    else:
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    _hung(process, timeout_s, waiting_for, stdout=so_far.stdout, stderr=so_far.stderr)


def read_until(process: subprocess.Popen, marker: bytes, timeout_s: float = CHILD_TIMEOUT_S) -> bytes:
    """What a `child` prints on its stderr (a binary pipe) up to ``marker``, waited for at most
    ``timeout_s``; what follows stays in the pipe, for `finish`."""
    deadline, seen = time.monotonic() + timeout_s, b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stderr, selectors.EVENT_READ)
        while marker not in seen:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                _hung(process, timeout_s, f"to print {marker.decode()!r}", stderr=seen)
            chunk = os.read(process.stderr.fileno(), 4096)
            assert chunk, f"it closed its stderr before printing {marker.decode()!r}:\n{seen.decode(errors='replace')}"
            seen += chunk
    return seen


def run(args: Sequence[str | Path], cwd: Path | None, check: bool = True, *, timeout_s: float = CHILD_TIMEOUT_S,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a command to its end, at most ``timeout_s``, its output captured as text; with ``check``,
    fail unless it exits 0. The environment is `venv_env()` unless ``env`` is given."""
    with child(args, cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        result = finish(process, timeout_s)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def dvc(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], cwd, check)


def committed_params(root: Path = PROJECT) -> dict:
    """The project's params.yaml as git's index holds it (the next commit's; in a fresh clone, the
    last commit's), or the file where the project is no git checkout. Not the working tree's: an
    experiment run there (`dvc exp run -S train.epochs=1`) edits that file, and what it leaves is no
    default for the tests."""
    result = run(["git", "show", ":params.yaml"], root, check=False)
    return yaml.safe_load(result.stdout if result.returncode == 0 else (root / "params.yaml").read_text())


def small_params(md5: dict[str, str]) -> dict:
    """The project's params, shrunk to the small dataset so a whole `dvc repro` takes seconds."""
    params = committed_params()
    params["data"].update(dataset="custom", md5=md5, classes=[], validation=100)
    params["model"].update(code_dim=4)
    params["model"]["mlp"]["hidden"] = [32]
    params["model"]["conv"]["channels"] = [4, 8]
    params["model"]["vae"]["hidden"] = [32]
    params["train"].update(epochs=2, batch_size=16)
    params["evaluate"]["examples"] = [0, 5, 10]
    params["embed"].update(size=100, perplexity=10.0)
    return params


def train_params(**values: object) -> TrainParams:
    """params.yaml's train section (the one place defaults live), with ``values`` changed."""
    section = committed_params()["train"]
    return TrainParams.model_validate({**section, **values})


def model_params(kind: str = "mlp", code_dim: int = 4, **family: object) -> ModelParams:
    """params.yaml's model section, small: ``kind``'s section updated with ``family``."""
    section = committed_params()["model"]
    section.update(kind=kind, code_dim=code_dim)
    section["mlp"]["hidden"], section["vae"]["hidden"], section["conv"]["channels"] = [32], [32], [4, 8]
    section[kind].update(family)
    return ModelParams.model_validate(section)


def edit_params(root: Path, section: str, **values: object) -> None:
    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params[section].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def git_commit(root: Path, message: str) -> None:
    run(["git", "add", "-A"], root)
    run(["git", "-c", "user.name=tests", "-c", "user.email=tests@example.invalid", "commit", "-q", "-m", message], root)


# --- Damaging a stage's file one way at a time (test_dataset.py, test_stage_inputs.py). ---

def replace_entry(key: str, value: Callable[[Any], Any]) -> Callable[[dict[str, Any]], None]:
    """A damage to a file's contents (a dict of arrays or tensors): entry ``key`` replaced by ``value`` of it."""
    def damage(contents: dict[str, Any]) -> None:
        contents[key] = value(contents[key])
    return damage


def set_element(index: tuple[int, ...], value: float) -> Callable[[Any], Any]:
    """An array or tensor changed in place at ``index``, for ``replace_entry``."""
    def changed(array: Any) -> Any:
        array[index] = value
        return array
    return changed
