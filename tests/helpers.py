"""Plain helpers the tests share: a small MNIST-format dataset made on the spot (so the suite needs no
download), and the commands that build and drive a throwaway copy of the project. Tests import them as
`from helpers import ...` (pyproject.toml puts tests/ on the path); the fixtures stay in conftest.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

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


def run(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=venv_env(), capture_output=True, text=True)
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
    result = subprocess.run(["git", "show", ":params.yaml"], cwd=root, capture_output=True, text=True)
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
