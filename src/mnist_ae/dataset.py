"""Turn the four raw IDX files into the prepared tensors, and load those tensors back.

A split is stored as ``{"images": float32 (N, 784) in [0, 1], "labels": int64 (N,)}``: training then
needs no decoding, and ``torch.load(..., weights_only=True)`` reads it without running any code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .atomic import save_torch
from .errors import UserError, first_line
from .idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from .sources import IDX_FILES

SPLIT_FILES = {"train": IDX_FILES[0:2], "test": IDX_FILES[2:4]}  # (images, labels) of each split
IMAGE_SHAPE = (28, 28)  # the model's 784 inputs and the figures' layout assume MNIST's size


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # float32, (N, pixels), values in [0, 1]
    labels: torch.Tensor  # int64, (N,)

    def __len__(self) -> int:
        return len(self.labels)


def split_from_idx(images_path: Path, labels_path: Path) -> Split:
    """Parse one split's image and label files and check that they belong together."""
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    # Checked here, where the file can be named: later a wrong size would fail deep inside training.
    if images.shape[1:] != IMAGE_SHAPE:
        raise UserError(f"{images_path}: images of {'x'.join(map(str, images.shape[1:]))} pixels; "
                        f"expected {'x'.join(map(str, IMAGE_SHAPE))} "
                        f"(an IDX shape of (N, {', '.join(map(str, IMAGE_SHAPE))}))")
    if len(images) == 0:
        raise UserError(f"{images_path} holds no images (shape {images.shape}); a split needs at least one "
                        f"{'x'.join(map(str, IMAGE_SHAPE))} image")
    if len(images) != len(labels):
        raise UserError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise UserError(f"{labels_path}: label {labels.max()} found; labels must be digits 0-9")
    flat = images.reshape(len(images), -1).astype(np.float32) / np.float32(255.0)
    return Split(torch.from_numpy(flat), torch.from_numpy(labels.astype(np.int64)))


def prepare_splits(raw_paths: dict[str, Path], out_dir: Path) -> dict[str, Split]:
    """Write ``<out_dir>/{train,test}.pt`` from the raw files; returns the splits written."""
    # Every split is parsed and checked before any is written: a bad test split leaves no new train.pt.
    splits = {name: split_from_idx(raw_paths[images_file], raw_paths[labels_file])
              for name, (images_file, labels_file) in SPLIT_FILES.items()}
    for name, split in splits.items():
        save_torch(out_dir / f"{name}.pt", {"images": split.images, "labels": split.labels})
    return splits


def load_split(prepared_dir: Path, name: str) -> Split:
    """Load a prepared split written by ``prepare_splits``."""
    path = prepared_dir / f"{name}.pt"
    if not path.exists():
        raise UserError(f"{path} not found: run the prepare stage first (dvc repro prepare)")
    try:
        data = torch.load(path, weights_only=True)
        return Split(data["images"], data["labels"])
    except Exception as error:  # a truncated or foreign file fails in many ways inside torch.load
        raise UserError(f"{path} is not a prepared split ({first_line(error)}); rerun the prepare stage") from None
