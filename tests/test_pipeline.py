"""The real ``dvc repro`` in a throwaway copy of the project, on small generated IDX files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from helpers import dvc

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(built_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(shutil.copytree(built_project, tmp_path_factory.mktemp("pipeline") / "project", symlinks=True))


def test_repro_writes_every_output(project: Path) -> None:
    for path in ("data/prepared/train.pt", "data/prepared/validation.pt", "data/prepared/test.pt",
                 "data/models/autoencoder.pt", "data/codes.npz", "metrics/train/plots/metrics/train_loss.tsv",
                 "metrics/train/plots/metrics/val_loss.tsv", "metrics/train/plots/metrics/val_mse.tsv",
                 "metrics/train/terms.csv", "metrics/reconstructions.png", "metrics/samples.png", "metrics/tsne.png",
                 "metrics/pixel_baseline.json", "metrics/per_class.csv", "metrics/tsne.csv", "metrics/confusion.csv"):
        assert (project / path).stat().st_size > 0, path
    train = json.loads((project / "metrics/train/metrics.json").read_text())
    evaluate = json.loads((project / "metrics/evaluate.json").read_text())
    embed = json.loads((project / "metrics/embed.json").read_text())
    assert train["step"] == 2 and 0 < train["train_loss"] < 0.2 and 0 < train["val_mse"] < 0.2
    assert train["val_loss"] == pytest.approx(train["val_mse"], abs=1e-5)  # the default objective: MSE
    terms = (project / "metrics/train/terms.csv").read_text().splitlines()
    assert terms[0] == "step,term,value" and [line.split(",")[:2] for line in terms[1:]] == [
        ["1", "reconstruction"], ["2", "reconstruction"]]
    assert 0 < evaluate["test_mse"] < 0.2 and list(evaluate["test_mse_per_class"]) == [str(d) for d in range(10)]
    assert evaluate["test_loss"] == pytest.approx(evaluate["test_mse"], abs=1e-5)  # the default objective: MSE
    per_class = (project / "metrics/per_class.csv").read_text().splitlines()
    assert per_class[0] == "class,test_mse,test_mse_median,test_mse_p95,count" and len(per_class) == 11
    # The model must beat reconstructing every image as the mean training image (2 epochs: not by much).
    assert evaluate["test_mse"] < evaluate["baseline_test_mse"] and evaluate["baseline_train_mse"] > 0
    # The generated digits are well-separated patterns: even 2 epochs' codes must tell them apart.
    assert embed["size"] == 100 and embed["knn_accuracy_codes"] > 0.9 and embed["knn_accuracy_tsne"] > 0.9
    assert embed["probe_accuracy"] > 0.9 and embed["cluster_accuracy"] > 0.5 and 0 < embed["cluster_nmi"] <= 1
    baseline = json.loads((project / "metrics/pixel_baseline.json").read_text())
    assert set(baseline) == {"pixel_cluster_accuracy", "pixel_cluster_nmi", "pixel_cluster_ari"}
    curve = (project / "metrics/train/plots/metrics/train_loss.tsv").read_text().splitlines()
    assert curve[0] == "step\ttrain_loss" and [line.split("\t")[0] for line in curve[1:]] == ["1", "2"]
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
        for key, value, expected in (
            ("embed", ("perplexity", 12.0), {"embed"}),
            ("embed", ("clusters", 5), {"pixel_baseline", "embed"}),
            ("train", ("epochs", 3), {"train"}),
            ("train", ("loss", "bce"), {"train"}),  # evaluate reads the loss from the new checkpoint
            ("model", ("kind", "conv"), {"train"}),
            ("evaluate", ("samples", 16), {"evaluate"}),
            ("data", ("validation", 50), {"prepare"}),
            ("model", ("conv", {"channels": [2, 4]}), set()),  # another family's knobs: nothing to rerun
            ("model", ("mlp", {"hidden": [16]}), {"train"}),
        ):
            params = yaml.safe_load(original)
            params[key][value[0]] = value[1]
            params_path.write_text(yaml.safe_dump(params, sort_keys=False))
            assert _stale_stages(project) == expected
    finally:
        params_path.write_text(original)


DATA_PLOTS = {  # each data plot of dvc.yaml: a field its data must have, and the number of points
    "Loss per epoch": ("dvc_inferred_y_value", 4),  # 2 epochs, training and validation
    "Validation MSE per epoch": ("val_mse", 2),
    "Objective terms per epoch (validation)": ("term", 2),  # the reconstruction alone: not a VAE
    "Test MSE per class": ("test_mse", 10),
    "t-SNE of the codes": ("class", 100),
    "k-NN confusion (codes, 5-fold CV)": ("predicted", 100),
}


def test_metrics_and_plots_are_declared(project: Path) -> None:
    metrics = json.loads(dvc("metrics", "show", "--json", cwd=project).stdout)
    text = json.dumps(metrics)
    assert "train_loss" in text and "test_mse_per_class" in text and "knn_accuracy_codes" in text
    assert "baseline_test_mse" in text
    result = dvc("plots", "show", "--json", cwd=project)
    plots = json.loads(result.stdout)
    assert "failed to load" not in result.stderr and not plots.get("errors")  # every plot's file is there
    loss_chart = json.dumps(plots["data"]["Loss per epoch"])
    assert "train_loss" in loss_chart and "val_loss" in loss_chart and "epoch" in loss_chart
    for name in ("metrics/reconstructions.png", "metrics/samples.png", "metrics/tsne.png"):
        assert name in plots["data"], name
    for name, (field, count) in DATA_PLOTS.items():
        [chart] = plots["data"][name]
        points = chart["content"]["data"]["values"]
        assert len(points) == count and all(field in point for point in points), name
    # The t-SNE points carry their class's name, which the custom template colours them by.
    assert {point["class"] for point in plots["data"]["t-SNE of the codes"][0]["content"]["data"]["values"]} == {
        str(d) for d in range(10)}


def test_a_corrupt_raw_file_stops_prepare_with_a_clear_error(project: Path) -> None:
    raw = project / "data/custom/t10k-labels-idx1-ubyte.gz"
    original = raw.read_bytes()
    try:
        raw.write_bytes(original[:-1])
        result = dvc("repro", "prepare", cwd=project, check=False)
        assert result.returncode != 0
        assert "has MD5" in result.stderr and "but data.md5 in params.yaml gives" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        raw.write_bytes(original)
        dvc("repro", cwd=project)
