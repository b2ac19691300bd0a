"""Shared fixtures: a small MNIST-format dataset made on the spot, so the suite needs no download, and
a throwaway copy of the project built with the real `dvc repro`. The plain helpers they use are in
helpers.py, where tests import them from."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from helpers import PROJECT, dvc, git_commit, run, small_params, write_dataset
from mnist_ae.core import paths
from mnist_ae.training.cpu import configure_process

configure_process()  # the train stage's kernel setup, before the suite's first matrix product


@pytest.fixture
def small_dataset(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A folder with four small IDX files, and their MD5s."""
    folder = tmp_path / "idx"
    return folder, write_dataset(folder)


@pytest.fixture(scope="session")
def built_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git + DVC copy of the project, the small dataset placed by hand (as an offline user would),
    after one full `dvc repro`. Tests that change it work on a copy (``project_copy``)."""
    root = tmp_path_factory.mktemp("built") / "project"
    root.mkdir()
    for name in ("dvc.yaml", ".dvcignore", ".gitignore", "requirements.lock"):
        shutil.copy(PROJECT / name, root / name)
    for name in ("stages", "src"):
        shutil.copytree(PROJECT / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    md5 = write_dataset(root / paths.CUSTOM)  # where a user puts a custom dataset
    shutil.copy(PROJECT / "data" / ".gitignore", root / "data" / ".gitignore")  # DVC's outputs stay out of git
    shutil.copy(PROJECT / "data" / "custom" / "README.md", root / "data" / "custom" / "README.md")
    (root / "params.yaml").write_text(yaml.safe_dump(small_params(md5), sort_keys=False))
    run(["git", "init", "-q"], root)
    dvc("init", "-q", cwd=root)
    shutil.copy(PROJECT / ".dvc" / "config", root / ".dvc" / "config")  # the offline plots page, no analytics
    shutil.copytree(PROJECT / ".dvc" / "plots", root / ".dvc" / "plots")  # custom plot templates
    git_commit(root, "the project, before its first run")  # as in a clone: dvclive and `dvc exp` need a commit
    dvc("repro", cwd=root)
    git_commit(root, "first run")
    return root


@pytest.fixture
def project_copy(built_project: Path, tmp_path: Path) -> Path:
    """A private copy of the built project, free to break."""
    return Path(shutil.copytree(built_project, tmp_path / "project", symlinks=True))
