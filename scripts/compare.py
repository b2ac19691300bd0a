"""``make compare``: every configuration's replicates, mean ± sd of each headline metric, and a verdict
on each difference from the baseline group (mnist_ae/comparison.py says how); ``--md`` for Markdown.

    dvc exp run --queue -S 'train.seed=range(0,3)' -S model.code_dim=8,16
    dvc queue start -j 1     # then, when `dvc queue status` shows every one done:
    make compare
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mnist_ae.comparison import (
    ALPHA,
    Group,
    check_metrics,
    codes_against_pixels,
    compare_with,
    experiments_table,
    find_baseline,
    group_replicates,
    metric_columns,
    summary,
)
from mnist_ae.core.errors import UserError, first_line, run_stage


def flat_params(text: str) -> dict[str, object]:
    """params.yaml as dvc exp show names its params: ``train.seed``, ``model.mlp.hidden``..."""
    def walk(node: dict, prefix: str) -> dict[str, object]:
        flat = {}
        for key, value in node.items():
            name = f"{prefix}{key}"
            flat |= walk(value, f"{name}.") if isinstance(value, dict) and value else {name: value}
        return flat
    try:
        return walk(yaml.safe_load(text) or {}, "")
    except yaml.YAMLError as error:
        raise UserError(f"params.yaml is not valid YAML: {first_line(error)}") from None


def committed_params() -> dict[str, object]:
    """The committed params.yaml, flat: a plain `dvc exp run -S ...` rewrites the workspace's, and the
    baseline is the committed configuration, not the last experiment's."""
    shown = subprocess.run(["git", "show", "HEAD:params.yaml"], capture_output=True, text=True)
    if shown.returncode != 0:
        said = (shown.stderr.strip().splitlines() or ["git failed"])[0]
        raise UserError(f"cannot read the committed params.yaml ({said}): run it in the project's git checkout")
    return flat_params(shown.stdout)


def load_groups(metrics: str, baseline_name: str | None, params: dict[str, object] | None = None,
                rows: list[dict] | None = None,
                require_baseline: bool = True) -> tuple[list[Group], Group | None, list[str], int]:
    """The experiments DVC knows (or ``rows``, as dvc.api.exp_show gives them) as replicate groups,
    the baseline among them (``require_baseline=False``: None), the metrics compared, and how many
    experiments were left out as still queued or running. ``params``: the committed ones, flat."""
    params = committed_params() if params is None else params
    if rows is None:
        import dvc.api  # here: slow to import

        try:
            rows = dvc.api.exp_show()
        except Exception as error:  # not a DVC repository, no commit yet...: dvc's own errors vary
            raise UserError(f"dvc could not list the experiments: {first_line(error)}") from None
    table, not_done = experiments_table(rows, set(params), metrics)
    compared = metric_columns(table, set(params))
    if not compared:
        raise UserError(f"no metric of the experiments matches {metrics!r}")
    groups = group_replicates(table, set(params))
    check_metrics(groups, compared)
    baseline = find_baseline(groups, params, baseline_name) if require_baseline else None
    return groups, baseline, compared, not_done


def render(frame: pd.DataFrame, markdown: bool) -> str:
    return frame.to_markdown(index=False) if markdown else frame.to_string(index=False)


def report(groups: list[Group], baseline: Group, metrics: list[str], markdown: bool, not_done: int = 0) -> str:
    heading = "### " if markdown else ""
    lines = [f"{len(groups)} configuration(s); replicates differ only in seeds. Verdicts: Welch's t-test, two-sided, "
             f"at {ALPHA}, one per metric (so about 1 in 20 comparisons of equal configurations reads 'beyond "
             f"noise' by chance); a group of one seed is not judged.", ""]
    if not_done:
        lines += [f"Left out: {not_done} experiment(s) still queued or running (dvc queue status).", ""]
    for group in [baseline, *(g for g in groups if g is not baseline)]:
        names = ", ".join(map(str, group.runs["Experiment"]))
        lines.append(f"{heading}{group.label(baseline)}: n = {group.n} ({names})")
        if group.mixed_code:
            lines.append("Note: these replicates ran on different code (src/, stages/ or requirements.lock "
                         "changed between them): their spread is more than the seeds'.")
        lines.append("")
        if group is baseline:
            measured = [metric for metric in metrics if not group.runs[metric].isna().all()]
            lines.append(render(pd.DataFrame({"metric": measured, f"mean ± sd (n={group.n})":
                                              [summary(group.runs[metric]) for metric in measured]}), markdown))
        else:
            lines.append(render(compare_with(group, baseline, metrics), markdown))
        pixels = codes_against_pixels(group, metrics)
        if not pixels.empty:
            lines += ["", "The codes against the pixels (the same steps and seeds, paired by replicate):", "",
                      render(pixels, markdown)]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", required=True, help="regular expression of the metrics compared (the Makefile's)")
    parser.add_argument("--baseline", help="an experiment whose group is the baseline (default: params.yaml's)")
    parser.add_argument("--md", action="store_true", help="Markdown tables")
    args = parser.parse_args()
    groups, baseline, metrics, not_done = load_groups(args.metrics, args.baseline)
    print(report(groups, baseline, metrics, args.md, not_done))


if __name__ == "__main__":
    run_stage(main)
