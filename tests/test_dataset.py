from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import replace_entry, set_element
from mnist_ae.core.dataset import DIGITS, IDX_FILES, PIXELS, load_split
from mnist_ae.core.errors import UserError
from mnist_ae.data.idx import write_idx_gz
from mnist_ae.data.prepare import prepare_splits, split_from_idx

VALIDATION = 100  # training images held out, as data.validation would


def test_prepared_splits_are_float_in_unit_range(small_dataset, tmp_path: Path) -> None:
    folder, _ = small_dataset
    splits = prepare_splits({name: folder / name for name in IDX_FILES}, tmp_path, DIGITS, VALIDATION, seed=0)
    train = load_split(tmp_path, "train")
    assert train.images.dtype == torch.float32 and train.images.shape == (600 - VALIDATION, 784)
    assert float(train.images.min()) >= 0.0 and float(train.images.max()) <= 1.0
    assert torch.equal(train.labels, splits["train"].labels)


def test_images_and_labels_of_different_lengths(tmp_path: Path) -> None:
    write_idx_gz(tmp_path / "images.gz", np.zeros((5, 28, 28), dtype=np.uint8))
    write_idx_gz(tmp_path / "labels.gz", np.zeros(4, dtype=np.uint8))
    with pytest.raises(UserError, match=r"has 5 images but .* has 4 labels"):
        split_from_idx(tmp_path / "images.gz", tmp_path / "labels.gz", DIGITS)


def test_labels_that_are_not_digits(tmp_path: Path) -> None:
    write_idx_gz(tmp_path / "images.gz", np.zeros((2, 28, 28), dtype=np.uint8))
    write_idx_gz(tmp_path / "labels.gz", np.array([3, 12], dtype=np.uint8))
    with pytest.raises(UserError, match="label 12 found"):
        split_from_idx(tmp_path / "images.gz", tmp_path / "labels.gz", DIGITS)


def test_image_and_label_files_swapped(small_dataset) -> None:
    folder, _ = small_dataset
    with pytest.raises(UserError, match="magic number 0x00000801, expected 0x00000803"):
        split_from_idx(folder / "train-labels-idx1-ubyte.gz", folder / "train-images-idx3-ubyte.gz", DIGITS)


def test_missing_or_broken_prepared_split(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="run the prepare stage first"):
        load_split(tmp_path, "train")
    (tmp_path / "train.pt").write_bytes(b"garbage")
    with pytest.raises(UserError, match="is not a prepared split"):
        load_split(tmp_path, "train")


@pytest.mark.parametrize("shape", [(5, 32, 32), (5, 28, 27)])
def test_images_of_another_size_are_refused(tmp_path: Path, shape: tuple[int, ...]) -> None:
    write_idx_gz(tmp_path / "images.gz", np.zeros(shape, dtype=np.uint8))
    write_idx_gz(tmp_path / "labels.gz", np.zeros(5, dtype=np.uint8))
    with pytest.raises(UserError) as error:
        split_from_idx(tmp_path / "images.gz", tmp_path / "labels.gz", DIGITS)
    assert str(error.value) == (f"{tmp_path / 'images.gz'}: images of {shape[1]}x{shape[2]} pixels; "
                                "expected 28x28 (an IDX shape of (N, 28, 28))")


def test_an_empty_split_is_refused(small_dataset, tmp_path: Path) -> None:
    folder, _ = small_dataset
    raw = {name: folder / name for name in IDX_FILES}
    write_idx_gz(tmp_path / "empty-images.gz", np.zeros((0, 28, 28), dtype=np.uint8))
    write_idx_gz(tmp_path / "empty-labels.gz", np.zeros(0, dtype=np.uint8))
    raw.update({IDX_FILES[2]: tmp_path / "empty-images.gz", IDX_FILES[3]: tmp_path / "empty-labels.gz"})
    with pytest.raises(UserError, match=f"{tmp_path / 'empty-images.gz'} holds no images .*at least one 28x28 image"):
        prepare_splits(raw, tmp_path / "prepared", DIGITS, VALIDATION, seed=0)
    assert not (tmp_path / "prepared").exists()  # not even the good train split was written


