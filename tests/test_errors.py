"""The mistakes that once ended in a traceback end in one line naming the problem: a model too large
for the machine, a full disk, a BCE run that diverges."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from matplotlib.figure import Figure

from helpers import model_params, run, train_params
from mnist_ae.core import atomic
from mnist_ae.core.atomic import save_figure, save_torch, write_json
from mnist_ae.core.dataset import PIXELS
from mnist_ae.core.errors import UserError, run_stage
from mnist_ae.models.checkpoint import save_checkpoint
from mnist_ae.models.families import build_model, physical_memory
from mnist_ae.models.losses import bce
from mnist_ae.training.loop import fit


@pytest.mark.parametrize(("kind", "code_dim", "family"), [
    ("mlp", 10**9, {}),
    ("mlp", 16, {"hidden": [10**9]}),
    ("conv", 16, {"channels": [10**6, 10**6]}),
    ("vae", 10**9, {}),
])
def test_a_model_too_large_for_the_machine_is_refused_before_it_is_built(kind: str, code_dim: int,
                                                                         family: dict) -> None:
    if physical_memory() is None:
        pytest.skip("this OS does not say how much memory the machine has")
    with pytest.raises(UserError, match=rf"model.code_dim {code_dim} with model.{kind} .* makes a model of [\d,]+ "
                                        rf"parameters, [\d,]+ GiB to train with Adam: more than this machine's"):
        build_model(model_params(kind, code_dim=code_dim, **family))
    build_model(model_params(kind, code_dim=16))  # a model of the usual size builds as before


@pytest.fixture
def full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every atomic write's temporary file is a link to /dev/full, where each write fails as on a
    full disk (ENOSPC); returns the folder to write into."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    link = tmp_path / ".link.tmp"
    os.symlink("/dev/full", link)
    monkeypatch.setattr(atomic, "temporary_sibling", lambda final: link)
    return tmp_path


@pytest.mark.parametrize("write", [
    lambda path: write_json(path, {"a": list(range(10_000))}),
    lambda path: save_torch(path, {"weights": torch.zeros(100_000)}),
    lambda path: save_figure(path, Figure()),
], ids=["json", "torch", "figure"])
def test_a_full_disk_is_one_line_that_names_the_file(full_disk: Path, write) -> None:
    target = full_disk / "output"
    target.write_text("the previous run's")
    with pytest.raises(UserError, match=rf"the disk is full: {target} could not be written \(.* free there\); the "
                                        r"previous output, if any, is unchanged") as error:
        write(target)
    assert error.value.__cause__ is None and error.value.__suppress_context__  # no chained traceback
    assert target.read_text() == "the previous run's"
    assert Path("/dev/full").exists()  # the link was removed, not what it points to


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A real file system of 512 KiB (a tmpfs, which root can mount), unmounted after the test."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(folder)], tmp_path, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (root on Linux can): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        run(["umount", str(folder)], tmp_path)


def test_a_disk_that_fills_up_during_the_checkpoint_write_is_one_line(small_filesystem: Path) -> None:
    """The default model's checkpoint (1.6 MB) on a file system of 512 KiB that already holds the
    previous one (a small model's): one line, the previous checkpoint whole, no temporary file."""
    target = small_filesystem / "autoencoder.pt"
    save_checkpoint(target, build_model(model_params("mlp", hidden=[8])), {"run": "previous"})
    previous = target.read_bytes()
    with pytest.raises(UserError, match=rf"the disk is full: {target} could not be written \(.* free there\); the "
                                        r"previous autoencoder.pt, if any, is unchanged") as error:
        save_checkpoint(target, build_model(model_params("mlp", code_dim=16, hidden=[256])), {"run": "this one"})
    assert error.value.__cause__ is None and error.value.__suppress_context__
    assert target.read_bytes() == previous
    assert sorted(path.name for path in small_filesystem.iterdir()) == ["autoencoder.pt"]


def test_bce_lets_nan_through_with_the_gradient_of_torch_bce() -> None:
    reconstruction = torch.rand(4, PIXELS, requires_grad=True)
    target = torch.rand(4, PIXELS)
    bce(reconstruction, target).backward()
    reference = reconstruction.detach().clone().requires_grad_()
    torch.nn.functional.binary_cross_entropy(reference, target, reduction="sum").backward()
    torch.testing.assert_close(reconstruction.grad, reference.grad)
    with torch.no_grad():
        reconstruction[0, 0] = float("nan")
        assert torch.isnan(bce(reconstruction, target))  # torch's own BCE raises a RuntimeError here


@pytest.mark.parametrize("kind", ["mlp", "conv", "vae"])
def test_a_diverging_bce_run_stops_with_the_divergence_message(kind: str) -> None:
    """As after ``train.lr: 10`` on BCE: a weight gone to NaN makes the model's output NaN."""
    model = build_model(model_params(kind), seed=0)
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(UserError, match=r"training diverged at epoch 1, step 1: the loss is nan; lower train.lr"):
        fit(model, torch.rand(64, PIXELS), train_params(epochs=1, batch_size=8, loss="bce"), progress=False)


def test_a_full_disk_anywhere_else_is_one_line_too(capsys: pytest.CaptureFixture[str]) -> None:
    """A write that is not one of the atomic writes (dvclive's per-epoch rows) stops the stage the same way."""

    def stage() -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "metrics/train/plots/metrics/train_loss.tsv")

    with pytest.raises(SystemExit) as exit_code:
        run_stage(stage)
    assert exit_code.value.code == 2
    assert capsys.readouterr().err == ("error: the disk is full (No space left on device: "
                                       "metrics/train/plots/metrics/train_loss.tsv); free some space and rerun\n")
    with pytest.raises(OSError, match="Permission denied"):  # any other OSError is a bug's traceback
        run_stage(lambda: (_ for _ in ()).throw(OSError(errno.EACCES, "Permission denied")))
