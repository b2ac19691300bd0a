from pathlib import Path

import pytest
import torch
from torch import nn

from helpers import model_params, train_params
from mnist_ae.core.dataset import PIXELS
from mnist_ae.core.errors import UserError
from mnist_ae.models.checkpoint import load_checkpoint, save_checkpoint, trained_loss
from mnist_ae.models.families import FAMILIES, build_model
from mnist_ae.models.mlp import MLP
from mnist_ae.training.loop import fit


@pytest.mark.parametrize(("kind", "family"), [("mlp", {"hidden": [8]}), ("mlp", {"hidden": [12, 8]}),
                                              ("conv", {"channels": [2, 3, 4]}), ("vae", {"hidden": [8]})])
def test_round_trip(tmp_path: Path, kind: str, family: dict) -> None:
    model = build_model(model_params(kind, code_dim=3, **family), seed=0).eval()
    save_checkpoint(tmp_path / "model.pt", model, {"note": "hi"})
    loaded, metadata = load_checkpoint(tmp_path / "model.pt")
    assert type(loaded) is FAMILIES[kind] and loaded.config == model.config and metadata == {"note": "hi"}
    x = torch.rand(4, PIXELS)
    torch.testing.assert_close(loaded(x), model(x))
    torch.testing.assert_close(loaded.encode(x), model.encode(x))
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary file left


def test_a_dropout_added_to_the_mlp_family_trains_saves_and_loads(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """As if models/mlp.py had gained a Dropout after its first hidden layer, and nothing else."""
    original = MLP.__init__

    def with_dropout(self: MLP, *args: object) -> None:
        original(self, *args)
        self.encoder.insert(2, nn.Dropout(0.1))

    monkeypatch.setattr(MLP, "__init__", with_dropout)
    model = build_model(model_params("mlp"), seed=0)
    history = fit(model, torch.rand(64, PIXELS), train_params(epochs=2, batch_size=16), progress=False)
    assert len(history) == 2
    save_checkpoint(tmp_path / "model.pt", model, {})
    loaded, _ = load_checkpoint(tmp_path / "model.pt")
    assert isinstance(loaded.encoder[2], nn.Dropout)
    x = torch.rand(4, PIXELS)
    torch.testing.assert_close(loaded(x), model.eval()(x))


def _saved(tmp_path: Path) -> Path:
    path = tmp_path / "model.pt"
    save_checkpoint(path, build_model(model_params("mlp", code_dim=3, hidden=[8])), {})
    return path


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda path: path.unlink(), "not found: run the train stage first"),
        (lambda path: path.write_bytes(path.read_bytes()[:100]), "is not a checkpoint of this project's models"),
        (lambda path: path.write_text("hello"), "is not a checkpoint of this project's models"),
        (lambda path: torch.save({"weights": 1}, path), "is not a checkpoint of this project's models"),
    ],
)
def test_bad_checkpoints(tmp_path: Path, damage, message: str) -> None:
    path = _saved(tmp_path)
    damage(path)
    with pytest.raises(UserError, match=message):
        load_checkpoint(path)


def test_refuses_to_run_code(tmp_path: Path) -> None:
    class Sneaky:
        def __reduce__(self):
            return (print, ("this must not run",))

    path = tmp_path / "model.pt"
    torch.save({"state_dict": Sneaky()}, path)
    with pytest.raises(UserError, match="is not a checkpoint"):
        load_checkpoint(path)


