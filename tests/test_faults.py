"""Bad input stops a stage with one clear line and leaves nothing half-written; kills and Ctrl-C are safe;
nothing is lost through a DVC remote. Each runs the real commands in a copy of the small project."""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from helpers import PROJECT, child, dvc, edit_params, finish, git_commit, read_until, run, write_dataset
from mnist_ae.core import paths
from mnist_ae.core.atomic import save_figure, save_torch, write_json
from mnist_ae.core.dataset import DIGITS, load_split
from mnist_ae.data.download import md5_of
from mnist_ae.data.idx import write_idx_gz
from mnist_ae.data.prepare import prepare_splits

pytestmark = pytest.mark.slow

STAGE_OUTPUTS = {
    "prepare": ["data/prepared"],
    "train": ["data/models", "metrics/train"],
    "evaluate": ["metrics/evaluate.json", "metrics/reconstructions.png"],
    "embed": ["metrics/embed.json", "metrics/tsne.png"],
}

BAD_INPUT = [
    ("prepare", "data", {"dataset": "CIFAR10"}, "data: unknown dataset 'CIFAR10'"),
    ("train", "train", {"epochs": 0}, "train.epochs: Input should be greater than or equal to 1"),
    ("train", "train", {"lr": -1.0}, "train.lr: Input should be greater than 0"),
    ("train", "train", {"batch_size": 0}, "train.batch_size: Input should be greater than or equal to 1"),
    ("train", "model", {"code_dim": 0}, "model.code_dim: Input should be greater than or equal to 1"),
    ("train", "train", {"lr": 1e20}, "training diverged at epoch 1, step 2: the loss is nan; lower train.lr"),
    ("evaluate", "evaluate", {"examples": [0, 500]}, "evaluate.examples [500] are outside the training split (0..499)"),
    ("embed", "embed", {"size": 501}, "embed.size is 501 but the training split has only 500 images"),
    ("embed", "embed", {"perplexity": 100.0}, "perplexity (100.0) must be less than size (100)"),
    ("embed", "embed", {"seed": -1}, "embed.seed: Input should be greater than or equal to 0"),
    ("train", "train", {"seed": 2**64}, "train.seed: Input should be less than or equal to 18446744073709551615"),
]
if not torch.cuda.is_available():
    BAD_INPUT.append(("train", "train", {"device": "cuda"}, "train.device is 'cuda' but no such device is available"))


@pytest.mark.parametrize(("stage", "section", "values", "message"), BAD_INPUT,
                         ids=[f"{s}-{next(iter(v))}" for s, _, v, _ in BAD_INPUT])
def test_bad_input_stops_the_stage_cleanly(project_copy: Path, stage: str, section: str, values: dict,
                                           message: str) -> None:
    edit_params(project_copy, section, **values)
    result = dvc("repro", stage, cwd=project_copy, check=False)
    assert result.returncode != 0
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ") or line.startswith("  ")]
    assert message in "\n".join(error_lines), result.stderr
    assert "Traceback" not in result.stderr
    for output in STAGE_OUTPUTS[stage]:
        assert not (project_copy / output).exists(), f"{output} left behind"


@pytest.mark.parametrize(("shape", "message"), [
    ((40, 32, 32), "data/custom/t10k-images-idx3-ubyte.gz: images of 32x32 pixels; expected 28x28"),
    ((0, 28, 28), "data/custom/t10k-images-idx3-ubyte.gz holds no images"),
], ids=["32x32", "empty"])
def test_unusable_custom_images_stop_prepare_cleanly(project_copy: Path, shape: tuple[int, ...], message: str) -> None:
    custom = project_copy / paths.CUSTOM
    write_idx_gz(custom / "t10k-images-idx3-ubyte.gz", np.zeros(shape, dtype=np.uint8))
    write_idx_gz(custom / "t10k-labels-idx1-ubyte.gz", np.zeros(shape[0], dtype=np.uint8))
    edit_params(project_copy, "data", md5={path.name: md5_of(path) for path in custom.glob("*.gz")})
    result = dvc("repro", "prepare", cwd=project_copy, check=False)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (project_copy / "data/prepared").exists()


