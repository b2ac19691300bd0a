"""``make noise-floor``: the defaults' spread over seeds, the yardstick of every other comparison.

Runs the committed params.yaml with the manifold clustering on (so that every headline metric has a
spread) at ``train.seed`` 0..SEEDS-1, the replicates no finished experiment has yet, one at a time
through DVC's queue; then writes each headline metric's n, mean, sd, min and max over them to
``metrics/noise_floor.json``, which CI's job summary sets beside a pull request's changes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import yaml

from mnist_ae.comparison import (
    NOISE_FLOOR,
    Group,
    NoExperiments,
    committed_params,
    find_baseline,
    floor_of,
    load_groups,
)
from mnist_ae.core.atomic import write_json
from mnist_ae.core.errors import UserError, run_stage

OVERRIDES = ["embed.manifold=true"]  # the defaults, with every headline metric measured
WAIT_S = 4 * 3600  # the longest the queue may take (five experiments with the manifold: half an hour here)


def _dvc(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True)
    if result.returncode != 0:
        said = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"dvc {' '.join(args)} failed: {said}")
    return result.stdout


def the_defaults_group(metrics: str) -> tuple[Group | None, list[str]]:
    """The replicate group of the committed params.yaml with ``OVERRIDES`` (None if no experiment has
    it), and the metrics compared."""
    params = committed_params()
    wanted = params | {name: yaml.safe_load(value) for name, value in (override.split("=") for override in OVERRIDES)}
    groups, _, compared, _ = load_groups(metrics, None, params, require_baseline=False)
    try:
        return find_baseline(groups, wanted, None), compared
    except UserError:
        return None, compared


def run_missing(seeds: int, metrics: str) -> None:
    """Queue the seeds no finished experiment of the defaults has, run them one at a time, and wait
    (bounded) until none of them is queued or running."""
    try:
        group, _ = the_defaults_group(metrics)
        done = set() if group is None else set(group.runs["train.seed"])
    except NoExperiments:
        done = set()
    missing = [seed for seed in range(seeds) if seed not in done]
    if not missing:
        return
    print(f"running the defaults at train.seed {', '.join(map(str, missing))} (minutes each)...", flush=True)
    for seed in missing:
        _dvc("exp", "run", "--queue", "-S", f"train.seed={seed}", *(f"-S{o}" for o in OVERRIDES))
    _dvc("queue", "start", "-j", "1")
    deadline = time.monotonic() + WAIT_S
    while any(word in _dvc("queue", "status") for word in ("Queued", "Running")):
        if time.monotonic() > deadline:
            raise UserError(f"the queue is still running after {WAIT_S // 3600} hours: see dvc queue status; "
                            "rerun make noise-floor once it is done")
        time.sleep(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, required=True, help="replicates: train.seed 0..SEEDS-1")
    parser.add_argument("--metrics", required=True, help="regular expression of the headline metrics (the Makefile's)")
    args = parser.parse_args()
    run_missing(args.seeds, args.metrics)
    group, compared = the_defaults_group(args.metrics)
    runs = None if group is None else group.runs[group.runs["train.seed"] < args.seeds]
    if runs is None or len(runs) < args.seeds:
        raise UserError(f"the defaults have {0 if runs is None else len(runs)} finished replicates of the "
                        f"{args.seeds} asked for: see dvc queue status and dvc queue logs NAME")
    floor = floor_of(Group(group.params, runs), compared)
    write_json(NOISE_FLOOR, {"seeds": sorted(int(s) for s in runs["train.seed"]), "overrides": OVERRIDES,
                                   "metrics": floor})
    print(f"wrote {NOISE_FLOOR}: {len(floor)} metrics over {len(runs)} seeds")


if __name__ == "__main__":
    run_stage(main)
