"""``make study``: the N2D study's tables and figure, made from its committed rows alone.

    python scripts/study.py export     # the sweeps' finished experiments -> metrics/studies/<sweep>.csv (commit them)
    python scripts/study.py render     # those rows -> the tables in docs/models.md and README.md, the figure

Each table of the docs stands between ``<!-- study:NAME -->`` and ``<!-- /study:NAME -->``; render
rewrites what is between, so a number typed there by hand is gone at the next render.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from mnist_ae.comparison import (
    Group,
    codes_against_pixels,
    committed_params,
    compare_with,
    exp_show_rows,
    experiment_baselines,
    summary,
)
from mnist_ae.core.atomic import atomic_path, save_figure
from mnist_ae.core.errors import UserError, run_stage
from mnist_ae.headline import HEADLINES, PIXEL_PREFIX
from mnist_ae.sweeps.plan import load_plan
from mnist_ae.sweeps.study import (
    curve_figure,
    export,
    fill_markers,
    groups_of,
    load_rows,
    param_value,
    summary_table,
)

SWEEPS = Path("sweeps")
STUDY = ("defaults", "n2d", "n2d-epochs", "n2d-cosine", "n2d-umap10")  # the sweeps of the study, by file name
DOCS = (Path("docs/models.md"), Path("README.md"))
CURVE = Path("docs/figures/n2d-epochs.png")
CLUSTERING = [h.name for h in HEADLINES if h.pixels]  # the metrics the pixels have a twin of
HEADLINE = ["test_mse", "knn_accuracy_codes", "probe_accuracy", "cluster_accuracy", "manifold_accuracy"]
CPU = "one of two experiments at a time on a 2-core AMD EPYC (Zen 4, AVX-512)"


def markdown(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False)


def against_pixels(group: Group) -> pd.DataFrame:
    """make compare's paired test of the codes against the pixels, on the study's rows."""
    return codes_against_pixels(group, [m for metric in CLUSTERING for m in (metric, PIXEL_PREFIX + metric)])


def one_group(rows: dict[str, pd.DataFrame], sweep: str) -> Group:
    groups = groups_of(rows[sweep])
    if len(groups) != 1:
        raise UserError(f"metrics/studies/{sweep}.csv holds {len(groups)} configurations; the study expects one")
    return groups[0]


def _cell(group: Group, metrics: list[str], seed: int | None = None, bold: set[str] = frozenset()) -> str:
    """Metrics of one seed's row, or mean ± sd over the group (bold where ahead beyond noise)."""
    if seed is not None:
        if seed not in set(group.runs["seed"]):
            raise UserError(f"the study's rows have no seed {seed} of the defaults: run sweeps/defaults.yaml")
        row = group.runs[group.runs["seed"] == seed].iloc[0]
        return ", ".join(f"{row[m]:.4g}" for m in metrics)
    return ", ".join(f"**{summary(group.runs[m])}**" if m in bold else summary(group.runs[m]) for m in metrics)


def defaults_table(defaults: Group) -> str:
    """The README's table of what the defaults' codes are good for, seed 0 and over the replicates."""
    paired = against_pixels(defaults).set_index("metric")
    codes_ahead = {m for m in paired.index if paired.loc[m, "verdict"] == "the codes beyond noise"}
    pixels_ahead = {PIXEL_PREFIX + m for m in paired.index if paired.loc[m, "verdict"] == "the pixels beyond noise"}
    uses = [
        ("classification: 5-nearest neighbours (5-fold CV); in the 2-D t-SNE", ["knn_accuracy_codes",
                                                                                 "knn_accuracy_tsne"], False),
        ("classification: a linear probe from the training codes", ["probe_accuracy"], False),
        ("clustering: k-means, 10 clusters: accuracy (clusters matched to classes), NMI, ARI",
         ["cluster_accuracy", "cluster_nmi", "cluster_ari"], True),
        ("clustering: UMAP to 2-d, then the likeliest of 10 fits of a mixture of 10 Gaussians (`embed.manifold`)",
         ["manifold_accuracy", "manifold_nmi", "manifold_ari"], True),
    ]
    table = [{"use (k-NN and the probe on 2,000 training images / the test split; clustering on all 70,000)": use,
              "the 16-d codes, seed 0": _cell(defaults, metrics, seed=0),
              f"the codes, mean ± sd, n = {defaults.n}": _cell(defaults, metrics, bold=codes_ahead),
              f"the 784 raw pixels, n = {defaults.n}": _cell(defaults, [PIXEL_PREFIX + m for m in metrics],
                                                             bold=pixels_ahead) if pixels else ""}
             for use, metrics, pixels in uses]
    verdicts = "; ".join(f"{kind} {paired.loc[m, 'verdict']} ({paired.loc[m, 'codes - pixels']}, p = "
                         f"{paired.loc[m, 'p (paired t)']}; worst seed of the codes {paired.loc[m, 'worst seed']})"
                         for kind, m in (("k-means", "cluster_accuracy"), ("in the manifold,", "manifold_accuracy")))
    return (markdown(pd.DataFrame(table)) + f"\n\n`make compare` (a paired t-test of the accuracies over the "
            f"{defaults.n} seeds, codes less pixels): {verdicts}. **Bold**: ahead beyond noise.")


