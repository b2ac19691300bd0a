"""Atomic writes: what the temporary files beside an output become, and that data reaches the disk."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from helpers import child, finish
from mnist_ae.core import atomic
from mnist_ae.core.atomic import temporary_sibling, write_json


def _dead_pid() -> int:
    """The id of a process that has exited (and been reaped), so no process has it for now."""
    with child([sys.executable, "-c", "pass"]) as process:
        finish(process)
    return process.pid


def test_leftovers_of_dead_writers_are_removed(tmp_path: Path) -> None:
    final = tmp_path / "out.json"
    dead = _dead_pid()
    leftover_file = tmp_path / f".out.json.{dead}.tmp"
    leftover_file.write_text("half")
    leftover_folder = tmp_path / f".out.json.{dead}.old.tmp"  # the dvclive folder's old copy
    (leftover_folder / "plots").mkdir(parents=True)
    assert temporary_sibling(final) == tmp_path / f".out.json.{os.getpid()}.tmp"
    assert not leftover_file.exists() and not leftover_folder.exists()


def test_a_live_writers_temporary_file_is_left_alone(tmp_path: Path) -> None:
    with child([sys.executable, "-c", "import time; time.sleep(60)"]) as other:  # killed at the block's end
        theirs = tmp_path / f".out.json.{other.pid}.tmp"
        theirs.write_text("being written")
        unrelated = tmp_path / ".out.json.notapid.tmp"
        unrelated.write_text("not ours")
        write_json(tmp_path / "out.json", {"a": 1})
        assert theirs.read_text() == "being written" and unrelated.exists()
        assert json.loads((tmp_path / "out.json").read_text()) == {"a": 1}
    write_json(tmp_path / "out.json", {"a": 2})  # now that it is gone, its file is a leftover
    assert not theirs.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.json.notapid.tmp", "out.json"]


def test_data_and_rename_are_flushed_to_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced = []  # (inode, whether the output was in place yet) of each fsync
    real_fsync = os.fsync

    def fsync(descriptor: int) -> None:
        synced.append((os.fstat(descriptor).st_ino, (tmp_path / "out.json").exists()))
        real_fsync(descriptor)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    write_json(tmp_path / "out.json", {"a": 1})
    # First the file's data, before the rename (the rename keeps its inode), then the folder, after it.
    assert synced == [((tmp_path / "out.json").stat().st_ino, False), (tmp_path.stat().st_ino, True)]
