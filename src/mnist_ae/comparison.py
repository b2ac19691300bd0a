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

import json
import math
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from .core.errors import UserError, first_line

# The defaults' spread over seeds (make noise-floor): committed, not a DVC metric, which would be a
# column of every dvc exp show.
NOISE_FLOOR = Path("metrics/noise_floor.json")
ALPHA = 0.05  # the test's level: "beyond noise" where Welch's two-sided p-value is below it
# Where a pixel baseline sits beside the codes' metric of the same name: the codes beat the pixels
# (or not) over the same replicates, a paired comparison.
PIXEL_PREFIX = "pixel_"
# Rows whose State says they are not done: left out, and counted, so a partial group is not taken for a whole.
NOT_DONE = ("Queued", "Running")
DONE = (None, "Success")  # dvc's State of a finished experiment (None: a commit or the workspace)
# The dependency columns of exp_show that are the pipeline's code: replicates run on other code are
# no replicates, and the report says so.
CODE = re.compile(r"^(src|stages)/|^requirements\.lock$")


class NoExperiments(UserError):
    """Nothing finished to compare (``make noise-floor`` then runs what is missing)."""


def floor_sigmas(n: int) -> float:
    """How many of the floor's standard deviations a change between two single runs must exceed to be
    beyond noise: the two-sided 95 % point of Student's t with the floor's n - 1 degrees of freedom
    (its sd is itself estimated from n runs), times sqrt(2) (a difference of two runs)."""
    return float(stats.t.ppf(0.975, n - 1)) * math.sqrt(2)


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


def experiments_table(rows: list[dict], param_names: set[str], metric_pattern: str) -> tuple[pd.DataFrame, int]:
    """dvc.api.exp_show's rows as a table of finished experiments: their params, the hashes of the
    code they ran, and the metrics whose names match ``metric_pattern`` (make exp-show's headline
    columns); and how many rows were left out as not done. The workspace row is left out (it is the
    last run, or a commit's outputs), and so is any row that repeats another's params, seeds
    included: a replicate counts once, the newest (DVC lists a commit's experiments newest first,
    the commit itself before them)."""
    pattern = re.compile(metric_pattern)
    kept, not_done = [], 0
    for row in sorted(rows, key=lambda row: row.get("typ") == "baseline"):  # the commit last: the oldest
        if row.get("rev") == "workspace" or row.get("State") not in DONE:
            not_done += row.get("State") in NOT_DONE
            continue
        record = {"Experiment": row.get("Experiment") or row.get("rev")}
        record |= {name: _hashable(row.get(name)) for name in sorted(param_names)}
        record["code"] = repr(sorted((name, value) for name, value in row.items() if CODE.search(name)))
        record |= {name: value for name, value in row.items() if pattern.fullmatch(name)
                   and name not in param_names and isinstance(value, int | float)}
        kept.append(record)
    if not kept:
        raise NoExperiments("no finished experiments to compare: run some first (dvc exp run, or dvc queue start), "
                            "then make compare")
    table = pd.DataFrame(kept)
    return table.drop_duplicates(subset=sorted(param_names), keep="first").reset_index(drop=True), not_done


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


def group_replicates(table: pd.DataFrame, param_names: set[str]) -> list[Group]:
    """Experiments whose params are equal but for seeds, as groups; in the order first seen."""
    config = sorted(name for name in param_names if not is_seed(name))
    keys = table[config].apply(lambda row: repr(tuple(row)), axis=1)
    groups = []
    for key in dict.fromkeys(keys):
        runs = table[keys == key]
        first = runs.iloc[0]
        groups.append(Group({name: getattr(first[name], "item", lambda v=first[name]: v)() for name in config},
                            runs.reset_index(drop=True)))
    return groups


def find_baseline(groups: list[Group], params: dict[str, object], name: str | None) -> Group:
    """The group holding experiment ``name``, or, without a name, the group with ``params`` (the
    committed params.yaml, seeds aside)."""
    if name is not None:
        for group in groups:
            if name in set(group.runs["Experiment"]):
                return group
        known = sorted(str(n) for group in groups for n in group.runs["Experiment"])
        raise UserError(f"--baseline {name}: no such experiment; there are {', '.join(known)}")
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


def verdict(group: pd.Series, baseline: pd.Series) -> tuple[float, str]:
    """Welch's two-sided t-test of the two groups' means: its p-value, and what it says at ``ALPHA``."""
    if len(group) < 2 or len(baseline) < 2:
        return math.nan, "spread unknown (n = 1): not judged"
    if no_spread(group) and no_spread(baseline):
        return math.nan, "no spread in either group: not judged"
    p = float(stats.ttest_ind(group, baseline, equal_var=False).pvalue)
    return p, "beyond noise" if p < ALPHA else "within noise"


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
        if len(differences) < 2:
            p, said = math.nan, "spread unknown (n = 1): not judged"
        elif no_spread(differences):
            p, said = math.nan, "no spread: not judged"
        else:
            p = float(stats.ttest_1samp(differences, 0.0).pvalue)
            better = "the codes" if differences.mean() > 0 else "the pixels"
            said = f"{better} beyond noise" if p < ALPHA else "within noise"
        rows.append({"metric": metric, "codes": summary(group.runs[metric]), "pixels": summary(group.runs[pixels]),
                     "codes - pixels": summary(differences), "p (paired t)": "" if math.isnan(p) else f"{p:.2g}",
                     "verdict": said})
    return pd.DataFrame(rows)


def floor_of(group: Group, metrics: list[str]) -> dict[str, dict[str, float]]:
    """The spread of each metric over ``group``'s replicates: what the noise floor file holds."""
    if group.n < 2:
        raise UserError(f"the noise floor needs 2 replicates or more of the defaults; there is {group.n}")
    return {metric: {"n": group.n, "mean": round(float(group.runs[metric].mean()), 6),
                     "sd": round(float(group.runs[metric].std(ddof=1)), 6),
                     "min": float(group.runs[metric].min()), "max": float(group.runs[metric].max())}
            for metric in metrics}


def against_floor(changes: dict[str, tuple[float | None, float | None]], floor: dict[str, dict[str, float]],
                  base: str = "main") -> pd.DataFrame:
    """Each metric's value at ``base`` and now, the change and the floor's sd, flagged where the change
    exceeds ``floor_sigmas`` of them. ``changes``: metric -> (its value at ``base``, now); metrics outside the
    floor are left out."""
    rows = []
    for metric, (old, new) in changes.items():
        if metric not in floor:
            continue
        sd = floor[metric]["sd"]
        change = None if old is None or new is None else new - old
        if change is None:
            flag = "new" if old is None else "removed"
        else:
            flag = "**beyond noise**" if abs(change) > floor_sigmas(floor[metric]["n"]) * sd else "within noise"
        rows.append({"metric": metric, base: old, "this branch": new,
                     "change": "" if change is None else f"{change:+.3g}",
                     f"seed sd (n={floor[metric]['n']})": f"{sd:.2g}", "verdict": flag})
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
