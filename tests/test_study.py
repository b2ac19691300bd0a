"""The study's tables and figure come from its committed rows alone: a changed row changes them."""

from __future__ import annotations

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
    rows.loc[0, "manifold_accuracy"] = 0.123456
    rows.to_csv(path, index=False)
    after = _render(study_folder)
    assert before != after and "0.123456" not in before
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
