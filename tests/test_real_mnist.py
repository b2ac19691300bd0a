"""Checks on the real MNIST, found the way a user points the project at it: ``MNIST_AE_MIRROR``."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import torch

from helpers import committed_params, skip_or_fail
from mnist_ae.core.dataset import class_names
from mnist_ae.data.download import ensure_raw_files
from mnist_ae.data.prepare import prepare_splits
from mnist_ae.data.sources import MIRROR_ENV, Source, get_source

pytestmark = pytest.mark.slow


@pytest.fixture
def mirrored_mnist() -> Source:
    """MNIST with ``MNIST_AE_MIRROR`` as its only mirror: a broken mirror fails the test rather
    than falling back to the internet. Skipped (failed under CI=true) when it cannot have the files."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if not mirror:
        skip_or_fail(f"{MIRROR_ENV} is not set; set it to a folder or URL with MNIST's four files")
    source = get_source("MNIST")
    source = dataclasses.replace(source, mirrors=source.mirrors[:1])  # the env mirror comes first
    url = urlparse(source.mirrors[0])
    if url.scheme == "file":
        folder = Path(unquote(url.path))
        missing = [name for name in source.md5 if not (folder / name).is_file()]
        if missing:
            skip_or_fail(f"{MIRROR_ENV}={mirror} does not have {', '.join(missing)}")
    return source


# The published label counts (also in torchvision's and LeCun's descriptions of the data set).
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_real_mnist_downloads_verifies_and_prepares(mirrored_mnist: Source, tmp_path: Path) -> None:
    paths = ensure_raw_files(mirrored_mnist, tmp_path / "raw")
    data = committed_params()["data"]
    splits = prepare_splits(paths, tmp_path / "prepared", class_names("MNIST"), data["validation"], data["seed"])
    train, validation, test = splits["train"], splits["validation"], splits["test"]
    assert len(validation) == data["validation"] and train.images.shape == (60000 - len(validation), 784)
    assert test.images.shape == (10000, 784) and train.images.dtype == torch.float32
    assert float(train.images.min()) == 0.0 and float(train.images.max()) == 1.0
    assert (torch.bincount(train.labels) + torch.bincount(validation.labels)).tolist() == TRAIN_COUNTS
    assert torch.bincount(test.labels).tolist() == TEST_COUNTS
    assert train.classes[7] == "7 - seven"
    reloaded = torch.load(tmp_path / "prepared" / "train.pt", weights_only=True)
    assert torch.equal(reloaded["images"], train.images)
