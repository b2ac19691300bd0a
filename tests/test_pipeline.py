"""The real ``dvc repro`` in a throwaway copy of the project, on small generated IDX files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import write_dataset

PROJECT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def run(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    # The stages' `python` must be this interpreter (the project's venv), as `make repro` arranges.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def dvc(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], cwd, check)


def small_params(md5: dict[str, str]) -> dict:
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params["data"] = {"dataset": "custom", "md5": md5}
    params["model"] = {"hidden": 32, "code_dim": 4}
    params["train"].update(epochs=2, batch_size=16)
    params["evaluate"]["examples"] = [0, 5, 10]
    params["embed"].update(size=100, perplexity=10.0)
    return params


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git + DVC copy of the project with the small dataset placed by hand, as an offline user would."""
    root = tmp_path_factory.mktemp("project")
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(PROJECT / name, root / name)
    for name in ("stages", "src"):
        shutil.copytree(PROJECT / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    md5 = write_dataset(root / "data" / "raw" / "custom" / "raw")
    (root / "params.yaml").write_text(yaml.safe_dump(small_params(md5), sort_keys=False))
    run(["git", "init", "-q"], root)
    dvc("init", "-q", cwd=root)
    dvc("config", "core.analytics", "false", cwd=root)
    dvc("repro", cwd=root)
    return root


def test_repro_writes_every_output(project: Path) -> None:
    for path in ("data/prepared/train.pt", "data/prepared/test.pt", "data/models/autoencoder.pt",
                 "metrics/train_loss.csv", "metrics/reconstructions.png", "metrics/tsne.png"):
        assert (project / path).stat().st_size > 0, path
    train = json.loads((project / "metrics/train.json").read_text())
    evaluate = json.loads((project / "metrics/evaluate.json").read_text())
    embed = json.loads((project / "metrics/embed.json").read_text())
    assert train["epochs"] == 2 and 0 < train["final_loss"] < 0.2
    assert 0 < evaluate["test_mse"] < 0.2 and len(evaluate["test_mse_per_digit"]) == 10
    assert embed["size"] == 100 and 0 <= embed["knn_accuracy_tsne"] <= 1
    assert (project / "metrics/train_loss.csv").read_text().splitlines()[0] == "epoch,loss"
    assert (project / "dvc.lock").exists()


def test_second_repro_does_nothing(project: Path) -> None:
    result = dvc("repro", cwd=project)
    assert "Running stage" not in result.stdout
    assert "up to date" in dvc("status", cwd=project).stdout


def _stale_stages(project: Path) -> set[str]:
    return set(json.loads(dvc("status", "--json", cwd=project).stdout))


def test_a_param_reruns_only_its_stages(project: Path) -> None:
    params_path = project / "params.yaml"
    original = params_path.read_text()
    try:
        for key, value, expected in (("embed", ("perplexity", 12.0), {"embed"}), ("train", ("epochs", 3), {"train"})):
            params = yaml.safe_load(original)
            params[key][value[0]] = value[1]
            params_path.write_text(yaml.safe_dump(params, sort_keys=False))
            assert _stale_stages(project) == expected
    finally:
        params_path.write_text(original)


def test_metrics_and_plots_are_declared(project: Path) -> None:
    metrics = json.loads(dvc("metrics", "show", "--json", cwd=project).stdout)
    text = json.dumps(metrics)
    assert "final_loss" in text and "test_mse" in text and "knn_accuracy_codes" in text
    result = dvc("plots", "show", "--json", cwd=project)
    plots = json.loads(result.stdout)
    loss_chart = json.dumps(plots["data"]["metrics/train_loss.csv"])
    assert "0.0" in loss_chart and "epoch" in loss_chart  # the data made it into the chart
    for name in ("metrics/train_loss.csv", "metrics/reconstructions.png", "metrics/tsne.png"):
        assert name in plots["data"], name


def test_a_corrupt_raw_file_stops_prepare_with_a_clear_error(project: Path) -> None:
    raw = project / "data/raw/custom/raw/t10k-labels-idx1-ubyte.gz"
    original = raw.read_bytes()
    try:
        raw.write_bytes(original[:-1])
        result = dvc("repro", "prepare", cwd=project, check=False)
        assert result.returncode != 0
        assert f"has MD5" in result.stderr and "Delete it and run again" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        raw.write_bytes(original)
        dvc("repro", cwd=project)
