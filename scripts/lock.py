"""Write requirements.lock and requirements-dev.lock: the exact versions in this environment that the
project needs, as `pip freeze` reports them, so results can be rerun on the same releases.

Frozen rather than resolved: a resolver (pip-compile, `pip install --dry-run`) picks the newest
releases that pyproject.toml's ranges allow on the day it runs, which need not be the ones that
produced the committed dvc.lock and metrics (torch, for one, has newer releases than the local wheels
used here). Only the packages reachable from pyproject.toml's requirements are kept, so whatever else
is installed in the venv stays out. Run with the project's venv active: `python scripts/lock.py`.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# torch's CUDA runtime: torch's own metadata pins these (most with ==) where its CUDA build is
# installed, and leaving them out lets a CPU-only machine put torch's CPU build (same version,
# `2.14.1+cpu` satisfies `torch==2.14.1`) in first without pulling several GB it would not use.
GPU_RUNTIME = ("nvidia-", "cuda-", "triton")  # the names of torch's own requirements left out

HEADER = """\
# {what}: `pip freeze` of the environment that produced the committed dvc.lock and metrics/,
# kept to the packages {scope} needs (scripts/lock.py writes it). Frozen, not resolved:
# a resolver such as pip-compile picks the newest releases pyproject.toml's ranges allow on the day it
# runs (torch among them), not the ones behind the results. torch's CUDA runtime (nvidia-*, cuda-*,
# triton) is left to torch's own pins. `make install` installs it.
"""


def closure(requirements: list[str]) -> set[str]:
    """Canonical names of the installed distributions ``requirements`` need, transitively."""
    found: set[str] = set()
    pending = [(Requirement(text), "") for text in requirements]
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        dist = metadata.distribution(requirement.name)
        key = f"{name}[{','.join(sorted(requirement.extras))}]"
        if key in found:
            continue
        found.add(key)
        for text in dist.requires or []:
            needed = Requirement(text)
            if name == "torch" and canonicalize_name(needed.name).startswith(GPU_RUNTIME):
                continue
            for asked in requirement.extras or {""}:
                pending.append((needed, asked))
    return {key.split("[")[0] for key in found}


def main() -> None:
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    runtime = closure(project["dependencies"])
    dev = closure(project["optional-dependencies"]["dev"]) - runtime
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--all", "--exclude-editable"],
                            capture_output=True, text=True, check=True).stdout.splitlines()
    pins = {canonicalize_name(line.split("==")[0]): line for line in frozen if "==" in line}
    for path, names, what, scope in (("requirements.lock", runtime, "Runtime versions", "the pipeline"),
                                     ("requirements-dev.lock", dev, "Test and lint tools' versions",
                                      "the dev extra (tests, lint) alone")):
        missing = sorted(names - pins.keys())
        if missing:
            sys.exit(f"error: not installed as a released version: {', '.join(missing)}")
        lines = sorted((pins[name] for name in names), key=str.lower)
        Path(path).write_text(HEADER.format(what=what, scope=scope) + "\n".join(lines) + "\n")
        print(f"{path}: {len(lines)} packages")


if __name__ == "__main__":
    main()
