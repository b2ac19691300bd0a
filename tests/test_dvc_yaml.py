"""dvc.yaml must list, for each stage, exactly the package code its script imports (directly or not):
a missing file means DVC would not rerun the stage when that code changes, an extra one that it would
rerun for a change that cannot affect it. Per part of the package (a folder, or a module at its top)
dvc.yaml lists either the whole folder or exactly the files of it the stage imports: every stage
imports the params schema, and with it a few files of other parts (the model families' sections),
which must not make it rerun when the rest of those parts changes."""

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


def _closure(script: Path) -> set[str]:
    """Every module of the package the script imports, directly or not."""
    seen: set[str] = set()
    pending = list(_imported_modules(script, "__main__"))
    while pending:
        module = pending.pop()
        if module not in seen:
            seen.add(module)
            pending += _imported_modules(_file(module), module)
    return seen


def _parts(modules: set[str]) -> dict[str, set[str]]:
    """The modules' files, relative to the project, by part of the package (``src/mnist_ae/<part>``)."""
    parts: dict[str, set[str]] = {}
    for module in modules:
        file = _file(module).relative_to(PROJECT).as_posix()
        part = "/".join(file.split("/")[:3])  # src/mnist_ae/<folder>, or src/mnist_ae/<module>.py
        parts.setdefault(part, set()).add(file)
    return parts


def _listed_code(deps: list[str]) -> dict[str, set[str]]:
    code = [dep for dep in deps if dep.startswith("src/")]
    return {part: {dep for dep in code if dep == part or dep.startswith(f"{part}/")}
            for part in {"/".join(dep.split("/")[:3]) for dep in code}}
STAGES = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_are_the_code_it_imports(stage: str) -> None:
    imported = _parts(_closure(PROJECT / "stages" / f"{stage}.py"))
    listed = _listed_code(STAGES[stage]["deps"])
    assert sorted(listed) == sorted(imported), "parts of the package"
    for part, files in imported.items():
        whole = {part} if not part.endswith(".py") else files
        assert listed[part] in (whole, files), f"{part}: list the folder, or exactly {sorted(files)}"
    assert f"stages/{stage}.py" in STAGES[stage]["deps"]


def test_the_import_closure_follows_relative_imports() -> None:
    """The checker itself: the train stage reaches models/ only through relative imports inside training/."""
    assert {"mnist_ae.models", "mnist_ae.models.mlp"} <= _imported_modules(
        SRC / "mnist_ae" / "training" / "fast_step.py", "mnist_ae.training.fast_step")
    prepare = _parts(_closure(PROJECT / "stages" / "prepare.py"))
    assert {"src/mnist_ae/core", "src/mnist_ae/data", "src/mnist_ae/params.py"} <= set(prepare)
    assert prepare["src/mnist_ae/models"] == {"src/mnist_ae/models/__init__.py", "src/mnist_ae/models/sections.py"}


def _dvc_yaml_paths() -> set[str]:
    """Every data or metrics path dvc.yaml's stages read or write (their code and lock file aside)."""
    stages = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]
    found = set()
    for stage in stages.values():
        for key in ("deps", "outs", "metrics", "plots"):
            for entry in stage.get(key, []):
                path = entry if isinstance(entry, str) else next(iter(entry))
                if not path.startswith(("src/", "stages/", "requirements.lock")):
                    found.add(path)
    return found


def test_paths_py_and_dvc_yaml_name_the_same_paths() -> None:
    """core/paths.py is where the stages read and write, dvc.yaml what DVC tracks: each path of one
    is in the other (a file of paths.py inside a folder dvc.yaml tracks whole counts), so a path
    changed in one place alone fails here."""
    from mnist_ae.core import paths

    declared = {str(value) for name, value in vars(paths).items() if isinstance(value, Path) and name.isupper()}
    tracked = _dvc_yaml_paths()
    assert tracked <= declared, f"dvc.yaml tracks paths that core/paths.py does not name: {tracked - declared}"
    untracked = {path for path in declared - tracked if not any(path.startswith(f"{folder}/") for folder in tracked)}
    assert untracked == {str(paths.METRICS)}, f"core/paths.py names paths no stage of dvc.yaml tracks: {untracked}"
