"""``make noise-floor``: the defaults' spread over seeds, the yardstick of every other comparison.

Runs ``sweeps/defaults.yaml`` (the committed params.yaml with the manifold clustering on, so that
every headline metric has a spread) at ``train.seed`` 0..SEEDS-1: the replicates HEAD has not run
yet, through DVC's queue; then writes each headline metric's n, mean, sd, min and max over them to
``metrics/noise_floor.json`` (mnist_ae/noise_floor.py), which CI's job summary sets beside a pull
request's changes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mnist_ae.comparison import load_groups
from mnist_ae.core.atomic import write_json
from mnist_ae.core.errors import UserError, run_stage
from mnist_ae.noise_floor import NOISE_FLOOR, checked_floor, spread_of
from mnist_ae.sweeps.plan import load_plan
from mnist_ae.sweeps.run import queue, wait_for

DEFAULTS = Path("sweeps/defaults.yaml")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, required=True, help="replicates: train.seed 0..SEEDS-1")
    parser.add_argument("--jobs", type=int, default=1, help="workers of DVC's queue")
    parser.add_argument("--rev", help="take the replicates from this commit's experiments, running none "
                                      "(a floor measured before a commit that changed no stage)")
    args = parser.parse_args()
    plan = load_plan(DEFAULTS, seeds=args.seeds)
    if args.rev is None and (queued := queue(plan, args.jobs)):
        print(f"running {len(queued)} replicate(s) of the defaults, {args.jobs} at a time (minutes each)...",
              flush=True)
        wait_for(plan)
    names = {planned.name for planned in plan.experiments}
    groups, _, metrics, _ = load_groups(None, None, require_baseline=False, names=names,
                                        revs=None if args.rev is None else [args.rev])
    if len(groups) != 1 or groups[0].n < args.seeds:
        found = sum(group.n for group in groups)
        raise UserError(f"the defaults have {found} finished replicates of the {args.seeds} asked for: see dvc queue "
                        "status and dvc queue logs NAME")
    runs = groups[0].runs
    floor = {"seeds": sorted(int(s) for s in runs["train.seed"]), "overrides": plan.sweep.params,
             "metrics": spread_of(runs, metrics)}
    checked_floor(floor)  # what CI will read: never write a floor it would refuse
    write_json(NOISE_FLOOR, floor)
    print(f"wrote {NOISE_FLOOR}: {len(metrics)} metrics over {len(runs)} seeds")


if __name__ == "__main__":
    run_stage(main)
