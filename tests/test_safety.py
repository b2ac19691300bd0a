"""The README's safety promises, each by a test that fails when the promise is broken.

- A checkpoint or prepared split cannot run code when loaded (``torch.load(..., weights_only=True)``).
- A file whose MD5 is wrong is never used or kept, whether it was already in place or downloaded.
"""

from __future__ import annotations

import pathlib
from pathlib import Path

import pytest
import torch

from mnist_ae.core.dataset import IDX_FILES, load_split
from mnist_ae.core.errors import UserError
from mnist_ae.data.download import ensure_raw_files, md5_of
from mnist_ae.data.sources import Source
from mnist_ae.models.checkpoint import load_checkpoint


class _Payload:
    """Unpickling this runs ``Path(marker).touch()``: what a malicious file could do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def _plant(path: Path, marker: Path, **fields: object) -> None:
    torch.save({**fields, "payload": _Payload(marker)}, path)


def test_a_checkpoint_cannot_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    checkpoint = tmp_path / "autoencoder.pt"
    _plant(checkpoint, marker, model={"kind": "mlp", "code_dim": 2, "mlp": {"hidden": [8]}}, state_dict={}, metadata={})
    with pytest.raises(UserError, match="is not a checkpoint of this project's models"):
        load_checkpoint(checkpoint)
    assert not marker.exists(), "loading the checkpoint ran the code planted in it"


def test_a_prepared_split_cannot_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    _plant(tmp_path / "train.pt", marker, images=torch.zeros(2, 784), labels=torch.zeros(2, dtype=torch.int64))
    with pytest.raises(UserError, match="is not a prepared split"):
        load_split(tmp_path, "train")
    assert not marker.exists(), "loading the split ran the code planted in it"


# --- MD5s: a wrong file is refused, never used, never kept. ---


def _wrong_copy(folder: Path, name: str, into: Path) -> Path:
    """A copy of ``folder`` in ``into`` where ``name`` is a valid gzip IDX file, but another one."""
    into.mkdir(parents=True, exist_ok=True)
    for other in IDX_FILES:
        (into / other).write_bytes((folder / other).read_bytes())
    (into / name).write_bytes((folder / IDX_FILES[1 if name == IDX_FILES[3] else 3]).read_bytes())
    return into / name


def test_a_wrong_file_in_place_is_refused(small_dataset, tmp_path: Path) -> None:
    folder, md5 = small_dataset
    source = Source("custom", md5, mirrors=())
    wrong = _wrong_copy(folder, IDX_FILES[3], source.raw_folder(tmp_path / "raw"))
    with pytest.raises(UserError) as error:
        ensure_raw_files(source, tmp_path / "raw")
    assert f"{wrong} has MD5 {md5_of(wrong)}, expected {md5[IDX_FILES[3]]}" in str(error.value)


def test_a_wrong_file_from_a_mirror_is_not_kept(small_dataset, tmp_path: Path) -> None:
    folder, md5 = small_dataset
    mirror = tmp_path / "mirror"
    wrong = _wrong_copy(folder, IDX_FILES[3], mirror)
    root = tmp_path / "raw"
    with pytest.raises(UserError) as error:
        ensure_raw_files(Source("custom", md5, mirrors=(mirror.as_uri() + "/",)), root)
    message = str(error.value)
    assert f"could not download {IDX_FILES[3]}" in message and wrong.as_uri() in message
    assert f"MD5 {md5_of(wrong)}, expected {md5[IDX_FILES[3]]}" in message
    # The three right files were kept; the wrong one, and no temporary file, is in the raw folder.
    assert sorted(path.name for path in (root / "custom" / "raw").iterdir()) == sorted(IDX_FILES[:3])


def test_a_wrong_mirror_is_passed_over_for_a_right_one(small_dataset, tmp_path: Path) -> None:
    folder, md5 = small_dataset
    mirror = tmp_path / "mirror"
    _wrong_copy(folder, IDX_FILES[0], mirror)
    root = tmp_path / "raw"
    paths = ensure_raw_files(Source("custom", md5, mirrors=(mirror.as_uri() + "/", folder.as_uri() + "/")), root)
    assert {name: md5_of(path) for name, path in paths.items()} == md5
