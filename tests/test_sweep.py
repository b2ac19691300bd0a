"""Sweeps as plans, and a sweep fanned out over machines: two clones stand for two machines of a job
array, a bare repository for the git host, a local folder for the DVC remote (S3, GCS or SSH for a
user), and a third clone gathers."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from helpers import PROJECT, dvc, git_commit, run, venv_env
from mnist_ae.core.errors import UserError
from mnist_ae.sweeps.plan import load_plan

SWEEP = PROJECT / "scripts" / "sweep.py"


def _sweep_file(folder: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_a_plan_is_the_product_of_its_grid_times_its_seeds_named_by_params(tmp_path: Path) -> None:
    path = _sweep_file(tmp_path, "params: ['model.code_dim=8,16', 'train.epochs=2', 'model.kind=mlp,conv']\nseeds: 3\n")
    plan = load_plan(path)
    assert len(plan.experiments) == 12 and plan.configurations == 4
    assert [e.index for e in plan.experiments] == list(range(12))
    assert [e.seed for e in plan.experiments[:4]] == [0, 1, 2, 0]
    assert plan.experiments[0].overrides == ("model.code_dim=8", "train.epochs=2", "model.kind=mlp", "train.seed=0")
    names = [e.name for e in plan.experiments]
    assert len(set(names)) == 12 and all(name.startswith("exp-") for name in names)
    # The same plan on another machine, or the overrides in another order: the same names.
    reordered = _sweep_file(tmp_path, "params: ['model.kind=mlp,conv', 'train.epochs=2', 'model.code_dim=8,16']\n"
                                      "seeds: 3\n", "reordered.yaml")
    assert {e.name for e in load_plan(reordered).experiments} == set(names)
    assert [e.name for e in load_plan(path).experiments] == names
    # Replicates share all but the seed's part of the name; a changed param changes it.
    assert names[0].rsplit("-", 1)[0] == names[1].rsplit("-", 1)[0] != names[3].rsplit("-", 1)[0]
    assert load_plan(path, extra=("train.epochs=1",)).experiments[0].name != names[0]
    assert len(load_plan(path, seeds=1).experiments) == 4


@pytest.mark.parametrize(("text", "message"), [
    ("params: ['train.seed=0,1']\nseeds: 2\n", "train.seed is the replicate seed: set seeds"),
    ("params: ['model.code_dim']\nseeds: 2\n", "is not a -S override of params.yaml"),
    ("params: ['model.code_dim=8']\n", "seeds: Field required"),
    ("params: ['model.code_dim=8']\nseeds: 0\n", "seeds: Input should be greater than or equal to 1"),
    ("params: ['model.code_dim=[8']\nseeds: 1\n", "an override of the sweep does not parse"),
    ("params: [\n", "is not valid YAML"),
])
def test_a_bad_sweep_file_is_one_line(text: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=message) as error:
        load_plan(_sweep_file(tmp_path, text))
    assert "\n" not in str(error.value).strip()


def test_the_plan_command_lists_the_jobs_and_a_ci_matrix(tmp_path: Path) -> None:
    path = _sweep_file(tmp_path, "params: ['model.code_dim=3,5']\nseeds: 2\n")
    listed = run([sys.executable, SWEEP, "plan", path], PROJECT).stdout
    assert "4 experiments (2 configuration(s) x 2 seeds): 4 jobs, indices 0-3" in listed
    assert run([sys.executable, SWEEP, "plan", path, "--json"], PROJECT).stdout.strip() == '{"index": [0, 1, 2, 3]}'


def _job(clone: Path, index: int, commit: str, check: bool = True):
    return run([sys.executable, "scripts/sweep.py", "job", "sweeps/two.yaml", "--index", str(index),
                "--baseline-commit", commit], clone, check=check)


def _gather(clone: Path, commit: str, check: bool = True):
    return run([sys.executable, "scripts/sweep.py", "gather", "sweeps/two.yaml", "--baseline-commit", commit], clone,
               check=check)


def _clone(origin: Path, folder: Path) -> Path:
    run(["git", "clone", "-q", origin, folder], None)
    return folder


@pytest.mark.slow
def test_a_sweep_over_two_machines_gathers_into_one_comparison(built_project: Path, tmp_path: Path) -> None:
    """Two machines run half of a 2-configuration x 2-seed plan each; one job fails and is named
    missing; its retry, and a rerun of a done job, complete the plan without a duplicate."""
    project = Path(shutil.copytree(built_project, tmp_path / "project", symlinks=True))
    origin, store = tmp_path / "origin.git", tmp_path / "dvc-remote"
    run(["git", "init", "-q", "--bare", "--initial-branch=main", origin], None)
    (project / "sweeps").mkdir()
    (project / "sweeps" / "two.yaml").write_text(
        "params: ['model.code_dim=3,5', 'train.epochs=1', 'train.lr=0.01']\nseeds: 2\n")
    for folder in ("scripts", "engines"):
        shutil.copytree(PROJECT / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__"))
    dvc("remote", "add", "-d", "store", str(store), cwd=project)
    git_commit(project, "a sweep, and the DVC remote the jobs push to")
    commit = run(["git", "rev-parse", "HEAD"], project).stdout.strip()
    run(["git", "push", "-q", origin, "HEAD:refs/heads/main"], project)
    names = [planned.name for planned in load_plan(project / "sweeps" / "two.yaml").experiments]

    first, second = _clone(origin, tmp_path / "machine-1"), _clone(origin, tmp_path / "machine-2")
    for index in (0, 1):
        assert _job(first, index, commit).stdout.strip().endswith(f"{names[index]} done and pushed to origin")
    assert "done and pushed" in _job(second, 2, commit).stdout
    assert any(path.is_file() for path in store.rglob("*")), "the jobs pushed no output to the DVC remote"
    # Job 3 fails on its machine (a damaged data file: the prepare stage refuses it) and pushes nothing.
    damaged = next((second / "data" / "custom").glob("train-images*"))
    damaged.write_bytes(damaged.read_bytes()[:-10])
    failed = _job(second, 3, commit, check=False)
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines()[-1].startswith(f"error: job 3 ({names[3]}) failed: dvc exp run failed")

    gatherer = _clone(origin, tmp_path / "collector")
    gathered = _gather(gatherer, commit, check=False)
    assert gathered.returncode == 2
    assert f"Missing: 1 planned experiment(s) not found finished (not run, not pushed, or failed): {names[3]}" \
        in gathered.stdout
    assert f"n = 2 ({names[1]}, {names[0]})" in gathered.stdout or f"n = 2 ({names[0]}, {names[1]})" in gathered.stdout
    assert "model.code_dim=5: n = 1" in gathered.stdout

    # The retry as a Slurm array task (the engine's own script; `make install` stood in for by a link
    # to this venv), and a done job run again: the plan completes, nothing twice.
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir()
    (bin_folder / "make").write_text(f"#!/bin/sh\nln -s {Path(sys.executable).parent.parent} .venv\n")
    (bin_folder / "make").chmod(0o755)
    env = {**venv_env(), "PATH": f"{bin_folder}:{venv_env()['PATH']}", "SLURM_ARRAY_TASK_ID": "3",
           "TMPDIR": str(tmp_path)}
    task = run(["bash", project / "engines" / "slurm.sbatch", "sweeps/two.yaml", commit, origin], tmp_path, env=env)
    assert task.stdout.strip().endswith(f"job 3: {names[3]} done and pushed to origin")
    assert _job(first, 1, commit).stdout.strip() == f"job 1: {names[1]} is on origin already: nothing to do"
    gathered = _gather(gatherer, commit).stdout
    assert "Missing" not in gathered and "2 configuration(s)" in gathered
    assert gathered.count(": n = 2 (") == 2
    refs = run(["git", "ls-remote", origin, "refs/exps/*"], None).stdout.splitlines()
    assert sorted(line.rsplit("/", 1)[-1] for line in refs) == sorted(names)
    # A job at another commit than the plan's refuses to run, in one line.
    (first / "README.md").write_text("a later change\n")
    git_commit(first, "a later commit")
    moved = _job(first, 0, commit, check=False)
    assert moved.returncode == 2 and f"not the plan's baseline {commit[:12]}" in moved.stderr


def _with_overrides(folder: Path, overrides: tuple[str, ...]) -> dict:
    """The committed params.yaml with ``-S`` overrides applied by DVC's own code, as dvc exp run does."""
    import yaml
    from dvc.utils.hydra import apply_overrides

    from helpers import committed_params

    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(committed_params(), sort_keys=False))
    apply_overrides(path, list(overrides))
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("sweep", sorted(path.name for path in (PROJECT / "sweeps").glob("*.yaml")))
def test_every_committed_sweep_passes_the_schema(sweep: str, tmp_path: Path) -> None:
    from mnist_ae.params import Params

    for planned in load_plan(PROJECT / "sweeps" / sweep).experiments:
        Params.model_validate(_with_overrides(tmp_path, planned.overrides))


