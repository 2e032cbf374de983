"""A predict's and an audit's in-use mark of a store version is written under the version's use lock
(:func:`rapids_engage.store.marked_in_use`): a deletion (``store --keep``, ``features.keep_versions``) that read the
marks before the mark then renamed the version away deleted it under a predict or audit that had found it."""

from __future__ import annotations

import os
import threading
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Callable

import pytest

from rapids_engage import store as store_module
from rapids_engage import store_admin
from rapids_engage.audit import real_version_held
from rapids_engage.predict import serving_marks
from rapids_engage.store import FeatureStore
from rapids_engage.store_builds import live_marks, versions_in_use

VERSION = "0123456789abcdef"


@pytest.fixture
def store(tmp_path) -> FeatureStore:
    """A store holding :data:`VERSION` as a directory (a deletion renames it whole; what it holds is not read)."""
    (tmp_path / "store" / VERSION).mkdir(parents=True)
    (tmp_path / "store" / VERSION / "manifest.json").write_text("{}")
    return FeatureStore(tmp_path / "store")


def _deletion_racing(monkeypatch, store: FeatureStore, mark: Callable[[], AbstractContextManager]) -> tuple[bool, list, bool]:
    """(whether the version was found inside ``mark()``, who the deletion said uses it, whether it is there after the
    deletion ended): a deletion of :data:`VERSION` in another thread (another process alike) pauses after reading the
    marks, under its use lock; ``mark()`` is entered then. Asking for the use lock lets the deletion go on (and waits
    for its end); else it goes on once the version was looked at inside ``mark()``."""
    read, go, said = threading.Event(), threading.Event(), {}
    real_marks, real_lock = store_admin.live_marks, store_module.use_lock

    def paused(path):
        marks = real_marks(path)
        read.set()
        go.wait(30)
        return marks

    def lock_then_go(*args):
        go.set()
        return real_lock(*args)

    monkeypatch.setattr(store_admin, "live_marks", paused)
    monkeypatch.setattr(store_module, "use_lock", lock_then_go)
    deleter = threading.Thread(target=lambda: said.setdefault("users", store_admin.remove_unless_in_use(store, VERSION)))
    deleter.start()
    try:
        assert read.wait(30)
        with mark():
            found = (store.path / VERSION).is_dir()  # predict's locate_builder, the audit's check
            go.set()
            deleter.join(30)
            there = (store.path / VERSION).is_dir()
    finally:
        go.set()
        deleter.join(30)
    return found, said["users"], there


def test_a_predict_s_mark_is_taken_under_the_use_lock(store, tmp_path, monkeypatch):
    models = tmp_path / "daily" / "models"
    info = {"path": str(store.path), "version": VERSION}
    found, users, there = _deletion_racing(monkeypatch, store, lambda: serving_marks(info, models))
    assert (found, users, there) == (False, [], False)  # deleted before the mark: found gone (predict names it)


def test_an_audit_s_mark_is_taken_under_the_use_lock(store, tmp_path, monkeypatch):
    real = {"store": {"path": str(store.path), "version": VERSION}}

    @contextmanager
    def audit_mark():
        try:
            held = real_version_held(real, tmp_path / "audit")
            held.__enter__()
        except ValueError:  # gone before the mark: the audit stops there, naming it
            held = None
        yield
        if held is not None:
            held.__exit__(None, None, None)

    found, users, there = _deletion_racing(monkeypatch, store, audit_mark)
    assert (found, users, there) == (False, [], False)


def _published(tmp_path) -> FeatureStore:
    """A store holding an intact :data:`VERSION`."""
    store = FeatureStore(tmp_path / "store")
    built = store.begin()
    (built / "train").mkdir()
    (built / "train" / "part.0.parquet").write_bytes(b"PAR1....PAR1")
    store.publish(built, VERSION, {"features": [], "rows": {"train": 1, "valid": 0}})
    return store


def test_the_audit_marks_the_real_version_until_its_end_and_names_a_gone_one(tmp_path):
    store = _published(tmp_path)
    real = {"store": {"path": str(store.path), "version": VERSION}}
    with real_version_held(real, tmp_path / "audit") as held:
        assert held == store.path / VERSION
        users = versions_in_use(live_marks(store.path))[VERSION]
        assert users == [f"{tmp_path / 'audit' / 'models'} (predicting: process {os.getpid()})"]
        assert store_admin.remove_unless_in_use(store, VERSION) == users  # `store --keep` meanwhile: kept
    assert versions_in_use(live_marks(store.path)) == {}
    assert store_admin.remove_unless_in_use(store, VERSION) == []
    with pytest.raises(ValueError, match=rf"^audit: store version {VERSION} of the real-label run is gone in "
                                         rf"{store.path} .*: the split, time-travel and out-of-fold checks read it; "
                                         "rerun the audit$"):
        with real_version_held(real, tmp_path / "audit"):
            pass
    assert not Path(store.path / VERSION).exists()


def test_the_audit_s_shuffled_runs_and_checks_run_with_the_real_version_marked(tmp_path, monkeypatch):
    """The real-label run's own mark ends with it; its models are not beside a store shared elsewhere: the shuffled
    runs and the split / time-travel / out-of-fold checks read the version unmarked."""
    import contextlib

    import rapids_engage.audit as audit
    import rapids_engage.cluster as cluster
    import rapids_engage.pipeline as pipeline
    from rapids_engage.layout import RECSYS

    store, seen = _published(tmp_path), []

    def marked(what):
        seen.append((what, VERSION in versions_in_use(live_marks(store.path))))
        return []

    def fake_run(cfg, **kwargs):
        marked("shuffled run" if kwargs.get("shuffle_seed") is not None else "real run")
        return {"targets": {"like": {"kind": "binary", "rce": 0.0 if kwargs.get("shuffle_seed") is not None else 9.0}},
                "store": {"path": str(store.path), "version": VERSION}, "split": {"cutoff": 0}, "layout": RECSYS.to_dict()}

    monkeypatch.setattr(pipeline, "run", fake_run)
    monkeypatch.setattr(cluster, "start_cluster", lambda *a, **k: contextlib.nullcontext())
    for check in ("split_checks", "time_travel_checks", "out_of_fold_checks"):
        monkeypatch.setattr(audit, check, lambda *a, _c=check, **k: marked(_c))
    argv = ["audit", "--gpus", "0", "--out", str(tmp_path / "out"), "--rows", "1000", "--shuffles", "1", "--quiet"]
    assert pipeline.main(argv) == 0
    assert seen == [("real run", False), ("shuffled run", True), ("split_checks", True), ("time_travel_checks", True),
                    ("out_of_fold_checks", True)]
    assert versions_in_use(live_marks(store.path)) == {}  # released at the audit's end
