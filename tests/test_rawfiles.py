"""Raw files as users have them: uncompressed (Kaggle's names, both spellings) or recompressed, accepted
when their content matches a known checksum, refused with the fix otherwise."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import pytest
import torch

from helpers import write_dataset
from mnist_ae.core.dataset import DIGITS, IDX_FILES
from mnist_ae.core.errors import UserError
from mnist_ae.data import rawfiles
from mnist_ae.data.download import ensure_raw_files, md5_of
from mnist_ae.data.prepare import prepare_splits
from mnist_ae.data.sources import MIRROR_ENV, Source, get_source

VALIDATION = 100  # training images held out, as data.validation would


def _decompress(folder: Path, name: str, target: Path) -> None:
    target.write_bytes(gzip.decompress((folder / name).read_bytes()))


def _recompress(folder: Path, name: str, level: int) -> None:
    path = folder / name
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), compresslevel=level, mtime=12345))


@pytest.fixture
def generated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Source, dict[str, str]]:
    """The small dataset as a torchvision-like source whose content checksums are known."""
    folder = tmp_path / "Generated" / "raw"
    gz_md5 = write_dataset(folder)
    content_md5 = {name: rawfiles._md5(gzip.decompress((folder / name).read_bytes())) for name in IDX_FILES}
    monkeypatch.setitem(rawfiles.CONTENT_MD5, "Generated", content_md5)
    return folder, Source("Generated", gz_md5, mirrors=()), content_md5


def test_candidate_names() -> None:
    names = [path.name for path in rawfiles.candidates(Path("raw"), "train-images-idx3-ubyte.gz")]
    assert names == ["train-images-idx3-ubyte.gz", "train-images-idx3-ubyte", "train-images.idx3-ubyte"]


@pytest.mark.parametrize("spelling", ["train-images-idx3-ubyte", "train-images.idx3-ubyte"])
def test_uncompressed_files_are_accepted_and_read(generated, tmp_path: Path, spelling: str) -> None:
    folder, source, _ = generated
    reference = prepare_splits(ensure_raw_files(source, tmp_path), tmp_path / "reference", DIGITS, VALIDATION, seed=0)
    for name in IDX_FILES:
        plain = name.removesuffix(".gz") if "train-images" not in name else spelling
        _decompress(folder, name, folder / plain)
        (folder / name).unlink()
    paths = ensure_raw_files(source, tmp_path)
    assert paths["train-images-idx3-ubyte.gz"].name == spelling
    splits = prepare_splits(paths, tmp_path / "prepared", DIGITS, VALIDATION, seed=0)
    assert torch.equal(splits["train"].images, reference["train"].images)
    assert torch.equal(splits["test"].labels, reference["test"].labels)


def test_recompressed_files_are_accepted(generated, tmp_path: Path) -> None:
    folder, source, _ = generated
    for name in IDX_FILES:
        _recompress(folder, name, level=1)
        assert md5_of(folder / name) != source.md5[name]
    assert ensure_raw_files(source, tmp_path) == {name: folder / name for name in IDX_FILES}


def test_other_content_is_refused_whatever_the_form(generated, tmp_path: Path) -> None:
    folder, source, _ = generated
    other = tmp_path / "other"
    write_dataset(other, n_train=300, n_test=100)
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    _decompress(other, "train-labels-idx1-ubyte.gz", folder / "train-labels-idx1-ubyte")
    with pytest.raises(UserError, match=r"train-labels-idx1-ubyte has MD5 \w+, expected \w+: the file is corrupt"):
        ensure_raw_files(source, tmp_path)


def test_custom_checksums_may_be_of_the_content(tmp_path: Path) -> None:
    folder = tmp_path / "custom" / "raw"
    write_dataset(folder)
    content_md5 = {name: rawfiles._md5(gzip.decompress((folder / name).read_bytes())) for name in IDX_FILES}
    source = Source("custom", content_md5, mirrors=())
    _recompress(folder, IDX_FILES[0], level=9)
    _decompress(folder, IDX_FILES[1], folder / IDX_FILES[1].removesuffix(".gz"))
    (folder / IDX_FILES[1]).unlink()
    paths = ensure_raw_files(source, tmp_path)
    assert paths[IDX_FILES[1]].name == "train-labels-idx1-ubyte"


def test_unverifiable_idx_file_shows_the_custom_params(generated, tmp_path: Path, monkeypatch) -> None:
    folder, source, content_md5 = generated
    monkeypatch.delitem(rawfiles.CONTENT_MD5, "Generated")  # as for FashionMNIST and KMNIST
    _decompress(folder, "t10k-images-idx3-ubyte.gz", folder / "t10k-images-idx3-ubyte")
    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(UserError) as error:
        ensure_raw_files(source, tmp_path)
    message = str(error.value)
    assert "it is a valid IDX file, but no checksum of Generated's decompressed files is known here" in message
    assert "    dataset: custom\n    md5:\n" in message
    assert f"      t10k-images-idx3-ubyte.gz: {content_md5['t10k-images-idx3-ubyte.gz']}\n" in message


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get(MIRROR_ENV) or "://" in os.environ.get(MIRROR_ENV, ""),
                    reason=f"set {MIRROR_ENV} to a folder with MNIST's four files")
def test_real_mnist_uncompressed_and_recompressed(tmp_path: Path) -> None:
    mirror = Path(os.environ[MIRROR_ENV])
    source = get_source("MNIST")
    plain, again = source.raw_folder(tmp_path / "plain"), source.raw_folder(tmp_path / "again")
    plain.mkdir(parents=True)
    again.mkdir(parents=True)
    for name in IDX_FILES:
        _decompress(mirror, name, plain / name.removesuffix(".gz"))
        shutil.copy(mirror / name, again / name)
        _recompress(again, name, level=1)
        assert md5_of(again / name) != source.md5[name]
    assert all(path.suffix != ".gz" for path in ensure_raw_files(source, tmp_path / "plain").values())
    assert all(path.suffix == ".gz" for path in ensure_raw_files(source, tmp_path / "again").values())
