"""Comparisons that tell a change from chance: experiments grouped into replicates, each group's mean
and spread, and a verdict per metric against a baseline group.

The pipeline is bit-identical, so a rerun never shows how much of a difference is luck; seeds do.
Experiments whose params differ only in seeds (any param named ``seed``; ``train.seed`` names a
replicate and the other stages' seeds follow it, ``params.py``) are replicates of one
configuration: ``make compare`` reports each configuration's ``n``, mean and standard deviation,
and judges each difference from the baseline with Welch's t-test, which does not assume the two
groups spread alike. A group of one seed has no measured spread: it is shown, never judged.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
from dataclasses import dataclass

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from .core.errors import UserError, first_line
from .headline import PIXEL_PREFIX, headline_pattern
from .sweeps.plan import Plan, load_plan

ALPHA = 0.05  # the test's level: "beyond noise" where Welch's two-sided p-value is below it
# Rows whose State says they are not done: left out, and counted, so a partial group is not taken for a whole.
NOT_DONE = ("Queued", "Running")
FAILED = "Failed"  # named beside their group: a replicate that failed must not vanish into a smaller n
DONE = (None, "Success")  # dvc's State of a finished experiment (None: a commit or the workspace)
# The dependency columns of exp_show that are the pipeline's code: replicates run on other code are
# no replicates, and the report says so.
CODE = re.compile(r"^(src|stages)/|^requirements\.lock$")


class NoExperiments(UserError):
    """Nothing finished to compare (a sweep's gather then names every planned experiment missing)."""


def no_spread(values: pd.Series) -> bool:
    """No measured spread: the values agree to rounding (an exact 0 misses sums that round apart)."""
    return bool(np.isclose(values.std(ddof=1), 0.0, atol=1e-12 * max(1.0, abs(values.mean()))))


def is_seed(param: str) -> bool:
    return param.rsplit(".", 1)[-1] == "seed"


@dataclass(frozen=True)
class Group:
    """Replicates of one configuration: ``params`` (seeds left out) and one row per replicate."""

    params: dict[str, object]
    runs: pd.DataFrame  # one row per replicate: the "Experiment" name, seeds, metrics
    failed: tuple[str, ...] = ()  # its experiments that failed: not in runs, named in the report

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def mixed_code(self) -> bool:
        """Whether its replicates ran on different code (a change between them, or the commit's row
        beside experiments queued from an edited workspace): then they measure more than seeds."""
        return "code" in self.runs and self.runs["code"].nunique() > 1

    def label(self, baseline: Group | None) -> str:
        """The params that differ from the baseline's ("baseline" for the baseline itself)."""
        if baseline is None or self is baseline:
            return "baseline"
        changed = [f"{k}={_show(v)}" for k, v in self.params.items() if baseline.params.get(k) != v]
        changed += [f"-{k}" for k in baseline.params if k not in self.params]
        return ", ".join(changed) or "same params"


def _show(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@dataclass(frozen=True)
class Experiments:
    """dvc.api.exp_show's rows, sorted: the finished experiments as a table, how many are still
    queued or running, and the failed ones (their params, for their group to name them)."""

    table: pd.DataFrame
    not_done: int
    failed: pd.DataFrame


def experiments_table(rows: list[dict], param_names: set[str], metric_pattern: str,
                      names: set[str] | None = None) -> Experiments:
    """dvc.api.exp_show's rows as a table of finished experiments: their params, the hashes of the
    code they ran, and the metrics whose names match ``metric_pattern``; ``names``: only these
    experiments. The workspace row is left out (it is the last run, or a commit's outputs), and so
    is any row that repeats another's params, seeds included: a replicate counts once, the newest
    (DVC lists a commit's experiments newest first, the commit itself before them)."""
    pattern = compile_pattern(metric_pattern)
    kept, failed, not_done = [], [], 0
    for row in sorted(rows, key=lambda row: row.get("typ") == "baseline"):  # the commit last: the oldest
        name = row.get("Experiment") or row.get("rev")
        if row.get("rev") == "workspace" or (names is not None and name not in names):
            continue
        record = {"Experiment": name} | {param: _hashable(row.get(param)) for param in sorted(param_names)}
        if row.get("State") == FAILED:
            failed.append(record)
        if row.get("State") not in DONE:
            not_done += row.get("State") in NOT_DONE
            continue
        record["code"] = repr(sorted((column, value) for column, value in row.items() if CODE.search(column)))
        record |= {column: value for column, value in row.items() if pattern.fullmatch(column)
                   and column not in param_names and isinstance(value, int | float)}
        kept.append(record)
    if not kept:
        raise NoExperiments("no finished experiments to compare: run some first (dvc exp run, or dvc queue start), "
                            "then make compare")
    table = pd.DataFrame(kept).drop_duplicates(subset=sorted(param_names), keep="first").reset_index(drop=True)
    done = {str(name) for name in table["Experiment"]}
    failed = [record for record in failed if str(record["Experiment"]) not in done]  # retried since, and done
    return Experiments(table, not_done, pd.DataFrame(failed, columns=["Experiment", *sorted(param_names)]))


def compile_pattern(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as error:
        raise UserError(f"--metrics {pattern!r} is not a regular expression: {error}") from None


def _hashable(value: object) -> object:
    """A param's value as one canonical, hashable form, whether it comes from params.yaml or from
    dvc.api.exp_show (which gives ``"True"`` for true, ``"[256]"`` for a list, ``5.0`` for 5, and
    leaves out an empty mapping): rows group by it and the baseline is found by it."""
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
    if value is None or value == {} or value == [] or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return json.dumps(value) if isinstance(value, list | dict) else value


def metric_columns(table: pd.DataFrame, param_names: set[str]) -> list[str]:
    return [name for name in table.columns if name not in ("Experiment", "code") and name not in param_names]


def group_replicates(table: pd.DataFrame, param_names: set[str], failed: pd.DataFrame | None = None) -> list[Group]:
    """Experiments whose params are equal but for seeds, as groups, in the order first seen; each
    with the names of its ``failed`` experiments (a group whose every replicate failed is left out)."""
    config = sorted(name for name in param_names if not is_seed(name))

    def keys(frame: pd.DataFrame) -> pd.Series:
        return frame[config].apply(lambda row: repr(tuple(row)), axis=1) if len(frame) else pd.Series(dtype=str)

    table_keys = keys(table)
    failed_keys = keys(failed) if failed is not None else pd.Series(dtype=str)
    groups = []
    for key in dict.fromkeys(table_keys):
        runs = table[table_keys == key]
        first = runs.iloc[0]
        lost = tuple(str(name) for name in failed.loc[failed_keys == key, "Experiment"]) if len(failed_keys) else ()
        groups.append(Group({name: getattr(first[name], "item", lambda v=first[name]: v)() for name in config},
                            runs.reset_index(drop=True), lost))
    return groups


def find_baseline(groups: list[Group], params: dict[str, object], name: str | set[str] | None) -> Group:
    """The group holding experiment ``name`` (or any of a set of names: a sweep's), or, without a
    name, the group with ``params`` (the committed params.yaml, seeds aside)."""
    if name is not None:
        wanted = {name} if isinstance(name, str) else name
        for group in groups:
            if wanted & set(group.runs["Experiment"]):
                return group
        known = sorted(str(n) for group in groups for n in group.runs["Experiment"])
        said = name if isinstance(name, str) else "(the sweep's experiments)"
        raise UserError(f"--baseline {said}: no such experiment; there are {', '.join(known)}")
    wanted = {k: _hashable(v) for k, v in params.items() if not is_seed(k)}
    for group in groups:
        if all(group.params.get(k) == v for k, v in wanted.items()):
            return group
    raise UserError("no experiment has the committed params.yaml (seeds aside): run one (dvc exp run), or "
                    "name another baseline with ARGS='--baseline NAME'")


def check_metrics(groups: list[Group], metrics: list[str]) -> None:
    """Replicates of one configuration must all have each metric, or none (a configuration that does
    not measure it, embed.manifold off, say): name the experiments that lack one their group has."""
    missing = {}
    for group in groups:
        for metric in metrics:
            lacking = group.runs[metric].isna()
            if lacking.any() and not lacking.all():
                missing.setdefault(metric, []).extend(group.runs.loc[lacking, "Experiment"])
    if missing:
        said = "; ".join(f"{metric} in {', '.join(map(str, names))}" for metric, names in missing.items())
        raise UserError(f"metrics missing in some replicates: {said}; rerun them (dvc queue logs NAME says why)")


def summary(values: pd.Series) -> str:
    """mean ± sd over the replicates (sd: the sample's, n - 1); one value alone has no sd."""
    if len(values) < 2:
        return f"{values.mean():.6g}"
    return f"{values.mean():.6g} ± {values.std(ddof=1):.2g}"


def unjudged(*samples: pd.Series) -> str | None:
    """Why samples cannot be judged (one of them is a single value, or none of them spreads), or None."""
    if any(len(sample) < 2 for sample in samples):
        return "spread unknown (n = 1): not judged"
    if all(no_spread(sample) for sample in samples):
        return "no spread: not judged"
    return None


def verdict(group: pd.Series, baseline: pd.Series) -> tuple[float, str]:
    """Welch's two-sided t-test of the two groups' means: its p-value, and what it says at ``ALPHA``."""
    if (why := unjudged(group, baseline)) is not None:
        return math.nan, why
    p = float(stats.ttest_ind(group, baseline, equal_var=False).pvalue)
    return p, "beyond noise" if p < ALPHA else "within noise"


def paired_verdict(differences: pd.Series) -> tuple[float, str]:
    """A paired t-test of the codes' metric less the pixels', replicate by replicate."""
    if (why := unjudged(differences)) is not None:
        return math.nan, why
    p = float(stats.ttest_1samp(differences, 0.0).pvalue)
    better = "the codes" if differences.mean() > 0 else "the pixels"
    return p, f"{better} beyond noise" if p < ALPHA else "within noise"


def compare_with(group: Group, baseline: Group, metrics: list[str]) -> pd.DataFrame:
    """One row per metric: the group's and the baseline's mean ± sd, the difference, p and the verdict."""
    rows = []
    for metric in metrics:
        ours, theirs = group.runs[metric], baseline.runs[metric]
        if ours.isna().all() or theirs.isna().all() or metric.startswith(PIXEL_PREFIX):
            continue  # not measured in one of the two (embed.manifold off), or the pixels' (paired below)
        p, said = verdict(ours, theirs)
        rows.append({"metric": metric, f"this (n={group.n})": summary(ours), f"baseline (n={baseline.n})":
                     summary(theirs), "difference": f"{ours.mean() - theirs.mean():+.3g}",
                     "p (Welch)": "" if math.isnan(p) else f"{p:.2g}", "verdict": said})
    return pd.DataFrame(rows)


def codes_against_pixels(group: Group, metrics: list[str]) -> pd.DataFrame:
    """Each clustering metric of the codes against the pixels' through the same steps with the same
    seeds, replicate by replicate: a paired t-test of the differences."""
    rows = []
    for metric in metrics:
        pixels = PIXEL_PREFIX + metric
        if pixels not in metrics or group.runs[metric].isna().all():
            continue
        differences = group.runs[metric] - group.runs[pixels]
        p, said = paired_verdict(differences)
        rows.append({"metric": metric, "codes": summary(group.runs[metric]),
                     "worst seed": f"{group.runs[metric].min():.4g}", "pixels": summary(group.runs[pixels]),
                     "codes - pixels": summary(differences), "p (paired t)": "" if math.isnan(p) else f"{p:.2g}",
                     "verdict": said})
    return pd.DataFrame(rows)


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


def committed_params(rev: str = "HEAD") -> dict[str, object]:
    """The params.yaml committed at ``rev``, flat: a plain `dvc exp run -S ...` rewrites the workspace's,
    and the baseline is the committed configuration, not the last experiment's."""
    shown = subprocess.run(["git", "show", f"{rev}:params.yaml"], capture_output=True, text=True)
    if shown.returncode != 0:
        said = (shown.stderr.strip().splitlines() or ["git failed"])[0]
        where = "run it in the project's git checkout" if rev == "HEAD" else f"is {rev} a commit of this repository?"
        raise UserError(f"cannot read params.yaml at {rev} ({said}): {where}")
    return flat_params(shown.stdout)


def exp_show_rows(revs: list[str] | None = None) -> list[dict]:
    """dvc.api.exp_show's rows: of HEAD's experiments, or of each commit in ``revs``."""
    import dvc.api  # here: slow to import

    try:
        return dvc.api.exp_show(revs=revs)
    except Exception as error:  # not a DVC repository, no commit yet, an unknown rev...: dvc's own errors vary
        raise UserError(f"dvc could not list the experiments{f' of {revs[0]}' if revs and len(revs) == 1 else ''}: "
                        f"{first_line(error)}") from None


def experiment_baselines() -> list[str]:
    """Every commit that has experiments (DVC keeps them as refs/exps/<sha[:2]>/<sha[2:]>/<name>), and
    HEAD: reading only these is what makes ``--all-commits`` fast on a long history."""
    listed = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], capture_output=True, text=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    if listed.returncode != 0 or head.returncode != 0:
        raise UserError("git could not list the experiments' commits: run it in the project's git checkout")
    commits = {head.stdout.strip()}
    for ref in listed.stdout.split():
        parts = ref.split("/")
        if len(parts) == 5 and len(parts[2]) == 2:  # not refs/exps/exec/... (DVC's runs under way)
            commits.add(parts[2] + parts[3])
    # Newest first, as DVC lists one commit's experiments: where two commits hold an experiment of
    # the same params and seed, the newer counts.
    dated = subprocess.run(["git", "show", "-s", "--format=%ct %H", *commits], capture_output=True, text=True)
    if dated.returncode != 0:
        raise UserError("git could not date the experiments' commits: is the repository complete (no shallow clone)?")
    return [sha for _, sha in sorted((line.split() for line in dated.stdout.splitlines()), reverse=True)]


def load_groups(metrics: str | None, baseline_name: str | set[str] | None, params: dict[str, object] | None = None,
                rows: list[dict] | None = None, require_baseline: bool = True, revs: list[str] | None = None,
                names: set[str] | None = None) -> tuple[list[Group], Group | None, list[str], int]:
    """The experiments DVC knows (or ``rows``, as dvc.api.exp_show gives them) as replicate groups,
    the baseline among them (``require_baseline=False``: None), the metrics compared, and how many
    experiments were left out as still queued or running. ``metrics``: a regular expression of the
    metrics compared (None: the headline metrics); ``params``: the committed ones, flat; ``revs``:
    the commits whose experiments are read (None: HEAD's); ``names``: only these experiments."""
    params = committed_params(revs[0] if revs and len(revs) == 1 else "HEAD") if params is None else params
    metrics = headline_pattern() if metrics is None else metrics
    rows = exp_show_rows(revs) if rows is None else rows
    found = experiments_table(rows, set(params), metrics, names)
    compared = metric_columns(found.table, set(params))
    if not compared:
        raise UserError(f"no metric of the experiments matches {metrics!r}")
    groups = group_replicates(found.table, set(params), found.failed)
    check_metrics(groups, compared)
    baseline = find_baseline(groups, params, baseline_name) if require_baseline else None
    return groups, baseline, compared, found.not_done


def render(frame: pd.DataFrame, markdown: bool) -> str:
    return frame.to_markdown(index=False) if markdown else frame.to_string(index=False)


def report(groups: list[Group], baseline: Group, metrics: list[str], markdown: bool, not_done: int = 0,
           missing: list[str] | None = None) -> str:
    heading = "### " if markdown else ""
    lines = [f"{len(groups)} configuration(s); replicates differ only in seeds. Verdicts: Welch's t-test, two-sided, "
             f"at {ALPHA}, one per metric (so about 1 in 20 comparisons of equal configurations reads 'beyond "
             f"noise' by chance); a group of one seed is not judged.", ""]
    if not_done:
        lines += [f"Left out: {not_done} experiment(s) still queued or running (dvc queue status).", ""]
    if missing:
        lines += [f"Missing: {len(missing)} planned experiment(s) not found finished (not run, not pushed, or "
                  f"failed): {', '.join(missing)}. Their groups are smaller than planned.", ""]
    for group in [baseline, *(g for g in groups if g is not baseline)]:
        names = ", ".join(map(str, group.runs["Experiment"]))
        lines.append(f"{heading}{group.label(baseline)}: n = {group.n} ({names})")
        if group.failed:
            lines.append(f"Failed, left out: {', '.join(group.failed)} (dvc queue logs NAME says why).")
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


def add_arguments(parser: argparse.ArgumentParser, revisions: bool = True) -> None:
    """What make compare and the sweep's gather share: which experiments, which baseline, which metrics."""
    parser.add_argument("--metrics", help="regular expression of the metrics compared (default: the headline "
                                          "metrics, mnist_ae/headline.py)")
    parser.add_argument("--baseline", help="an experiment whose group is the baseline, or a sweep file (its "
                                           "experiments' group); default: the committed params.yaml's")
    parser.add_argument("--md", action="store_true", help="Markdown tables")
    if not revisions:
        return
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--rev", help="read the experiments of this commit (default: HEAD's)")
    where.add_argument("--all-commits", action="store_true", help="read the experiments of every commit that has some")


def baseline_names(baseline: str | None, extra: tuple[str, ...] = (), seeds: int | None = None
                   ) -> str | set[str] | None:
    """``--baseline`` as find_baseline takes it: an experiment's name, or a sweep file's names."""
    if baseline is not None and baseline.endswith((".yaml", ".yml")):
        return {planned.name for planned in load_plan(baseline, extra, seeds).experiments}
    return baseline


def with_baseline(names: set[str], baseline: str | set[str] | None) -> set[str]:
    """A sweep's experiment names, and the baseline's among them."""
    return names | (baseline if isinstance(baseline, set) else {baseline} if baseline else set())


def pick_baseline(groups: list[Group], params: dict[str, object], named: str | set[str] | None,
                  plan: Plan) -> Group:
    """The group named; without a name, the committed params.yaml's, else the plan's first configuration's."""
    try:
        return find_baseline(groups, params, named)
    except UserError:
        if named is not None:
            raise
    first = plan.experiments[0].configuration
    return find_baseline(groups, params, {p.name for p in plan.experiments if p.configuration == first})