def test_the_validation_split_is_a_seeded_part_of_the_training_files(small_dataset, tmp_path: Path) -> None:
    folder, _ = small_dataset
    raw = {name: folder / name for name in IDX_FILES}
    splits = prepare_splits(raw, tmp_path / "a", tuple("abcdefghij"), validation=150, seed=3)
    everything = split_from_idx(raw[IDX_FILES[0]], raw[IDX_FILES[1]], DIGITS)
    train, validation = splits["train"], splits["validation"]
    assert len(train) == 450 and len(validation) == 150 and len(splits["test"]) == 200
    rows = {tuple(image.tolist()): i for i, image in enumerate(everything.images)}
    train_rows = [rows[tuple(image.tolist())] for image in train.images]
    validation_rows = {rows[tuple(image.tolist())] for image in validation.images}
    assert train_rows == sorted(train_rows)  # the rest keep the files' order
    assert set(train_rows) | validation_rows == set(range(600)) and not set(train_rows) & validation_rows
    assert load_split(tmp_path / "a", "validation").classes[9] == "j"  # the classes' names travel with the data
    again = prepare_splits(raw, tmp_path / "b", DIGITS, validation=150, seed=3)["validation"]
    other = prepare_splits(raw, tmp_path / "c", DIGITS, validation=150, seed=4)["validation"]
    assert torch.equal(again.images, validation.images) and not torch.equal(other.images, validation.images)
    with pytest.raises(UserError, match=r"data.validation is 600 but .* holds 600 training images: hold out fewer"):
        prepare_splits(raw, tmp_path / "d", DIGITS, validation=600, seed=0)


def _split_file(path: Path, damage) -> None:
    """A prepared split of 5 images, as save_split writes it, changed by ``damage`` (its dict, in place)."""
    data = {"images": torch.linspace(0, 1, 5 * PIXELS).reshape(5, PIXELS), "labels": torch.arange(5),
            "classes": list(DIGITS)}
    damage(data)
    torch.save(data, path)


@pytest.mark.parametrize(("damage", "message"), [
    (lambda data: data.pop("labels"), "no 'labels' in it"),
    (replace_entry("images", lambda images: images.double()),
     f"images is torch.float64 of shape (5, {PIXELS}); expected float32 of shape (images, {PIXELS})"),
    (replace_entry("images", lambda images: images.reshape(5, 28, 28)),
     f"images is torch.float32 of shape (5, 28, 28); expected float32 of shape (images, {PIXELS})"),
    (replace_entry("labels", lambda labels: labels.int()),
     "labels is torch.int32 of shape (5,); expected int64 of shape (images,)"),
    (replace_entry("labels", lambda labels: labels[:4]), "5 images but 4 labels"),
    (lambda data: data.update(images=data["images"][:0], labels=data["labels"][:0]), "no images"),
    (replace_entry("classes", lambda classes: classes[:9]),
     "classes is ['0', '1', '2', '3', '4', '5', '6', '7', '8']; expected the names of 10 classes"),
    (replace_entry("classes", lambda classes: list(range(10))),
     "classes is [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]; expected the names of 10 classes"),
    (replace_entry("labels", set_element((2,), 10)), "labels hold 0..10; expected labels 0..9"),
    (replace_entry("labels", set_element((2,), -1)), "labels hold -1..4; expected labels 0..9"),
    (replace_entry("images", lambda images: images * 255),  # bytes, never scaled
     "images hold values from 0.0 to 255.0; expected finite values in [0, 1]"),
    (replace_entry("images", set_element((1, 7), -0.5)),
     "images hold values from -0.5 to 1.0; expected finite values in [0, 1]"),
    (replace_entry("images", set_element((1, 7), float("nan"))),
     "images hold values from nan to nan; expected finite values in [0, 1]"),
    (replace_entry("images", set_element((4, 0), float("inf"))),
     "images hold values from 0.0 to inf; expected finite values in [0, 1]"),
])
def test_a_prepared_split_unlike_its_promise_is_named(tmp_path: Path, damage, message: str) -> None:
    _split_file(tmp_path / "train.pt", lambda data: None)
    assert len(load_split(tmp_path, "train")) == 5  # intact, it loads
    _split_file(tmp_path / "train.pt", damage)
    with pytest.raises(UserError) as error:
        load_split(tmp_path, "train")
    assert str(error.value) == f"{tmp_path / 'train.pt'}: {message}; rerun the prepare stage (dvc repro prepare)"


def test_a_split_that_is_no_dict_is_named(tmp_path: Path) -> None:
    torch.save([1, 2], tmp_path / "train.pt")
    with pytest.raises(UserError, match=r"train.pt: it holds a list, not a dict of images, labels and classes; "
                                        r"rerun the prepare stage \(dvc repro prepare\)$"):
        load_split(tmp_path, "train")
