"""The train stage under torchrun: 2 CPU ranks (gloo) follow the single process, and a failing rank
brings the whole run down."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import edit_params, run, venv_env
from mnist_ae.models.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow


def _train(root: Path, nproc: int) -> list[float]:
    edit_params(root, "train", nproc=nproc)
    run([sys.executable, "stages/train.py"], root)
    return load_checkpoint(root / "data/models/autoencoder.pt")[1]["loss_per_epoch"]


def test_two_ranks_follow_the_single_process(project_copy: Path) -> None:
    edit_params(project_copy, "train", epochs=3, batch_size=15)  # 600 = 40 batches; 15 splits 8 + 7
    single = _train(project_copy, nproc=1)
    double = _train(project_copy, nproc=2)
    assert len(double) == 3
    assert max(abs(a - b) for a, b in zip(single, double)) < 1e-6, (single, double)  # as the README says
    run([sys.executable, "stages/evaluate.py"], project_copy)  # rank 0's checkpoint is a normal one


FAILING_RANK = """
import runpy, sys
import torch.distributed
from mnist_ae.training import steps as train

calls = 0
original = train.AutogradStep.__call__

def failing_step(self, *args):
    global calls
    calls += 1
    if torch.distributed.get_rank() == 1 and calls == 5:
        raise RuntimeError("injected failure on rank 1")
    return original(self, *args)

train.AutogradStep.__call__ = failing_step
sys.argv = ["stages/train.py"]
runpy.run_path("stages/train.py", run_name="__main__")
"""


def test_a_failing_rank_ends_the_run(project_copy: Path) -> None:
    edit_params(project_copy, "train", epochs=50)
    (project_copy / "failing_rank.py").write_text(FAILING_RANK)
    checkpoint = project_copy / "data/models/autoencoder.pt"
    before = checkpoint.read_bytes()
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "failing_rank.py"],
        cwd=project_copy, env=venv_env(), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0
    assert "injected failure on rank 1" in result.stderr
    assert checkpoint.read_bytes() == before  # rank 0 wrote nothing
    assert not list((project_copy / "metrics").glob(".train.*"))  # no staging log left behind


def test_a_user_error_under_torchrun_keeps_its_exit_code_and_message(project_copy: Path) -> None:
    edit_params(project_copy, "train", nproc=2)
    (project_copy / "data/prepared/train.pt").unlink()
    result = subprocess.run([sys.executable, "stages/train.py"], cwd=project_copy, env=venv_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "error: data/prepared/train.pt not found: run the prepare stage first" in result.stderr
    assert ("error: rank 0 of 2 failed (exit code 2)" in result.stderr
            or "error: rank 1 of 2 failed (exit code 2)" in result.stderr)
    assert "Traceback" not in result.stderr


def _check_on_rank(rank: int, init_file: str, results: torch.multiprocessing.SimpleQueue) -> None:
    from mnist_ae.core.errors import UserError
    from mnist_ae.training.loop import _check_finite

    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    losses = torch.ones(10)
    if rank == 1:
        losses[7] = float("nan")  # only rank 1's slice of step 8 went wrong
    try:
        _check_finite(losses, range(0, 10), epoch=1, distributed=True)
        results.put((rank, "went on"))
    except UserError as error:
        results.put((rank, str(error)))
    finally:
        torch.distributed.destroy_process_group()


def test_every_rank_stops_when_one_ranks_loss_is_not_finite(tmp_path: Path) -> None:
    """Had rank 0 gone on alone, it would wait in the next all-reduce for a rank that had stopped."""
    context = torch.multiprocessing.get_context("spawn")
    results = context.SimpleQueue()
    torch.multiprocessing.start_processes(_check_on_rank, args=(str(tmp_path / "init"), results), nprocs=2,
                                          start_method="spawn")
    outcomes = dict(results.get() for _ in range(2))
    diverged = "training diverged at epoch 1, step 8: the loss is nan; lower train.lr"
    assert outcomes == {rank: diverged for rank in (0, 1)}
