"""A sweep over one machine or many: ``plan`` lists its experiments, ``queue`` runs them in DVC's
local queue (mnist_ae/sweep.py says how a sweep file expands and names them).

    python scripts/sweep.py plan sweeps/n2d.yaml
    python scripts/sweep.py queue sweeps/n2d.yaml --jobs 2     # then: make compare
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import pandas as pd

from mnist_ae.core.errors import UserError, run_stage
from mnist_ae.sweep import Plan, load_plan


def dvc(*args: str) -> str:
    """Run ``dvc ARGS``; its output, or a one-line error with dvc's last line."""
    result = subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True)
    if result.returncode != 0:
        said = (result.stderr.strip().splitlines() or result.stdout.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"dvc {' '.join(args[:2])} failed: {said}")
    return result.stdout


def show_plan(plan: Plan) -> None:
    table = pd.DataFrame({"index": [e.index for e in plan.experiments], "name": [e.name for e in plan.experiments],
                          "overrides": [" ".join(e.overrides) for e in plan.experiments]})
    print(table.to_string(index=False))
    print(f"{len(plan.experiments)} experiments ({plan.configurations} configurations x {plan.seeds} seeds): "
          f"{len(plan.experiments)} jobs, indices 0-{len(plan.experiments) - 1}")


def queued_or_done() -> set[str]:
    """Names of the experiments of this commit that are finished, queued or running."""
    names = set(dvc("exp", "list", "--names-only").split())
    for line in dvc("queue", "status").splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 2 and fields[-1] not in ("Failed",):
            names.add(fields[1])
    return names


def queue(plan: Plan, jobs: int) -> None:
    """Queue every experiment of the plan that this commit has not finished or queued, then start
    ``jobs`` workers (they run in the background: dvc queue status)."""
    have = queued_or_done()
    todo = [e for e in plan.experiments if e.name not in have]
    for planned in todo:
        dvc("exp", "run", "--queue", *planned.dvc_args())
    print(f"queued {len(todo)} of {len(plan.experiments)} experiments ({len(plan.experiments) - len(todo)} done or "
          f"queued already)")
    if todo:
        # Not through dvc(): the workers it leaves running hold a captured pipe open, and the call would never return.
        subprocess.run([sys.executable, "-m", "dvc", "queue", "start", "-j", str(jobs)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True)
        print(f"started {jobs} worker(s): dvc queue status shows them, make compare reads them")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("plan", "queue"):
        command = commands.add_parser(name)
        command.add_argument("sweep", help="a sweep file (sweeps/*.yaml)")
        command.add_argument("-S", dest="extra", action="append", default=[],
                             help="another override for every experiment (a short check: -S train.epochs=1)")
        command.add_argument("--seeds", type=int, help="replicates instead of the file's")
    commands.choices["queue"].add_argument("--jobs", type=int, default=1, help="workers of the local queue")
    args = parser.parse_args()
    plan = load_plan(args.sweep, tuple(args.extra), args.seeds)
    if args.command == "plan":
        show_plan(plan)
    else:
        queue(plan, args.jobs)


if __name__ == "__main__":
    run_stage(main)