def test_weights_of_another_model_size(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["model"]["mlp"]["hidden"] = [16]  # the weights are for hidden=[8]
    torch.save(checkpoint, path)
    with pytest.raises(UserError, match=r"weights of another model: "
                                        r"decoder.0.bias is \(8,\) in the file, \(16,\) for its config"):
        load_checkpoint(path)


@pytest.mark.parametrize(("change", "message"), [
    ({"kind": "resnet"}, "unknown model kind 'resnet'"),
    ({"kind": "conv"}, "no 'conv' section in the model's config"),
    ({"code_dim": -1}, "code_dim -1 is not a positive integer"),
])
def test_a_config_that_names_no_model_is_refused(tmp_path: Path, change: dict, message: str) -> None:
    path = _saved(tmp_path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["model"].update(change)
    torch.save(checkpoint, path)
    with pytest.raises(UserError, match=rf"is not a checkpoint of this project's models \(.*{message}"):
        load_checkpoint(path)


def test_missing_entries_are_named(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["model"]
    torch.save(checkpoint, path)
    with pytest.raises(UserError, match=r"has no 'model' \(it has 'state_dict', 'metadata'\)"):
        load_checkpoint(path)


@pytest.mark.parametrize(("change", "message"), [
    (lambda section: section.update(dropout=0.1), "its model.mlp has 'dropout', a knob the mlp family no longer has"),
    (lambda section: section.clear(), "its model.mlp has no 'hidden', a knob the mlp family gained since it was saved; "
                                      "retrain it \\(dvc repro train\\)"),
    (lambda section: section.update(hidden=[0]), r"its model.mlp.hidden.0 is not valid now"),
])
def test_a_family_whose_knobs_changed_says_which(tmp_path: Path, change, message: str) -> None:
    """As when a knob is added to (or removed from) a family after its checkpoints were saved."""
    path = _saved(tmp_path)
    checkpoint = torch.load(path, weights_only=True)
    change(checkpoint["model"]["mlp"])
    torch.save(checkpoint, path)
    with pytest.raises(UserError, match=message) as error:
        load_checkpoint(path)
    assert "\n" not in str(error.value)  # one line, not pydantic's report


def test_a_path_as_text_and_an_open_file_load_too(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    model, _ = load_checkpoint(str(path))
    with open(path, "rb") as file:
        again, _ = load_checkpoint(file)
    x = torch.rand(2, PIXELS)
    torch.testing.assert_close(model(x), again(x))
    with pytest.raises(UserError, match="not found: run the train stage first"):
        load_checkpoint(str(tmp_path / "nope.pt"))


def test_a_foreign_config_is_refused_before_anything_is_allocated(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["model"]["mlp"]["hidden"] = [10**9]  # building this model would need 100s of GB
    torch.save(checkpoint, path)
    with pytest.raises(UserError, match=r"decoder.0.bias is \(8,\) in the file, \(1000000000,\) for its config"):
        load_checkpoint(path)


@pytest.mark.parametrize(("damage", "message"), [
    (lambda checkpoint: checkpoint["state_dict"]["encoder.0.weight"].view(-1)[3].fill_(float("nan")),
     "its weight encoder.0.weight holds NaN or inf"),
    (lambda checkpoint: checkpoint["state_dict"]["decoder.0.bias"].view(-1)[0].fill_(float("-inf")),
     "its weight decoder.0.bias holds NaN or inf"),
    (lambda checkpoint: checkpoint.update(metadata=["train"]), "its metadata is a list, not a dict"),
])
def test_a_damaged_checkpoint_of_the_right_shapes_is_refused(tmp_path: Path, damage, message: str) -> None:
    """A NaN weight would otherwise end the evaluate stage inside torch.linalg, a metadata of another
    type in trained_loss."""
    path = _saved(tmp_path)
    checkpoint = torch.load(path, weights_only=True)
    damage(checkpoint)
    torch.save(checkpoint, path)
    with pytest.raises(UserError) as error:
        load_checkpoint(path)
    assert str(error.value) == f"{path} is not a checkpoint of this project's models ({message}); rerun the train stage"


@pytest.mark.parametrize("metadata", [{}, {"train": ["mse"]}, {"train": {"loss": ["mse"]}}, {"train": {"loss": "l1"}}])
def test_a_checkpoint_that_names_no_loss_is_refused(metadata: dict) -> None:
    with pytest.raises(UserError, match=r"^model.pt does not say which loss trained it \(metadata train.loss is .*\); "
                                        r"rerun the train stage$"):
        trained_loss(metadata, "model.pt")
    assert trained_loss({"train": {"loss": "bce"}}, "model.pt") == "bce"
