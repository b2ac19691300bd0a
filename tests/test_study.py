"""The study's tables and figure come from its committed rows alone: a changed row changes them."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import PROJECT, run
from mnist_ae.core.errors import UserError
from mnist_ae.headline import headline_names
from mnist_ae.sweeps.plan import load_plan
from mnist_ae.sweeps.study import fill_markers, merge_rows

STUDY = ("defaults", "n2d", "n2d-epochs", "n2d-cosine", "n2d-umap10")


def _rows(sweep: str, rng: np.random.Generator) -> pd.DataFrame:
    """Made-up rows for each experiment of a study sweep, as scripts/study.py export writes them."""
    rows = []
    for planned in load_plan(PROJECT / "sweeps" / f"{sweep}.yaml").experiments:
        rows.append({"experiment": planned.name, "params": " ".join(planned.configuration), "seed": planned.seed,
                     **{name: 0.9 + rng.normal(scale=0.01) for name in headline_names()}, "train_seconds": 600.0})
    return pd.DataFrame(rows)


@pytest.fixture
def study_folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    (tmp_path / "metrics" / "studies").mkdir(parents=True)
    for sweep in STUDY:
        _rows(sweep, rng).to_csv(tmp_path / "metrics" / "studies" / f"{sweep}.csv", index=False)
    (tmp_path / "docs").mkdir()
    shutil.copytree(PROJECT / "sweeps", tmp_path / "sweeps")
    for doc in ("docs/models.md", "README.md"):
        shutil.copy(PROJECT / doc, tmp_path / doc)
    return tmp_path


def _render(folder: Path) -> str:
    run([sys.executable, PROJECT / "scripts" / "study.py", "render"], folder)
    return (folder / "docs" / "models.md").read_text() + (folder / "README.md").read_text()


def test_a_changed_row_changes_the_tables_and_the_figure(study_folder: Path) -> None:
    before = _render(study_folder)
    figure = (study_folder / "docs" / "figures" / "n2d-epochs.png").read_bytes()
    assert figure.startswith(b"\x89PNG")
    path = study_folder / "metrics" / "studies" / "n2d-epochs.csv"
    rows = pd.read_csv(path)
    rows.loc[rows["params"].str.contains("train.epochs=5 "), "manifold_accuracy"] = 0.123456  # the 5-epoch point
    rows.to_csv(path, index=False)
    after = _render(study_folder)
    assert re.search(r"\|\s+5 \|\s+3 \| 0\.123456 ± 0\s+\|", after) and "0.123456" not in before
    assert (study_folder / "docs" / "figures" / "n2d-epochs.png").read_bytes() != figure
    assert _render(study_folder) == after  # rendering again from the same rows changes nothing


def test_a_typed_number_between_markers_is_replaced(study_folder: Path) -> None:
    readme = study_folder / "README.md"
    typed = readme.read_text().replace("<!-- study:readme -->\n", "<!-- study:readme -->\nthe codes win: 0.999\n")
    readme.write_text(typed)
    assert "0.999" not in _render(study_folder)


def test_markers_are_filled_and_an_unknown_one_is_refused() -> None:
    text = "a\n<!-- study:one -->\nold\n<!-- /study:one -->\nb\n"
    assert fill_markers(text, {"one": "new"}) == "a\n<!-- study:one -->\nnew\n<!-- /study:one -->\nb\n"
    with pytest.raises(UserError, match=r"a study block 'one' that scripts/study\.py does not make"):
        fill_markers(text, {"two": "new"})


def test_an_export_keeps_the_rows_of_experiments_dvc_no_longer_lists(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    pd.DataFrame({"experiment": ["a", "b"], "params": ["x", "x"], "seed": [0, 1], "m": [0.1, 0.2],
                  "train_seconds": [60.0, 61.0]}).to_csv(path, index=False)
    new = pd.DataFrame({"experiment": ["b", "c"], "params": ["x", "x"], "seed": [1, 2], "m": [0.25, 0.3],
                        "train_seconds": [None, 62.0]})
    merged = merge_rows(path, new).set_index("experiment")
    assert list(merged.index) == ["a", "b", "c"]
    assert merged.loc["b", "m"] == 0.25 and merged.loc["b", "train_seconds"] == 61.0  # its time kept


def test_an_export_writes_one_row_per_finished_experiment_of_the_plan(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows as dvc.api.exp_show gives them (a metric behind its file's name where two files share it),
    the plan's order kept, a queued or foreign experiment left out, the training time from the log."""
    from mnist_ae.sweeps import study

    sweep = tmp_path / "s.yaml"
    sweep.write_text("params: ['model.code_dim=8,32']\nseeds: 2\n")
    plan = load_plan(sweep)
    params = {"train.seed": 0, "model.code_dim": 16}
    shown = [{"Experiment": e.name, "rev": e.name, "State": "Success", "train.seed": float(e.seed),
              "model.code_dim": float(e.overrides[0].split("=")[1]), "metrics/evaluate.json:test_mse": 0.01 + e.index,
              "cluster_accuracy": 0.5, "pixel_cluster_accuracy": 0.4} for e in reversed(plan.experiments)]
    shown[0]["State"] = "Queued"
    shown.append({**shown[1], "Experiment": "someone-else", "rev": "x"})
    monkeypatch.setattr(study, "training_seconds", lambda name: 42.0)
    monkeypatch.setattr(study, "STUDIES", tmp_path)
    rows = pd.read_csv(study.export(plan, "s", shown, params))
    assert list(rows["experiment"]) == [e.name for e in plan.experiments[:3]]
    assert list(rows["seed"]) == [0, 1, 0] and list(rows["params"]) == ["model.code_dim=8"] * 2 + ["model.code_dim=32"]
    assert list(rows["test_mse"]) == [0.01, 1.01, 2.01] and set(rows["train_seconds"]) == {42.0}
    assert {"cluster_accuracy", "pixel_cluster_accuracy"} <= set(rows.columns)


def test_the_committed_rows_render_to_the_committed_docs(tmp_path: Path) -> None:
    """make study on the committed rows changes nothing in the committed docs: every number there is its row's."""
    for folder in ("metrics/studies", "sweeps"):
        shutil.copytree(PROJECT / folder, tmp_path / folder)
    (tmp_path / "docs").mkdir()
    for doc in ("docs/models.md", "README.md"):
        shutil.copy(PROJECT / doc, tmp_path / doc)
    _render(tmp_path)
    for doc in ("docs/models.md", "README.md"):
        assert (tmp_path / doc).read_text() == (PROJECT / doc).read_text(), f"{doc}: run make study and commit it"
