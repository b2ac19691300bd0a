"""dvc.yaml must list, for each stage, exactly the src modules its script imports (directly or not):
a missing one means DVC would not rerun the stage when that code changes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[1]
PACKAGE = PROJECT / "src" / "mnist_ae"


def _imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level == 1 or node.module == "mnist_ae":  # from . import x / from mnist_ae import x
            modules |= {node.module.split(".")[0]} if node.module and node.level else {a.name for a in node.names}
        elif node.module and node.module.startswith("mnist_ae."):
            modules.add(node.module.split(".")[1])
    return modules


def _closure(script: Path) -> set[str]:
    seen: set[str] = set()
    pending = list(_imported_modules(script))
    while pending:
        module = pending.pop()
        if module not in seen:
            seen.add(module)
            pending += _imported_modules(PACKAGE / f"{module}.py")
    return {f"src/mnist_ae/{module}.py" for module in seen}


STAGES = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_are_the_modules_it_imports(stage: str) -> None:
    listed = {dep for dep in STAGES[stage]["deps"] if dep.startswith("src/")}
    assert listed == _closure(PROJECT / "stages" / f"{stage}.py")
    assert f"stages/{stage}.py" in STAGES[stage]["deps"]
