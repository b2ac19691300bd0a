from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sklearn.utils import check_random_state

from helpers import committed_params, run
from mnist_ae.core.dataset import IDX_FILES
from mnist_ae.core.errors import UserError
from mnist_ae.params import MAX_EMBED_SEED, MAX_TRAIN_SEED, load_params

CUSTOM_MD5 = {name: "0" * 32 for name in IDX_FILES}


def write(tmp_path: Path, changes: dict) -> Path:
    """The project's params.yaml with ``changes`` merged into its sections, written to tmp_path."""
    data = committed_params()
    for section, values in changes.items():
        target = data.setdefault(section, {})
        for key, value in values.items():  # one level deeper for a model family's section
            if isinstance(value, dict) and isinstance(target.get(key), dict) and key != "md5":
                target[key].update(value)
            else:
                target[key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_project_params_are_the_reference_settings(tmp_path: Path) -> None:
    params = load_params(write(tmp_path, {}))  # as committed, whatever an experiment left in the workspace
    assert (params.train.batch_size, params.train.epochs, params.train.lr) == (32, 5, 1e-3)
    assert (params.model.kind, params.model.mlp.hidden, params.model.code_dim) == ("mlp", [256], 16)
    assert params.model.family == params.model.mlp and params.data.dataset == "MNIST"
    assert (params.train.precision, params.train.loss, params.train.step) == ("fp32", "mse", "auto")


def test_the_tests_read_the_committed_params_not_an_experiments(tmp_path: Path) -> None:
    """What `dvc exp run -S train.epochs=1` leaves in the working tree is no default for the tests."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"train": {"epochs": 5}}))
    run(["git", "init", "-q"], tmp_path)
    run(["git", "add", "params.yaml"], tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"train": {"epochs": 1}}))  # as an experiment leaves it
    assert committed_params(tmp_path) == {"train": {"epochs": 5}}


def test_a_missing_key_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    params = committed_params()
    del params["train"]["seed"]
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(UserError, match=r"train.seed: missing"):
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
        ({"model": {"kind": "resnet"}}, "model.kind: unknown model kind 'resnet'; use one of mlp, conv, vae"),
        ({"model": {"conv": {"channel": [8]}}}, "model.conv.channel: unknown key (a typo?)"),
        ({"model": {"conv": {"channels": [8, 8, 8, 8, 8]}}}, "model.conv.channels: List should have at most 4 items"),
        ({"model": {"vae": {"beta": -1}}}, "model.vae.beta: Input should be greater than or equal to 0"),
        ({"model": {"mlp": {"hiden": [8]}}}, "model.mlp.hiden: unknown key (a typo?)"),
        ({"model": {"hidden": [256]}}, "model.hidden: unknown key (a typo?)"),
        ({"train": {"loss": "l1"}}, "train.loss: Input should be 'mse' or 'bce'"),
        ({"train": {"step": "fast"}}, "train.step: Input should be 'auto', 'fused_mlp' or 'autograd'"),
        ({"evaluate": {"samples": 0}}, "evaluate.samples: Input should be greater than or equal to 1"),
        ({"train": {"device": "tpu"}}, "train.device: Input should be 'auto', 'cpu', 'cuda' or 'mps'"),
        ({"data": {"dataset": "CIFAR10"}}, "unknown dataset 'CIFAR10'"),
        ({"data": {"dataset": "custom"}}, "dataset 'custom' needs an md5"),
        ({"data": {"md5": {"a": "0" * 32}}}, "md5 is only for dataset 'custom'"),
        ({"data": {"dataset": "custom", "md5": {"data/custom/train-images-idx3-ubyte.gz": "0" * 32}}},
         "data.md5: 'data/custom/train-images-idx3-ubyte.gz' looks like a path; use the bare file name "
         "'train-images-idx3-ubyte.gz' as the key"),
        ({"data": {"dataset": "custom", "md5": {"*train-images-idx3-ubyte.gz": "0" * 32}}},
         "use the bare file name 'train-images-idx3-ubyte.gz'"),
        ({"data": {"dataset": "custom", "md5": {"train-images-idx3-ubyte.gz": "123"}}},
         "data.md5: train-images-idx3-ubyte.gz: '123' is not an MD5 (32 hexadecimal digits)"),
        ({"embed": {"size": 10, "perplexity": 10}}, "perplexity (10.0) must be less than size (10)"),
        ({"embed": {"size": 4, "perplexity": 2}}, "embed.size: Input should be greater than or equal to 5"),
        ({"embed": {"size": 20, "perplexity": 5, "neighbors": 17}}, "neighbors (17) must be at most 16"),
        ({"train": {"nproc": 0}}, "train.nproc: Input should be greater than or equal to 1"),
        ({"data": {"validation": 0}}, "data.validation: Input should be greater than or equal to 1"),
        ({"data": {"seed": -1}}, "data.seed: Input should be greater than or equal to 0"),
        ({"embed": {"clusters": 1}}, "embed.clusters: Input should be greater than or equal to 2"),
        ({"embed": {"probe": "maybe"}}, "embed.probe: Input should be a valid boolean"),
        ({"embed": {"cluster_seed": 2**32}}, "embed.cluster_seed: Input should be less than or equal to 4294967295"),
        ({"train": {"seed": -1}}, "train.seed: Input should be greater than or equal to 0"),
        ({"train": {"seed": 2**64}}, "train.seed: Input should be less than or equal to 18446744073709551615"),
        ({"embed": {"seed": -1}}, "embed.seed: Input should be greater than or equal to 0"),
        ({"embed": {"seed": 2**32}}, "embed.seed: Input should be less than or equal to 4294967295"),
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
        load_params(write(tmp_path, {"train": {"epoch": 3, "lr": -1}, "model": {"mlp": {"hidden": 0}}}))
    text = str(error.value)
    assert "has 3 problems" in text
    assert all(key in text for key in ("train.epoch", "train.lr", "model.mlp.hidden"))


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    (tmp_path / "params.yaml").write_text("train: [unclosed")
    with pytest.raises(UserError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")


@pytest.mark.parametrize(
    ("hidden", "message"),
    [
        (256, "hidden: Input should be a valid list"),
        ([], "hidden: List should have at least 1 item"),
        ([512, 0], "hidden.1: Input should be greater than or equal to 1"),
        ([512, -3], "hidden.1: Input should be greater than or equal to 1"),
    ],
)
@pytest.mark.parametrize("family", ["mlp", "vae"])
def test_hidden_is_a_list_of_positive_widths(tmp_path: Path, hidden: object, message: str, family: str) -> None:
    with pytest.raises(UserError) as error:
        load_params(write(tmp_path, {"model": {family: {"hidden": hidden}}}))
    assert f"model.{family}.{message}" in str(error.value)
    assert getattr(load_params(write(tmp_path, {"model": {family: {"hidden": [512, 128]}}})).model,
                   family).hidden == [512, 128]


def test_precision_is_fp32_or_bf16(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"train.precision: Input should be 'fp32' or 'bf16'"):
        load_params(write(tmp_path, {"train": {"precision": "fp16"}}))


def test_seed_bounds_are_what_the_libraries_take(tmp_path: Path) -> None:
    params = load_params(write(tmp_path, {"train": {"seed": MAX_TRAIN_SEED}, "embed": {"seed": MAX_EMBED_SEED}}))
    # The largest seeds params.yaml accepts work where each is used...
    torch.manual_seed(params.train.seed)
    torch.Generator().manual_seed(params.train.seed)
    np.random.default_rng(params.embed.seed)
    check_random_state(params.embed.seed)  # t-SNE's random_state, in scikit-learn and openTSNE
    # ...and one more would not: the bounds are the libraries' own, not narrower.
    with pytest.raises((ValueError, RuntimeError, OverflowError)):
        torch.manual_seed(MAX_TRAIN_SEED + 1)
    with pytest.raises(ValueError):
        check_random_state(MAX_EMBED_SEED + 1)
    with pytest.raises(ValueError):
        np.random.default_rng(-1)


def test_a_replicate_moves_every_seed_of_embed_with_train_seed(tmp_path: Path) -> None:
    """train.seed names a replicate: embed's seeds (and so the pixel baseline's) follow it, stay the
    configured ones at train.seed 0, and stay within what the libraries take at the largest seeds."""
    at = {seed: load_params(write(tmp_path, {"train": {"seed": seed}, "embed": {"seed": 3, "cluster_seed": 5}}))
          for seed in (0, 2, MAX_TRAIN_SEED)}
    assert (at[0].replicate_embed().seed, at[0].replicate_embed().cluster_seed) == (3, 5)
    assert (at[2].replicate_embed().seed, at[2].replicate_embed().cluster_seed) == (5, 7)
    assert at[2].replicate_embed().perplexity == at[2].embed.perplexity and at[2].embed.seed == 3  # a copy
    largest = at[MAX_TRAIN_SEED].replicate_embed()
    assert 0 <= largest.seed <= MAX_EMBED_SEED and 0 <= largest.cluster_seed <= MAX_EMBED_SEED
    check_random_state(largest.seed)


def test_custom_md5s_in_upper_case_are_accepted(tmp_path: Path) -> None:
    md5 = {name: f"{index:x}" * 32 for index, name in enumerate(IDX_FILES, start=10)}  # "aaa…", "bbb…"
    params = load_params(write(tmp_path, {"data": {"dataset": "custom",
                                                   "md5": {name: value.upper() for name, value in md5.items()}}}))
    assert params.data.md5 == md5


@pytest.mark.parametrize("classes", [None, [], list("abcdefghij")])
def test_custom_class_names_are_optional(tmp_path: Path, classes: list[str] | None) -> None:
    data = {"dataset": "custom", "md5": CUSTOM_MD5, "validation": 10, "seed": 0} | (
        {} if classes is None else {"classes": classes})
    path = write(tmp_path, {})
    params = yaml.safe_load(path.read_text())
    params["data"] = data
    path.write_text(yaml.safe_dump(params))
    assert load_params(path).data.classes == (classes or [])