def _goal(name: str, value: float, sense: str, target: float) -> dict[str, str]:
    met = value >= target if sense == ">=" else value <= target
    return {"goal": f"{name} {sense} {target:g}", "measured": f"{value:.4g}",
            "met": "yes" if met else f"no: by {abs(value - target):.3g}"}


def blocks(rows: dict[str, pd.DataFrame]) -> dict[str, str]:
    """Every study block of the docs, from the rows of each sweep."""
    defaults, n2d = one_group(rows, "defaults"), one_group(rows, "n2d")
    curve = rows["n2d-epochs"].assign(epochs=rows["n2d-epochs"]["params"].map(
        lambda p: int(param_value(p, "train.epochs"))))
    curve_groups = groups_of(curve.sort_values(["epochs", "seed"]))
    for group in curve_groups:
        group.params["epochs"] = int(group.runs["epochs"].iloc[0])
    curve_table = summary_table(curve_groups, ["manifold_accuracy", "manifold_nmi", "cluster_accuracy"], label="epochs")
    pixel_levels = [f"{g.runs['pixel_manifold_accuracy'].mean():.4f}, {g.runs['pixel_cluster_accuracy'].mean():.4f}"
                    for g in curve_groups]
    curve_table.insert(curve_table.columns.get_loc("training, min"), "pixels: manifold, k-means accuracy",
                       pixel_levels)

    def against_n2d(variant: str) -> str:
        """A variant of the N2D configuration against its seeds of sweeps/n2d.yaml (Welch's t-test)."""
        group = one_group(rows, variant)
        same_seeds = Group(n2d.params, n2d.runs[n2d.runs["seed"].isin(group.runs["seed"])])
        return markdown(compare_with(group, same_seeds, HEADLINE))
    pixels = against_pixels(n2d).set_index("metric")
    manifold, kmeans = pixels.loc["manifold_accuracy"], pixels.loc["cluster_accuracy"]
    minutes = n2d.runs["train_seconds"].mean() / 60
    readme = (f"N2D's network at 40 epochs ({minutes:.0f} min of training a seed, {CPU}; `make sweep`), over "
              f"{n2d.n} seeds: manifold accuracy **{manifold['codes']}** (worst seed {manifold['worst seed']}) "
              f"against the pixels' {manifold['pixels']}, paired difference {manifold['codes - pixels']}: "
              f"{manifold['verdict']} (p = {manifold['p (paired t)']}); k-means {kmeans['codes']} against "
              f"{kmeans['pixels']}: {kmeans['verdict']}. The curve and what was tried: "
              f"[docs/models.md](docs/models.md#n2d-over-seeds).")
    goals = pd.DataFrame([
        _goal("manifold accuracy, mean", n2d.runs["manifold_accuracy"].mean(), ">=", 0.975),
        _goal("manifold accuracy, worst seed", n2d.runs["manifold_accuracy"].min(), ">=", 0.95),
        {"goal": "the codes ahead of the pixels in the manifold, beyond noise (paired t)",
         "measured": f"{manifold['codes - pixels']}, p = {manifold['p (paired t)']}",
         "met": "yes" if manifold["verdict"] == "the codes beyond noise" else "no"},
        _goal("k-means accuracy, mean", n2d.runs["cluster_accuracy"].mean(), ">=", 0.80),
        _goal("training per seed, minutes (2-core CPU)", minutes, "<=", 30.0),
    ])
    return {
        "n2d-goals": markdown(goals),
        "n2d-epochs": markdown(curve_table),
        "n2d-pixels": markdown(pixels.reset_index()),
        "n2d-defaults": markdown(compare_with(n2d, defaults, HEADLINE)),
        "n2d-cosine": against_n2d("n2d-cosine"),
        "n2d-umap10": against_n2d("n2d-umap10"),
        "readme": readme,
        "readme-defaults": defaults_table(defaults),
    }


def render() -> None:
    rows = {name: load_rows(name) for name in STUDY}
    made = blocks(rows)
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        with atomic_path(doc) as tmp:
            tmp.write_text(fill_markers(text, made), encoding="utf-8")
    CURVE.parent.mkdir(parents=True, exist_ok=True)
    save_figure(CURVE, curve_figure(rows["n2d-epochs"], "train.epochs",
                                    "N2D's auto-encoder (784-500-500-2000-10), its codes clustered, against its "
                                    "training epochs"))
    print(f"rendered {len(made)} tables into {', '.join(map(str, DOCS))} and {CURVE}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["export", "render"])
    args = parser.parse_args()
    if args.command == "export":
        listed, params = exp_show_rows(experiment_baselines()), committed_params()
        for name in STUDY:
            try:
                print(f"wrote {export(load_plan(SWEEPS / f'{name}.yaml'), name, listed, params)}")
            except UserError as error:
                print(f"{name}: {error}")
    else:
        render()


if __name__ == "__main__":
    run_stage(main)
