"""Bad input stops a stage with one clear line and leaves nothing half-written; kills and Ctrl-C are safe;
nothing is lost through a DVC remote. Each runs the real commands in a copy of the small project."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import dvc, edit_params, venv_env
from mnist_ae.checkpoint import load_checkpoint

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
    ("evaluate", "evaluate", {"examples": [0, 600]}, "evaluate.examples [600] are outside the training split (0..599)"),
    ("embed", "embed", {"size": 601}, "embed.size is 601 but the training split has only 600 images"),
    ("embed", "embed", {"perplexity": 100.0}, "perplexity (100.0) must be less than size (100)"),
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


def test_a_misspelt_key_is_caught_before_dvc_runs(project_copy: Path) -> None:
    edit_params(project_copy, "train", epoch=3)
    result = subprocess.run([sys.executable, "-m", "mnist_ae.params"], cwd=project_copy, env=venv_env(),
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: params.yaml has 1 problem:", "  train.epoch: unknown key (a typo?)"]


def _assert_train_outputs_whole(root: Path) -> None:
    """Each train output is either absent or complete and readable: never half-written."""
    checkpoint = root / "data/models/autoencoder.pt"
    if checkpoint.exists():
        load_checkpoint(checkpoint)
    log = root / "metrics/train"
    if log.exists():
        summary = json.loads((log / "metrics.json").read_text())
        for name in ("train_loss", "test_mse"):
            lines = (log / "plots/metrics" / f"{name}.tsv").read_text().splitlines()
            # The whole curve, one row per epoch up to the last one the summary reports.
            assert [int(line.split("\t")[0]) for line in lines[1:]] == list(range(1, summary["step"] + 1))


def _start_train(root: Path, stderr: int = subprocess.DEVNULL) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "stages/train.py"], cwd=root, env=venv_env(),
                            stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)


def test_sigkill_at_random_moments_leaves_no_half_written_output(project_copy: Path) -> None:
    edit_params(project_copy, "train", epochs=300)
    started = time.monotonic()
    assert _start_train(project_copy).wait() == 0
    duration = time.monotonic() - started
    rng = random.Random(0)
    # Kills spread over the run, with most of them in its last fifth, where the outputs are written.
    moments = [rng.uniform(0.1, 1.0) * duration for _ in range(2)] + [rng.uniform(0.8, 1.05) * duration for _ in range(4)]
    for moment in moments:
        process = _start_train(project_copy)
        time.sleep(moment)
        process.kill()
        process.wait()
        _assert_train_outputs_whole(project_copy)
    edit_params(project_copy, "train", epochs=2)
    dvc("repro", cwd=project_copy)
    assert "up to date" in dvc("status", cwd=project_copy).stdout
    assert not list(project_copy.rglob(".*.tmp"))  # the rerun removed any leftovers of the kills


def test_ctrl_c_stops_with_a_short_message(project_copy: Path) -> None:
    edit_params(project_copy, "train", epochs=100_000)
    process = _start_train(project_copy, stderr=subprocess.PIPE)
    seen = b""
    while b"epoch 1/" not in seen:  # wait until training runs, past the imports
        chunk = os.read(process.stderr.fileno(), 4096)
        assert chunk, seen.decode()
        seen += chunk
    process.send_signal(signal.SIGINT)
    rest = process.stderr.read()
    assert process.wait(timeout=30) == 130
    stderr = (seen + rest).decode()
    assert "interrupted: no output of this stage was kept" in stderr and "Traceback" not in stderr


def _digests(root: Path) -> dict[str, str]:
    return {str(path.relative_to(root)): hashlib.md5(path.read_bytes()).hexdigest()
            for folder in ("data", "metrics") for path in sorted((root / folder).rglob("*")) if path.is_file()}


def test_push_delete_pull_restores_every_output(project_copy: Path, tmp_path: Path) -> None:
    dvc("remote", "add", "-d", "backup", str(tmp_path / "remote"), cwd=project_copy)
    dvc("push", cwd=project_copy)
    before = _digests(project_copy)
    for folder in (".dvc/cache", "data/raw", "data/prepared", "data/models"):
        subprocess.run(["rm", "-rf", str(project_copy / folder)], check=True)
    dvc("pull", cwd=project_copy)
    assert _digests(project_copy) == before
    assert "up to date" in dvc("status", cwd=project_copy).stdout
