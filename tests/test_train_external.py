"""External-memory training's disk cache: what a stopped run left is deleted by the next; the training labels a
raw-count objective refuses are named before either training path starts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest


def test_the_cache_of_a_stopped_training_goes_at_the_next(tmp_path):
    """A Ctrl-C during train.external_memory's training left xgb-extmem-*/ with its quantised pages (73 MB at
    300k rows, a quarter of the training split) under cluster.local_directory, run after run."""
    from rapids_engage.train_external import cache_scratch

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    host = socket.gethostname().replace("-", "_")
    stale = tmp_path / f"xgb-extmem-{host}-{dead}-abc"
    live = tmp_path / f"xgb-extmem-{host}-{os.getpid()}-def"  # a training in progress (this process)
    other = tmp_path / f"xgb-extmem-elsewhere-{dead}-ghi"  # another host's, on a shared directory
    for d in (stale, live, other):
        d.mkdir()
        (d / "train.gradient_index.page").write_bytes(b"x")
    new = cache_scratch(str(tmp_path))
    assert not stale.exists() and live.exists() and other.exists()
    assert os.path.basename(new).startswith(f"xgb-extmem-{host}-{os.getpid()}-") and os.path.isdir(new)


def test_the_cache_goes_into_a_local_directory_not_made_yet(tmp_path):
    """On --scheduler-address no local cluster makes cluster.local_directory: a directory the workers lacked ended the
    run after the feature stage with FileNotFoundError from tempfile.mkdtemp on the worker, and its stack trace."""
    from rapids_engage.train_external import cache_scratch

    new = cache_scratch(str(tmp_path / "spill" / "here"))
    assert os.path.isdir(new) and os.path.dirname(new) == str(tmp_path / "spill" / "here")


def test_gamma_on_counts_with_zeros_is_refused_naming_the_setting(tmp_path):
    """reg:gamma needs counts above 0: on a count target with zeros (HN comments) XGBoost stopped mid-training with
    "label must be positive for gamma regression" and its stack trace, after the feature stage. Both training
    paths now refuse it first, naming the setting; counts above 0 (HN points) still train."""
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    from rapids_engage.backend import CPU
    from rapids_engage.config import ConfigError, TrainConfig
    from rapids_engage.train_shared_matrix import train_targets
    from rapids_engage.train_external import train_target_external

    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    counts = rng.poisson(np.exp(x))
    frame = pd.DataFrame({"x": x.astype("float32"), "n": np.log1p(counts), "n1": np.log1p(counts + 1)})
    assert (counts == 0).any()
    for split in ("train", "valid"):
        (tmp_path / split).mkdir()
        frame.to_parquet(tmp_path / split / "part.0.parquet")
    cfg = TrainConfig(targets=["n", "n1"], num_boost_round=3, per_target={t: {"objective": "reg:gamma"} for t in ("n", "n1")})
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, Client(cluster) as c:
        dask_frame = dd.from_pandas(frame, npartitions=2)
        paths = [lambda t: train_targets(c, CPU, cfg, {t: "count"}, dask_frame, dask_frame, ["x"])[t],
                 lambda t: train_target_external(c, CPU, cfg, t, tmp_path / "train", tmp_path / "valid", ["x"], "count")]
        for train in paths:
            with pytest.raises(ConfigError, match=r"train.per_target.n.objective: reg:gamma needs counts above 0"):
                train("n")
            assert train("n1").booster.num_boosted_rounds() >= 1


def test_cpu_validation_rows_are_evaluated_from_their_bins_values_with_the_bins_predictions(tmp_path, monkeypatch):
    """The validation rows, predicted at every round, were an ExtMemQuantileDMatrix, which XGBoost 3.2 predicts on CPU
    by reading every feature of a row from its bins (~5x slower than a DMatrix). On CPU they are an external-memory
    DMatrix of the values their bins stand for: the bins' predictions and labels (raw counts), so the same early
    stopping and models, also for rows beyond the training range, where the rows' own values go another way."""
    import xgboost

    from rapids_engage.train_external import _batches_class, fit_from_files

    rng = np.random.default_rng(0)
    files: dict[str, list[str]] = {}
    for split, scale in (("train", 1), ("valid", 5)):  # valid: beyond the training range
        files[split] = [str(tmp_path / f"{split}.{i}.parquet") for i in range(2)]
        for f in files[split]:
            x = scale * rng.normal(size=(300, 3)).astype("float32")
            x[rng.random(300) < 0.3, 0] = np.nan
            counts = rng.poisson(np.exp(np.clip(x[:, 1], -3, 3)))
            pd.DataFrame(x, columns=["a", "b", "c"]).assign(n=np.log1p(counts)).to_parquet(f)
    checked, fit = [], xgboost.train

    def train(params, dtrain, *args, evals, **kwargs):  # xgboost.train, then the validation rows checked
        booster = fit(params, dtrain, *args, evals=evals, **kwargs)
        dvalid = evals[1][0]
        batches = _batches_class()(files["valid"], ["a", "b", "c"], "n", True, False, str(tmp_path / "bins"))
        bins = xgboost.ExtMemQuantileDMatrix(batches, ref=dtrain, max_bin=16)
        own = xgboost.DMatrix(pd.concat([pd.read_parquet(f) for f in files["valid"]])[["a", "b", "c"]])

        def margin(rows):
            return booster.predict(rows, output_margin=True)

        assert type(dvalid) is xgboost.DMatrix and np.array_equal(margin(dvalid), margin(bins))
        assert not np.array_equal(margin(own), margin(bins))  # the rows' own values: not the bins'
        assert np.array_equal(dvalid.get_label(), bins.get_label()) and dvalid.feature_names == ["a", "b", "c"]
        checked.append(dvalid.num_row())
        return booster

    monkeypatch.setattr(xgboost, "train", train)
    params = {"objective": "count:poisson", "max_depth": 6, "max_bin": 16, "nthread": 1, "device": "cpu"}
    fit_from_files(files["train"], files["valid"], ["a", "b", "c"], "n", params, 10, 0, True, str(tmp_path / "cache"))
    assert checked == [600]


