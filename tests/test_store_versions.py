"""FeatureStore's versions: their order, the newest one served by default, a rebuild over a damaged
version, what is taken for a version directory, and the input fingerprint."""

from __future__ import annotations

import json
import os

import pandas as pd

from rapids_engage.store import MANIFEST, FeatureStore, fingerprint_files, is_version_dir
from rapids_engage.store_builds import sweep


def _publish(store: FeatureStore, version: str, created: float, feature: str = "f", replace: bool = True) -> bool:
    tmp = store.begin()
    for split in ("train", "valid"):
        (tmp / split).mkdir()
        pd.DataFrame({feature: range(5)}).to_parquet(tmp / split / "part.0.parquet")
    done = store.publish(tmp, version, {"rows": {"train": 5, "valid": 5}, "features": [feature], "reused": None}, replace)
    path = store.version_dir(version) / MANIFEST
    if done:  # back-date it: the order is by creation time
        path.write_text(json.dumps({**json.loads(path.read_text()), "created": created}))
    return done


def test_versions_are_oldest_first_by_creation_and_the_newest_is_served_by_default(tmp_path):
    store = FeatureStore(tmp_path / "store")
    _publish(store, "bbbb", 100.0, "old")
    _publish(store, "aaaa", 200.0, "new")
    _publish(store, "cccc", 150.0, "middle")
    assert store.versions() == ["bbbb", "cccc", "aaaa"]
    assert store.feature_names() == ["new"] and list(store.training_frame(split="valid").columns) == ["new"]
    assert store.feature_names("bbbb") == ["old"]


def test_a_damaged_version_is_replaced_by_a_build_that_does_not_replace_intact_ones(tmp_path):
    store = FeatureStore(tmp_path / "store")
    assert _publish(store, "aaaa", 1.0)
    assert not _publish(store, "aaaa", 2.0, "other", replace=False)  # intact: kept, the new build discarded
    assert store.feature_names("aaaa") == ["f"]
    (store.version_dir("aaaa") / "valid" / "part.0.parquet").unlink()
    assert store.problem("aaaa") == "file valid/part.0.parquet is missing"
    assert _publish(store, "aaaa", 3.0, "other", replace=False)
    assert store.problem("aaaa") is None and store.feature_names("aaaa") == ["other"]
    assert [d.name for d in store.path.iterdir()] == ["aaaa"]


def test_only_a_directory_with_a_manifest_or_a_version_id_as_name_is_a_version(tmp_path):
    for name in ("0123456789abcdef", "backup-0123456789abcdef", "0123456789abcdef.old", "0123456789abcdef0"):
        (tmp_path / name).mkdir()
    assert [is_version_dir(tmp_path / n) for n in ("0123456789abcdef", "backup-0123456789abcdef",
                                                    "0123456789abcdef.old", "0123456789abcdef0")] == [True, False, False, False]
    (tmp_path / "backup-0123456789abcdef" / MANIFEST).write_text("{}")
    assert is_version_dir(tmp_path / "backup-0123456789abcdef")


def test_the_fingerprint_is_of_the_files_names_and_contents_not_of_where_they_are(tmp_path):
    data = tmp_path / "data"
    (data / "day=1").mkdir(parents=True)
    pd.DataFrame({"x": [1, 2]}).to_parquet(data / "day=1" / "a.parquet")
    pd.DataFrame({"x": [3]}).to_parquet(data / "day=1" / "b.parquet")
    before = fingerprint_files(data)
    os.rename(data, tmp_path / "moved")
    assert fingerprint_files(tmp_path / "moved") == before
    os.rename(tmp_path / "moved" / "day=1", tmp_path / "moved" / "day=2")  # the same rows on another day
    assert fingerprint_files(tmp_path / "moved") != before


def test_a_build_s_sweep_deletes_the_leftovers_of_replaced_and_deleted_versions_only(tmp_path):
    """``.tmp-old-*`` (a replaced version) and ``.trash-*`` (a deletion) are garbage whoever made them; a live build
    and one that cannot be checked stay."""
    store = FeatureStore(tmp_path / "store")
    live = store.begin()
    unmarked = store.path / ".tmp-0a0a0a0a0a0a"  # a build by a release that wrote no owner: cannot be checked, kept
    unmarked.mkdir()
    for name in (".tmp-old-aaaa-12345678", ".trash-bbbb"):
        (store.path / name).mkdir()
        (store.path / name / "x.parquet").write_bytes(b"12345")
    assert sweep(store.path) == (2, 10, sorted([live, unmarked]), {})
