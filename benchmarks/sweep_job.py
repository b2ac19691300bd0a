"""What one job of a sweep costs beyond its experiment: the clone, the push of its experiment (git
ref and outputs) and, on the gathering side, the pull; each step timed as the job and the gather
run it (``mnist_ae.sweeps.run``), on a bare repository and a DVC remote folder on this machine.
The install (``make install``) is timed by hand: it depends on the network and pip's cache.

    python -m benchmarks.sweep_job            # the full MNIST (after make repro: its raw files)
    python -m benchmarks.sweep_job --small    # 600 synthetic training images, as the tests use
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.experiment import ProjectCopy
from benchmarks.machine import describe_machine
from mnist_ae.core.dataset import IDX_FILES
from mnist_ae.data.download import md5_of
from mnist_ae.data.idx import write_idx_gz


def make_small(copy: ProjectCopy) -> None:
    """A custom dataset of random 28x28 digits (600 training, 200 test) in place of MNIST."""
    rng = np.random.default_rng(0)
    folder = copy.root / "data" / "custom"
    for name, count in zip(IDX_FILES, (600, 600, 200, 200), strict=True):
        shape = (count, 28, 28) if "images" in name else (count,)
        write_idx_gz(folder / name, rng.integers(0, 256 if "images" in name else 10, size=shape, dtype=np.uint8))
    copy.set_param("data", "dataset", "custom")
    copy.set_param("data", "md5", {name: md5_of(folder / name) for name in IDX_FILES})
    copy.set_param("data", "validation", 100)
    copy.set_param("embed", "size", 100)
    copy.set_param("embed", "perplexity", 10.0)
    copy.set_param("evaluate", "examples", [0, 5, 10])
    shutil.rmtree(copy.root / "data" / "raw", ignore_errors=True)


def timed(copy: ProjectCopy, *args: str) -> float:
    return copy.run(*args)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="the tests' small synthetic data, not MNIST")
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "project").mkdir()
        project = ProjectCopy(tmp / "project")
        for folder in ("scripts", "sweeps"):
            shutil.copytree(folder, project.root / folder, ignore=shutil.ignore_patterns("__pycache__"))
        if args.small:
            make_small(project)
        project.dvc("remote", "add", "-d", "store", str(tmp / "dvc-remote"))
        project.run("git", "add", "-A")
        project.run("git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "commit", "-q", "-m",
                    "the baseline")
        project.run("git", "init", "-q", "--bare", "--initial-branch=main", str(tmp / "origin.git"))
        project.run("git", "push", "-q", str(tmp / "origin.git"), "HEAD:refs/heads/main")

        def clone(name: str) -> tuple[ProjectCopy, float]:
            started = time.perf_counter()
            project.run("git", "clone", "-q", str(tmp / "origin.git"), str(tmp / name))
            seconds = time.perf_counter() - started
            machine = ProjectCopy.__new__(ProjectCopy)
            machine.root, machine.env = tmp / name, project.env
            if not args.small:  # a job machine downloads MNIST; here from this checkout's files, as a mirror
                machine.env = {**project.env, "MNIST_AE_MIRROR": str(Path("data/raw/MNIST/raw").resolve())}
            return machine, seconds

        job, clone_s = clone("job")
        for key, value in (("user.name", "bench"), ("user.email", "bench@example.invalid")):
            job.run("git", "config", key, value)
        name = "exp-bench-s7"
        run_s = timed(job, python, "-m", "dvc", "exp", "run", "-n", name, "-S", "train.seed=7")
        push_s = timed(job, python, "-m", "dvc", "exp", "push", "origin", name)
        gather, gather_clone_s = clone("gather")
        pull_s = timed(gather, python, "-m", "dvc", "exp", "pull", "origin", name)
    data = "the small synthetic data" if args.small else "the full MNIST"
    print(f"\n| one sweep job, {data}, the defaults at another seed | seconds |\n| --- | --- |")
    for step, seconds in (("git clone (job)", clone_s), ("dvc exp run (the experiment)", run_s),
                          ("dvc exp push (ref and outputs)", push_s), ("git clone (gather)", gather_clone_s),
                          ("dvc exp pull (ref and outputs)", pull_s)):
        print(f"| {step} | {seconds:.1f} |")
    beyond = clone_s + push_s + gather_clone_s + pull_s
    print(f"\nbeyond the experiment: {beyond:.1f} s ({beyond / run_s:.0%} of it), the install aside")


if __name__ == "__main__":
    main()
