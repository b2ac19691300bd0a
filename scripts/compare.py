"""``make compare``: every configuration's replicates, mean ± sd of each headline metric, and a verdict
on each difference from the baseline group (mnist_ae/comparison.py says how); ``--md`` for Markdown.

    python scripts/sweep.py queue sweeps/n2d.yaml --jobs 2     # or any dvc exp run --queue ...
    make compare                                               # HEAD's experiments, against params.yaml
    make compare ARGS="--sweep sweeps/n2d.yaml --baseline sweeps/defaults.yaml --all-commits"
"""

from __future__ import annotations

import argparse

from mnist_ae.comparison import (
    add_arguments,
    baseline_names,
    committed_params,
    experiment_baselines,
    load_groups,
    pick_baseline,
    report,
    with_baseline,
)
from mnist_ae.core.errors import run_stage
from mnist_ae.sweeps.plan import load_plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--sweep", action="append", default=[],
                        help="only this sweep file's experiments (and the baseline's); may be repeated; "
                             "without --baseline, the first sweep's first configuration is the baseline "
                             "unless the committed params.yaml's group is among them")
    parser.add_argument("-S", dest="extra", action="append", default=[],
                        help="an override the sweep was queued with (scripts/sweep.py queue -S ...)")
    parser.add_argument("--seeds", type=int, help="the replicates the sweep was queued with, if not the file's")
    args = parser.parse_args()
    revs = experiment_baselines() if args.all_commits else [args.rev] if args.rev else None
    baseline = baseline_names(args.baseline)
    if not args.sweep:
        groups, found, metrics, not_done = load_groups(args.metrics, baseline, revs=revs)
    else:
        plans = [load_plan(sweep, tuple(args.extra), args.seeds) for sweep in args.sweep]
        names = with_baseline({planned.name for plan in plans for planned in plan.experiments}, baseline)
        groups, _, metrics, not_done = load_groups(args.metrics, None, revs=revs, names=names, require_baseline=False)
        found = pick_baseline(groups, committed_params(args.rev or "HEAD"), baseline, plans[0])
    print(report(groups, found, metrics, args.md, not_done))


if __name__ == "__main__":
    run_stage(main)