def test_a_misspelt_key_is_caught_before_dvc_runs(project_copy: Path) -> None:
    edit_params(project_copy, "train", epoch=3)
    result = run([sys.executable, str(PROJECT / "scripts" / "check_params.py")], project_copy, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: params.yaml has 1 problem:",
                                                  "  train.epoch: unknown key (a typo?)"]


# A write through ``mnist_ae.core.atomic`` in a child process, SIGKILLed at a chosen point: part-way
# through writing the bytes (the checkpoint's one write, inside the JSON or PNG writer), or with the bytes all
# written but before the rename. Run as ``python -c KILLED_WRITE WRITER POINT TARGET [RAW_FOLDER]``.
KILLED_WRITE = """
import io, os, pathlib, signal, sys
import torch
from matplotlib.figure import Figure
from mnist_ae.core import atomic
from mnist_ae.core.dataset import DIGITS, IDX_FILES
from mnist_ae.data.prepare import prepare_splits

writer, point, target = sys.argv[1:4]
VALIDATION = 10

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if point == "mid-write":
    real_savefig = Figure.savefig
    def write_bytes(path, data):  # save_torch's one write of the serialised checkpoint
        with open(path, "wb") as file:
            file.write(bytes(data)[:len(data) // 2]); file.flush(); die()
    def write_text(path, text, **kwargs):
        with open(path, "w", **kwargs) as file:
            file.write(text[:len(text) // 2]); file.flush(); die()
    def savefig(figure, fname, **kwargs):
        buffer = io.BytesIO(); real_savefig(figure, buffer, **kwargs)
        with open(fname, "wb") as file:
            file.write(buffer.getvalue()[:len(buffer.getvalue()) // 2]); file.flush(); die()
    pathlib.Path.write_bytes, pathlib.Path.write_text, Figure.savefig = write_bytes, write_text, savefig
elif point == "before-rename":
    real_replace, renames = os.replace, [0]
    def replace(source, destination):
        renames[0] += 1
        if renames[0] == (2 if writer == "prepare_splits" else 1):  # prepare: its second file, validation.pt
            die()
        real_replace(source, destination)
    os.replace = replace

if writer == "save_torch":
    atomic.save_torch(target, {"weights": torch.arange(100_000, dtype=torch.float32)})
elif writer == "write_json":
    atomic.write_json(target, {"new": list(range(1000))})
elif writer == "save_figure":
    figure = Figure(); figure.subplots().plot(range(100)); atomic.save_figure(target, figure)
elif writer == "prepare_splits":
    raw = pathlib.Path(sys.argv[4])
    prepare_splits({name: raw / name for name in IDX_FILES}, pathlib.Path(target), DIGITS, VALIDATION, seed=0)
"""


def _old_output(writer: str, target: Path, raw_folder: Path) -> None:
    """A complete earlier output at ``target``, written by the same code from other data."""
    if writer == "save_torch":
        save_torch(target, {"weights": torch.zeros(10)})
    elif writer == "write_json":
        write_json(target, {"old": True})
    elif writer == "save_figure":
        figure = Figure()
        figure.subplots().plot([3, 1, 2])
        save_figure(target, figure)
    else:
        other = write_dataset(raw_folder.parent / "other", n_train=50, n_test=10)
        prepare_splits({name: raw_folder.parent / "other" / name for name in other}, target, DIGITS, validation=10,
                       seed=0)


def _snapshot(target: Path) -> dict[str, bytes]:
    """The output's bytes by file name; a killed writer's ``.*.tmp`` leftover is no part of it."""
    files = sorted(target.iterdir()) if target.is_dir() else [target] if target.exists() else []
    return {path.name: path.read_bytes() for path in files if not path.name.endswith(".tmp")}


KILLS = [(writer, point, True) for writer in ("save_torch", "write_json", "save_figure", "prepare_splits")
         for point in ("mid-write", "before-rename")]
KILLS += [("save_torch", "mid-write", False), ("write_json", "before-rename", False)]


@pytest.mark.parametrize(("writer", "point", "previous"), KILLS,
                         ids=[f"{w}-{p}-{'over-old' if old else 'new'}" for w, p, old in KILLS])
