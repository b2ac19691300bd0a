"""A study's numbers as committed data: one CSV of rows per sweep (``metrics/studies/<sweep>.csv``,
one row per experiment: its params that differ from the defaults, its seed, its headline metrics,
its training time), and the tables and figures made from those rows alone. DVC keeps experiments
as git refs that a ``dvc exp gc`` or a fresh clone loses; the rows stay, and a number in the docs
that disagrees with its row cannot happen, since the docs are generated from the rows.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

from ..comparison import Group, experiments_table, summary
from ..core.atomic import write_table
from ..core.errors import UserError
from ..headline import PIXEL_PREFIX, headline_names, headline_pattern
from .plan import Plan

STUDIES = Path("metrics/studies")
TRAINED = re.compile(r"trained .* in ([0-9.]+) s;")  # the train stage's last line (stages/train.py prints it)


def rows_of(plan: Plan, exp_show_rows: list[dict], params: dict[str, object]) -> pd.DataFrame:
    """One row per finished experiment of the plan found in ``exp_show_rows`` (any commit's)."""
    names = {planned.name: planned for planned in plan.experiments}
    try:
        table = experiments_table(exp_show_rows, set(params), headline_pattern(), set(names)).table
    except UserError:
        return pd.DataFrame()
    metrics = [column for column in table.columns if _bare(column) in headline_names()]
    rows = []
    for _, found in table.iterrows():
        planned = names[found["Experiment"]]
        rows.append({"experiment": planned.name, "params": " ".join(planned.configuration), "seed": planned.seed,
                     **{_bare(metric): found[metric] for metric in metrics},
                     "train_seconds": training_seconds(planned.name)})
    return pd.DataFrame(rows)


def _bare(column: str) -> str:
    """A metric's name without the file dvc exp show puts before it where two files share the name."""
    return column.rsplit(":", 1)[-1]


def training_seconds(name: str) -> float | None:
    """How long the experiment's training took, from its queue log (None if DVC has no log of it)."""
    result = subprocess.run([sys.executable, "-m", "dvc", "queue", "logs", name], capture_output=True, text=True)
    found = TRAINED.findall(result.stdout) if result.returncode == 0 else []
    return float(found[-1]) if found else None


def merge_rows(path: Path, new: pd.DataFrame, order: list[str] | None = None) -> pd.DataFrame:
    """The committed rows at ``path`` with ``new`` ones added or updated (by experiment), in the order
    of the experiment names ``order`` (a plan's; others after them): a row whose experiment DVC no
    longer lists is kept."""
    old = pd.read_csv(path) if path.exists() else pd.DataFrame()
    merged = pd.concat([old, new]).drop_duplicates(subset="experiment", keep="last") if len(old) else new
    if "train_seconds" in merged and len(old) and "train_seconds" in old:  # a log gone since: keep the time it gave
        kept = old.set_index("experiment")["train_seconds"]
        merged["train_seconds"] = merged["train_seconds"].fillna(merged["experiment"].map(kept))
    rank = {name: i for i, name in enumerate(order or [])}
    position = merged["experiment"].map(lambda name: rank.get(name, len(rank)))
    return merged.assign(_order=position).sort_values("_order", kind="stable").drop(columns="_order").reset_index(
        drop=True)


def export(plan: Plan, name: str, exp_show_rows: list[dict], params: dict[str, object]) -> Path:
    """Write (or update) ``metrics/studies/<name>.csv`` from the experiments DVC lists now."""
    path = STUDIES / f"{name}.csv"
    new = rows_of(plan, exp_show_rows, params)
    if new.empty and not path.exists():
        raise UserError(f"no finished experiment of {name}'s plan: run it first (scripts/sweep.py queue)")
    order = [planned.name for planned in plan.experiments]
    write_table(path, merge_rows(path, new, order) if not new.empty else pd.read_csv(path))
    return path


def load_rows(name: str) -> pd.DataFrame:
    path = STUDIES / f"{name}.csv"
    if not path.exists():
        raise UserError(f"{path} not found: scripts/study.py export writes it from the sweep's experiments")
    return pd.read_csv(path)


def groups_of(rows: pd.DataFrame) -> list[Group]:
    """The rows as replicate groups (one per ``params``), in the order first seen."""
    return [Group({"params": params}, runs.reset_index(drop=True).rename(columns={"experiment": "Experiment"}))
            for params, runs in rows.groupby("params", sort=False)]


def summary_table(groups: list[Group], metrics: list[str], label: str = "params") -> pd.DataFrame:
    """Per group: n, each metric's mean ± sd, its mean training time in minutes."""
    table = []
    for group in groups:
        row = {label: group.params[label] or "(the defaults)", "n": group.n}
        for metric in metrics:
            row[metric] = summary(group.runs[metric]) if metric in group.runs else ""
        seconds = group.runs.get("train_seconds")
        row["training, min"] = (f"{seconds.mean() / 60:.1f}" if seconds is not None and seconds.notna().any() else "")
        table.append(row)
    return pd.DataFrame(table)


# --- What the docs show, made from the rows alone ---------------------------------------------------

MARKER = re.compile(r"(<!-- study:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /study:(?P=name) -->)", re.S)


def param_value(params: str, key: str) -> str | None:
    """The value of ``key`` in a row's ``params`` (its -S overrides, space-separated)."""
    for override in params.split():
        name, _, value = override.partition("=")
        if name == key:
            return value
    return None


def fill_markers(text: str, blocks: dict[str, str]) -> str:
    """``text`` with what stands between ``<!-- study:NAME -->`` and ``<!-- /study:NAME -->`` replaced
    by ``blocks[NAME]``; a marker without a block is an error (a study renamed, its docs not)."""
    def replace(found: re.Match[str]) -> str:
        if found["name"] not in blocks:
            raise UserError(f"the docs mark a study block {found['name']!r} that scripts/study.py does not make")
        return f"{found[1]}{blocks[found['name']].rstrip()}\n{found[4]}"
    return MARKER.sub(replace, text)


def curve_figure(rows: pd.DataFrame, x_param: str, title: str):
    """The clustering of the codes against ``x_param`` (mean ± sd over the seeds of each point), the
    pixels' level through the same steps beside it, and each point's training minutes."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = rows.assign(x=rows["params"].map(lambda p: float(param_value(p, x_param)))).sort_values("x")
    points = rows.groupby("x")
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    panels = [(axes[0], [("manifold_accuracy", "accuracy", "tab:blue"), ("manifold_nmi", "NMI", "tab:orange")],
               "UMAP, then a Gaussian mixture (N2D's recipe)"),
              (axes[1], [("cluster_accuracy", "accuracy", "tab:green")], "k-means")]
    for ax, metrics, heading in panels:
        for metric, label, colour in metrics:
            mean, sd = points[metric].mean(), points[metric].std(ddof=1)
            ax.errorbar(mean.index, mean.values, yerr=sd.values, marker="o", capsize=3, color=colour,
                        label=f"codes: {label} (mean ± sd, n = {int(points[metric].count().min())})")
            pixels = rows[PIXEL_PREFIX + metric].mean()
            ax.axhline(pixels, color=colour, linestyle="--", linewidth=1, label=f"pixels: {label} ({pixels:.3f})")
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(points.groups), [f"{x:g}" for x in points.groups])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel(f"{x_param}")
        ax.set_title(heading, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    minutes = points["train_seconds"].mean() / 60
    top = axes[0].secondary_xaxis("top")
    top.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    top.set_xticks(list(minutes.index), [f"{m:.0f} min" if not math.isnan(m) else "" for m in minutes.values])
    top.set_xlabel("training per seed", fontsize=8)
    axes[0].set_ylabel("score against the labels (all 70,000 images)")
    figure.suptitle(title, fontsize=11)
    return figure
