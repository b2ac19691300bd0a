"""Shared fixtures: a small MNIST-format dataset made on the spot, so the suite needs no download."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mnist_ae.download import md5_of
from mnist_ae.idx import write_idx_gz
from mnist_ae.sources import IDX_FILES


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """28x28 uint8 images: each digit is a fixed random stroke pattern plus noise, so classes separate."""
    rng = np.random.default_rng(seed)
    prototypes = (np.random.default_rng(1234).random((10, 28, 28)) > 0.8) * 220.0
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    images = prototypes[labels] + rng.normal(0, 20, size=(n, 28, 28))
    return np.clip(images, 0, 255).astype(np.uint8), labels


def write_dataset(folder: Path, n_train: int = 600, n_test: int = 200) -> dict[str, str]:
    """Write the four IDX files into ``folder``; returns their MD5s by file name."""
    folder.mkdir(parents=True, exist_ok=True)
    train_images, train_labels = synthetic_digits(n_train, seed=0)
    test_images, test_labels = synthetic_digits(n_test, seed=1)
    for name, array in zip(IDX_FILES, (train_images, train_labels, test_images, test_labels)):
        write_idx_gz(folder / name, array)
    return {name: md5_of(folder / name) for name in IDX_FILES}


@pytest.fixture
def small_dataset(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A folder with four small IDX files, and their MD5s."""
    folder = tmp_path / "idx"
    return folder, write_dataset(folder)
