"""The data every stage agrees on: MNIST's format, the prepared splits and the classes' names.

A prepared split is stored as ``{"images": float32 (N, PIXELS) in [0, 1], "labels": int64 (N,),
"classes": the names of labels 0..9}``: training needs no decoding, ``torch.load(...,
weights_only=True)`` reads it without running code, and the stages after prepare take the classes'
names from the data rather than from torchvision (a slow import) or params.
Images stay flat on disk and in the training loop (the fully connected families and the hand-written
step read rows); a family that needs the image's layout views each batch as ``IMAGE_SHAPE``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .atomic import save_torch
from .errors import UserError, first_line

if TYPE_CHECKING:  # torch is imported where a split is read: the params schema reads this module's facts
    import torch

IMAGE_SHAPE = (1, 28, 28)  # channels, height, width: what every model family and figure assumes
PIXELS = math.prod(IMAGE_SHAPE)
NUM_CLASSES = 10  # labels 0-9, as in every MNIST-format dataset
# The four files of every MNIST-format dataset, in torchvision's order: train images, train labels,
# test images, test labels.
IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
SPLIT_FILES = {"train": IDX_FILES[0:2], "test": IDX_FILES[2:4]}  # (images, labels) of each split
# The prepared splits: the files' training split minus the held-out validation part (data.validation
# in params.yaml), that part, and the files' test split. Per-epoch metrics and any choice made from
# them use validation; test is for the final numbers alone.
SPLITS = ("train", "validation", "test")
TORCHVISION_DATASETS = ("MNIST", "FashionMNIST", "KMNIST")
DIGITS = tuple(str(digit) for digit in range(NUM_CLASSES))


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # float32, (N, PIXELS), values in [0, 1]
    labels: torch.Tensor  # int64, (N,)
    classes: tuple[str, ...] = DIGITS  # the names of labels 0..9

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> Split:
        return Split(self.images[index], self.labels[index], self.classes)


def save_split(path: Path, split: Split) -> None:
    save_torch(path, {"images": split.images, "labels": split.labels, "classes": list(split.classes)})


def load_split(prepared_dir: str | Path, name: str) -> Split:
    """Load a split that the prepare stage wrote: ``train``, ``validation`` or ``test``."""
    path = Path(prepared_dir) / f"{name}.pt"
    if not path.exists():
        raise UserError(f"{path} not found: run the prepare stage first (dvc repro prepare)")
    import torch

    try:
        data = torch.load(path, weights_only=True)
        return Split(data["images"], data["labels"], tuple(data["classes"]))
    except Exception as error:  # a truncated or foreign file fails in many ways inside torch.load
        raise UserError(f"{path} is not a prepared split ({first_line(error)}); rerun the prepare stage") from None


def class_names(dataset: str, custom: list[str] | tuple[str, ...] = ()) -> tuple[str, ...]:
    """The names of labels 0..9, for legends, charts and metric keys; the prepare stage stores them
    with the splits.

    torchvision's dataset classes name MNIST's, FashionMNIST's and KMNIST's classes ("0 - zero",
    "Trouser", "tsu"), so they are read from there; a custom dataset names its own in
    ``data.classes``, or is labelled by digit.
    """
    if dataset == "custom":
        return tuple(custom) or DIGITS
    from torchvision import datasets  # imported here: it is slow to import

    return tuple(getattr(datasets, dataset).classes)
