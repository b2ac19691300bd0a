"""A sweep over one machine or many (mnist_ae/sweeps/ says how a sweep file expands and names its
experiments, and how each engine runs them):

    python scripts/sweep.py plan sweeps/n2d.yaml                    # the numbered experiments, the jobs
    python scripts/sweep.py queue sweeps/n2d.yaml --jobs 2          # one machine: DVC's queue; then make compare
    python scripts/sweep.py job sweeps/n2d.yaml --index N --baseline SHA    # job N of an array: run, push
    python scripts/sweep.py gather sweeps/n2d.yaml --baseline SHA           # pull every job's, then compare
"""

from __future__ import annotations

import argparse
import json

import pandas as pd

from mnist_ae.comparison import (
    NoExperiments,
    add_arguments,
    baseline_names,
    committed_params,
    load_groups,
    pick_baseline,
    report,
    with_baseline,
)
from mnist_ae.core.errors import UserError, run_stage
from mnist_ae.sweeps.plan import Plan, load_plan
from mnist_ae.sweeps.run import pull, queue, resolve, run_job, wait_for


def show_plan(plan: Plan, as_json: bool) -> None:
    if as_json:  # a CI matrix: {"index": [0, 1, ...]}
        print(json.dumps({"index": [planned.index for planned in plan.experiments]}))
        return
    print(pd.DataFrame({"index": [e.index for e in plan.experiments], "name": [e.name for e in plan.experiments],
                        "overrides": [" ".join(e.overrides) for e in plan.experiments]}).to_string(index=False))
    print(f"{len(plan.experiments)} experiments ({plan.configurations} configuration(s) x {plan.seeds} seeds): "
          f"{len(plan.experiments)} jobs, indices 0-{len(plan.experiments) - 1}")


def compare_plan(plan: Plan, args: argparse.Namespace, revs: list[str] | None,
                 missing: list[str] | None = None) -> None:
    """make compare's report of the plan's experiments (and the baseline's); where none finished,
    the planned ones named missing."""
    baseline = baseline_names(getattr(args, "baseline", None))
    names = with_baseline({planned.name for planned in plan.experiments}, baseline)
    try:
        groups, _, metrics, not_done = load_groups(getattr(args, "metrics", None), None, revs=revs, names=names,
                                                   require_baseline=False)
    except NoExperiments:
        raise UserError(f"none of the plan's {len(plan.experiments)} experiments is finished"
                        f"{' or pushed' if missing else ''}: rerun their jobs, then this") from None
    found = pick_baseline(groups, committed_params(revs[0] if revs else "HEAD"), baseline, plan)
    print(report(groups, found, metrics, getattr(args, "md", False), not_done, missing))


def gather(plan: Plan, args: argparse.Namespace) -> None:
    """Pull the plan's experiments, compare them at the baseline commit, and name the missing ones
    (exit 2 if any is missing, after the report)."""
    commit = resolve(args.baseline_commit)
    missing = pull(plan, commit, args.remote)
    compare_plan(plan, args, [commit], missing)
    if missing:
        raise UserError(f"{len(missing)} of the plan's {len(plan.experiments)} experiments are missing: "
                        f"{', '.join(missing)}; rerun their jobs (a done job does nothing), then gather again")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("plan", "queue", "job", "gather"):
        command = commands.add_parser(name)
        command.add_argument("sweep", help="a sweep file (sweeps/*.yaml)")
        command.add_argument("-S", dest="extra", action="append", default=[],
                             help="another override for every experiment (a short check: -S train.epochs=1)")
        command.add_argument("--seeds", type=int, help="replicates instead of the file's")
    commands.choices["plan"].add_argument("--json", action="store_true", help="the job indices, as a CI matrix")
    commands.choices["queue"].add_argument("--jobs", type=int, default=1, help="workers of the local queue")
    commands.choices["queue"].add_argument("--wait", action="store_true",
                                           help="wait until the plan's experiments are done, then compare them")
    for name in ("job", "gather"):
        commands.choices[name].add_argument("--baseline-commit", required=True, dest="baseline_commit",
                                            help="the pushed commit every job checks out")
        commands.choices[name].add_argument("--remote", default="origin", help="the git remote (default: origin); "
                                            "the outputs go to the DVC remote that .dvc/config makes the default")
    commands.choices["job"].add_argument("--index", type=int, required=True, help="which job of the array")
    add_arguments(commands.choices["gather"], revisions=False)
    args = parser.parse_args()
    plan = load_plan(args.sweep, tuple(args.extra), args.seeds)
    if args.command == "plan":
        show_plan(plan, args.json)
    elif args.command == "queue":
        queued = queue(plan, args.jobs)
        same = "".join(f" -S {override}" for override in args.extra) + (f" --seeds {args.seeds}" if args.seeds else "")
        print(f"queued {len(queued)} of {len(plan.experiments)} experiments (the others are done or queued); "
              f"{'started ' + str(args.jobs) + ' worker(s): dvc queue status shows them, ' if queued else ''}"
              f"make compare ARGS='--sweep {args.sweep}{same}' reads them")
        if args.wait:
            wait_for(plan)
            compare_plan(plan, args, None)
    elif args.command == "job":
        print(run_job(plan, args.index, args.baseline_commit, args.remote))
    else:
        gather(plan, args)


if __name__ == "__main__":
    run_stage(main)
