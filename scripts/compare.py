"""``make compare``: every configuration's replicates, mean ± sd of each headline metric, and a verdict
on each difference from the baseline group (mnist_ae/comparison.py says how); ``--md`` for Markdown.

    dvc exp run --queue -S 'train.seed=range(0,3)' -S model.code_dim=8,16
    dvc queue start -j 1     # then, when `dvc queue status` shows every one done:
    make compare
"""

from __future__ import annotations

import argparse

import pandas as pd

from mnist_ae.comparison import ALPHA, Group, codes_against_pixels, compare_with, load_groups, summary
from mnist_ae.core.errors import run_stage


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
