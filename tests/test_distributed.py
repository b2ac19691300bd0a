"""The train stage under torchrun: 2 CPU ranks (gloo) follow the single process, a failing rank
brings the whole run down, and what would fail in every rank fails once, before any starts."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from helpers import committed_params, edit_params, run
from mnist_ae.core.dataset import PIXELS, Split, save_split
from mnist_ae.models.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def _train(root: Path, nproc: int) -> list[float]:
    edit_params(root, "train", nproc=nproc)
    run([sys.executable, "stages/train.py"], root)
    return load_checkpoint(root / "data/models/autoencoder.pt")[1]["loss_per_epoch"]


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_failing_rank_ends_the_run(project_copy: Path) -> None:
    edit_params(project_copy, "train", epochs=50)
    (project_copy / "failing_rank.py").write_text(FAILING_RANK)
    checkpoint = project_copy / "data/models/autoencoder.pt"
    before = checkpoint.read_bytes()
    result = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                  "failing_rank.py"], project_copy, check=False, timeout_s=300)
    assert result.returncode != 0
    assert "injected failure on rank 1" in result.stderr
    assert checkpoint.read_bytes() == before  # rank 0 wrote nothing
    assert not list((project_copy / "metrics").glob(".train.*"))  # no staging log left behind


@pytest.mark.slow
def test_a_user_error_under_torchrun_keeps_its_exit_code_and_message(project_copy: Path) -> None:
    """One that only the ranks find, while they train: a loss gone to infinity."""
    edit_params(project_copy, "train", nproc=2, lr=1e30)
    result = run([sys.executable, "stages/train.py"], project_copy, check=False, timeout_s=300)
    assert result.returncode == 2
    assert "error: training diverged at epoch 1, step " in result.stderr
    assert ("error: rank 0 of 2 failed (exit code 2)" in result.stderr
            or "error: rank 1 of 2 failed (exit code 2)" in result.stderr)
    assert "Traceback" not in result.stderr


# The train stage with torchrun's entry point replaced: were it started, the run would say so.
WITHOUT_TORCHRUN = """
import runpy, sys
import torch.distributed.run

def started(args):
    sys.exit("torchrun was started")

torch.distributed.run.main = started
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.parametrize(("train", "data", "error"), [
    ({"step": "fused_mlp"}, True, "train.step is 'fused_mlp', which does not apply to model.kind 'mlp' on mse on cpu "
                                  "with several ranks; use auto or one of: autograd"),
    ({}, False, "data/prepared/train.pt not found: run the prepare stage first (dvc repro prepare)"),
], ids=["a step that cannot train several ranks", "no prepared data"])
def test_what_every_rank_would_refuse_is_refused_once_before_any_starts(
        tmp_path: Path, train: dict, data: bool, error: str) -> None:
    """Each rank would print the same line, the two run together, then torch's log: the stage
    refuses it itself, in one line, and torchrun starts no rank."""
    params = committed_params()
    params["train"].update(nproc=2, device="cpu", **train)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if data:
        (tmp_path / "data/prepared").mkdir(parents=True)
        for name in ("train", "validation"):
            save_split(tmp_path / f"data/prepared/{name}.pt", Split(torch.rand(64, PIXELS), torch.zeros(64).long()))
    result = run([sys.executable, "-c", WITHOUT_TORCHRUN, str(ROOT / "stages/train.py")], tmp_path, check=False,
                 timeout_s=300, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert (result.returncode, result.stderr) == (2, f"error: {error}\n")


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


@pytest.mark.slow
def test_every_rank_stops_when_one_ranks_loss_is_not_finite(tmp_path: Path) -> None:
    """Had rank 0 gone on alone, it would wait in the next all-reduce for a rank that had stopped."""
    context = torch.multiprocessing.get_context("spawn")
    results = context.SimpleQueue()
    ranks = torch.multiprocessing.start_processes(_check_on_rank, args=(str(tmp_path / "init"), results), nprocs=2,
                                                  start_method="spawn", join=False)
    deadline = time.monotonic() + 300  # a rank that never joins the group would hold the other 30 minutes
    while not ranks.join(timeout=max(0.0, deadline - time.monotonic())):
        if time.monotonic() >= deadline:
            for rank in ranks.processes:
                rank.kill()
                rank.join()
            pytest.fail("the two spawned ranks were killed after waiting 300 s for them to exit", pytrace=False)
    outcomes = dict(results.get() for _ in range(2))
    diverged = "training diverged at epoch 1, step 8: the loss is nan; lower train.lr"
    assert outcomes == {rank: diverged for rank in (0, 1)}
