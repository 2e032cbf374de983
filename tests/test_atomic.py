"""Atomic outputs: a directory is replaced whole; what killed writers left is deleted, a live writer's never."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rapids_engage.atomic import (OLD_PREFIX, remove_stale_partials, replace_dir, staged_dir, staging_dir, write_file,
                                 write_text)


def _dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout)


def test_replace_dir_swaps_whole_directories(tmp_path):
    final = tmp_path / "models"
    for run in ("first", "second"):
        with staged_dir(final) as tmp:
            (tmp / "like.json").write_text(run)
            replace_dir(tmp, final)
        assert (final / "like.json").read_text() == run and not tmp.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]


def test_a_failed_stage_leaves_the_old_directory(tmp_path):
    final = tmp_path / "models"
    final.mkdir()
    (final / "like.json").write_text("old")
    with pytest.raises(RuntimeError), staged_dir(final) as tmp:
        (tmp / "like.json").write_text("half")
        raise RuntimeError("killed mid-run")
    assert (final / "like.json").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["models"]


def test_staging_deletes_what_killed_writers_left_never_a_live_one(tmp_path):
    final = tmp_path / "models"
    final.mkdir()
    dead = tmp_path / f".tmp-models-{_dead_pid()}"
    live = tmp_path / f".tmp-models-{os.getppid()}"  # another running process's stage
    old = tmp_path / f"{OLD_PREFIX}models-0badc0de"  # killed between the two renames of a replace
    for d in (dead, live, old):
        d.mkdir()
    ours = staging_dir(final)
    assert ours.parent == tmp_path and ours.name.startswith(".tmp-models-") and ours.name.endswith(f"-{os.getpid()}")
    assert not dead.exists() and not old.exists() and live.exists()


def test_half_written_files_of_dead_writers_go(tmp_path):
    write_text(tmp_path / "a" / "report.json", "{}")
    dead = tmp_path / "a" / f".report.json.{_dead_pid()}.part"
    live = tmp_path / "a" / f".report.json.{os.getppid()}.part"
    dead.write_text("{")
    live.write_text("{")
    assert remove_stale_partials(tmp_path) == 1
    assert not dead.exists() and live.exists() and (tmp_path / "a" / "report.json").read_text() == "{}"


def test_a_replace_killed_between_its_two_renames_keeps_the_old_directory(tmp_path, monkeypatch):
    """The old directory is renamed away, never deleted, before the new one takes its place: a run
    killed there leaves it whole under OLD_PREFIX (and the new one staged), not nothing."""
    import rapids_engage.atomic as atomic

    final = tmp_path / "models"
    final.mkdir()
    (final / "like.json").write_text("old")
    tmp = staging_dir(final)
    (tmp / "like.json").write_text("new")
    real = os.replace

    def killed(src, dst):
        if str(src) == str(tmp):
            raise KeyboardInterrupt  # killed between the two renames
        real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        replace_dir(tmp, final)
    old = [p for p in tmp_path.iterdir() if p.name.startswith(f"{OLD_PREFIX}models-")]
    assert len(old) == 1 and (old[0] / "like.json").read_text() == "old"
    assert (tmp / "like.json").read_text() == "new"


def test_read_json_names_what_is_damaged(tmp_path):
    """A blank file is 'empty', bytes that are not UTF-8 are damaged too (not a UnicodeDecodeError traceback); a
    field of another type names its key (nested: with the object's key), true is no number, and the types a key
    may have are each said once; a missing file stays an OSError."""
    import re

    from rapids_engage.atomic import DamagedFile, check_fields, read_json

    f = tmp_path / "r.json"
    f.write_text("  \n")
    with pytest.raises(DamagedFile, match=r"r.json is damaged \(empty\): rerun$"):
        read_json(f, hint="rerun")
    f.write_bytes(b'{"a": "\xff\xfe"}')
    with pytest.raises(DamagedFile, match=r"r.json is damaged \(.*: not JSON, cut short or another format\)$"):
        read_json(f)
    f.write_text('{"n": true, "split": {"cutoff": "x"}, "other": [1]}')
    with pytest.raises(DamagedFile, match=re.escape("(key n is true or false, not a number)")):
        read_json(f, {"n": (int, float)})
    assert read_json(f, {"n": bool})["other"] == [1]
    data = read_json(f, {"split": dict})
    with pytest.raises(DamagedFile, match=re.escape("(key split.cutoff is a string, not a number or null)")):
        check_fields(data["split"], {"cutoff": (int, float, type(None))}, f, where="split")
    with pytest.raises(DamagedFile, match=re.escape("(other is an array, not an object)")):
        check_fields(data["other"], {}, f, where="other")
    with pytest.raises(FileNotFoundError):
        read_json(tmp_path / "nowhere.json")


def test_two_stagings_of_one_directory_in_one_process_keep_each_others(tmp_path):
    """Each staging deleted this process's others: two ingests of one output in a process removed each other's."""
    final = tmp_path / "out"
    first = staging_dir(final)
    (first / "part-0.parquet").write_text("first")
    second = staging_dir(final)
    assert first != second and (first / "part-0.parquet").read_text() == "first" and second.is_dir()


def test_two_writes_of_one_file_at_once_in_one_process_both_publish(tmp_path):
    """Both wrote `.<name>.<pid>.part`: the inner write renamed it away and the outer's rename failed."""
    path = tmp_path / ".input-digests.json"

    def outer(tmp: Path) -> None:
        tmp.write_text("outer")
        write_text(path, "inner")  # another thread's write of the same file, meanwhile

    write_file(path, outer)
    assert path.read_text() == "outer" and [p.name for p in tmp_path.iterdir()] == [path.name]
