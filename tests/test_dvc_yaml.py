"""dvc.yaml must list, for each stage, exactly the package folders its script imports from (directly
or not): a missing one means DVC would not rerun the stage when that code changes, an extra one that
it would rerun for a change that cannot affect it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[1]
SRC = PROJECT / "src"


def _file(module: str) -> Path | None:
    """The source file of a module of the package, or None if the name is not one (a function, say)."""
    path = SRC.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _imported_modules(path: Path, module: str) -> set[str]:
    """The package's modules that ``path`` (the file of ``module``) imports, and their packages."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            target = ".".join(part for part in (base, node.module) if part)
            names = [target, *(f"{target}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            found |= {".".join(parts[:i]) for i in range(2, len(parts) + 1) if parts[0] == "mnist_ae"}
    return {name for name in found if _file(name) is not None}


def _folders(script: Path) -> set[str]:
    seen: set[str] = set()
    pending = list(_imported_modules(script, "__main__"))
    while pending:
        module = pending.pop()
        if module not in seen:
            seen.add(module)
            pending += _imported_modules(_file(module), module)
    return {f"src/mnist_ae/{module.split('.')[1]}" for module in seen}


STAGES = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_are_the_folders_it_imports(stage: str) -> None:
    listed = {dep for dep in STAGES[stage]["deps"] if dep.startswith("src/")}
    assert listed == _folders(PROJECT / "stages" / f"{stage}.py")
    assert f"stages/{stage}.py" in STAGES[stage]["deps"]


def test_the_import_closure_follows_relative_imports() -> None:
    """The checker itself: the train stage reaches models/ only through relative imports inside training/."""
    assert {"mnist_ae.models.base", "mnist_ae.models.mlp"} <= _imported_modules(
        SRC / "mnist_ae" / "training" / "fast_step.py", "mnist_ae.training.fast_step")
    assert _folders(PROJECT / "stages" / "prepare.py") == {"src/mnist_ae/core", "src/mnist_ae/data"}
