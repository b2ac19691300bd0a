"""``make compare``: every configuration's replicates, mean ± sd of each headline metric, and a verdict
on each difference from the baseline group (mnist_ae/comparison.py says how); ``--md`` for Markdown.

    python scripts/sweep.py queue sweeps/n2d.yaml --jobs 2     # or any dvc exp run --queue ...
    make compare                                               # HEAD's experiments, against params.yaml
    make compare ARGS="--sweep sweeps/n2d.yaml --baseline sweeps/defaults.yaml --all-commits"
"""

from __future__ import annotations

import argparse

from mnist_ae.comparison import add_arguments, baseline_names, experiment_baselines, load_groups, report
from mnist_ae.core.errors import run_stage
from mnist_ae.sweeps.plan import load_plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--sweep", action="append", default=[],
                        help="only this sweep file's experiments (and the baseline's); may be repeated")
    args = parser.parse_args()
    revs = experiment_baselines() if args.all_commits else [args.rev] if args.rev else None
    baseline = baseline_names(args.baseline)
    names = None
    if args.sweep:
        names = {planned.name for sweep in args.sweep for planned in load_plan(sweep).experiments}
        names |= baseline if isinstance(baseline, set) else {baseline} if baseline else set()
    groups, found, metrics, not_done = load_groups(args.metrics, baseline, revs=revs, names=names)
    print(report(groups, found, metrics, args.md, not_done))


if __name__ == "__main__":
    run_stage(main)
