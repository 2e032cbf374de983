"""Review of the read-only feature store end to end (a store another team shares, mounted read-only): what a run,
``features``, the audit and the store's sweep of killed builds do there. The OS's refusal is emulated where it
would come (root writes through ``chmod a-w``)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from rapids_engage.config import ConfigError, load_config


def _unwritable(monkeypatch, store: Path) -> None:
    """``os.access`` says ``store`` cannot be written (as for a read-only mount, or a user without permission)."""
    real = os.access

    def access(path, mode, *args, **kwargs):
        if Path(path).absolute() == store.absolute() and mode & os.W_OK:
            return False
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)


def test_a_read_only_store_passes_a_runs_start_unless_it_rebuilds(tmp_path, monkeypatch):
    """A run's start refused a store that is there but not writable ('cannot create the feature store ...: Permission
    denied'), so no run could train from a hit in it; --rebuild, which builds there, is the one error, before any work."""
    from rapids_engage.pipeline import build_features
    from rapids_engage.run_dirs import check_store

    store = tmp_path / "store"
    store.mkdir()
    _unwritable(monkeypatch, store)
    cfg = load_config(None, [f"out={tmp_path / 'out'}", f"features.store={store}", "cluster.n_workers=1"])
    cfg.cluster.gpus = 0
    check_store(cfg, rebuild=False)  # a hit trains from it: the version decides (a miss: StoreNotWritable)
    refused = re.escape(f"features.store: the feature store '{store}' is not writable (Permission denied), and --rebuild "
                        "builds this run's version in it")
    with pytest.raises(ConfigError, match=refused):
        check_store(cfg, rebuild=True)
    with pytest.raises(ConfigError, match=refused):  # wired: before the data or the cluster
        build_features(cfg, rebuild=True, quiet=True)
    assert not (tmp_path / "out" / "features.json").exists()


def test_a_build_on_a_read_only_store_does_not_claim_to_delete_killed_builds(tmp_path, monkeypatch):
    """A run on a read-only store said 'feature store: deleted 2 temporary dir(s) of killed builds (4.9 KiB)' on every
    run, each still there (rmtree ignored its errors); what could not be deleted is said as such, with why."""
    import errno
    import shutil

    from rapids_engage.features.materialize import _sweep
    from rapids_engage.store import FeatureStore

    store = FeatureStore(tmp_path / "store")
    trash = store.path / ".trash-aaaa-12345678"  # a deletion's leftover: garbage whoever made it
    trash.mkdir(parents=True)
    (trash / "x.parquet").write_bytes(b"12345")
    real = os.unlink

    def refused(path, *args, **kwargs):
        if str(path).startswith(str(store.path)) or kwargs.get("dir_fd") is not None:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", refused)
    monkeypatch.setattr(os, "rmdir", refused)
    said = []
    _sweep(store, said.append)
    assert trash.is_dir()
    assert not any(line.startswith("feature store: deleted") for line in said), said
    assert said == [f"feature store: 1 temporary dir(s) of killed builds or deletions could not be deleted (5 bytes; "
                    f"Read-only file system: {trash / 'x.parquet'}): `python -m rapids_engage.pipeline store "
                    f"{store.path} --tmp` as a user who may write the store deletes them"]
    monkeypatch.undo()
    shutil.rmtree(trash)


def test_an_audit_on_a_read_only_store_says_its_version_is_unmarked(tmp_path, monkeypatch):
    """The audit's real-label run trained from a hit in a read-only store, then the audit ended in '[Errno 30]
    Read-only file system: <store>/.<version>.use.lock' marking it (its shuffled runs build in their own store): the
    version is held unmarked and said so, as a run and predict say it."""
    import errno

    from test_store_read_only import read_only

    from rapids_engage.audit import real_version_held

    version = "0123456789abcdef"
    store = tmp_path / "store"
    (store / version).mkdir(parents=True)
    monkeypatch.setattr("rapids_engage.store.FeatureStore.problem", lambda self, v: None)
    read_only(monkeypatch, store, errno.EROFS)
    lines = []
    real = {"store": {"path": str(store), "version": version}}
    with real_version_held(real, tmp_path / "out", lines.append) as held:
        assert held == store / version
    assert lines == [f"feature store: version {version} is not marked in use: the store {store} is read-only for this "
                     f"user (Read-only file system: {store / f'.{version}.use.lock'}), so retention by a user who can "
                     "write it (store --keep, features.keep_versions) could delete it meanwhile"]
