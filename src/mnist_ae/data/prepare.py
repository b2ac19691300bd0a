"""Turn the four raw IDX files into the prepared tensors of ``core.dataset``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..core.dataset import IMAGE_SHAPE, SPLIT_FILES, Split, save_split
from ..core.errors import UserError
from .idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx

_SIDES = IMAGE_SHAPE[1:]  # an IDX image file holds (N, height, width): one channel


def split_from_idx(images_path: Path, labels_path: Path) -> Split:
    """Parse one split's image and label files and check that they belong together."""
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    size = "x".join(map(str, _SIDES))
    # Checked here, where the file can be named: later a wrong size would fail deep inside training.
    if images.shape[1:] != _SIDES:
        raise UserError(f"{images_path}: images of {'x'.join(map(str, images.shape[1:]))} pixels; "
                        f"expected {size} (an IDX shape of (N, {', '.join(map(str, _SIDES))}))")
    if len(images) == 0:
        raise UserError(f"{images_path} holds no images (shape {images.shape}); a split needs at least one "
                        f"{size} image")
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
        save_split(out_dir / f"{name}.pt", split)
    return splits