def test_the_n2d_sweep_trains_n2ds_network(tmp_path: Path) -> None:
    """784-500-500-2000-10 and back, ReLU between, at N2D's batch of 256, clustered in a manifold."""
    from torch import nn

    from mnist_ae.models.families import build_model
    from mnist_ae.params import Params

    [planned, *_] = load_plan(PROJECT / "sweeps" / "n2d.yaml").experiments
    params = Params.model_validate(_with_overrides(tmp_path, planned.overrides))
    model = build_model(params.model, seed=0)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (784, 500), (500, 500), (500, 2000), (2000, 10), (10, 2000), (2000, 500), (500, 500), (500, 784)]
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == 6
    assert params.train.batch_size == 256 and params.embed.manifold and params.train.seed == 0


def test_only_heads_finished_and_the_queues_waiting_experiments_count_as_had(monkeypatch: pytest.MonkeyPatch) -> None:
    """dvc queue status keeps the finished tasks of every commit: a Success there is no experiment of HEAD."""
    from mnist_ae.sweeps import run as sweep_run

    said = {("exp", "list", "--names-only"): "exp-aaa-s0\n",
            ("queue", "status"): "Task  Name  Created  Status\n1 exp-old-s0 04:01 Success\n2 exp-bbb-s1 04:02 Queued\n"
                                 "3 exp-ccc-s2 04:03 Running\n4 exp-ddd-s3 04:04 Failed\n"}
    monkeypatch.setattr(sweep_run, "dvc", lambda *args, capture=True: said[args])
    assert sweep_run.queued_or_done() == {"exp-aaa-s0", "exp-bbb-s1", "exp-ccc-s2"}


