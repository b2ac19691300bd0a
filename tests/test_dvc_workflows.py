"""What DVC users do with the project, run for real on the small one: experiments, a queued sweep,
the reproduction check, bit-identical reruns."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import PROJECT, child, dvc, edit_params, finish, git_commit, run

pytestmark = pytest.mark.slow


def _experiments(root: Path) -> dict[str, dict]:
    """``dvc exp show --json`` as {experiment name: {"params": ..., "metrics": ...}}."""
    found = {}
    for baseline in json.loads(dvc("exp", "show", "--json", cwd=root).stdout):
        for experiment in baseline.get("experiments") or []:
            for revision in experiment.get("revs", []):
                data = revision.get("data") or {}
                found[revision.get("name") or revision["rev"]] = {
                    "params": data.get("params", {}).get("params.yaml", {}).get("data", {}),
                    "metrics": {path: value.get("data", {}) for path, value in data.get("metrics", {}).items()},
                }
    return found


def test_exp_run_with_a_param_and_exp_show(project_copy: Path) -> None:
    dvc("exp", "run", "-n", "tiny-code", "-S", "model.code_dim=2", cwd=project_copy)
    experiment = _experiments(project_copy)["tiny-code"]
    assert experiment["params"]["model"]["code_dim"] == 2
    assert experiment["metrics"]["metrics/train/metrics.json"]["train_loss"] > 0
    assert "knn_accuracy_codes" in experiment["metrics"]["metrics/embed.json"]
    table = dvc("exp", "show", "--md", cwd=project_copy).stdout
    assert "tiny-code" in table and "model.code_dim" in table and "test_mse" in table
    # Both revisions' data go into one chart each: loss curves, per-class bars, t-SNE, confusion.
    plots = json.loads(dvc("plots", "diff", "HEAD", "tiny-code", "--json", cwd=project_copy).stdout)["data"]
    for name in ("Loss per epoch", "Validation MSE per epoch", "Test MSE per class", "t-SNE of the codes",
                 "k-NN confusion (codes, 5-fold CV)"):
        [chart] = plots[name]
        assert sorted(chart["revisions"]) == ["HEAD", "tiny-code"], name
        assert {point["rev"] for point in chart["content"]["data"]["values"]} == {"HEAD", "tiny-code"}, name


def _make_exp_show(root: Path) -> str:
    """What `make exp-show ARGS=--md` prints in ``root``: the project's own column filters."""
    return run([sys.executable, PROJECT / "scripts" / "exp_show.py", "--md"], root).stdout


def test_every_family_and_loss_is_one_param(project_copy: Path) -> None:
    """`dvc exp run -S` of another family or loss, with no other edit: prepare to embed, in exp show."""
    # The synthetic digits are random pixel patterns, not strokes: a convolutional family needs more
    # than 2 epochs to beat the mean image on them (on MNIST, the defaults do).
    edit_params(project_copy, "train", epochs=10, lr=0.003)
    git_commit(project_copy, "longer training for the small data")
    runs = {"conv": "model.kind=conv", "vae": "model.kind=vae", "bce": "train.loss=bce"}
    for name, setting in runs.items():
        dvc("exp", "run", "-n", name, "-S", setting, cwd=project_copy)
    experiments = _experiments(project_copy)
    for name, setting in runs.items():
        key, value = setting.split("=")
        section, field = key.split(".")
        assert experiments[name]["params"][section][field] == value
        evaluate = experiments[name]["metrics"]["metrics/evaluate.json"]
        assert 0 < evaluate["test_mse"] < evaluate["baseline_test_mse"], name
        assert "knn_accuracy_codes" in experiments[name]["metrics"]["metrics/embed.json"]
    assert experiments["bce"]["metrics"]["metrics/evaluate.json"]["test_loss"] > 0.1  # a BCE, not an MSE
    header = _make_exp_show(project_copy).splitlines()[0]
    for column in ("model.kind", "train.loss", "test_mse", "knn_accuracy_codes", "probe_accuracy", "cluster_accuracy",
                   "cluster_nmi", "cluster_ari", "pixel_cluster_accuracy", "val_kl"):
        assert column in header, column
    assert "baseline_test_mse" not in header and "data/prepared" not in header
    plots = json.loads(dvc("plots", "diff", "HEAD", *runs, "--json", cwd=project_copy).stdout)["data"]
    assert sorted(plots["Test MSE per class"][0]["revisions"]) == sorted(["HEAD", *runs])
    terms = plots["Objective terms per epoch (validation)"][0]["content"]["data"]["values"]
    assert {point["term"] for point in terms if point["rev"] == "vae"} == {"reconstruction", "kl"}
    assert {point["term"] for point in terms if point["rev"] == "conv"} == {"reconstruction"}
    assert {entry["revisions"][0] for entry in plots["metrics/samples.png"]} == {"HEAD", *runs}


