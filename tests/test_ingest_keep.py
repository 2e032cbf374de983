"""``data.keep_ingests``: a rolling window's ingest cache keeps its newest folders (:mod:`rapids_engage.ingest.cache_pruning`),
never one a command reads (:mod:`rapids_engage.ingest.reader_marks`); a failed run prunes nothing."""

from __future__ import annotations

import json
import shutil
from contextlib import ExitStack
from pathlib import Path

import pytest

from rapids_engage import pipeline
from rapids_engage.config import ConfigError, from_dict
from rapids_engage.data import table_dataset
from rapids_engage.ingest.cache_pruning import prune_ingests
from rapids_engage.ingest.reader_marks import keep_reading, marks_path, reading
from rapids_engage.pipeline import main
from rapids_engage.synthetic import SyntheticSpec, write_raw

from test_ingest_incremental import assert_same_entry, day_file, entry, table_cfg


def folders(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.name.startswith("table-") or p.name.startswith("recsys-"))


def slide(raw: Path, cache: Path, day: int, keep: int | None, said: list[str]) -> tuple[Path, dict | None]:
    """The window slid to ``day`` (its oldest file deleted, ``day``'s added), ingested and pruned as a run does: its
    folder marked read from before it is built to after the pruning."""
    (raw / f"d{day - 3}.csv").unlink()
    day_file(raw, f"d{day}.csv", day, bad=day % 2 == 0)
    with ExitStack() as readers:
        dataset = table_dataset(table_cfg(raw, cache), hold=readers.enter_context)
        return entry(dataset), prune_ingests(dataset.data_dir, keep, said.append)


def window(tmp: Path) -> Path:
    raw = tmp / "raw"
    raw.mkdir()
    for day in range(3):
        day_file(raw, f"d{day}.csv", day, bad=day != 1)
    table_dataset(table_cfg(raw, tmp / "cache"))
    return raw


def test_a_rolling_window_keeping_one_ingest_leaves_one_folder_equal_to_a_full_ingest(tmp_path):
    raw, cache, said = window(tmp_path), tmp_path / "cache", []
    for day in range(3, 7):  # four days slid
        before = folders(cache)
        now, retention = slide(raw, cache, day, 1, said)
        assert folders(cache) == [now.name]
        assert retention["deleted"] == before and retention["kept"] == [now.name] and retention["errors"] == []
        assert retention["freed_bytes"] > 0  # the removed day's parts, linked by no newer folder
        assert said[-1].startswith(f"data.keep_ingests 1: deleted 1 ingest folder(s) of {cache} ({before[0]}; ")
        assert said[-1].endswith(f"freed); kept 1: {now.name} (this run's)")
    assert_same_entry(now, entry(table_dataset(table_cfg(raw, tmp_path / "fresh"))), "row_id")
    assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == [".input-digests.json"]  # no lock file left


def test_without_keep_ingests_every_folder_stays(tmp_path):
    raw, cache = window(tmp_path), tmp_path / "cache"
    for day in range(3, 5):
        _, retention = slide(raw, cache, day, None, [])
        assert retention is None
    assert len(folders(cache)) == 3


def test_a_folder_a_command_reads_is_kept_until_it_ends(tmp_path, held_elsewhere):
    raw, cache, said = window(tmp_path), tmp_path / "cache", []
    first = cache / folders(cache)[0]
    with held_elsewhere(lambda: reading(first)):  # another command reading yesterday's folder (predict --history, say)
        now, retention = slide(raw, cache, 3, 1, said)
        assert retention["deleted"] == [] and retention["in_use"] == [first.name]
        assert folders(cache) == sorted([first.name, now.name])
        assert said[-1] == (f"data.keep_ingests 1: deleted 0 ingest folder(s) of {cache}; kept 2: "
                            f"{first.name} (a command is reading it), {now.name} (this run's)")
    assert prune_ingests(now / "data", 1, said.append)["deleted"] == [first.name]
    assert folders(cache) == [now.name] and not marks_path(first).exists()


def test_the_audit_keeps_its_runs_folder_marked_between_them(tmp_path):
    raw, cache = window(tmp_path), tmp_path / "cache"
    first = cache / folders(cache)[0]
    with keep_reading():
        with reading(first):  # the audit's real-label run: marked from its data stage to its end
            pass
        now, retention = slide(raw, cache, 3, 1, [])  # another run prunes while the audit's checks read it
        assert retention["in_use"] == [first.name] and first.is_dir()
    assert prune_ingests(now / "data", 1, lambda _: None)["deleted"] == [first.name]


@pytest.mark.parametrize("value", [0, -1])
def test_keep_ingests_below_one_is_refused_naming_the_key(value):
    with pytest.raises(ConfigError, match=r"data\.keep_ingests: expected a whole number of ingest folders >= 1"):
        from_dict({"data": {"keep_ingests": value}})


