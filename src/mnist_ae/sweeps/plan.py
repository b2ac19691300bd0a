"""A sweep as a plan: one file (``sweeps/*.yaml``) that expands to a numbered list of experiments,
the same list on every machine, so that a job array's job N runs experiment N and nothing else.

A sweep file holds ``-S`` arguments exactly as ``dvc exp run --queue`` takes them (a comma list or
``range()`` sweeps a param) and a number of replicate seeds (``train.seed`` 0..N-1). DVC's own
expansion (``dvc.utils.hydra.get_hydra_sweeps``) orders the product, so the plan is the queue's.
Each experiment's name is derived from its overrides (as written, in any order) and seed alone,
never from a clock, a counter or the sweep: two machines, a job and its retry, or two sweeps that
write a configuration alike give it the same name, so an experiment done (pushed, or finished in
the local queue) is never run twice. (``train.lr=1e-3`` and ``train.lr=0.001`` are two names for
one configuration: ``make compare`` still groups them as one, by their params.)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, ValidationError

from ..core.errors import UserError, first_line
from ..core.schema import Strict, read_yaml

SEED = "train.seed"  # the replicate seed: every seeded step follows it (params.py, replicate_embed)
# An experiment's name: a git ref's last part, never all hex (DVC would read it as a commit).
NAME_PREFIX = "exp"


class SweepFile(Strict):
    # -S arguments as dvc exp run takes them: "model.code_dim=8,16" sweeps, "train.epochs=20" sets.
    params: list[str] = Field(default_factory=list)
    seeds: int = Field(ge=1, le=100)  # replicates of each configuration: train.seed 0..seeds-1
    description: str = ""


@dataclass(frozen=True)
class Planned:
    """One experiment of a plan: its index (a job array's), its name and its ``-S`` overrides."""

    index: int
    name: str
    overrides: tuple[str, ...]
    seed: int

    @property
    def configuration(self) -> tuple[str, ...]:
        """Its overrides less the seed: what its replicates share."""
        return tuple(o for o in self.overrides if not o.startswith(f"{SEED}="))

    def dvc_args(self) -> list[str]:
        """``dvc exp run``'s arguments for this experiment (the command itself left out)."""
        return ["-n", self.name, *(arg for override in self.overrides for arg in ("-S", override))]


@dataclass(frozen=True)
class Plan:
    sweep: SweepFile
    experiments: tuple[Planned, ...]
    seeds: int

    @property
    def configurations(self) -> int:
        return len({planned.configuration for planned in self.experiments})


def load_sweep(path: str | Path) -> SweepFile:
    """Read and check a sweep file: every problem in one ``UserError``."""
    path = Path(path)
    raw = read_yaml(path, "a sweep file (sweeps/*.yaml)")
    try:
        sweep = SweepFile.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'sweep'}: {e['msg']}" for e in error.errors())
        problems = " ".join(problems.split())
        raise UserError(f"{path}: {problems}") from None
    check_overrides(sweep.params, str(path))
    return sweep


def check_overrides(overrides: list[str] | tuple[str, ...], where: str) -> None:
    """Each a ``-S`` override of params.yaml, and none of the replicate seed (``seeds`` sets it)."""
    for override in overrides:
        if "=" not in override or override.startswith(("+", "~")):
            raise UserError(f"{where}: {override!r} is not a -S override of params.yaml (KEY=VALUE or KEY=A,B)")
        if override.split("=", 1)[0].strip() == SEED:
            raise UserError(f"{where}: {SEED} is the replicate seed: set seeds, not {override!r}")


def expand(sweep: SweepFile, extra: tuple[str, ...] = (), seeds: int | None = None) -> Plan:
    """The sweep's experiments in DVC's own order of the product, each configuration's seeds in turn;
    ``extra`` overrides appended (a short check: ``train.epochs=1``), ``seeds`` instead of the file's."""
    from dvc.utils.hydra import get_hydra_sweeps  # here: dvc's import is slow, and the schema is not

    check_overrides(extra, "-S")
    if seeds is not None and seeds < 1:
        raise UserError(f"--seeds {seeds}: a plan needs one seed or more")
    try:
        combinations = get_hydra_sweeps({"params.yaml": [*sweep.params, *extra]})
    except Exception as error:  # hydra's parser errors vary by type; each names the bad override
        raise UserError(f"an override of the sweep does not parse: {first_line(error)}") from None
    experiments = []
    for combination in combinations:
        configuration = tuple(combination["params.yaml"])
        digest = hashlib.sha1("\n".join(sorted(configuration)).encode()).hexdigest()[:8]
        for seed in range(sweep.seeds if seeds is None else seeds):
            experiments.append(Planned(len(experiments), f"{NAME_PREFIX}-{digest}-s{seed}",
                                       (*configuration, f"{SEED}={seed}"), seed))
    return Plan(sweep, tuple(experiments), sweep.seeds if seeds is None else seeds)


def load_plan(path: str | Path, extra: tuple[str, ...] = (), seeds: int | None = None) -> Plan:
    return expand(load_sweep(path), extra, seeds)