def test_sigkill_at_chosen_points_leaves_the_previous_output(tmp_path: Path, writer: str, point: str,
                                                             previous: bool) -> None:
    raw = tmp_path / "raw"
    write_dataset(raw, n_train=60, n_test=20)
    target = tmp_path / ("prepared" if writer == "prepare_splits" else "out")
    if previous:
        _old_output(writer, target, raw)
    before = _snapshot(target)
    killed = run([sys.executable, "-c", KILLED_WRITE, writer, point, str(target), str(raw)], PROJECT, check=False,
                 timeout_s=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    after = _snapshot(target)
    if writer == "prepare_splits" and point == "before-rename":
        # Killed before validation.pt's rename: train.pt is the new one, whole; the others are the old ones.
        assert after["validation.pt"] == before["validation.pt"] and after["test.pt"] == before["test.pt"]
        assert load_split(target, "train").images.shape == (60 - 10, 784)
    else:
        assert after == before, "the killed write changed or damaged the previous output"


def test_the_next_write_after_a_kill_removes_its_leftover(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with child([sys.executable, "-c", KILLED_WRITE, "save_torch", "mid-write", str(target)], PROJECT,
               stderr=subprocess.PIPE, text=True) as writer:
        killed = finish(writer, timeout_s=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert [path.name for path in tmp_path.iterdir()] == [f".out.{writer.pid}.tmp"]  # a dead writer's half file
    save_torch(target, {"weights": torch.ones(3)})
    assert [path.name for path in tmp_path.iterdir()] == ["out"]
    assert torch.equal(torch.load(target, weights_only=True)["weights"], torch.ones(3))


def test_ctrl_c_stops_with_a_short_message(project_copy: Path) -> None:
    edit_params(project_copy, "train", epochs=100_000)
    # SIGINT as a terminal leaves it, even where pytest runs with it ignored (a background `make test`).
    with child([sys.executable, "stages/train.py"], project_copy, stderr=subprocess.PIPE,
               sigint_as_under_a_terminal=True) as process:
        seen = read_until(process, b"epoch 1/")  # training runs, past the imports
        process.send_signal(signal.SIGINT)
        stopped = finish(process, timeout_s=60, waiting_for="to exit after SIGINT")
    assert stopped.returncode == 130
    stderr = (seen + stopped.stderr).decode()
    assert "interrupted: no output of this stage was kept" in stderr and "Traceback" not in stderr


def _digests(root: Path) -> dict[str, str]:
    return {str(path.relative_to(root)): hashlib.md5(path.read_bytes()).hexdigest()
            for folder in ("data", "metrics") for path in sorted((root / folder).rglob("*")) if path.is_file()}


def test_push_delete_pull_restores_every_output(project_copy: Path, tmp_path: Path) -> None:
    dvc("remote", "add", "-d", "backup", str(tmp_path / "remote"), cwd=project_copy)
    dvc("push", cwd=project_copy)
    before = _digests(project_copy)
    for folder in (".dvc/cache", "data/raw", "data/prepared", "data/models"):
        run(["rm", "-rf", str(project_copy / folder)], project_copy)
    dvc("pull", cwd=project_copy)
    assert _digests(project_copy) == before
    assert "up to date" in dvc("status", cwd=project_copy).stdout


def test_checking_out_another_commit_keeps_the_users_own_data(project_copy: Path) -> None:
    custom = project_copy / paths.CUSTOM
    before = {path.name: path.read_bytes() for path in custom.iterdir()}
    # Another commit whose prepare stage recorded other raw files, as a run on MNIST would.
    shutil.rmtree(project_copy / "data/raw")
    (project_copy / "data/raw/MNIST/raw").mkdir(parents=True)
    (project_copy / "data/raw/MNIST/raw/train-images-idx3-ubyte.gz").write_bytes(b"a stand-in")
    dvc("commit", "--force", "prepare", cwd=project_copy)
    git_commit(project_copy, "other raw files")
    for revision in ("HEAD~1", "HEAD", "HEAD~1"):
        run(["git", "checkout", revision, "--", "."], project_copy)
        dvc("checkout", cwd=project_copy)
        assert {path.name: path.read_bytes() for path in custom.iterdir()} == before, revision
    assert "up to date" in dvc("status", cwd=project_copy).stdout
