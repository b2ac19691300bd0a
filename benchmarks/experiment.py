"""What an experiment costs beside its training: each stage's whole process, its imports and its work,
and ``dvc exp run`` at the defaults (another seed) against the training time it reports.

Run in a throwaway copy of the project (``ProjectCopy``) after one ``dvc repro`` there, so that every
stage's inputs exist; each stage runs as ``dvc repro`` runs it (``PYTHONPATH=src python
stages/<name>.py``), and its imports are timed as a process that runs the script's imports and not
its ``main`` (the interpreter's own start included in both).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

from mnist_ae.core import paths
from mnist_ae.sweeps.study import TRAINED as TRAINED_IN

# The stages an experiment at the defaults with another seed reruns (prepare depends on the data alone;
# the pixel baseline's clustering follows the replicate seed, train.seed).
EXPERIMENT_STAGES = ("pixel_baseline", "train", "evaluate", "embed")
IMPORTS_ONLY = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location('stage', sys.argv[1]); "
                "spec.loader.exec_module(importlib.util.module_from_spec(spec))")
# An experiment at the defaults costs at most this many seconds beyond its own training: what a
# user pays per replicate on top of the work that is the experiment.
TARGET_BEYOND_TRAINING_S = 10.0


class ProjectCopy:
    """A throwaway git + DVC copy of the project with MNIST's raw files, for timing ``dvc repro``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for name in ("dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", "requirements.lock"):
            shutil.copy(name, root / name)
        for name in ("stages", "src", "data/custom"):
            shutil.copytree(name, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        shutil.copytree(paths.RAW / "MNIST" / "raw", root / "data/raw/MNIST/raw")
        shutil.copy("data/.gitignore", root / "data/.gitignore")
        self.env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        self.run("git", "init", "-q")
        self.dvc("init", "-q")
        self.dvc("config", "core.analytics", "false")
        self.run("git", "add", "-A")  # a clone has commits, and dvclive needs one
        self.run("git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "commit", "-q", "-m", "copy")

    def run(self, *args: str, env: dict[str, str] | None = None) -> tuple[float, str]:
        """Run a command in the copy; its wall time in seconds, and what it printed."""
        start = time.perf_counter()
        result = subprocess.run(args, cwd=self.root, env={**self.env, **(env or {})}, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"error: {' '.join(args)} failed in the copy of the project:\n{result.stderr}")
        return time.perf_counter() - start, result.stdout

    def dvc(self, *args: str) -> float:
        return self.run(sys.executable, "-m", "dvc", *args)[0]

    def set_param(self, section: str, key: str, value: object) -> None:
        params_path = self.root / "params.yaml"
        params = yaml.safe_load(params_path.read_text())
        params[section][key] = value
        params_path.write_text(yaml.safe_dump(params, sort_keys=False))


def stage_costs(copy: ProjectCopy, repeats: int) -> dict[str, dict[str, float]]:
    """Each experiment stage's whole process and its imports, in seconds (medians of ``repeats``)."""
    src = {"PYTHONPATH": "src"}
    costs: dict[str, dict[str, list[float]]] = {stage: {"whole": [], "imports": []} for stage in EXPERIMENT_STAGES}
    for _ in range(repeats):
        for stage in EXPERIMENT_STAGES:  # in the pipeline's order: each reads what the one before wrote
            costs[stage]["whole"].append(copy.run(sys.executable, f"stages/{stage}.py", env=src)[0])
            costs[stage]["imports"].append(copy.run(sys.executable, "-c", IMPORTS_ONLY, f"stages/{stage}.py",
                                                    env=src)[0])
    return {stage: {kind: statistics.median(values) for kind, values in cost.items()} for stage, cost in costs.items()}


def experiment_cost(copy: ProjectCopy, repeats: int) -> tuple[float, float]:
    """``dvc exp run -S train.seed=N`` (a new seed each time, so the run cache cannot answer): the
    whole command and the training time the stage reports, medians of ``repeats``, in seconds."""
    totals, trainings = [], []
    for seed in range(1, repeats + 1):
        seconds, printed = copy.run(sys.executable, "-m", "dvc", "exp", "run", "-S", f"train.seed={1000 + seed}")
        match = TRAINED_IN.search(printed)
        if match is None:
            sys.exit(f"error: no 'trained ... in N s' line in the experiment's output:\n{printed}")
        totals.append(seconds)
        trainings.append(float(match.group(1)))
    return statistics.median(totals), statistics.median(trainings)


def report_experiment(copy: ProjectCopy, repeats: int) -> list[str]:
    """Print the stage-cost table and the experiment's cost; returns the problems (the target missed)."""
    costs = stage_costs(copy, repeats)
    print(f"\n| stage (median of {repeats}) | whole process, s | its imports, s | its work, s |")
    print("| --- | --- | --- | --- |")
    for stage, cost in costs.items():
        print(f"| {stage} | {cost['whole']:.1f} | {cost['imports']:.1f} | {cost['whole'] - cost['imports']:.1f} |")
    total, training = experiment_cost(copy, repeats)
    beyond = total - training
    print(f"\n`dvc exp run -S train.seed=N` at the defaults, median of {repeats}: {total:.1f} s in all for "
          f"{training:.1f} s of training: {beyond:.1f} s beyond it (target {TARGET_BEYOND_TRAINING_S:.0f} s), "
          f"{total / training:.2f}x its training time")
    if beyond <= TARGET_BEYOND_TRAINING_S:
        return []
    return [f"an experiment takes {beyond:.1f} s beyond its training (target {TARGET_BEYOND_TRAINING_S:.0f} s)"]
