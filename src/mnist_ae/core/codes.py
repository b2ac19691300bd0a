"""The codes of every image, as the evaluate stage writes them for the embed stage.

Stored as numpy arrays in one ``.npz`` file: ``<split>_codes`` (float32, (N, code_dim)) and
``<split>_labels`` (int64, (N,)) for each prepared split, and ``classes``. The embed stage reads them
without the model, and numpy reads them without running code (``allow_pickle=False``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import save_arrays
from .dataset import SPLITS
from .errors import UserError, first_line


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
    arrays = {f"{name}_{field}": getattr(codes, field) for name, codes in code_set.splits.items()
              for field in ("codes", "labels")}
    save_arrays(path, {**arrays, "classes": np.array(code_set.classes)})


def load_codes(path: Path) -> CodeSet:
    """Read what ``save_codes`` wrote."""
    if not path.exists():
        raise UserError(f"{path} not found: run the evaluate stage first (dvc repro evaluate)")
    try:
        with np.load(path, allow_pickle=False) as data:
            splits = {name: Codes(data[f"{name}_codes"], data[f"{name}_labels"]) for name in SPLITS}
            return CodeSet(splits, tuple(str(name) for name in data["classes"]))
    except Exception as error:  # a truncated or foreign file fails in many ways inside np.load
        raise UserError(f"{path} is not a file of codes ({first_line(error)}); rerun the evaluate stage") from None
