"""Input identity by content: a copied dataset is the same store version, a changed one is not; digests are cached."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from rapids_engage import digests
from rapids_engage.digests import content_digests, file_digest
from rapids_engage.pipeline import main
from rapids_engage.store import fingerprint_files
from rapids_engage.synthetic import SyntheticSpec, generate


@pytest.fixture
def counted(monkeypatch):
    """The files :func:`file_digest` reads, in order."""
    read = []

    def digest(path):
        read.append(path.name)
        return file_digest(path)

    monkeypatch.setattr(digests, "file_digest", digest)
    return read


def test_digests_are_read_once_and_again_when_a_file_changes(tmp_path, counted):
    a, b, cache = tmp_path / "a.bin", tmp_path / "b.bin", tmp_path / "cache" / "digests.json"
    a.write_bytes(b"x" * 1000)
    b.write_bytes(b"y" * 10)
    for f in (a, b):
        os.utime(f, ns=(10**18, 10**18))  # written long ago (2001): their digests are cached
    first = content_digests([a, b], cache)
    assert counted == ["a.bin", "b.bin"] and first[a] == file_digest(a)
    assert content_digests([a, b], cache) == first and counted == ["a.bin", "b.bin"]  # nothing read
    os.utime(b, ns=(1, 1))  # touched: read again, same digest
    assert content_digests([a, b], cache) == first and counted[2:] == ["b.bin"]
    b.write_bytes(b"z" * 10)
    assert content_digests([a, b], cache)[b] != first[b] and counted[3:] == ["b.bin"]
    os.utime(b, ns=(10**18, 10**18))
    cache.write_text("{not json")  # a damaged cache: everything is read again, and the cache rewritten
    assert content_digests([a, b], cache)[a] == first[a] and counted[4:] == ["a.bin", "b.bin"]
    assert set(json.loads(cache.read_text())) == {str(a.resolve()), str(b.resolve())}


def test_a_file_modified_just_before_it_is_hashed_is_not_cached(tmp_path, counted):
    """On a filesystem with 1-second mtimes a same-size rewrite in the second it was hashed kept size,
    mtime and inode, and its stale digest made the store a cache hit of the old data ("racy", as git says)."""
    new, cache = tmp_path / "new.bin", tmp_path / "digests.json"
    new.write_bytes(b"x" * 100)
    assert content_digests([new], cache)[new] == file_digest(new) and counted == ["new.bin"]
    assert str(new.resolve()) not in json.loads(cache.read_text())
    stamp = new.stat().st_mtime_ns
    new.write_bytes(b"y" * 100)  # the rewrite a coarse clock cannot tell apart
    os.utime(new, ns=(stamp, stamp))
    assert content_digests([new], cache)[new] == file_digest(new) and counted == ["new.bin", "new.bin"]
    os.utime(new, ns=(10**18, 10**18))  # settled: cached from now on
    content_digests([new], cache)
    assert content_digests([new], cache)[new] == file_digest(new) and counted == ["new.bin"] * 3


def test_runs_updating_the_cache_at_once_keep_each_others_digests(tmp_path, monkeypatch):
    """Two runs that read the cache before either wrote it each wrote back what they had read plus their own digests:
    the first writer's were lost (hashed again by the next run). Each merges with the cache on disk, under its lock."""
    import threading

    files = [tmp_path / "a.bin", tmp_path / "b.bin"]
    for f in files:
        f.write_bytes(f.name.encode())
        os.utime(f, ns=(10**18, 10**18))
    cache, load, both_read, seen = tmp_path / "digests.json", digests._load, threading.Barrier(2, timeout=30), set()

    def load_together(path):  # each run's first read of the cache happens before either writes it
        known = load(path)
        if threading.get_ident() not in seen:
            seen.add(threading.get_ident())
            both_read.wait()
        return known

    monkeypatch.setattr(digests, "_load", load_together)
    runs = [threading.Thread(target=content_digests, args=([f], cache)) for f in files]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    assert set(json.loads(cache.read_text())) == {str(f.resolve()) for f in files}
    assert not list(tmp_path.glob(".*"))  # no lock file or part file left


