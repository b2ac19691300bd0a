"""The noise floor: the defaults' spread over seeds (``make noise-floor`` writes it), the yardstick
CI's pull-request summary sets every change beside. It is checked on load like any stage input: a
hand-edited or damaged floor would judge every change wrongly, and quietly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
from pydantic import Field, ValidationError, model_validator
from scipy import stats

from .core.errors import UserError
from .core.schema import Strict

NOISE_FLOOR = Path("metrics/noise_floor.json")  # committed; not a DVC metric (it would be a column of every exp show)
REMAKE = "remake it with make noise-floor"
LEVEL = 0.975  # the two-sided 95 % point: a change beyond it is "beyond noise"


class Spread(Strict):
    n: int = Field(ge=2)
    mean: float = Field(allow_inf_nan=False)
    sd: float = Field(ge=0, allow_inf_nan=False)
    min: float = Field(allow_inf_nan=False)
    max: float = Field(allow_inf_nan=False)

    @model_validator(mode="after")
    def _mean_within_its_range(self) -> Spread:
        if not self.min <= self.mean <= self.max:
            raise ValueError(f"mean {self.mean} is outside [min, max] = [{self.min}, {self.max}]")
        return self


class Floor(Strict):
    seeds: list[int] = Field(min_length=2)
    overrides: list[str]
    metrics: dict[str, Spread] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_n_for_every_metric(self) -> Floor:
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds {self.seeds} repeat a seed")
        for name, spread in self.metrics.items():
            if spread.n != len(self.seeds):
                raise ValueError(f"metrics.{name}.n is {spread.n}, but the floor has {len(self.seeds)} seeds")
        return self


def load_floor(path: Path = NOISE_FLOOR) -> Floor:
    """The floor at ``path``, checked: a problem is one line that names the field."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path} not found: make noise-floor writes it") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path} is not JSON ({error}): {REMAKE}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: the file: not a JSON object: {REMAKE}")
    return checked_floor(raw, path)


def checked_floor(content: dict, path: Path = NOISE_FLOOR) -> Floor:
    """``content`` as a floor, checked as ``load_floor`` checks the file: what make noise-floor
    validates before it writes, so that it never leaves a floor CI would refuse."""
    try:
        return Floor.model_validate(content)
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(map(str, problem["loc"])) or "the file"
        message = "missing" if problem["type"] == "missing" else problem["msg"].removeprefix("Value error, ")
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        raise UserError(f"{path}: {where}: {message}{more}: {REMAKE}") from None


def floor_sigmas(n: int) -> float:
    """How many of the floor's standard deviations a change between two single runs must exceed to be
    beyond noise: the two-sided 95 % point of Student's t with the floor's n - 1 degrees of freedom
    (its sd is itself estimated from n runs), times sqrt(2) (a difference of two runs)."""
    return float(stats.t.ppf(LEVEL, n - 1)) * math.sqrt(2)


def spread_of(runs: pd.DataFrame, metrics: list[str]) -> dict[str, dict[str, float]]:
    """Each metric's n, mean, sd, min and max over ``runs`` (one row a replicate): the floor's entries."""
    if len(runs) < 2:
        raise UserError(f"the noise floor needs 2 replicates or more of the defaults; there is {len(runs)}")
    return {metric: {"n": len(runs), "mean": round(float(runs[metric].mean()), 6),
                     "sd": round(float(runs[metric].std(ddof=1)), 6),
                     "min": round(float(runs[metric].min()), 6), "max": round(float(runs[metric].max()), 6)}
            for metric in metrics}


def against_floor(changes: dict[str, tuple[float | None, float | None]], floor: Floor,
                  base: str = "main") -> pd.DataFrame:
    """Each metric's value at ``base`` and now, the change and the floor's sd, flagged where the change
    exceeds ``floor_sigmas`` of them. ``changes``: metric -> (its value at ``base``, now); metrics outside the
    floor are left out."""
    rows = []
    for metric, (old, new) in changes.items():
        if metric not in floor.metrics:
            continue
        spread = floor.metrics[metric]
        change = new - old if _number(old) and _number(new) else None
        if change is None:
            flag = "new" if old is None else "removed" if new is None else "not a number"
        else:
            flag = "**beyond noise**" if abs(change) > floor_sigmas(spread.n) * spread.sd else "within noise"
        rows.append({"metric": metric, base: old, "this branch": new,
                     "change": "" if change is None else f"{change:+.3g}",
                     f"seed sd (n={spread.n})": f"{spread.sd:.2g}", "verdict": flag})
    return pd.DataFrame(rows)


def _number(value: object) -> bool:
    """dvc metrics diff passes a metric file's string or NaN through as it reads it."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