def test_all_commits_reads_the_commits_that_hold_experiments_newest_first(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from mnist_ae.comparison import experiment_baselines

    def commit(message: str, when: int) -> str:
        env = {"GIT_COMMITTER_DATE": f"@{when} +0000", "GIT_AUTHOR_DATE": f"@{when} +0000"}
        run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "--allow-empty",
             "-m", message], tmp_path, env={**venv_env(), **env})
        return run(["git", "rev-parse", "HEAD"], tmp_path).stdout.strip()

    run(["git", "init", "-q"], tmp_path)
    old, middle, head = commit("old", 1_000_000), commit("middle", 2_000_000), commit("head", 3_000_000)
    for sha, name in ((old, "exp-a-s0"), (middle, "exp-b-s0")):
        run(["git", "update-ref", f"refs/exps/{sha[:2]}/{sha[2:]}/{name}", sha], tmp_path)
    run(["git", "update-ref", "refs/exps/celery/stash", head], tmp_path)  # DVC's queue, not a baseline
    monkeypatch.chdir(tmp_path)
    assert experiment_baselines() == [head, middle, old]


def test_a_sweep_without_a_named_baseline_is_judged_against_its_first_configuration(tmp_path: Path) -> None:
    from mnist_ae.comparison import find_baseline, load_groups, pick_baseline

    path = tmp_path / "s.yaml"
    path.write_text("params: ['model.code_dim=8,32']\nseeds: 2\n")
    plan = load_plan(path)
    params = {"train.seed": 0, "model.code_dim": 16}
    rows = [{"Experiment": e.name, "rev": e.name, "State": "Success", "train.seed": e.seed,
             "model.code_dim": int(e.overrides[0].split("=")[1]), "test_mse": 0.01 + e.index * 1e-4}
            for e in plan.experiments]
    groups, _, _, _ = load_groups("test_mse", None, params, rows=rows, require_baseline=False)
    with pytest.raises(UserError, match=r"no experiment has the committed params\.yaml"):
        find_baseline(groups, params, None)
    assert pick_baseline(groups, params, None, plan).params["model.code_dim"] == 8
    assert pick_baseline(groups, params, plan.experiments[2].name, plan).params["model.code_dim"] == 32
