from pathlib import Path

import pytest
import torch

from mnist_ae.checkpoint import load_checkpoint, save_checkpoint
from mnist_ae.errors import UserError
from mnist_ae.model import AutoEncoder, ModelConfig


@pytest.mark.parametrize("hidden", [(8,), (12, 8)])
def test_round_trip(tmp_path: Path, hidden: tuple[int, ...]) -> None:
    model = AutoEncoder(ModelConfig(input_dim=64, hidden=hidden, code_dim=3))
    save_checkpoint(tmp_path / "model.pt", model, {"note": "hi"})
    loaded, metadata = load_checkpoint(tmp_path / "model.pt")
    assert loaded.config == model.config and metadata == {"note": "hi"}
    x = torch.rand(4, 64)
    torch.testing.assert_close(loaded(x), model(x))
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary file left


def _saved(tmp_path: Path) -> Path:
    path = tmp_path / "model.pt"
    save_checkpoint(path, AutoEncoder(ModelConfig(input_dim=64, hidden=(8,), code_dim=3)), {})
    return path


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda path: path.unlink(), "not found: run the train stage first"),
        (lambda path: path.write_bytes(path.read_bytes()[:100]), "is not a checkpoint of this model"),
        (lambda path: path.write_text("hello"), "is not a checkpoint of this model"),
        (lambda path: torch.save({"weights": 1}, path), "is not a checkpoint of this model"),
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
    checkpoint["config"]["hidden"] = [16]  # the weights are for hidden=[8]
    torch.save(checkpoint, path)
    with pytest.raises(UserError, match=r"weights of another model size: "
                                        r"decoder.0.bias is \(8,\) in the file, \(16,\) for its config"):
        load_checkpoint(path)


def test_a_checkpoint_of_the_first_release_loads(tmp_path: Path) -> None:
    """The 4-layer model's checkpoints stored ``hidden`` as one integer; they still load."""
    model = AutoEncoder(ModelConfig(input_dim=64, hidden=(8,), code_dim=3))
    path = tmp_path / "old.pt"
    torch.save({"state_dict": model.state_dict(), "config": {"input_dim": 64, "hidden": 8, "code_dim": 3},
                "metadata": {}}, path)
    loaded, _ = load_checkpoint(path)
    assert loaded.config.hidden == (8,)
    x = torch.rand(2, 64)
    torch.testing.assert_close(loaded(x), model(x))


def test_a_foreign_config_is_refused_before_anything_is_allocated(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["config"]["hidden"] = [10**9]  # building this model would need 100s of GB
    torch.save(checkpoint, path)
    with pytest.raises(UserError, match=r"decoder.0.bias is \(8,\) in the file, \(1000000000,\) for its config"):
        load_checkpoint(path)
