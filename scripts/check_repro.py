"""``make check-repro``: does the committed state reproduce? For CI, ours or a user's.

With ``--force`` (``make check-repro FORCE=1``, what CI runs) it first reruns every stage with
``dvc repro -f``; without it, it judges the outputs already in the workspace, which a ``dvc repro``
that found everything up to date did not recompute, and says so. Then it fails (exit 1) when:
- ``dvc status`` is not clean (a stage failed or something is missing);
- ``dvc.lock`` now records other code, data or params for a stage than the committed one does:
  somebody changed the pipeline without rerunning it and committing the result;
- a metric differs from the committed ``metrics/`` by more than its tolerance.

Outputs themselves may differ bit for bit across machines (another CPU or thread count rounds
float sums differently), so they are compared through the metrics, with tolerances measured on
this project (README, "Reproducibility"). The metrics and params diffs are printed as Markdown and,
on GitHub Actions, added to the job summary.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys

import yaml

from mnist_ae.headline import LOSS_TOLERANCE, headline_tolerance

# Largest difference accepted between a metric and its committed value: a headline metric's is
# declared with it (mnist_ae/headline.py); of the others, the objective's terms are summed over an
# image's 784 pixels rather than averaged, and the rest are MSEs and losses.
DETAIL_TOLERANCES = {"val_reconstruction": 0.05, "val_kl": 0.05}
# Not measurements: dvclive's epoch counter follows train.epochs, which the dvc.lock check covers.
NOT_METRICS = {"step"}


def _dvc(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"error: dvc {' '.join(args)} failed:\n{result.stderr.strip()}")
    return result.stdout


def _tolerance(metric: str) -> float:
    declared = headline_tolerance(metric)
    return declared if declared is not None else DETAIL_TOLERANCES.get(metric, LOSS_TOLERANCE)


def lock_inputs(lock_text: str) -> dict[str, dict]:
    """What each stage of a ``dvc.lock`` ran on: its command, params, and the deps no stage makes.

    Deps that are another stage's outputs (the prepared data, the checkpoint) are left out: they
    may differ bit for bit on another machine, which the metrics' tolerances are there to judge.
    """
    stages = (yaml.safe_load(lock_text) or {}).get("stages", {})
    made = {out["path"] for stage in stages.values() for out in stage.get("outs", [])}
    return {
        name: {"cmd": stage.get("cmd"), "params": stage.get("params"),
               "deps": [dep for dep in stage.get("deps", []) if dep["path"] not in made]}
        for name, stage in stages.items()
    }


def _number(value: object) -> bool:
    """Whether a metric can be compared: DVC passes a string or a NaN in a metrics file through as it
    reads it (a string would end this script in a TypeError, a NaN would pass every tolerance), and
    gives None for a file or a value it cannot read."""
    return isinstance(value, int | float) and math.isfinite(value)


def metric_drift(diff: dict[str, dict[str, dict]]) -> list[str]:
    """The metrics of a ``dvc metrics diff --json`` that moved more than their tolerance, or are no number."""
    problems = []
    for path, metrics in diff.items():
        for name, change in metrics.items():
            if name in NOT_METRICS:
                continue
            old, new = change.get("old"), change.get("new")
            if not (_number(old) and _number(new)):
                problems.append(f"{path}: {name} is {new} now, {old} committed")
            elif abs(new - old) > _tolerance(name):
                problems.append(f"{path}: {name} is {new} now, {old} committed (tolerance {_tolerance(name)})")
    return sorted(problems)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rev", default="HEAD", help="the committed state to compare with (default: HEAD)")
    parser.add_argument("--force", action="store_true",
                        help="rerun every stage first (dvc repro -f), whether or not DVC thinks it up to date")
    args = parser.parse_args()

    committed = subprocess.run(["git", "show", f"{args.rev}:dvc.lock"], capture_output=True, text=True)
    if committed.returncode != 0:
        sys.exit(f"error: no dvc.lock committed at {args.rev} to compare with ({committed.stderr.strip()})")
    if args.force:
        sys.stdout.flush()
        rerun = subprocess.run([sys.executable, "-m", "dvc", "repro", "--force"])  # its progress shown as it goes
        if rerun.returncode != 0:
            sys.exit(f"error: dvc repro --force failed (exit code {rerun.returncode}); see its output above")
    problems = []
    status = json.loads(_dvc("status", "--json") or "{}")
    if status:
        problems.append(f"dvc status is not clean after dvc repro: {json.dumps(status)}")
    with open("dvc.lock", encoding="utf-8") as file:
        now = lock_inputs(file.read())
    before = lock_inputs(committed.stdout)
    for stage in sorted(now.keys() | before.keys()):
        if now.get(stage) != before.get(stage):
            problems.append(f"stage {stage!r} ran on other code, data or params than the committed dvc.lock "
                            "records: rerun `dvc repro` and commit dvc.lock and metrics/")
    problems += metric_drift(json.loads(_dvc("metrics", "diff", args.rev, "--json") or "{}"))
    params_changed = json.loads(_dvc("params", "diff", args.rev, "--json") or "{}")

    if problems:
        verdict = "**Not reproduced:**\n\n" + "".join(f"- {problem}\n" for problem in problems)
    elif args.force:
        verdict = "**Reproduced** within tolerance: every stage was rerun (`dvc repro --force`).\n"
    else:
        verdict = ("**Consistent** with the committed state, within tolerance; no stage was forced to rerun, so "
                   "outputs may be an earlier run's. `--force` (`make check-repro FORCE=1`) reruns every stage.\n")
    report = (f"## Reproduction check against {args.rev}\n\n" + verdict
              + "\n### Metrics\n\n" + (_dvc("metrics", "diff", args.rev, "--md", "--all").strip() or "No metrics.")
              + "\n\n### Params\n\n"
              + (_dvc("params", "diff", args.rev, "--md").strip() if params_changed else "No params changed.") + "\n")
    print(report)
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as summary:
            summary.write(report)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