def test_a_worker_lost_while_the_cache_had_no_room_says_the_disk_may_be_full(tmp_path, monkeypatch):
    """XGBoost's failed write to a full cache directory ends the worker's process (std::terminate: 'FileStream.Write
    incomplete'), and the run said only that a worker died, 'if they were killed for memory: a larger
    cluster.memory_limit' (seen on a 1 MiB tmpfs as cluster.local_directory at 100k rows)."""
    import collections

    import rapids_engage.cluster as cluster
    from rapids_engage.backend import CPU
    from rapids_engage.config import TrainConfig
    from rapids_engage.train_external import train_target_external

    frame = pd.DataFrame({"x": np.arange(1000, dtype="float32"), "y": np.arange(1000) % 2, "z": np.ones(1000)})
    for split in ("train", "valid"):
        (tmp_path / split).mkdir()
        frame.to_parquet(tmp_path / split / "part.0.parquet")

    class Client:  # one worker, no training lock held (train_locks asks the scheduler)
        def nthreads(self):
            return {"tcp://w": 1}

        def run_on_scheduler(self, *_args, **_kwargs):
            return {}

    def lost(*_args, **_kwargs):
        raise cluster.WorkerLostError("1 dask worker(s) died during training (tcp://w)")

    monkeypatch.setattr(cluster, "while_workers_live", lost)
    train = lambda: train_target_external(Client(), CPU, TrainConfig(targets=["y"]), "y", tmp_path / "train",  # noqa: E731
                                          tmp_path / "valid", ["x", "z"], cache_dir=str(tmp_path / "cache"))
    with pytest.raises(cluster.WorkerLostError) as roomy:  # a disk with room: the death is not blamed on it
        train()
    assert str(roomy.value) == "1 dask worker(s) died during training (tcp://w)"
    monkeypatch.setattr("shutil.disk_usage", lambda _where: collections.namedtuple("Usage", "total used free")(1, 1, 1000))
    with pytest.raises(cluster.WorkerLostError, match=r"\(tcp://w\); or its external-memory cache filled the disk: its quantised "
                       rf"pages need about 2.0 KiB under {tmp_path / 'cache'}, which has 1,000 bytes free: free space, or set "
                       r"cluster.local_directory to a larger disk"):
        train()


def test_an_abandoned_external_memory_training_stops_on_its_worker(tmp_path):
    """A run given up (Ctrl-C) mid external-memory training left its task boosting on the worker to its last round (a
    rerun on the same cluster queued behind it), as the in-memory path's did before train_abandon; now the task is
    cancelled and stops after its round. Its matrices go with it: the task's error held them in its traceback's frames
    after their cache directory was deleted, and when collected later (a later test, the session's end) XGBoost
    warned that their cache files were missing and could not be removed."""
    import _thread
    import gc
    import threading
    import time

    import xgboost as xgb

    from distributed import Client, LocalCluster

    from rapids_engage.backend import CPU
    from rapids_engage.config import TrainConfig
    from rapids_engage.train_external import train_target_external

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2)).astype("float32")
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": (x[:, 0] > 0).astype("float32")})
    for split in ("train", "valid"):
        (tmp_path / split).mkdir()
        frame.to_parquet(tmp_path / split / "part.0.parquet")
    endless = TrainConfig(targets=["y"], max_depth=2, num_boost_round=10**7, early_stopping_rounds=0)

    def executing(c) -> int:
        return sum(c.run(lambda dask_worker: len(dask_worker.state.executing)).values())

    def until(done, bound_s: float = 60) -> bool:  # a bound on a hang, not a timing
        deadline = time.monotonic() + bound_s
        while not done() and time.monotonic() < deadline:
            time.sleep(0.05)
        return done()

    def live_matrices() -> set[int]:  # the in-process worker's too
        return {id(o) for o in gc.get_objects() if isinstance(o, xgb.DMatrix)}

    before = live_matrices()
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as c:
        threading.Thread(target=lambda: until(lambda: executing(c) == 1) and _thread.interrupt_main(), daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            train_target_external(c, CPU, endless, "y", tmp_path / "train", tmp_path / "valid", ["a", "b"],
                                  cache_dir=str(tmp_path / "cache"))
        assert until(lambda: executing(c) == 0)
        assert live_matrices() <= before and not list((tmp_path / "cache").iterdir())
