from pathlib import Path

import pytest
import yaml

from mnist_ae.errors import UserError
from mnist_ae.params import load_params
from mnist_ae.sources import IDX_FILES

PROJECT = Path(__file__).resolve().parents[1]
CUSTOM_MD5 = {name: "0" * 32 for name in IDX_FILES}


def write(tmp_path: Path, changes: dict) -> Path:
    """The project's params.yaml with ``changes`` merged into its sections, written to tmp_path."""
    data = yaml.safe_load((PROJECT / "params.yaml").read_text())
    for section, values in changes.items():
        data.setdefault(section, {}).update(values)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_project_params_are_the_reference_settings() -> None:
    params = load_params(PROJECT / "params.yaml")
    assert (params.train.batch_size, params.train.epochs, params.train.lr) == (32, 5, 1e-3)
    assert (params.model.hidden, params.model.code_dim, params.data.dataset) == (256, 16, "MNIST")


def test_a_missing_key_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text((PROJECT / "params.yaml").read_text().replace("  seed: 0\n", "", 1))
    with pytest.raises(UserError, match="train.seed: missing"):
        load_params(path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"train": {"epoch": 3}}, "train.epoch: unknown key"),
        ({"train": {"epochs": 0}}, "train.epochs: Input should be greater than or equal to 1"),
        ({"train": {"lr": 0}}, "train.lr: Input should be greater than 0"),
        ({"train": {"lr": "fast"}}, "train.lr: Input should be a valid number"),
        ({"train": {"batch_size": 0}}, "train.batch_size: Input should be greater than or equal to 1"),
        ({"model": {"code_dim": 0}}, "model.code_dim: Input should be greater than or equal to 1"),
        ({"train": {"device": "tpu"}}, "train.device: Input should be 'auto', 'cpu', 'cuda' or 'mps'"),
        ({"data": {"dataset": "CIFAR10"}}, "unknown dataset 'CIFAR10'"),
        ({"data": {"dataset": "custom"}}, "dataset 'custom' needs an md5"),
        ({"data": {"md5": {"a": "b"}}}, "md5 is only for dataset 'custom'"),
        ({"embed": {"size": 10, "perplexity": 10}}, "perplexity (10.0) must be less than size (10)"),
        ({"embed": {"size": 4, "perplexity": 2}}, "embed.size: Input should be greater than or equal to 5"),
        ({"embed": {"size": 20, "perplexity": 5, "neighbors": 17}}, "neighbors (17) must be at most 16"),
        ({"train": {"nproc": 0}}, "train.nproc: Input should be greater than or equal to 1"),
        ({"data": {"classes": list("abcdefghij")}}, "classes is only for dataset 'custom'"),
        ({"data": {"dataset": "custom", "md5": CUSTOM_MD5, "classes": ["a", "b"]}}, "classes must be 10 distinct"),
        ({"data": {"dataset": "custom", "md5": CUSTOM_MD5, "classes": ["a"] * 10}}, "classes must be 10 distinct"),
    ],
)
def test_bad_params_are_named(tmp_path: Path, data: dict, message: str) -> None:
    with pytest.raises(UserError) as error:
        load_params(write(tmp_path, data))
    assert message in str(error.value)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(UserError) as error:
        load_params(write(tmp_path, {"train": {"epoch": 3, "lr": -1}, "model": {"hidden": 0}}))
    text = str(error.value)
    assert "has 3 problems" in text
    assert all(key in text for key in ("train.epoch", "train.lr", "model.hidden"))


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    (tmp_path / "params.yaml").write_text("train: [unclosed")
    with pytest.raises(UserError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")


@pytest.mark.parametrize("classes", [None, [], list("abcdefghij")])
def test_custom_class_names_are_optional(tmp_path: Path, classes: list[str] | None) -> None:
    data = {"dataset": "custom", "md5": CUSTOM_MD5} | ({} if classes is None else {"classes": classes})
    path = write(tmp_path, {})
    params = yaml.safe_load(path.read_text())
    params["data"] = data
    path.write_text(yaml.safe_dump(params))
    assert load_params(path).data.classes == (classes or [])
