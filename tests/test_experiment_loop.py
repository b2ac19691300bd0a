"""The experiment loop around the pipeline, run for real on the small project: the registered model
comes back through `dvc artifacts get`, a network that learned nothing is refused, and a library
upgrade is seen by DVC and by the reproduction check."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from helpers import PROJECT, child, dvc, edit_params, git_commit, run
from mnist_ae.core.dataset import load_split
from mnist_ae.models.checkpoint import load_checkpoint
from mnist_ae.models.losses import LOSSES
from mnist_ae.models.reconstruction import assess

pytestmark = pytest.mark.slow


def test_artifacts_get_downloads_the_registered_model(project_copy: Path, tmp_path: Path) -> None:
    dvc("remote", "add", "-d", "storage", str(tmp_path / "remote"), cwd=project_copy)
    git_commit(project_copy, "a DVC remote for everyone")
    dvc("push", cwd=project_copy)
    # A registered version is a git tag in GTO's format, as `gto register autoencoder` makes it.
    run(["git", "-c", "user.name=tests", "-c", "user.email=tests@example.invalid", "tag", "-a", "autoencoder@v1.0.0",
         "-m", "Registering artifact autoencoder version v1.0.0"], project_copy)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project_copy), str(clone)], tmp_path)
    assert not (clone / "data/models/autoencoder.pt").exists()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    dvc("artifacts", "get", str(clone), "autoencoder", "-o", "model.pt", cwd=elsewhere)  # the latest version
    dvc("artifacts", "get", str(clone), "autoencoder", "--rev", "v1.0.0", "-o", "v1.pt", cwd=elsewhere)
    downloaded = elsewhere / "model.pt"
    assert downloaded.read_bytes() == (project_copy / "data/models/autoencoder.pt").read_bytes()
    assert (elsewhere / "v1.pt").read_bytes() == downloaded.read_bytes()
    model, metadata = load_checkpoint(downloaded)
    assert model.code_dim == 4 and len(metadata["loss_per_epoch"]) == 2


def test_a_network_that_learned_nothing_is_not_saved(project_copy: Path) -> None:
    edit_params(project_copy, "train", lr=10.0)  # kills every unit: the loss stays flat, no NaN
    result = dvc("repro", "train", cwd=project_copy, check=False)
    assert result.returncode != 0 and "exited with 2" in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert "training learned nothing: the model's MSE on the validation split" in error
    assert error.endswith("mean image; lower train.lr"), error
    assert not (project_copy / "data/models").exists()


def test_a_library_upgrade_shows_in_status_and_fails_the_reproduction_check(project_copy: Path) -> None:
    lock = project_copy / "requirements.lock"
    lock.write_text(lock.read_text().replace("\ntorch==", "\ntorch==9.9.9 # was ", 1))  # as after an upgrade
    stale = set(json.loads(dvc("status", "--json", cwd=project_copy).stdout))
    assert stale == {"prepare", "pixel_baseline", "train", "evaluate", "embed"}
    git_commit(project_copy, "an upgrade, committed without a rerun")
    dvc("repro", cwd=project_copy)
    result = run([sys.executable, str(PROJECT / "scripts" / "check_repro.py")], project_copy, check=False)
    assert result.returncode == 1
    assert "stage 'train' ran on other code, data or params than the committed dvc.lock" in result.stdout


def test_the_training_log_grows_while_the_stage_runs(project_copy: Path) -> None:
    edit_params(project_copy, "train", epochs=100_000)
    curve = project_copy / "metrics/train/plots/metrics/train_loss.tsv"
    with child([sys.executable, "stages/train.py"], project_copy) as process:  # killed at the block's end
        deadline = time.monotonic() + 120
        rows = 0
        while rows < 3 and time.monotonic() < deadline:  # read by another process, as VS Code or Studio do
            time.sleep(0.2)
            rows = len(curve.read_text().splitlines()) - 1 if curve.exists() else 0
        assert process.poll() is None and rows >= 3, f"{rows} epochs logged while training ran"
        summary = json.loads((project_copy / "metrics/train/metrics.json").read_text())
        assert summary["step"] >= 2


def test_evaluate_takes_the_family_and_the_loss_from_the_checkpoint(project_copy: Path) -> None:
    """params.yaml may name another family and loss than the model trained: evaluate labels its
    figure and computes test_loss from what the checkpoint says."""
    edit_params(project_copy, "train", loss="bce")
    run([sys.executable, "stages/train.py"], project_copy)
    edit_params(project_copy, "train", loss="mse")
    edit_params(project_copy, "model", kind="conv")
    printed = run([sys.executable, "stages/evaluate.py"], project_copy).stdout
    assert printed.startswith("mlp model, ") and "test bce objective" in printed
    model, _ = load_checkpoint(project_copy / "data/models/autoencoder.pt")
    test = load_split(project_copy / "data/prepared", "test")
    metrics = json.loads((project_copy / "metrics/evaluate.json").read_text())
    assert metrics["test_loss"] == round(assess(model, test.images, LOSSES["bce"]).objective_per_element, 6)
