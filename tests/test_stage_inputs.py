"""The files one stage reads from another, each damaged one way at a time: every check of a loader
ends in one line that names the array and the stage to rerun, not a traceback in a later stage. Here
the codes (evaluate → embed) and the metrics `make check-repro` reads; the prepared splits and the
checkpoint are broken in test_dataset.py and test_checkpoint.py, beside their other tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from check_repro import metric_drift
from helpers import replace_entry, set_element
from mnist_ae.core.codes import load_codes
from mnist_ae.core.dataset import DIGITS, SPLITS
from mnist_ae.core.errors import UserError

SIZES = dict(zip(SPLITS, (30, 10, 20)))  # images per split
CODE_SIZE = 4


def _codes() -> dict[str, np.ndarray]:
    """The arrays of an intact codes file, as the evaluate stage writes them."""
    rng = np.random.default_rng(0)
    arrays = {"classes": np.array(DIGITS)}
    for name, n in SIZES.items():
        arrays[f"{name}_codes"] = rng.normal(size=(n, CODE_SIZE)).astype(np.float32)
        arrays[f"{name}_labels"] = rng.integers(0, 10, n)
    return arrays


def _every(keys: list[str], value: Callable[[np.ndarray], np.ndarray]) -> Callable[[dict[str, np.ndarray]], None]:
    def damage(arrays: dict[str, np.ndarray]) -> None:
        for key in keys:
            arrays[key] = value(arrays[key])
    return damage


@pytest.mark.parametrize(("damage", "message"), [
    (lambda arrays: arrays.pop("test_labels"), "no test_labels in the file"),
    (replace_entry("classes", lambda classes: classes[:9]), "classes has shape (9,); expected the names of 10 classes"),
    (replace_entry("train_codes", lambda codes: codes.astype(np.float64)),
     "train_codes is float64 of shape (30, 4); expected float32 of shape (images, code size)"),
    (replace_entry("validation_codes", lambda codes: codes.ravel()),
     "validation_codes is float32 of shape (40,); expected float32 of shape (images, code size)"),
    (replace_entry("test_labels", lambda labels: labels.astype(np.float32)),
     "test_labels is float32 of shape (20,); expected integers of shape (images,)"),
    (replace_entry("test_labels", lambda labels: labels[:, None]),
     "test_labels is int64 of shape (20, 1); expected integers of shape (images,)"),
    (replace_entry("test_labels", lambda labels: labels[:-1]), "test_codes has 20 rows but test_labels has 19"),
    (_every(["validation_codes", "validation_labels"], lambda array: array[:0]),
     "validation_codes and validation_labels are empty: a split of no images"),
    (_every([f"{name}_codes" for name in SPLITS], lambda codes: codes[:, :0]),
     "train_codes has 0 columns: codes of no numbers"),
    (replace_entry("test_codes", lambda codes: codes[:, :3]), "test_codes has 3 columns but train_codes has 4"),
    (replace_entry("test_labels", set_element((3,), 10)), "test_labels holds 0..10; expected labels 0..9"),
    (replace_entry("train_labels", set_element((0,), -1)), "train_labels holds -1..9; expected labels 0..9"),
    (replace_entry("test_codes", set_element((5, 2), np.nan)), "test_codes holds NaN or inf (in 1 of its 80 numbers)"),
    (replace_entry("train_codes", set_element((0, 0), -np.inf)),
     "train_codes holds NaN or inf (in 1 of its 120 numbers)"),
])
def test_a_codes_file_whose_arrays_disagree_is_named(tmp_path: Path, damage, message: str) -> None:
    path = tmp_path / "codes.npz"
    arrays = _codes()
    np.savez(path, **arrays)
    assert load_codes(path).every_image().codes.shape == (sum(SIZES.values()), CODE_SIZE)  # intact, it loads
    damage(arrays)
    np.savez(path, **arrays)
    with pytest.raises(UserError) as error:
        load_codes(path)
    assert str(error.value) == f"{path}: {message}; rerun the evaluate stage (dvc repro evaluate)"


@pytest.mark.parametrize("value", ["abc", float("nan"), float("inf"), None])
def test_a_metric_that_is_no_number_is_a_problem_not_a_traceback(value: object) -> None:
    """What `dvc metrics diff --json` gives for a damaged metrics/train/metrics.json or
    metrics/pixel_baseline.json: a string or a NaN passed through as read, None for what it cannot
    parse. Each is one problem line; a NaN must not pass as within tolerance."""
    for old, new in ((0.5, value), (value, 0.5)):
        diff = {"metrics/pixel_baseline.json": {"pixel_cluster_nmi": {"old": old, "new": new}}}
        assert metric_drift(diff) == [f"metrics/pixel_baseline.json: pixel_cluster_nmi is {new} now, {old} committed"]
