"""A damaged store version is never read: every kind of damage the manifest can see makes it absent."""

from __future__ import annotations

import json
import re
import shutil

import pandas as pd
import pytest

from rapids_engage.store import MANIFEST, FeatureStore, MissingVersion


def _store(tmp_path) -> FeatureStore:
    store = FeatureStore(tmp_path / "store")
    tmp = store.begin()
    (tmp / "train").mkdir()
    (tmp / "state").mkdir()
    pd.DataFrame({"f": range(50)}).to_parquet(tmp / "train" / "part.0.parquet")
    (tmp / "state" / "features.json").write_text('{"a": 1}')
    store.publish(tmp, "aaa", {"rows": {"train": 50, "valid": 0}, "features": ["f"], "reused": None})
    assert store.versions() == ["aaa"] and store.problem("aaa") is None
    return store


def _same_size_other_tail(path) -> None:
    data = bytearray(path.read_bytes())
    data[-4:] = b"XXXX"
    path.write_bytes(bytes(data))


def _edit_manifest(store: FeatureStore, change) -> None:
    path = store.version_dir("aaa") / MANIFEST
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


DAMAGE = {
    "resized": (lambda s: (s.version_dir("aaa") / "state" / "features.json").write_text('{"a": 12}'),
                "file state/features.json has 9 bytes, the manifest says 8"),
    "no footer": (lambda s: _same_size_other_tail(s.version_dir("aaa") / "train" / "part.0.parquet"),
                  "file train/part.0.parquet has no parquet footer"),
    "missing": (lambda s: (s.version_dir("aaa") / "state" / "features.json").unlink(), "file state/features.json is missing"),
    "extra": (lambda s: (s.version_dir("aaa") / "train" / "part.1.parquet").write_bytes(b"PAR1"),
              "file train/part.1.parquet is not in the manifest"),
    "no manifest": (lambda s: (s.version_dir("aaa") / MANIFEST).unlink(), "manifest missing or unreadable"),
    "cut manifest": (lambda s: (s.version_dir("aaa") / MANIFEST).write_text('{"version": "aaa", '),
                     "manifest missing or unreadable"),
    "other format": (lambda s: _edit_manifest(s, lambda m: m.update(format=m["format"] + 1)), "manifest of another version or format"),
    "no files listed": (lambda s: _edit_manifest(s, lambda m: m.update(files={})), "manifest lists no files"),
    # valid JSON of another shape: an AttributeError / KeyError / TypeError traceback in predict, `store DIR`
    # and a rerun (which rebuilds it now), before the damaged-files sweep
    "manifest an array": (lambda s: (s.version_dir("aaa") / MANIFEST).write_text("[1, 2]"),
                          "manifest of another shape (it is an array, not an object)"),
    "files a string": (lambda s: _edit_manifest(s, lambda m: m.update(files="x")),
                       "manifest of another shape (key files is a string, not an object)"),
    "no creation time": (lambda s: _edit_manifest(s, lambda m: m.pop("created")), "manifest of another shape (key created is missing)"),
    "rows a string": (lambda s: _edit_manifest(s, lambda m: m.update(rows="x")),
                      "manifest of another shape (key rows is a string, not an object)"),
    # a cache hit reports them: a KeyError 'rows' traceback in a rerun, which rebuilds it now (left by an earlier hunt)
    "no rows": (lambda s: _edit_manifest(s, lambda m: m.pop("rows")), "manifest of another shape (key rows is missing)"),
    "no valid rows": (lambda s: _edit_manifest(s, lambda m: m["rows"].pop("valid")),
                      "manifest of another shape (key rows.valid is missing)"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_version_is_never_read(tmp_path, damage):
    store = _store(tmp_path)
    harm, problem = DAMAGE[damage]
    harm(store)
    assert store.manifest("aaa") is None and store.problem("aaa") == problem
    assert store.versions() == []
    with pytest.raises(MissingVersion, match="no intact version aaa") as err:
        store.training_frame("aaa")
    assert err.value.problem == problem
    assert "damaged:" not in str(err.value)  # the asked version's problem is said once, not again in the hint
    why = "" if damage == "no manifest" else f"; damaged: aaa ({problem})"  # no manifest, no version id: not a version
    with pytest.raises(MissingVersion, match=re.escape(f"(have: none){why}") + "$"):
        store.training_frame()  # the newest intact version: there is none, and the message says why


def test_a_copied_version_directory_is_not_the_version_its_manifest_names(tmp_path):
    """A version directory renamed or copied to another id: its manifest names another version."""
    store = _store(tmp_path)
    shutil.copytree(store.version_dir("aaa"), store.version_dir("bbb"))
    assert store.problem("bbb") == "manifest of another version or format" and store.versions() == ["aaa"]


def test_a_file_given_as_the_store_is_named_a_file(tmp_path):
    (tmp_path / "report.json").write_text("{}")
    with pytest.raises(MissingVersion, match="report.json is a file, not a store directory"):
        FeatureStore(tmp_path / "report.json").training_frame()


@pytest.mark.parametrize("damage", ["manifest an array", "files a string", "no creation time", "rows a string", "no rows"])
def test_the_store_listing_shows_a_manifest_of_another_shape_as_damaged(tmp_path, capsys, damage):
    """`store DIR` (and --keep) ended in an AttributeError / TypeError traceback on a manifest of another shape.
    (Found by the damaged-files sweep.)"""
    from rapids_engage.pipeline import main

    store = _store(tmp_path)
    DAMAGE[damage][0](store)
    assert main(["store", str(store.path), "--keep", "1", "--dry-run"]) == 0
    assert "aaa" in capsys.readouterr().out


def test_serving_a_version_whose_manifest_lacks_its_definition_names_the_manifest(tmp_path):
    """A manifest without its definition (or features) ended Scorer / predict in KeyError 'definition'.
    (Found by the damaged-files sweep.)"""
    store = _store(tmp_path)  # published without a definition
    with pytest.raises(ValueError, match=re.escape(str(store.version_dir("aaa") / MANIFEST))
                       + r" is damaged \(key definition is missing\): rerun the pipeline"):
        store.builder("aaa")


def _staged(store: FeatureStore, rows: int):
    tmp = store.begin()
    (tmp / "train").mkdir()
    pd.DataFrame({"f": range(rows)}).to_parquet(tmp / "train" / "part.0.parquet")
    return tmp


def test_a_version_published_between_the_check_and_the_rename_is_kept(tmp_path, monkeypatch):
    """Two runs of one config on a shared store publish at about the same time (their builds take as long): the
    later one saw no version, then the first published, and the later one renamed the first's files away and
    deleted them while that run read them (or, between exists() and the rename, failed with 'Directory not
    empty'). It keeps the first's version now, as when it sees it before."""
    from rapids_engage import store as store_module

    store = FeatureStore(tmp_path / "store")
    first, later = _staged(store, 50), _staged(store, 50)
    list_files = store_module.list_files

    def first_publishes_meanwhile(tmp):  # right after the later run's check
        monkeypatch.setattr(store_module, "list_files", list_files)
        store.publish(first, "aaa", {"rows": {"train": 50, "valid": 0}, "features": ["f"], "reused": None}, replace=False)
        reading = (store.version_dir("aaa") / "train" / "part.0.parquet").open("rb")  # the first run reads it
        kept.append((reading, store.version_dir("aaa").stat().st_ino))
        return list_files(tmp)

    kept = []
    monkeypatch.setattr(store_module, "list_files", first_publishes_meanwhile)
    assert not store.publish(later, "aaa", {"rows": {"train": 50, "valid": 0}, "features": ["f"], "reused": None},
                             replace=False)
    reading, inode = kept[0]
    reading.close()
    assert store.version_dir("aaa").stat().st_ino == inode and store.problem("aaa") is None
    assert sorted(p.name for p in store.path.iterdir()) == ["aaa"]  # the later run's build is gone, nothing left


def test_split_counts_are_recorded_in_the_manifest_once_keeping_the_version_intact(tmp_path):
    store = _store(tmp_path)
    before = json.loads((store.version_dir("aaa") / MANIFEST).read_text())
    counts = {"rows": 60, "valid": 10, "purged": 0}
    assert store.add_split_counts("aaa", counts)
    assert store.manifest("aaa") == before | {"split_counts": counts}  # same id, files, creation time: intact
    assert not store.add_split_counts("aaa", {"rows": 1, "valid": 1, "purged": 0})  # recorded already: kept
    assert store.manifest("aaa")["split_counts"] == counts
    assert not store.add_split_counts("bbb", counts) and not store.version_dir("bbb").exists()  # no such version
    assert sorted(p.name for p in store.path.iterdir()) == ["aaa"]  # no lock or part file left


def test_split_counts_are_never_written_into_a_version_rebuilt_meanwhile(tmp_path, monkeypatch):
    """A rebuild replaces the directory between the recording's read of the old manifest and its write: the rebuilt
    version keeps its own manifest (the old one's file list there would make it damaged)."""
    import rapids_engage.store as store_module

    store = _store(tmp_path)

    def read_then_rebuilt(f):
        manifest = json.load(f)
        tmp = store.begin()
        (tmp / "train").mkdir()
        pd.DataFrame({"f": range(70)}).to_parquet(tmp / "train" / "part.0.parquet")
        store.publish(tmp, "aaa", {"rows": {"train": 70, "valid": 0}, "features": ["f"], "reused": None})
        return manifest

    rebuilt = type("json", (), {"load": staticmethod(read_then_rebuilt), "dumps": staticmethod(json.dumps)})
    monkeypatch.setattr(store_module, "json", rebuilt)
    store.add_split_counts("aaa", {"rows": 60, "valid": 10, "purged": 0})
    monkeypatch.undo()
    manifest, problem = store.check("aaa")
    assert problem is None and manifest["rows"]["train"] == 70 and "split_counts" not in manifest


def test_split_counts_are_not_recorded_where_the_filesystem_does_not_lock(tmp_path, monkeypatch):
    """Two runs writing the one part file unlocked could leave half a manifest, a damaged version rebuilt under its
    readers: a hit there counts again instead."""
    import contextlib

    import rapids_engage.store as store_module

    store = _store(tmp_path)
    monkeypatch.setattr(store_module, "building", lambda entry: contextlib.nullcontext(False))
    assert not store.add_split_counts("aaa", {"rows": 60, "valid": 10, "purged": 0})
    assert "split_counts" not in store.manifest("aaa")