def test_queued_sweep_runs_every_experiment(project_copy: Path) -> None:
    dvc("exp", "run", "--queue", "-S", "model.code_dim=3,5", cwd=project_copy)
    # Not captured: a process `dvc queue start` leaves running can hold its output open, and a test
    # that reads it to the end would wait for that process forever.
    with child([sys.executable, "-m", "dvc", "queue", "start", "-j", "2"], project_copy) as start:
        assert finish(start, timeout_s=120).returncode == 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = dvc("queue", "status", cwd=project_copy).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(2)
    dvc("queue", "stop", "--kill", cwd=project_copy, check=False)
    assert "Queued" not in status and "Running" not in status, f"killed after waiting 300 s for the queue:\n{status}"
    assert "Failed" not in status, dvc("queue", "logs", status.split()[4], cwd=project_copy, check=False).stdout
    code_dims = sorted(e["params"]["model"]["code_dim"] for e in _experiments(project_copy).values()
                       if e["metrics"].get("metrics/embed.json"))
    assert code_dims == [3, 5]


def _check(root: Path, *args: str) -> subprocess.CompletedProcess:
    return run([sys.executable, str(PROJECT / "scripts" / "check_repro.py"), *args], root, check=False)


def test_check_repro_without_force_claims_no_rerun(project_copy: Path) -> None:
    result = _check(project_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "**Consistent** with the committed state" in result.stdout and "no stage was forced" in result.stdout
    assert "Reproduced" not in result.stdout and "| metrics/evaluate.json" in result.stdout


def test_check_repro_force_reruns_every_stage(project_copy: Path) -> None:
    before = {path: (project_copy / path).stat().st_mtime_ns for path in ("data/prepared/train.pt", "metrics/tsne.png")}
    result = _check(project_copy, "--force")
    assert result.returncode == 0, result.stdout + result.stderr
    assert all(f"Running stage '{stage}'" in result.stdout for stage in ("prepare", "train", "evaluate", "embed"))
    assert all((project_copy / path).stat().st_mtime_ns != mtime for path, mtime in before.items())
    assert "**Reproduced** within tolerance: every stage was rerun" in result.stdout


def test_check_repro_catches_a_pipeline_changed_without_a_rerun(project_copy: Path) -> None:
    edit_params(project_copy, "train", epochs=3)
    git_commit(project_copy, "more epochs, but no rerun committed")
    dvc("repro", cwd=project_copy)
    result = _check(project_copy)
    assert result.returncode == 1
    assert "stage 'train' ran on other code, data or params than the committed dvc.lock" in result.stdout


def test_check_repro_catches_drifting_metrics(project_copy: Path) -> None:
    path = project_copy / "metrics/evaluate.json"
    metrics = json.loads(path.read_text())
    metrics["test_mse"] += 0.01
    path.write_text(json.dumps(metrics))
    git_commit(project_copy, "a committed metric no run produced")
    dvc("repro", "--force", "evaluate", cwd=project_copy)
    result = _check(project_copy)
    assert result.returncode == 1
    assert "metrics/evaluate.json: test_mse is" in result.stdout and "(tolerance 0.001)" in result.stdout


def test_check_repro_catches_an_unclean_status(project_copy: Path) -> None:
    (project_copy / "metrics/tsne.png").unlink()
    result = _check(project_copy)
    assert result.returncode == 1 and "dvc status is not clean" in result.stdout


def _digest(path: Path) -> str:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return hashlib.md5(b"".join(p.read_bytes() for p in files)).hexdigest()


def test_training_twice_gives_bit_identical_outputs(project_copy: Path) -> None:
    outputs = ("data/models/autoencoder.pt", "metrics/train")
    run([sys.executable, "stages/train.py"], project_copy)
    first = {name: _digest(project_copy / name) for name in outputs}
    run([sys.executable, "stages/train.py"], project_copy)
    assert {name: _digest(project_copy / name) for name in outputs} == first
