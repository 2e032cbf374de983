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
    first = content_digests([a, b], cache)
    assert counted == ["a.bin", "b.bin"] and first[a] == file_digest(a)
    assert content_digests([a, b], cache) == first and counted == ["a.bin", "b.bin"]  # nothing read
    os.utime(b, ns=(1, 1))  # touched: read again, same digest
    assert content_digests([a, b], cache) == first and counted[2:] == ["b.bin"]
    b.write_bytes(b"z" * 10)
    assert content_digests([a, b], cache)[b] != first[b] and counted[3:] == ["b.bin"]
    cache.write_text("{not json")  # a damaged cache: everything is read again, and the cache rewritten
    assert content_digests([a, b], cache)[a] == first[a] and counted[4:] == ["a.bin", "b.bin"]
    assert set(json.loads(cache.read_text())) == {str(a.resolve()), str(b.resolve())}


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
def test_a_copied_dataset_is_a_store_cache_hit(tmp_path):
    """`cp -r` of a parquet dataset (new modification times) used to be a new store version: every feature rebuilt."""
    generate(tmp_path / "orig", SyntheticSpec(rows=4_000, days=3, seed=5))
    shutil.copytree(tmp_path / "orig", tmp_path / "copy", copy_function=shutil.copy)
    args = ["--gpus", "0", "--quiet", "--set", "data.source=parquet", "--set", f"features.store={tmp_path / 'store'}",
            "--set", "cluster.n_workers=1", "--set", "features.history.keys=[[engaging_user_id]]"]
    summaries = []
    for name in ("orig", "copy"):
        out = tmp_path / f"run-{name}"
        assert main(["features", *args, "--set", f"data.path={tmp_path / name}", "--out", str(out)]) == 0
        summaries.append(json.loads((out / "features.json").read_text())["store"])
    assert summaries[1]["cache_hit"] and summaries[1]["version"] == summaries[0]["version"]
