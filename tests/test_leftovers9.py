"""Four leftovers of the reviews: predict marks the store version it serves from, the run lock on a lock file this
user cannot write, an encoder parameter named where its normalization fails, a refused run's new parent folders."""
from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from rapids_engage.features import CountEncoder, TargetEncoder
from rapids_engage.run_lock import LOCK_NAME, OutInUse, out_lock


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


def _refuse_read_write(monkeypatch, readable: bool = True) -> None:
    """``os.open`` of a ``.run.lock`` refused as to a user who may not write it (root here bypasses permissions)."""
    real = os.open

    def guarded(path, flags, *args, **kwargs):
        if str(path).endswith(LOCK_NAME) and (flags & (os.O_RDWR | os.O_WRONLY) or not readable):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded)


def test_a_run_lock_this_user_cannot_write_still_locks(tmp_path, monkeypatch):
    """A .run.lock this user could not open read-write (another user's) let the run go ahead without the lock,
    silently. flock needs no write access: it is opened read-only, and a run holding it still refuses this one."""
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"command": "run", "pid": 1, "host": "h", "since": "s"}))
    holder = os.open(out / LOCK_NAME, os.O_RDONLY)
    try:
        _refuse_read_write(monkeypatch)
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another run holds it
        with pytest.raises(OutInUse, match="another run is writing there"):
            with out_lock(out):
                pass
        fcntl.flock(holder, fcntl.LOCK_UN)
        with out_lock(out):  # free: this run takes it, read-only
            with pytest.raises(BlockingIOError):
                fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(holder)


def test_a_run_lock_that_cannot_be_opened_refuses_in_one_line(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text("")
    _refuse_read_write(monkeypatch, readable=False)
    with pytest.raises(OutInUse) as refused:
        with out_lock(out):
            pytest.fail("ran without the lock")
    message = str(refused.value)
    assert "\n" not in message and str(out / LOCK_NAME) in message and "Permission denied" in message, message


@pytest.mark.parametrize("make, fit, words", [
    (lambda: TargetEncoder("a", smooth="x"), True, r"TargetEncoder: parameter smooth='x': could not convert string to float"),
    (lambda: CountEncoder(5, per_day=False), True, r"CountEncoder: parameter columns=5: 'int' object is not iterable"),
    (lambda: TargetEncoder("a", row_key=7), False, r"TargetEncoder: parameter row_key=7: 'int' object is not iterable"),
], ids=["target-smooth", "count-columns", "target-row_key"])
def test_a_wrong_encoder_parameter_is_named_where_it_is_read(make, fit, words):
    """A value set_params / the constructor accept but the encoder cannot use failed at fit in pandas' / Python's
    words ("could not convert string to float") naming no parameter."""
    encoder = make()
    repr(encoder)  # still shown (as given)
    with pytest.raises(ValueError, match=words):
        if fit:
            encoder.fit(pd.DataFrame({"a": [1, 2], "like": [0, 1]}), pd.DataFrame({"like": [0, 1]}))
        else:
            encoder.row_key


def test_a_refused_run_removes_the_parent_folders_it_made_and_no_others(tmp_path):
    """A run refused before it wrote removed its new --out but left the empty parent folders it had made."""
    with pytest.raises(_Stop):
        with out_lock(tmp_path / "new" / "deeper" / "out"):
            raise _Stop
    assert not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()  # the user's own (empty) folder stays
    with pytest.raises(_Stop):
        with out_lock(tmp_path / "mine" / "made" / "out"):
            raise _Stop
    assert [p.name for p in tmp_path.iterdir()] == ["mine"] and not any((tmp_path / "mine").iterdir())
