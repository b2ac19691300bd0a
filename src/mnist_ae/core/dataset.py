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
from collections.abc import Iterator
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
    """Load a split that the prepare stage wrote: ``train``, ``validation`` or ``test``; checked to be
    what this module's docstring promises, so that a damaged or foreign file ends in one line rather
    than deep in training or evaluation. One pass over the images (their min and max) is the cost."""
    path = Path(prepared_dir) / f"{name}.pt"
    if not path.exists():
        raise UserError(f"{path} not found: run the prepare stage first (dvc repro prepare)")
    import torch

    try:
        data = torch.load(path, weights_only=True)
    except Exception as error:  # a truncated or foreign file fails in many ways inside torch.load
        raise UserError(f"{path} is not a prepared split ({first_line(error)}); rerun the prepare stage") from None
    problem = next(_problems(data), None)
    if problem:
        raise UserError(f"{path}: {problem}; rerun the prepare stage (dvc repro prepare)")
    return Split(data["images"], data["labels"], tuple(data["classes"]))


def _problems(data: object) -> Iterator[str]:
    """What is wrong with a loaded split, in order; only the first is asked for, so each check may rely
    on those before it (the lengths are compared once both are known to be tensors)."""
    import torch

    def described(value: object) -> str:
        return (f"{value.dtype} of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor)
                else type(value).__name__)

    if not isinstance(data, dict):
        yield f"it holds a {type(data).__name__}, not a dict of images, labels and classes"
    if missing := [key for key in ("images", "labels", "classes") if key not in data]:
        yield f"no {missing[0]!r} in it"
    images, labels, classes = data["images"], data["labels"], data["classes"]
    if not (isinstance(images, torch.Tensor) and images.dtype == torch.float32 and images.ndim == 2
            and images.shape[1] == PIXELS):
        yield f"images is {described(images)}; expected float32 of shape (images, {PIXELS})"
    if not (isinstance(labels, torch.Tensor) and labels.dtype == torch.int64 and labels.ndim == 1):
        yield f"labels is {described(labels)}; expected int64 of shape (images,)"
    if len(images) != len(labels):
        yield f"{len(images)} images but {len(labels)} labels"
    if not len(labels):
        yield "no images"
    if not (isinstance(classes, list | tuple) and len(classes) == NUM_CLASSES
            and all(isinstance(class_, str) for class_ in classes)):
        yield f"classes is {classes!r:.80}; expected the names of {NUM_CLASSES} classes"
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        yield f"labels hold {int(labels.min())}..{int(labels.max())}; expected labels 0..{NUM_CLASSES - 1}"
    low, high = (float(value) for value in torch.aminmax(images))
    if not (low >= 0 and high <= 1):  # NaN fails both comparisons, and aminmax propagates it
        yield f"images hold values from {low} to {high}; expected finite values in [0, 1]"


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