def test_a_copy_has_the_fingerprint_of_its_original_and_an_edit_does_not(tmp_path):
    generate(tmp_path / "orig", SyntheticSpec(rows=3_000, days=2, seed=3))
    shutil.copytree(tmp_path / "orig" / "data", tmp_path / "copy", copy_function=shutil.copy)  # new times, new inodes
    cache = tmp_path / "digests.json"
    original = fingerprint_files(tmp_path / "orig" / "data", cache)
    assert fingerprint_files(tmp_path / "copy", cache) == original
    part = sorted((tmp_path / "copy").rglob("*.parquet"))[0]
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 1
    part.write_bytes(bytes(data))
    assert fingerprint_files(tmp_path / "copy", cache) != original
    part.rename(part.with_name("renamed.parquet"))  # where a file sits is part of the input
    assert fingerprint_files(tmp_path / "copy", None) != fingerprint_files(tmp_path / "orig" / "data", None)


@pytest.mark.slow
def test_a_copied_dataset_is_a_store_cache_hit(tmp_path, tcp_cluster):
    """`cp -r` of a parquet dataset (new modification times) used to be a new store version: every feature rebuilt.
    (On conftest's in-process worker: the input's identity is the driver's, and two cluster starts were most of the time.)"""
    generate(tmp_path / "orig", SyntheticSpec(rows=4_000, days=3, seed=5))
    shutil.copytree(tmp_path / "orig", tmp_path / "copy", copy_function=shutil.copy)
    args = ["--gpus", "0", "--quiet", "--set", "data.source=parquet", "--set", f"features.store={tmp_path / 'store'}",
            "--set", f"cluster.scheduler_address={tcp_cluster.scheduler_address}",
            "--set", "features.history.keys=[[engaging_user_id]]"]
    summaries = []
    for name in ("orig", "copy"):
        out = tmp_path / f"run-{name}"
        assert main(["features", *args, "--set", f"data.path={tmp_path / name}", "--out", str(out)]) == 0
        summaries.append(json.loads((out / "features.json").read_text())["store"])
    assert summaries[1]["cache_hit"] and summaries[1]["version"] == summaries[0]["version"]


def test_a_dataset_directory_named_parquet_is_read_for_its_files(tmp_path):
    """``data.source: parquet`` over a Spark or dask export (``day=X/late.parquet/part-0.parquet``) stopped at the data
    stage: the directory was listed among the input files ('Is a directory'). Its files are read and fingerprinted."""
    from rapids_engage.data import read_events

    generate(tmp_path / "orig", SyntheticSpec(rows=3_000, days=2, seed=3))
    data = tmp_path / "orig" / "data"
    last = sorted(data.rglob("*.parquet"))[-1]
    (last.parent / "late.parquet").mkdir()
    last.rename(last.parent / "late.parquet" / "part-0.parquet")
    assert len(fingerprint_files(data, None)) == 64
    assert len(read_events(data, partition_rows=1_000).compute()) == 3_000


def test_files_inside_and_outside_partition_directories_are_named_in_one_line(tmp_path):
    """A canonical directory of ``day=X/`` files with one file beside them (a late export dropped at its root) stopped
    with dask's ``KeyError: 'day'`` traceback; so did such a ``predict --input``. One line names a file of each."""
    from rapids_engage.data import DataError, read_events

    generate(tmp_path / "orig", SyntheticSpec(rows=3_000, days=2, seed=3))
    data = tmp_path / "orig" / "data"
    last = sorted(data.rglob("*.parquet"))[-1]
    last.rename(data / "late.parquet")
    with pytest.raises(DataError, match=r"parquet files of two layouts: .*day=.*\(under day=\.\.\.\) and .*late\.parquet "
                                        r"\(under no key=value directory\)"):
        read_events(data)


def test_spark_and_hidden_leftovers_are_not_read(tmp_path):
    """A Spark export keeps a killed job's partial files under ``_temporary/`` and metadata as ``_*`` / ``.*`` files;
    pyarrow, dask and Spark skip paths starting with ``_`` or ``.``. They were read as data: rows counted twice."""
    import shutil

    from rapids_engage.data import read_events
    from rapids_engage.store import parquet_files

    generate(tmp_path / "orig", SyntheticSpec(rows=3_000, days=2, seed=3))
    data = tmp_path / "orig" / "data"
    files = parquet_files(data)
    before = fingerprint_files(data, None)
    first = files[0]
    (first.parent / "_temporary" / "0").mkdir(parents=True)
    shutil.copy(first, first.parent / "_temporary" / "0" / "part-0.parquet")
    shutil.copy(first, first.parent / ".part-0.parquet")
    shutil.copy(first, first.parent / "_part-0.parquet")
    assert parquet_files(data) == files
    assert fingerprint_files(data, None) == before
    assert len(read_events(data).compute()) == 3_000
