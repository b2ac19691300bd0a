"""CI's job summary: each headline metric's change from a revision (the pull request's base) beside
the defaults' seed spread (``metrics/noise_floor.json``, from ``make noise-floor``), flagged where it
is beyond it. Reads ``dvc metrics diff``; reruns nothing.

    python scripts/floor_summary.py origin/main >> "$GITHUB_STEP_SUMMARY"
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from mnist_ae.core.errors import UserError, run_stage
from mnist_ae.noise_floor import NOISE_FLOOR, against_floor, floor_sigmas, load_floor


def metric_changes(rev: str) -> dict[str, tuple[float | None, float | None]]:
    """metric -> (its value at ``rev``, now), from ``dvc metrics diff --all``."""
    result = subprocess.run([sys.executable, "-m", "dvc", "metrics", "diff", rev, "--all", "--json"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        said = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"dvc metrics diff {rev} failed: {said}")
    diff = json.loads(result.stdout or "{}")
    return {name: (change.get("old"), change.get("new")) for metrics in diff.values()
            for name, change in metrics.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the revision to compare with (a pull request's base branch)")
    args = parser.parse_args()
    floor = load_floor(NOISE_FLOOR)
    table = against_floor(metric_changes(args.rev), floor, base=args.rev)
    seeds = ", ".join(map(str, floor.seeds))
    print(f"### Headline metrics against {args.rev}, beside the seed noise floor\n")
    print(f"The floor: the standard deviation of each metric over the defaults at train.seed {seeds} "
          f"(with {', '.join(floor.overrides)}; `make noise-floor`). A change is beyond noise where it exceeds "
          f"{floor_sigmas(len(floor.seeds)):.2f} of them (Student's t at 95 % with n - 1 degrees of freedom, "
          f"times sqrt(2): two single runs' difference). Seed noise, not drift: docs/reproducibility.md.\n")
    print(table.to_markdown(index=False) if not table.empty else "No headline metric in common.")


if __name__ == "__main__":
    run_stage(main)
