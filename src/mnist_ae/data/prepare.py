"""Turn the four raw IDX files into the prepared tensors of ``core.dataset``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..core.dataset import IMAGE_SHAPE, SPLIT_FILES, Split, save_split
from ..core.errors import UserError
from .idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx

_SIDES = IMAGE_SHAPE[1:]  # an IDX image file holds (N, height, width): one channel


def split_from_idx(images_path: Path, labels_path: Path, classes: tuple[str, ...]) -> Split:
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
    return Split(torch.from_numpy(flat), torch.from_numpy(labels.astype(np.int64)), classes)


def prepare_splits(raw_paths: dict[str, Path], out_dir: Path, classes: tuple[str, ...], validation: int,
                   seed: int) -> dict[str, Split]:
    """Write ``<out_dir>/{train,validation,test}.pt`` from the raw files; returns the splits written.

    ``validation`` images of the files' training split, drawn with ``seed``, are held out of
    ``train``; the rest keep their order.
    """
    # Every split is parsed and checked before any is written: a bad test split leaves no new train.pt.
    files = {name: split_from_idx(raw_paths[images_file], raw_paths[labels_file], classes)
             for name, (images_file, labels_file) in SPLIT_FILES.items()}
    train, validation_part = hold_out(files["train"], validation, seed, raw_paths[SPLIT_FILES["train"][0]])
    splits = {"train": train, "validation": validation_part, "test": files["test"]}
    for name, split in splits.items():
        save_split(out_dir / f"{name}.pt", split)
    return splits


def hold_out(split: Split, count: int, seed: int, source: Path) -> tuple[Split, Split]:
    """``count`` images drawn from ``split`` with ``seed``, and the rest in their order."""
    if count >= len(split):
        raise UserError(f"data.validation is {count} but {source} holds {len(split)} training images: hold out "
                        f"fewer, so that some are left to train on")
    held = torch.zeros(len(split), dtype=torch.bool)
    held[torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:count]] = True
    return split.subset(~held), split.subset(held)