@pytest.fixture(scope="module")
def cluster():
    """One in-process worker, reachable by a tcp address as an existing cluster's is (no cluster start per run)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address=None) as local:
        yield local


@pytest.mark.slow
def test_a_failed_run_prunes_nothing_and_a_successful_one_prunes_at_its_end(cluster, tmp_path, monkeypatch):
    gen, raw, cache = tmp_path / "gen", tmp_path / "raw", tmp_path / "cache"
    write_raw(gen, SyntheticSpec(rows=3_000, days=4, seed=5))
    files = sorted((gen / "raw").glob("*.tsv"))
    raw.mkdir()
    for f in files[:3]:
        shutil.copy(f, raw / f.name)

    def argv(command: str) -> list[str]:
        return [*([] if command == "run" else [command]), "--gpus", "0", "--quiet", "--out", str(tmp_path / command),
                "--scheduler-address", cluster.scheduler_address, "--set", "data.source=recsys",
                "--set", f"data.path={raw}/*.tsv", "--set", f"data.cache_dir={cache}", "--set", "data.keep_ingests=1",
                "--set", "train.targets=[like]", "--set", "features.history.keys=[]",
                "--set", "features.target_encoding.keys=[[language]]", "--set", "features.counts=[[language]]",
                "--set", "train.num_boost_round=3"]

    assert main(argv("features")) == 0
    yesterday = folders(cache)
    (raw / files[0].name).unlink()
    shutil.copy(files[3], raw / files[3].name)
    with monkeypatch.context() as patched:
        patched.setattr(pipeline, "train_stage", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("training failed")))
        try:
            code = main(argv("run"))
        except RuntimeError:
            code = 1
    assert code != 0
    assert len(folders(cache)) == 2 and set(yesterday) < set(folders(cache))  # today's ingested, none deleted
    assert main(argv("features")) == 0
    summary = json.loads((tmp_path / "features" / "features.json").read_text())
    assert summary["ingest"]["retention"]["deleted"] == yesterday
    assert folders(cache) == summary["ingest"]["retention"]["kept"] and yesterday[0] not in folders(cache)


def test_predict_marks_the_ingest_folder_its_input_lies_in(tmp_path, monkeypatch):
    """``predict --input <cache>/<folder>/data`` (report.json's split.data_dir): another job's pruning keeps the folder
    while the predict reads it (it was deleted under the scoring)."""
    from rapids_engage import predict
    from rapids_engage.backend import CPU
    from rapids_engage.config import ClusterConfig

    raw, cache, said = window(tmp_path), tmp_path / "cache", []
    first = cache / folders(cache)[0]
    now, _ = slide(raw, cache, 3, None, said)
    pruned = []

    def footers_while_pruned(path):  # another daily job's run ends while this predict reads its input
        pruned.append(prune_ingests(now / "data", 1, said.append))
        raise RuntimeError("stop here")

    monkeypatch.setattr(predict, "input_footers", footers_while_pruned)
    with pytest.raises(RuntimeError, match="stop here"):
        predict.run_predict(tmp_path / "run", first / "data" / "day=*" / "*.parquet", tmp_path / "scored", CPU,
                            ClusterConfig(gpus=0))
    assert pruned[0]["deleted"] == [] and pruned[0]["in_use"] == [first.name] and first.is_dir()
    assert not marks_path(first).exists()  # its last reader removed the mark


def test_a_folder_marked_twice_in_one_process_stays_marked_under_posix_locks(tmp_path, monkeypatch):
    """On NFS flock locks are POSIX locks, per process (emulated with lockf): the inner of two marks of one folder
    (predict's --input and --history of split.data_dir, an audit's run in its keep_reading) upgraded the process's
    lock, unlinked the file and closed the lock away at its end: another job's pruning deleted the folder still read."""
    import fcntl
    import os

    raw, cache = window(tmp_path), tmp_path / "cache"
    first = cache / folders(cache)[0]
    now, _ = slide(raw, cache, 3, None, [])
    monkeypatch.setattr(fcntl, "flock", fcntl.lockf)
    with reading(first):
        with reading(first):
            pass
        if (pid := os.fork()) == 0:  # another process's pruning (POSIX locks never conflict within one)
            try:
                (tmp_path / "pruned.json").write_text(json.dumps(prune_ingests(now / "data", 1, lambda _: None)))
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        assert json.loads((tmp_path / "pruned.json").read_text())["in_use"] == [first.name] and first.is_dir()
    assert not marks_path(first).exists()


def test_a_pruning_keeps_a_folder_its_own_process_reads_under_posix_locks(tmp_path, monkeypatch):
    """On NFS (POSIX locks, emulated with lockf) a process's locks never conflict with each other: a pruning in the
    process that reads a folder (a run inside an audit's hold, a library user's loop) took the exclusive lock over its
    own shared one and deleted the folder it was reading."""
    import fcntl

    raw, cache = window(tmp_path), tmp_path / "cache"
    first = cache / folders(cache)[0]
    now, _ = slide(raw, cache, 3, None, [])
    monkeypatch.setattr(fcntl, "flock", fcntl.lockf)
    with reading(first):
        pruned = prune_ingests(now / "data", 1, lambda _: None)
        assert pruned["deleted"] == [] and pruned["in_use"] == [first.name] and first.is_dir()
    assert prune_ingests(now / "data", 1, lambda _: None)["deleted"] == [first.name]


def test_a_pruning_that_cannot_make_a_lock_file_keeps_the_folder_and_says_why(tmp_path, monkeypatch):
    """A cache this user cannot write (another user's): the folder stays, recorded as the error it is, not as a
    filesystem without locks (4c3b015 said 'its filesystem does not lock' and recorded no error)."""
    import os

    from rapids_engage.ingest import reader_marks

    raw, cache, said = window(tmp_path), tmp_path / "cache", []
    first = cache / folders(cache)[0]
    now, _ = slide(raw, cache, 3, None, [])
    real_open = os.open

    def denied(path, flags, *mode):
        if str(path).endswith(".readers.lock"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *mode)

    monkeypatch.setattr(reader_marks.os, "open", denied)
    retention = prune_ingests(now / "data", 1, said.append)
    assert retention["deleted"] == [] and first.is_dir()
    assert retention["errors"] == [f"{first}: Permission denied"]
    assert f"{first.name} (its deletion failed: Permission denied)" in said[-1]


def test_predict_history_marks_the_ingest_folder_a_glob_of_it_names(tmp_path, monkeypatch):
    """``predict --history '<cache>/<folder>/data/day=*/*.parquet'``: the folder was read unmarked (only a path in it
    or its data/ was told), so another job's pruning deleted it under the read."""
    from rapids_engage import predict
    from rapids_engage.backend import CPU

    raw, cache = window(tmp_path), tmp_path / "cache"
    first = cache / folders(cache)[0]
    now, _ = slide(raw, cache, 3, None, [])
    pruned = []

    def files_while_pruned(path):
        pruned.append(prune_ingests(now / "data", 1, lambda _: None))
        raise RuntimeError("stop here")

    monkeypatch.setattr(predict, "input_files", files_while_pruned)
    with pytest.raises(RuntimeError, match="stop here"):
        predict.history_events(str(first / "data" / "day=*" / "*.parquet"), tmp_path / "run", CPU, "time")
    assert pruned[0]["in_use"] == [first.name] and first.is_dir()


def test_a_killed_prunings_folder_left_renamed_away_goes_at_the_next_pruning(tmp_path):
    """A pruning killed between its rename and its rmtree left ``.tmp-old-<folder>-<hex>`` (the removed day's parts):
    nothing removed it, each day's folder having a name of its own."""
    raw, cache, said = window(tmp_path), tmp_path / "cache", []
    left = cache / ".tmp-old-table-0123456789ab-89abcdef"
    (left / "data").mkdir(parents=True)
    (left / "data" / "part-0.parquet").write_bytes(b"x" * 1000)
    other = cache / ".tmp-old-plots-1"  # not an ingest folder's: not this pruning's to judge
    other.mkdir()
    _, retention = slide(raw, cache, 3, 1, said)
    assert not left.exists() and other.is_dir() and retention["freed_bytes"] >= 1000


def test_a_lock_file_that_cannot_be_unlinked_after_the_rename_still_deletes_the_folder(tmp_path, monkeypatch):
    """Another user's lock file in a sticky cache directory: its unlink after the rename raised, so the folder renamed
    away was said kept with 'its deletion failed' and left on disk."""
    raw, cache = window(tmp_path), tmp_path / "cache"
    first = cache / folders(cache)[0]
    now, _ = slide(raw, cache, 3, None, [])
    real_unlink = Path.unlink

    def denied(self, missing_ok=False):
        if self.name.endswith(".readers.lock"):
            raise PermissionError(1, "Operation not permitted", str(self))
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", denied)
    retention = prune_ingests(now / "data", 1, lambda _: None)
    assert retention["deleted"] == [first.name] and retention["errors"] == []
    assert folders(cache) == [now.name] and not list(cache.glob(".tmp-old-*"))


def test_a_forked_process_marking_its_parents_folder_keeps_it_after_the_parent_lets_go(tmp_path):
    """A forked process (a dask worker) copied the parent's table of marks: its mark of a folder the parent marked only
    counted the parent's descriptor, so the parent's release unlinked the lock file (the shared descriptor let it lock
    exclusively) and a pruning deleted the folder the child still read."""
    import os

    raw, cache = window(tmp_path), tmp_path / "cache"
    first = cache / folders(cache)[0]
    now, _ = slide(raw, cache, 3, None, [])
    marked, pruned = os.pipe(), os.pipe()
    with reading(first):
        if (pid := os.fork()) == 0:
            try:
                with reading(first):
                    os.write(marked[1], b"x")
                    os.read(pruned[0], 1)  # reads until the parent's pruning is done
            finally:
                os._exit(0)
        os.read(marked[0], 1)
    retention = prune_ingests(now / "data", 1, lambda _: None)
    os.write(pruned[1], b"x")
    os.waitpid(pid, 0)
    assert retention["in_use"] == [first.name] and first.is_dir()
