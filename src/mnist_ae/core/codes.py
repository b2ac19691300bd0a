"""The codes of every image, as the evaluate stage writes them for the embed stage.

Stored as numpy arrays in one ``.npz`` file: ``<split>_codes`` (float32, (N, code_dim)) and
``<split>_labels`` (int64, (N,)) for each prepared split, and ``classes``. The embed stage reads them
without the model, and numpy reads them without running code (``allow_pickle=False``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import save_arrays
from .dataset import NUM_CLASSES, SPLITS
from .errors import UserError, first_line

FIELDS = ("codes", "labels")  # each split's two arrays, ``<split>_codes`` and ``<split>_labels``
ARRAYS = (*(f"{name}_{field}" for name in SPLITS for field in FIELDS), "classes")


@dataclass(frozen=True)
class Codes:
    codes: np.ndarray  # float32, (N, code_dim)
    labels: np.ndarray  # int64, (N,)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class CodeSet:
    splits: dict[str, Codes]  # by split name: train, validation, test
    classes: tuple[str, ...]  # the names of labels 0..9

    def every_image(self) -> Codes:
        """All splits together: what clustering, which needs no labels to fit, runs on."""
        return Codes(np.concatenate([split.codes for split in self.splits.values()]),
                     np.concatenate([split.labels for split in self.splits.values()]))


def save_codes(path: Path, code_set: CodeSet) -> None:
    arrays = {f"{name}_{field}": getattr(codes, field) for name, codes in code_set.splits.items() for field in FIELDS}
    save_arrays(path, {**arrays, "classes": np.array(code_set.classes)})


def load_codes(path: Path) -> CodeSet:
    """Read what ``save_codes`` wrote, checked as the prepared splits and the checkpoint are: a file
    that opens but whose arrays disagree would otherwise end deep in scikit-learn, in the embed stage."""
    if not path.exists():
        raise UserError(f"{path} not found: run the evaluate stage first (dvc repro evaluate)")
    try:
        with np.load(path, allow_pickle=False) as data:  # only the arrays we read: a foreign file may hold more
            arrays = {key: data[key] for key in ARRAYS if key in data.files}
    except Exception as error:  # a truncated or foreign file fails in many ways inside np.load
        raise UserError(f"{path} is not a file of codes ({first_line(error)}); rerun the evaluate stage") from None
    problem = next(_problems(arrays), None)
    if problem:
        raise UserError(f"{path}: {problem}; rerun the evaluate stage (dvc repro evaluate)")
    splits = {name: Codes(arrays[f"{name}_codes"], arrays[f"{name}_labels"]) for name in SPLITS}
    return CodeSet(splits, tuple(str(name) for name in arrays["classes"]))


def _problems(arrays: dict[str, np.ndarray]) -> Iterator[str]:
    """What is wrong with a codes file's arrays, in order; only the first is asked for, so each check
    may rely on those before it (the columns are compared once the codes are known to be 2-d)."""
    if missing := [key for key in ARRAYS if key not in arrays]:
        yield f"no {missing[0]} in the file"
    if arrays["classes"].shape != (NUM_CLASSES,):
        yield f"classes has shape {arrays['classes'].shape}; expected the names of {NUM_CLASSES} classes"
    first = f"{SPLITS[0]}_codes"
    for name in SPLITS:
        codes, labels = arrays[f"{name}_codes"], arrays[f"{name}_labels"]
        if codes.dtype != np.float32 or codes.ndim != 2:
            yield f"{name}_codes is {codes.dtype} of shape {codes.shape}; expected float32 of shape (images, code size)"
        if not np.issubdtype(labels.dtype, np.integer) or labels.ndim != 1:
            yield f"{name}_labels is {labels.dtype} of shape {labels.shape}; expected integers of shape (images,)"
        if len(codes) != len(labels):
            yield f"{name}_codes has {len(codes)} rows but {name}_labels has {len(labels)}"
        if not len(labels):
            yield f"{name}_codes and {name}_labels are empty: a split of no images"
        if not codes.shape[1]:
            yield f"{name}_codes has 0 columns: codes of no numbers"
        if codes.shape[1] != arrays[first].shape[1]:
            yield f"{name}_codes has {codes.shape[1]} columns but {first} has {arrays[first].shape[1]}"
        if labels.min() < 0 or labels.max() >= NUM_CLASSES:
            yield f"{name}_labels holds {labels.min()}..{labels.max()}; expected labels 0..{NUM_CLASSES - 1}"
        if broken := np.count_nonzero(~np.isfinite(codes)):
            yield f"{name}_codes holds NaN or inf (in {broken:,} of its {codes.size:,} numbers)"
