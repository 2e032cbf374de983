"""Four leftovers of the reviews: predict marks the store version it serves from, the run lock on a lock file this
user cannot write, an encoder parameter named where its normalization fails, a refused run's new parent folders."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest



class _Stop(Exception):
    pass


def _store_with_versions(path: Path) -> None:
    from rapids_engage.store import FeatureStore

    store = FeatureStore(path)
    for name in ("aaa", "bbb"):
        tmp = store.begin()
        (tmp / "train").mkdir()
        pd.DataFrame({"f": range(3)}).to_parquet(tmp / "train" / "part.0.parquet")
        store.publish(tmp, name, {"rows": {"train": 3, "valid": 1}, "features": ["f"], "reused": None})


def test_predict_marks_the_version_it_serves_from_so_store_keep_spares_it(tmp_path, monkeypatch, capsys):
    """`store --keep` run while predict loaded its serving state deleted the version from under it: predict marked
    nothing (runs and builds do). predict holds the mark from the moment it knows the version until it ends."""
    from rapids_engage import predict
    from rapids_engage.backend import CPU
    from rapids_engage.config import ClusterConfig
    from rapids_engage.pipeline import main
    from rapids_engage.store_builds import IN_USE

    store = tmp_path / "shared" / "store"
    _store_with_versions(store)
    models = tmp_path / "elsewhere" / "run" / "models"  # not beside the store: `store` cannot see its models
    models.mkdir(parents=True)
    (models / "like.meta.json").write_text(json.dumps({"target": "like", "features": ["f"],
                                                       "store": {"path": str(store), "version": "aaa"}}))
    (models / "like.json").write_text('{"learner": {}}')
    rows = tmp_path / "rows.parquet"
    pd.DataFrame({"f": [1, 2]}).to_parquet(rows)
    pruned = {}

    def prune_meanwhile(metas, backend):  # predict is loading its state: a housekeeping job prunes the store
        pruned["rc"] = main(["store", str(store), "--keep", "0"])
        raise _Stop

    monkeypatch.setattr(predict, "load_boosters", prune_meanwhile)
    with pytest.raises(_Stop):
        predict.run_predict(models.parent, rows, tmp_path / "scored", CPU, ClusterConfig(gpus=0))
    out = " ".join(capsys.readouterr().out.split())
    assert pruned["rc"] == 0 and (store / "aaa").is_dir() and not (store / "bbb").exists(), out
    assert f"keeping aaa: the models in {models.parent} (predicting: process {os.getpid()}) use it" in out, out
    assert not (store / IN_USE).exists()  # the mark goes when predict ends
