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
