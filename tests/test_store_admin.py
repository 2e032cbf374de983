"""The ``store`` subcommand: list versions, delete old or named ones, never a version in part."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from rapids_engage.pipeline import main
from rapids_engage.store import FeatureStore
from rapids_engage.store_builds import OWNER, temporary_dirs


def _version(store: FeatureStore, name: str, rows: int) -> None:
    tmp = store.begin()
    (tmp / "train").mkdir()
    pd.DataFrame({"f": range(rows)}).to_parquet(tmp / "train" / "part.0.parquet")
    store.publish(tmp, name, {"rows": {"train": rows, "valid": 1}, "features": ["f"], "reused": None})
    time.sleep(0.01)  # distinct creation times: oldest first


@pytest.fixture
def store(tmp_path):
    store = FeatureStore(tmp_path / "store")
    for name, rows in (("aaa", 10), ("bbb", 20), ("ccc", 30), ("ddd", 40)):
        _version(store, name, rows)
    (store.version_dir("bbb") / "train" / "part.0.parquet").unlink()  # damaged
    killed = store.begin()  # a killed build's temporary directory
    (killed / OWNER).write_text(json.dumps({"host": socket.gethostname(), "pid": _dead_pid()}))
    return store


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_lists_versions_oldest_first_damaged_last(store, capsys):
    assert main(["store", str(store.path)]) == 0
    out = capsys.readouterr().out  # the listing is the command's output: stdout
    assert out.index("aaa") < out.index("ccc") < out.index("ddd") < out.index("bbb")
    assert "damaged" in out and "4 version(s)" in out and "1 temporary dir(s)" in out and "1 of killed builds" in out


def test_keep_deletes_older_and_damaged_versions(store, capsys):
    assert main(["store", str(store.path), "--keep", "1", "--dry-run"]) == 0
    assert "would delete aaa" in capsys.readouterr().out and store.versions() == ["aaa", "ccc", "ddd"]
    assert main(["store", str(store.path), "--keep", "1", "--quiet"]) == 0
    assert store.versions() == ["ddd"]
    left = sorted(p.name for p in store.path.iterdir())
    assert left[-1] == "ddd" and len(left) == 2 and left[0].startswith(".tmp-")  # the temporary dir needs --tmp
    assert main(["store", str(store.path), "--tmp", "--quiet"]) == 0
    assert [p.name for p in store.path.iterdir()] == ["ddd"]
    assert FeatureStore(store.path).manifest("ddd")["rows"]["train"] == 40


def test_delete_names_versions_and_refuses_unknown_ones(store, capsys):
    assert main(["store", str(store.path), "--delete", "ccc", "--quiet"]) == 0
    assert store.versions() == ["aaa", "ddd"]
    assert main(["store", str(store.path), "--delete", "zzz"]) == 2
    assert "store: no version zzz (have: aaa, bbb, ddd)" in capsys.readouterr().err
    assert main(["store", str(store.path / "nowhere")]) == 2


def test_versions_that_models_beside_the_store_use_are_kept_unless_forced(store, capsys):
    for run, version in (("models", "aaa"), ("other-run/models", "ccc")):  # the store's own run; a run sharing it
        models = store.path.parent / run
        models.mkdir(parents=True)
        (models / "like.meta.json").write_text(json.dumps({"target": "like", "store": {"path": str(store.path), "version": version}}))
    assert main(["store", str(store.path), "--keep", "0"]) == 0
    err = capsys.readouterr().out
    assert f"keeping aaa: the models in {store.path.parent / 'models'} use it (--force deletes it)" in err
    assert "keeping ccc" in err and "other-run" in err
    assert store.versions() == ["aaa", "ccc"]
    assert main(["store", str(store.path), "--delete", "ccc"]) == 2
    assert "store: version ccc serves the models in" in capsys.readouterr().err
    assert main(["store", str(store.path), "--delete", "ccc", "--force", "--quiet"]) == 0
    assert store.versions() == ["aaa"]


def test_a_moved_run_s_models_keep_the_version_they_are_served_from(store, capsys):
    """A run directory moved whole serves its models from its own store (their recorded store is gone):
    `--keep 0` deleted the version they need, as no model seemed to use it."""
    models = store.path.parent / "models"
    models.mkdir()
    (models / "like.meta.json").write_text(json.dumps({"target": "like", "store": {"path": "/moved/away/store", "version": "ccc"}}))
    assert main(["store", str(store.path), "--keep", "0"]) == 0
    assert f"keeping ccc: the models in {models} use it" in capsys.readouterr().out
    assert store.versions() == ["ccc"]


def test_a_run_directory_or_foreign_directories_are_never_taken_for_versions(store, capsys):
    """`store runs/demo --keep 1` (the run, not its store) once deleted the run's models, plots and store."""
    run = store.path.parent
    (run / "models").mkdir()
    (run / "plots").mkdir()
    (run / "report.json").write_text("{}")
    assert main(["store", str(run), "--keep", "1"]) == 2
    assert f"store: {run} is a run directory, not a feature store; its store is {store.path}" in capsys.readouterr().err
    assert main(["store", str(store.version_dir("aaa")), "--keep", "1"]) == 2
    assert "is a version directory; its store is" in capsys.readouterr().err
    assert (run / "models").is_dir() and store.versions() == ["aaa", "ccc", "ddd"]
    (store.path / "notes").mkdir()  # a directory of the user's in the store: listed apart, never deleted
    (store.path / "0123456789abcdef").mkdir()  # a version whose manifest is lost: damaged, deleted by --keep
    assert main(["store", str(store.path), "--keep", "3"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "not versions, left alone: notes" in out and "deleted 0123456789abcdef" in out and "deleted notes" not in out
    assert (store.path / "notes").is_dir() and not (store.path / "0123456789abcdef").exists()
    assert main(["store", str(store.path), "--keep", "3"]) == 0
    assert "nothing to delete" in capsys.readouterr().out


def test_tmp_deletes_killed_builds_and_leftovers_never_a_live_build(store, capsys):
    live = store.begin()  # this process builds in it
    elsewhere = store.begin()
    (elsewhere / OWNER).write_text(json.dumps({"host": "another-host", "pid": 1}))
    old = store.path / ".tmp-old-ccc-0badc0de"  # what a run killed while replacing a version left
    (old / "train").mkdir(parents=True)
    assert main(["store", str(store.path)]) == 0
    out = capsys.readouterr().out
    assert "4 temporary dir(s)" in out and "1 of killed builds" in out and "1 left by a replace or delete" in out
    assert "1 of builds in progress, kept" in out and "1 of another host's builds or an older release" in out
    assert main(["store", str(store.path), "--tmp", "--quiet"]) == 0
    assert sorted(temporary_dirs(store.path)) == sorted([live, elsewhere])
    assert main(["store", str(store.path), "--tmp"]) == 0
    assert "nothing to delete (1 temporary dir(s) this machine cannot check: --tmp --force)" in capsys.readouterr().out
    assert main(["store", str(store.path), "--tmp", "--force", "--quiet"]) == 0
    assert temporary_dirs(store.path) == [live]
    (live / "train").mkdir()
    pd.DataFrame({"f": range(5)}).to_parquet(live / "train" / "part.0.parquet")
    store.publish(live, "eee", {"rows": {"train": 5, "valid": 1}, "features": ["f"], "reused": None})  # no owner published
    assert OWNER not in store.manifest("eee")["files"] and not (store.version_dir("eee") / OWNER).exists()


def test_a_build_sweeps_what_killed_builds_left(store):
    from rapids_engage.features.materialize import _sweep

    live = store.begin()
    elsewhere = store.begin()  # a build on another host sharing the store: cannot be checked from here
    (elsewhere / OWNER).write_text(json.dumps({"host": "another-host", "pid": 1}))
    said = []
    _sweep(store, said.append)
    assert sorted(temporary_dirs(store.path)) == sorted([live, elsewhere])
    assert re.match(r"feature store: deleted 1 temporary dir\(s\) of killed builds \(\d+ bytes\)", said[0])  # was "0.00 GiB"
    assert "2 temporary dir(s) of builds in progress or of another host" in said[1]


def test_models_beside_a_store_of_another_name_count_only_by_their_recorded_store(tmp_path):
    """predict falls back to ``<run>/store`` only: models beside a store of another name that were trained on
    another store do not keep its versions, and a models directory is named once per version (mutation round 3)."""
    from rapids_engage.store_admin import models_using

    store = FeatureStore(tmp_path / "shared")
    models = tmp_path / "models"
    models.mkdir()
    for target, path in (("like", tmp_path / "elsewhere" / "store"), ("reply", store.path), ("quote", store.path)):
        (models / f"{target}.meta.json").write_text(json.dumps({"target": target, "store": {"path": str(path), "version": "aaa"}}))
    assert models_using(store) == {"aaa": [str(models)]}
    (models / "reply.meta.json").unlink()
    (models / "quote.meta.json").unlink()
    assert models_using(store) == {}


def test_versions_are_ordered_by_creation_not_name_and_keep_bounds(tmp_path, capsys):
    """`--keep N` keeps the N newest by creation time (version ids are hashes, in no time order); a keep above the
    number of intact versions deletes only the damaged ones, a negative one is refused; a version chosen twice
    (by --keep and by --delete, or named twice) is deleted once. The listing gives each version's features and
    what it reused."""
    store = FeatureStore(tmp_path / "store")
    for name in ("zzz", "mmm", "aaa"):
        _version(store, name, 5)
    tmp = store.begin()
    (tmp / "train").mkdir()
    pd.DataFrame({"f": range(3), "g": 1}).to_parquet(tmp / "train" / "part.0.parquet")
    store.publish(tmp, "ccc", {"rows": {"train": 3, "valid": 1}, "features": ["f", "g"], "reused": {"from": "zzz"}})
    assert main(["store", str(store.path)]) == 0
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in capsys.readouterr().out.splitlines() if "│" in line]
    rows = {r[0]: r for r in cells if r[0] in ("zzz", "mmm", "aaa", "ccc")}
    assert list(rows) == ["zzz", "mmm", "aaa", "ccc"]
    assert (rows["ccc"][4], rows["ccc"][6]) == ("2", "zzz") and (rows["aaa"][4], rows["aaa"][6]) == ("1", "—")
    assert main(["store", str(store.path), "--keep", "-1"]) == 2
    assert "store --keep must be >= 0, got -1" in capsys.readouterr().err
    assert main(["store", str(store.path), "--keep", "5"]) == 0  # one more than there are
    assert "nothing to delete" in capsys.readouterr().out and sorted(store.versions()) == ["aaa", "ccc", "mmm", "zzz"]
    assert main(["store", str(store.path), "--keep", "3", "--delete", "zzz", "mmm", "mmm"]) == 0
    out = capsys.readouterr().out
    assert out.count("deleted zzz") == 1 and out.count("deleted mmm") == 1 and sorted(store.versions()) == ["aaa", "ccc"]


def test_a_replaced_version_s_leftover_with_its_manifest_is_no_version(store, capsys):
    """``.tmp-old-*`` (what a replace left) holds a whole version, manifest included: a temporary dir, not a
    fifth version --keep could choose; a delete interrupted mid-way leaves a ``.trash-*`` --tmp removes."""
    from rapids_engage.store_admin import remove

    old = store.path / ".tmp-old-ccc-0badc0de"
    shutil.copytree(store.version_dir("ccc"), old)
    assert main(["store", str(store.path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "4 version(s)" in out and "1 left by a replace or delete" in out
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(shutil, "rmtree", lambda path: (_ for _ in ()).throw(OSError("interrupted")))
        with pytest.raises(ValueError, match="interrupted"):
            remove(store, "aaa")
    assert store.versions() == ["ccc", "ddd"]
    assert [d.name.startswith(".trash-aaa-") for d in temporary_dirs(store.path)].count(True) == 1
    assert main(["store", str(store.path), "--tmp", "--quiet"]) == 0 and temporary_dirs(store.path) == []


def test_models_using_skips_damaged_metas_and_resolves_recorded_paths(tmp_path):
    """A meta that is no JSON, or records a store path or version of another type, serves nothing (predict refuses
    it); a recorded path that names the store through ``..`` is the store."""
    from rapids_engage.store_admin import models_using

    store = FeatureStore(tmp_path / "shared")
    store.path.mkdir()
    models = tmp_path / "run" / "models"
    models.mkdir(parents=True)
    (models / "a.meta.json").write_text("{not json")
    (models / "b.meta.json").write_text(json.dumps({"store": {"path": 5, "version": "aaa"}}))
    (models / "c.meta.json").write_text(json.dumps({"store": {"path": str(store.path), "version": 7}}))
    (models / "d.meta.json").write_text(json.dumps({"store": {"path": str(store.path), "version": ""}}))
    assert models_using(store) == {}
    (models / "e.meta.json").write_text(json.dumps({"store": {"path": str(tmp_path / "run" / ".." / "shared"), "version": "bbb"}}))
    assert models_using(store) == {"bbb": [str(models)]}


def test_a_version_a_run_in_progress_trains_from_is_kept_until_its_models_are_published(store, capsys, tmp_path):
    """`store --keep 1` from a housekeeping job while a run trained from an older version deleted it: the run ended
    with exit 0 and models that predict could not serve ("version ... is not in <store>"), as they were not yet
    published for --keep to see. The run marks the version while it trains; a killed run's mark counts for nothing."""
    from rapids_engage.store_builds import IN_USE, in_use

    with in_use(store.path, "aaa", tmp_path / "run" / "models"):
        assert main(["store", str(store.path), "--keep", "1"]) == 0
        out = " ".join(capsys.readouterr().out.split())
        assert f"keeping aaa: the models in {tmp_path / 'run' / 'models'} (training: process {os.getpid()}) use it" in out, out
        assert store.versions() == ["aaa", "ddd"]
        assert main(["store", str(store.path), "--delete", "aaa"]) == 2
        assert "store: version aaa serves the models in" in capsys.readouterr().err
    killed = store.path / IN_USE / "aaa.killed.json"
    killed.parent.mkdir()
    killed.write_text(json.dumps({"version": "aaa", "host": socket.gethostname(), "pid": _dead_pid(), "models": "x"}))
    assert main(["store", str(store.path), "--keep", "1", "--quiet"]) == 0
    assert store.versions() == ["ddd"]
    with in_use(store.path, "ddd", tmp_path / "rerun" / "models"):  # a run's start deletes killed runs' marks
        assert killed.name not in [p.name for p in (store.path / IN_USE).iterdir()]
    assert not (store.path / IN_USE).exists()


def test_deleting_from_a_read_only_store_is_one_line_naming_the_store(store, capsys, monkeypatch):
    import pathlib

    def refuse(self, target):  # a read-only store: root ignores chmod, so the rename is refused here
        raise PermissionError(13, "Permission denied", str(self), str(target))

    monkeypatch.setattr(pathlib.Path, "rename", refuse)
    for args, first in ((["--keep", "1"], "aaa"), (["--delete", "ccc"], "ccc")):
        assert main(["store", str(store.path), *args, "--quiet"]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert f"store: cannot delete {first} from {store.path}: Permission denied" in err
        assert "Errno" not in err and ".trash-" not in err and "read-only store" in err
    monkeypatch.undo()
    assert store.versions() == ["aaa", "ccc", "ddd"]


def test_a_version_renamed_away_but_not_deleted_is_one_line_naming_the_trash_for_tmp(store, capsys, monkeypatch):
    """The rename to ``.trash-*`` succeeded but deleting its files failed (a read-only subdirectory): the error was
    a raw "[Errno 13] Permission denied: '<path>'" traceback line, silent about the half-deleted directory left."""

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path) + "/train")

    monkeypatch.setattr(shutil, "rmtree", refuse)
    assert main(["store", str(store.path), "--delete", "ccc", "--quiet"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    monkeypatch.undo()
    trash = [d.name for d in temporary_dirs(store.path) if d.name.startswith(".trash-ccc-")]
    assert len(trash) == 1 and store.versions() == ["aaa", "ddd"]
    assert f"store: cannot delete ccc from {store.path}: Permission denied" in err and "Errno" not in err
    assert f"renamed to {trash[0]}, which `store --tmp` deletes" in err
    assert main(["store", str(store.path), "--tmp", "--quiet"]) == 0 and temporary_dirs(store.path) == []


def test_a_mark_not_rewritten_for_a_while_counts_for_nothing_whatever_its_host(store, capsys, tmp_path):
    """A run killed on another host sharing the store (or in a container: a hostname of its own), or one whose process
    id a later process took, left a mark that kept its version from `store --keep` forever, and no run removed it:
    a run rewrites its mark while it trains, and one not rewritten for STALE_S is a killed run's and goes at the next run."""
    from rapids_engage.store_builds import IN_USE, STALE_S, in_use

    marks = store.path / IN_USE
    marks.mkdir()
    old = time.time() - STALE_S - 60
    for name, host, pid in (("other", "node-17", 4242), ("reused", socket.gethostname(), os.getpid())):
        mark = marks / f"aaa.{name}.json"
        mark.write_text(json.dumps({"version": "aaa", "host": host, "pid": pid, "models": f"/runs/{name}/models"}))
        os.utime(mark, (old, old))
    fresh = marks / "ccc.other.json"  # another host's run in progress: it counts
    fresh.write_text(json.dumps({"version": "ccc", "host": "node-17", "pid": 4243, "models": "/runs/live/models"}))
    assert main(["store", str(store.path), "--keep", "1"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "keeping ccc: the models in /runs/live/models (training: process 4243 on node-17)" in out, out
    assert store.versions() == ["ccc", "ddd"]
    with in_use(store.path, "ddd", tmp_path / "rerun" / "models"):
        assert sorted(p.name for p in marks.iterdir() if p.name.startswith("aaa")) == []
    assert [p.name for p in marks.iterdir()] == [fresh.name]


def test_a_live_run_in_another_container_with_this_host_name_is_not_taken_for_a_killed_one(store, capsys):
    """A container sharing the host's name (host networking) numbers its processes apart: its run's mark, and its
    build's owner, named a process id not running here, so `store --keep` deleted the version that run trained from,
    and `store --tmp` its build in progress. They record their PID namespace; another one's cannot be checked here."""
    from rapids_engage.store_builds import IN_USE

    elsewhere = {"host": socket.gethostname(), "pid": _dead_pid(), "pidns": "pid:[1]"}
    (store.path / IN_USE).mkdir()
    (store.path / IN_USE / "aaa.container.json").write_text(json.dumps({"version": "aaa", **elsewhere, "models": "/runs/c/models"}))
    building = store.begin()
    (building / OWNER).write_text(json.dumps(elsewhere))
    assert main(["store", str(store.path), "--keep", "1", "--tmp"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"keeping aaa: the models in /runs/c/models (training: process {elsewhere['pid']} on {socket.gethostname()} " \
           "(another container))" in out, out
    assert store.versions() == ["aaa", "ddd"] and building in temporary_dirs(store.path)
    assert len(temporary_dirs(store.path)) == 1  # the killed build of this namespace went


def test_a_run_rewrites_its_mark_while_it_trains(store, monkeypatch, tmp_path):
    """The mark of a run in progress stays fresh (rewritten, anew if a run took it for a killed one's), and goes with it."""
    from rapids_engage import store_builds

    monkeypatch.setattr(store_builds, "REFRESH_S", 0.01)
    with store_builds.in_use(store.path, "ddd", tmp_path / "run" / "models"):
        (mark,) = (store.path / store_builds.IN_USE).iterdir()
        old = time.time() - store_builds.STALE_S - 60
        os.utime(mark, (old, old))
        deadline = time.monotonic() + 30
        while (not mark.exists() or mark.stat().st_mtime == old) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store_builds.versions_in_use(store_builds.live_marks(store.path)) == {"ddd": [f"{tmp_path / 'run' / 'models'} (training: process {os.getpid()})"]}
        mark.unlink()  # taken for a killed run's
        while not mark.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert mark.exists()
    assert not (store.path / store_builds.IN_USE).exists()


def _refresher_writes(monkeypatch, store_builds, before=None):
    """Events of the mark's rewrites by its refresher thread (``before()``: called first, in that thread)."""
    import threading

    writing, written = threading.Event(), threading.Event()
    real = store_builds.write_text

    def write(path, text):
        if threading.current_thread().name == "store in-use mark":
            writing.set()
            if before is not None:
                before()
            real(path, text)
            written.set()
        else:
            real(path, text)

    monkeypatch.setattr(store_builds, "write_text", write)
    return writing, written


def test_a_run_s_mark_comes_back_when_a_run_took_it_for_a_killed_one_s_and_removed_its_directory(store, monkeypatch, tmp_path):
    """Another run that took the mark for a killed run's deletes it, and its end removes the empty directory of marks:
    the rewrite makes the directory again."""
    from rapids_engage import store_builds

    monkeypatch.setattr(store_builds, "REFRESH_S", 0.01)
    _, written = _refresher_writes(monkeypatch, store_builds)
    with store_builds.in_use(store.path, "ddd", tmp_path / "run" / "models"):
        (mark,) = (store.path / store_builds.IN_USE).iterdir()
        assert written.wait(30)
        mark.unlink()
        mark.parent.rmdir()
        written.clear()
        assert written.wait(30) and mark.exists()


def test_a_store_unreachable_a_while_does_not_stop_the_rewrites(store, monkeypatch, tmp_path):
    """A rewrite that fails (the store's filesystem unreachable) is retried at the next: the mark stays fresh."""
    from rapids_engage import store_builds

    monkeypatch.setattr(store_builds, "REFRESH_S", 0.01)
    failures = [OSError(5, "Input/output error")]

    def unreachable_once():
        if failures:
            raise failures.pop()

    _, written = _refresher_writes(monkeypatch, store_builds, unreachable_once)
    with store_builds.in_use(store.path, "ddd", tmp_path / "run" / "models"):
        assert written.wait(30) and not failures


def test_a_run_s_end_waits_for_a_rewrite_in_progress_and_leaves_no_mark(store, monkeypatch, tmp_path):
    """The run ends while its mark is being rewritten: the mark goes after the rewrite, not before it (the rewrite
    would leave a mark that kept the version from ``store --keep`` for STALE_S)."""
    import threading

    from rapids_engage import store_builds

    monkeypatch.setattr(store_builds, "REFRESH_S", 0.01)
    ending = threading.Event()
    writing, written = _refresher_writes(monkeypatch, store_builds, lambda: ending.wait(30))
    with store_builds.in_use(store.path, "ddd", tmp_path / "run" / "models"):
        assert writing.wait(30)  # the refresher is in its rewrite
        threading.Timer(0.05, ending.set).start()  # the rewrite goes on while the block ends
    assert written.wait(30)
    assert not (store.path / store_builds.IN_USE).exists()


def test_a_mark_missing_a_field_counts_for_nothing(store, capsys):
    """A mark cut short by hand or written by another version, without a field: `store --keep` went on, ignoring it."""
    from rapids_engage.store_builds import IN_USE

    (store.path / IN_USE).mkdir()
    (store.path / IN_USE / "aaa.x.json").write_text(json.dumps({"version": "aaa", "host": "node-17", "models": "/m"}))
    (store.path / IN_USE / "ccc.x.json").write_text(json.dumps(["ccc"]))
    assert main(["store", str(store.path), "--keep", "1", "--quiet"]) == 0
    assert store.versions() == ["ddd"]


def test_a_mark_names_the_models_by_their_absolute_path(store, monkeypatch, tmp_path, capsys):
    """A run given a relative --out marks its models by their absolute path: `store` runs from another directory."""
    from rapids_engage.store_builds import in_use

    monkeypatch.chdir(tmp_path)
    with in_use(store.path, "aaa", Path("runs") / "x" / "models"):
        monkeypatch.chdir("/")
        assert main(["store", str(store.path), "--keep", "1"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"keeping aaa: the models in {tmp_path / 'runs' / 'x' / 'models'} (training: process {os.getpid()})" in out, out


def test_delete_refuses_a_version_a_build_in_progress_reads(store, tmp_path, capsys):
    """A version whose feature groups a build in progress reuses is refused by --delete (and kept by --keep) unless
    --force, as one a run in progress trains from."""
    from rapids_engage.store_builds import in_use, live_marks, versions_in_use

    with in_use(store.path, "aaa", store.path / ".tmp-x", building="fff"):
        assert versions_in_use(live_marks(store.path)) == {}  # no run trains from it
        assert main(["store", str(store.path), "--delete", "aaa"]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert f"store: version aaa is read by the build of version fff in {store.path / '.tmp-x'} (process {os.getpid()}); " \
               "--force deletes it anyway (the build fails)" in err, err
        assert "aaa" in store.versions()
        assert main(["store", str(store.path), "--delete", "aaa", "--force", "--quiet"]) == 0
    assert "aaa" not in store.versions() and not (store.path / ".in-use").exists()


def test_the_listing_names_a_build_in_progress_reading_a_version(store, tmp_path, capsys):
    """The plain listing showed nothing ('—' under models) for a version a build in progress reuses, though
    `--keep` keeps it and `--delete` refuses it: its row now names the build, as a training run's names the run."""
    from rapids_engage.store_builds import in_use

    with in_use(store.path, "aaa", store.path / ".tmp-x", building="fff"):
        assert main(["store", str(store.path)]) == 0
    rows = {line.split()[1]: line for line in capsys.readouterr().out.splitlines() if line.startswith("│")}
    assert "build of fff" in rows["aaa"] and "build of" not in rows["ccc"], rows
    assert main(["store", str(store.path)]) == 0  # the build over: its mark is gone
    assert "build of" not in capsys.readouterr().out
