from pathlib import Path

import pytest

from mnist_ae.download import ensure_raw_files, md5_of
from mnist_ae.errors import UserError
from mnist_ae.sources import IDX_FILES, MIRROR_ENV, Source, get_source


def test_torchvision_is_the_authority_for_mnist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    source = get_source("MNIST")
    assert source.md5["train-images-idx3-ubyte.gz"] == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert sorted(source.md5) == sorted(IDX_FILES)
    assert source.mirrors[0].startswith("https://")


def test_env_mirror_is_tried_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path))
    assert get_source("MNIST").mirrors[0] == tmp_path.resolve().as_uri() + "/"


def test_files_in_place_are_verified_and_kept(small_dataset, tmp_path: Path) -> None:
    folder, md5 = small_dataset
    source = Source("custom", md5, mirrors=())
    root = tmp_path / "raw"
    source.raw_folder(root).mkdir(parents=True)
    for name in IDX_FILES:
        (source.raw_folder(root) / name).write_bytes((folder / name).read_bytes())
    paths = ensure_raw_files(source, root)
    assert {name: md5_of(path) for name, path in paths.items()} == md5


def _layout(folder: Path, md5: dict[str, str], tmp_path: Path) -> tuple[Source, Path]:
    """A source whose raw folder is empty and whose only mirror is ``folder``."""
    return Source("custom", md5, mirrors=(folder.as_uri() + "/",)), tmp_path / "raw"


def test_missing_files_come_from_the_mirror(small_dataset, tmp_path: Path) -> None:
    folder, md5 = small_dataset
    source, root = _layout(folder, md5, tmp_path)
    paths = ensure_raw_files(source, root)
    assert all(path.parent == root / "custom" / "raw" for path in paths.values())
    assert {name: md5_of(path) for name, path in paths.items()} == md5
    assert not list((root / "custom" / "raw").glob(".*"))  # no temporary file left


def _flip_a_byte(data: bytes) -> bytes:
    return data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:]


@pytest.mark.parametrize("damage", [_flip_a_byte, lambda data: data[:-1], lambda data: b"not gzip"])
def test_corrupt_existing_file_names_file_checksums_and_fix(small_dataset, tmp_path: Path, damage) -> None:
    folder, md5 = small_dataset
    source, root = _layout(folder, md5, tmp_path)
    ensure_raw_files(source, root)
    bad = root / "custom" / "raw" / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(damage(bad.read_bytes()))
    with pytest.raises(UserError) as error:
        ensure_raw_files(source, root)
    message = str(error.value)
    assert str(bad) in message and md5["train-labels-idx1-ubyte.gz"] in message and md5_of(bad) in message
    assert "Delete it and run again" in message


def test_bad_mirrors_are_skipped_and_wrong_downloads_never_kept(small_dataset, tmp_path: Path) -> None:
    folder, md5 = small_dataset
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    for name in IDX_FILES:
        (garbage / name).write_bytes(b"<html>not found</html>")
    mirrors = ((tmp_path / "absent").as_uri() + "/", garbage.as_uri() + "/", folder.as_uri() + "/")
    root = tmp_path / "raw"
    paths = ensure_raw_files(Source("custom", md5, mirrors), root)
    assert {name: md5_of(path) for name, path in paths.items()} == md5


def test_no_mirror_has_the_file(small_dataset, tmp_path: Path) -> None:
    _, md5 = small_dataset
    source = Source("custom", md5, mirrors=((tmp_path / "absent").as_uri() + "/",))
    root = tmp_path / "raw"
    with pytest.raises(UserError) as error:
        ensure_raw_files(source, root)
    message = str(error.value)
    assert "could not download train-images-idx3-ubyte.gz" in message
    assert f"put the four files" in message and str(root / "custom" / "raw") in message
    assert not any((root / "custom" / "raw").iterdir())  # nothing partial left behind
