"""Every target on one quantile sketch per worker: the same models, byte for byte, as one xgboost.dask
training per target (the path it replaced), on 1 and 2 workers (binary with class weighting, counts with a
raw-count objective and their own max_bin, a ranking target, per-target early stopping); the tracker honours
dask's ``xgboost.scheduler_address`` as xgboost.dask does."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
import xgboost

from rapids_engage.train_locks import Abandonment
from rapids_engage.train_shared_matrix import fit_targets as _real_fit_targets

FEATURES = ["a", "b", "c"]
_REAL_TRAIN = xgboost.train
KINDS = {"like": "binary", "rare": "binary", "count": "count", "click": "binary"}


def _rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype("float32")
    page = np.repeat(rng.integers(-(2**62), 2**62, n // 5), 5)
    like = (rng.random(n) < 1 / (1 + np.exp(-2 * x[:, 0]))).astype("int8")
    rare = (rng.random(n) < 0.05 + 0.05 * (x[:, 1] > 0)).astype("int8")
    count = np.log1p(rng.poisson(np.exp(0.5 * x[:, 2])))
    return pd.DataFrame({"row_id": np.arange(n, dtype="int64"), "page": page, "a": x[:, 0], "b": x[:, 1], "c": x[:, 2],
                         "like": like, "rare": rare, "count": count, "click": like})


def _cfg():
    from rapids_engage.config import TrainConfig

    return TrainConfig(targets=list(KINDS), max_depth=3, num_boost_round=12, early_stopping_rounds=2, subsample=0.8,
                       colsample_bytree=0.8, per_target={"rare": {"scale_pos_weight": "balanced", "early_stopping_rounds": 0},
                                                         "count": {"objective": "count:poisson", "max_bin": 64},
                                                         "click": {"objective": "rank:ndcg"}})


def _one_xgboost_dask_training(client, target, kind, train, valid):
    """The replaced path: xgboost.dask's own matrices and training, for one target."""
    import xgboost as xgb
    import xgboost.dask  # noqa: F401

    from rapids_engage.backend import CPU
    from rapids_engage.train import EVAL_SETS, boosting_rounds, by_group, is_ranking, query_ids, xgb_params
    from rapids_engage.train_shared_matrix import target_spec, trained_model

    ranks = is_ranking(xgb_params(_cfg(), target, CPU, kind)["objective"])
    if ranks:
        train, valid = by_group(train, "page", ("row_id",)), by_group(valid, "page", ("row_id",))
    spec = target_spec(_cfg(), CPU, target, kind, train[target])
    label = (lambda f: f[target].map_partitions(np.expm1, meta=f[target]._meta)) if spec.raw_counts else (lambda f: f[target])
    qid = (lambda f: {"qid": query_ids(f["page"])}) if ranks else (lambda f: {})
    dtrain = xgb.dask.DaskQuantileDMatrix(client, train[FEATURES], label(train), max_bin=spec.params["max_bin"], **qid(train))
    dvalid = xgb.dask.DaskQuantileDMatrix(client, valid[FEATURES], label(valid), ref=dtrain, max_bin=spec.params["max_bin"],
                                          **qid(valid))
    rounds, patience = boosting_rounds(_cfg(), target)
    out = xgb.dask.train(client, spec.params, dtrain, num_boost_round=rounds, evals=list(zip((dtrain, dvalid), EVAL_SETS)),
                         early_stopping_rounds=patience if patience > 0 else None, verbose_eval=False)
    return trained_model(spec, kind, out["booster"], out["history"])


def _scheduler_here():
    """A client whose ``run_on_scheduler`` runs the function here, on a scheduler of no workers."""
    scheduler = type("Scheduler", (), {})()
    return type("Client", (), {"run_on_scheduler": staticmethod(lambda fn, *args: fn(*args, dask_scheduler=scheduler))})()


def _stub_lock(monkeypatch, events: list) -> None:
    """The workers' training lock stubbed (``distributed.MultiLock``, and its release on the scheduler,
    ``train_locks.release_locks``): ``events`` hears "locked" and "released"."""
    import distributed

    import rapids_engage.train_locks as train_locks

    class Lock:
        def __init__(self, workers, client):
            self.id = "lock"

        def acquire(self):
            events.append("locked")
            return True

    monkeypatch.setattr(distributed, "MultiLock", Lock)
    monkeypatch.setattr(train_locks, "release_locks", lambda client, ids: events.append("released") or len(ids))


def _raw(model, path) -> bytes:
    model.booster.save_model(str(path))
    return path.read_bytes()


@pytest.mark.parametrize("n_workers, valid_parts", [(1, 4), (2, 4), (2, 1)])  # (2, 1): a worker without validation rows
def test_shared_matrices_train_the_models_xgboost_dask_trains(n_workers, valid_parts, tmp_path):
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    from rapids_engage.backend import CPU
    from rapids_engage.cluster import worker_addresses
    from rapids_engage.worker_order import pin_partitions
    from rapids_engage.train_shared_matrix import train_targets

    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        train, valid = (pin_partitions(client, dd.from_pandas(_rows(n, s), npartitions=p, sort=False))
                        for n, s, p in ((1500, 0, 4), (500, 1, valid_parts)))
        old = {t: _one_xgboost_dask_training(client, t, k, train, valid) for t, k in KINDS.items()}
        calls, saved = [], []
        new = train_targets(client, CPU, _cfg(), KINDS, train, valid, FEATURES, "page", worker_addresses(client), ("row_id",),
                            progress=lambda *a: calls.append(a), trained=lambda m: saved.append(m.target))
    assert list(new) == list(KINDS)
    assert calls == [(0, 4, "like, rare"), (2, 4, "count"), (3, 4, "click")] and saved == ["like", "rare", "count", "click"]
    for t in KINDS:
        assert _raw(old[t], tmp_path / f"{t}-old.json") == _raw(new[t], tmp_path / f"{t}-new.json"), t
        assert (old[t].best_iteration, old[t].history, old[t].train_history, old[t].params) == \
               (new[t].best_iteration, new[t].history, new[t].train_history, new[t].params), t
    assert new["rare"].params["scale_pos_weight"] > 1
    assert new["count"].booster.num_boosted_rounds() < 12 and new["click"].booster.num_boosted_rounds() < 12  # stopped early


def test_the_tracker_goes_where_dask_config_says_first_then_the_scheduler():
    """xgboost.dask starts its tracker at ``xgboost.scheduler_address`` (dask config) when set, else at XGBoost's guess
    of the host, falling back to the scheduler's host; so does the shared training."""
    import dask

    from rapids_engage.train_shared_matrix import tracker_addresses

    class Scheduler:
        address = "tcp://10.1.2.3:8786"

    client = type("Client", (), {"scheduler": Scheduler()})()
    assert tracker_addresses(client) == [None, "10.1.2.3"]
    with dask.config.set({"xgboost.scheduler_address": "192.0.0.100:12345"}):
        assert tracker_addresses(client) == [("192.0.0.100", 12345), "10.1.2.3"]
    with dask.config.set({"xgboost.scheduler_address": "192.0.0.100"}):
        assert tracker_addresses(client) == [("192.0.0.100", 0), "10.1.2.3"]


def test_a_target_xgboost_refuses_is_named_in_one_line_with_its_config_key():
    """A per-target parameter XGBoost refuses only once training (monotone constraints for more features than there
    are) ended the run with XGBoost's words and a native stack trace, naming no target: the four targets train in one
    task. The error is one line naming the config key."""
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    from rapids_engage.backend import CPU
    from rapids_engage.cluster import worker_addresses
    from rapids_engage.worker_order import pin_partitions
    from rapids_engage.config import TrainConfig
    from rapids_engage.train_shared_matrix import train_targets

    cfg = TrainConfig(targets=["like", "rare"], max_depth=3, num_boost_round=3,
                      per_target={"rare": {"monotone_constraints": "(1,1,1,1,1)"}})
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        train, valid = (pin_partitions(client, dd.from_pandas(_rows(n, s), npartitions=2, sort=False))
                        for n, s in ((600, 0), (200, 1)))
        with pytest.raises(ValueError) as caught:
            train_targets(client, CPU, cfg, {"like": "binary", "rare": "binary"}, train, valid, FEATURES, None,
                          worker_addresses(client))
    message = str(caught.value)
    assert message.startswith("train.per_target.rare.monotone_constraints: XGBoost: "), message
    assert "monotone constraint" in message and "\n" not in message, message


def test_a_max_bin_given_as_text_trains_as_its_number(tmp_path):
    """``per_target.like.max_bin: '64'`` passes the config check (XGBoost's parameters read text), but the quantile
    matrix refused it ('Invalid type for: `max_bin`' and a native stack trace) when the train stage began."""
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    from rapids_engage.backend import CPU
    from rapids_engage.cluster import worker_addresses
    from rapids_engage.worker_order import pin_partitions
    from rapids_engage.config import TrainConfig
    from rapids_engage.train_shared_matrix import train_targets

    models = {}
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        train, valid = (pin_partitions(client, dd.from_pandas(_rows(n, s), npartitions=2, sort=False))
                        for n, s in ((600, 0), (200, 1)))
        for max_bin in ("64", 64):
            cfg = TrainConfig(targets=["like"], max_depth=3, num_boost_round=3, per_target={"like": {"max_bin": max_bin}})
            models[max_bin] = train_targets(client, CPU, cfg, {"like": "binary"}, train, valid, FEATURES, None,
                                            worker_addresses(client))["like"]
    assert _raw(models["64"], tmp_path / "text.json") == _raw(models[64], tmp_path / "number.json")


def test_a_worker_without_partitions_on_gpus_makes_its_empty_matrix_of_cupy_as_xgboost_dask(monkeypatch):
    """On GPU workers xgboost.dask builds a worker's empty matrix of a cupy array, so that its collective calls match
    the other workers'; ours did of numpy whatever the device (a hang or error on a multi-GPU run)."""
    import sys
    import types

    import xgboost

    from rapids_engage.train_shared_matrix import quantile_matrix

    made = []
    cupy = types.ModuleType("cupy")
    cupy.empty = lambda shape: made.append(shape) or np.empty(shape)  # noqa: E731 - records the call, CPU stand-in
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setattr(xgboost, "QuantileDMatrix", lambda data, **kw: data)  # an empty one needs the collective
    assert quantile_matrix([], FEATURES, 64, 1, None).shape == (0, 0) and made == []
    assert quantile_matrix([], FEATURES, 64, 1, None, cuda=True).shape == (0, 0) and made == [(0, 0)]



def test_validation_rows_are_evaluated_from_their_bins_values_with_the_bins_predictions():
    """On CPU the validation rows, predicted at every round, are a ``DMatrix`` of the values their bins stand for
    (5x faster than the ``QuantileDMatrix``): the bins' predictions, so the same early stopping and models, also for
    rows beyond the training range, where the rows' own values go another way (missing values split off at the
    last cut), and the same query groups."""
    from rapids_engage.train_shared_matrix import binned_values

    rng = np.random.default_rng(0)
    x, beyond = rng.normal(size=(2000, 3)).astype("float32"), 5 * rng.normal(size=(500, 3)).astype("float32")
    for rows in (x, beyond):
        rows[rng.random(len(rows)) < 0.3, 0] = np.nan
    dtrain = xgboost.QuantileDMatrix(x, np.isnan(x[:, 0]) | (x[:, 1] > 0.5), max_bin=16)
    bins = xgboost.QuantileDMatrix(beyond, ref=dtrain, max_bin=16, qid=np.repeat(np.arange(100), 5))
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 6, "max_bin": 16, "nthread": 1}, dtrain, 10)
    values = binned_values(bins, 1)

    def margin(rows):
        return booster.predict(rows, output_margin=True)

    assert not isinstance(values, xgboost.QuantileDMatrix) and np.array_equal(margin(values), margin(bins))
    assert not np.array_equal(margin(xgboost.DMatrix(beyond)), margin(bins))  # the rows' own values: not the bins'
    assert values.get_uint_info("group_ptr").tolist() == bins.get_uint_info("group_ptr").tolist() == list(range(0, 501, 5))


#: Worker 1's failure, injected: its address, and whether its peer's task has failed yet.
_INJECTED: dict = {"failing": None, "peer_failed": threading.Event()}


def _train_refused_on_worker_1(*args, **kwargs):
    """``xgb.train``, but XGBoost refuses on worker 1 (the real cause)."""
    import distributed
    import xgboost as xgb

    if distributed.get_worker().address == _INJECTED["failing"]:
        raise xgb.core.XGBoostError("injected: the real cause on worker 1")
    return _REAL_TRAIN(*args, **kwargs)


def _fit_targets_worker_1_last(*args, **kwargs):
    """``fit_targets``, whose error on worker 1 reaches the driver after its peer's."""
    try:
        return _real_fit_targets(*args, **kwargs)
    except Exception:
        import distributed

        if distributed.get_worker().address == _INJECTED["failing"]:
            _INJECTED["peer_failed"].wait(60)
        else:
            _INJECTED["peer_failed"].set()
        raise


def test_a_worker_failing_inside_the_collective_is_named_not_its_peers_lost_connection(monkeypatch):
    """One worker failing inside XGBoost's collective breaks its peer's allreduce ("Ring allreduce small failed."); when
    the peer's error reached the driver first, the one-line error gave the peer's words instead of the real cause."""
    import dask.dataframe as dd
    import xgboost as xgb
    from distributed import Client, LocalCluster

    import rapids_engage.train_shared_matrix as tsm
    from rapids_engage.backend import CPU
    from rapids_engage.cluster import worker_addresses
    from rapids_engage.worker_order import pin_partitions
    from rapids_engage.config import TrainConfig

    monkeypatch.setattr(xgb, "train", _train_refused_on_worker_1)
    monkeypatch.setattr(tsm, "fit_targets", _fit_targets_worker_1_last)
    cfg = TrainConfig(targets=["like"], max_depth=3, num_boost_round=3)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        monkeypatch.setitem(_INJECTED, "failing", sorted(worker_addresses(client))[1])
        monkeypatch.setitem(_INJECTED, "peer_failed", threading.Event())
        train, valid = (pin_partitions(client, dd.from_pandas(_rows(n, s), npartitions=2, sort=False))
                        for n, s in ((600, 0), (200, 1)))
        with pytest.raises(ValueError) as caught:
            tsm.train_targets(client, CPU, cfg, {"like": "binary"}, train, valid, FEATURES, None, worker_addresses(client))
    assert _INJECTED["peer_failed"].is_set()  # the peer did fail, on its lost connection
    assert str(caught.value) == "train (target 'like'): XGBoost: injected: the real cause on worker 1"


def test_boosters_come_back_on_the_device_they_were_trained_for(monkeypatch):
    """A worker's UBJ bytes keep no ``device``: loaded as they were, a GPU run's boosters predicted on the CPU
    and copied the GPU rows to the host (XGBoost's 'mismatched devices' warning on an H200)."""
    import numpy as np
    import xgboost as xgb

    from rapids_engage.train import loaded_booster

    rows = xgb.DMatrix(np.arange(40.0).reshape(20, 2), label=np.arange(20) % 2)
    raw = bytes(xgb.train({"objective": "binary:logistic"}, rows, 2).save_raw("ubj"))
    seen = []
    monkeypatch.setattr(xgb.Booster, "set_param", lambda self, params, value=None: seen.append(params))
    assert isinstance(loaded_booster(raw, {"device": "cuda", "max_depth": 8}), xgb.Booster)
    loaded_booster(raw, {"max_depth": 8})
    assert [p for p in seen if isinstance(p, dict)] == [{"device": "cuda"}]  # the constructor sets its own (a list)


def test_a_bracketed_ipv6_tracker_address_without_a_port_is_its_host():
    """dask's config writes an IPv6 host in brackets: ``[::1]`` is the host ``::1`` on any port (with the brackets
    kept, the tracker was started on a host named ``[::1]``)."""
    import dask

    from rapids_engage.train_shared_matrix import tracker_addresses

    client = type("Client", (), {"scheduler": type("Scheduler", (), {"address": "tcp://10.1.2.3:8786"})()})()
    with dask.config.set({"xgboost.scheduler_address": "[::1]"}):
        assert tracker_addresses(client) == [("::1", 0), "10.1.2.3"]
    with dask.config.set({"xgboost.scheduler_address": "[::1]:9091"}):
        assert tracker_addresses(client) == [("::1", 9091), "10.1.2.3"]


def test_the_tracker_falls_back_to_the_next_address_and_raises_xgboost_s_error_when_none_will_do(monkeypatch):
    """The first address XGBoost refuses falls back to the next; when the last is refused too, XGBoost's own error
    is raised (not a Python error about a tracker never made)."""
    import xgboost.tracker
    from xgboost.core import XGBoostError

    from rapids_engage.train_abandon import worker_args
    from rapids_engage.train_shared_matrix import start_tracker

    started = []

    class Tracker:
        def __init__(self, n_workers, host_ip, port, **kwargs):
            if host_ip != "good":
                raise XGBoostError(f"cannot bind {host_ip}")
            self.host = host_ip

        def start(self):
            started.append(self.host)

        def wait_for(self):
            pass

        def worker_args(self):
            return {"dmlc_tracker_uri": self.host, "dmlc_tracker_port": 9091}

    monkeypatch.setattr(xgboost.tracker, "RabitTracker", Tracker)
    client = _scheduler_here()
    monkeypatch.setattr("rapids_engage.train_shared_matrix.tracker_addresses", lambda c: [None, "good"])
    assert worker_args(start_tracker(client, 2)) == {"dmlc_tracker_uri": "good", "dmlc_tracker_port": 9091}
    assert started == ["good"]
    monkeypatch.setattr("rapids_engage.train_shared_matrix.tracker_addresses", lambda c: [None, "bad"])
    with pytest.raises(XGBoostError, match="cannot bind bad"):
        start_tracker(client, 2)


def test_xgboost_threads_are_the_target_s_nthread_or_n_jobs_else_the_worker_s():
    from rapids_engage.train_shared_matrix import worker_threads

    assert worker_threads({"nthread": 3, "n_jobs": 5}, 8) == 3
    assert worker_threads({"n_jobs": 5}, 8) == 5
    assert worker_threads({"nthread": 0, "n_jobs": 0}, 8) == 8  # 0: XGBoost's "all", the worker's threads here
    assert worker_threads({}, 8) == 8


def test_only_xgboost_s_refusals_are_a_target_s_and_out_of_memory_is_not_one(monkeypatch):
    """Out of memory is worded by :mod:`.failures` (what to change to fit), not as a parameter XGBoost refused; an
    error that is not XGBoost's is not worded as XGBoost's."""
    import distributed
    import xgboost as xgb

    from rapids_engage.train_shared_matrix import TargetFailed, TargetSpec, fit_target

    worker = type("Worker", (), {"state": type("State", (), {"nthreads": 1})()})()
    monkeypatch.setattr(distributed, "get_worker", lambda: worker)
    spec = TargetSpec("like", {"objective": "binary:logistic"}, 2, 0, False)
    for words, expected in (("std::bad_alloc", xgb.core.XGBoostError), ("Invalid Parameter format", TargetFailed),
                            ("not XGBoost's", KeyError)):
        def refuse(*args, _words=words, _type=KeyError if expected is KeyError else xgb.core.XGBoostError, **kwargs):
            raise _type(_words)

        monkeypatch.setattr(xgb, "train", refuse)
        with pytest.raises((ValueError, KeyError)) as caught:
            fit_target(spec, None, None)
        assert type(caught.value) is expected, words


def test_a_training_the_run_abandoned_while_its_partitions_were_computed_takes_no_lock(monkeypatch):
    """The run stopped (Ctrl-C) while the partitions were computed and released its locks: the training thread it left
    behind would take the workers' lock now and hold it for ever."""
    import rapids_engage.train_shared_matrix as tsm

    frame = type("Frame", (), {"__getitem__": lambda self, columns: self})()
    taken: list[str] = []
    monkeypatch.setattr(tsm, "worker_parts", lambda client, f: {"tcp://w1": ["part"]})
    monkeypatch.setattr(tsm, "start_tracker", lambda client, n: {})
    _stub_lock(monkeypatch, taken)
    abandoned = Abandonment()
    abandoned.set()
    with pytest.raises(RuntimeError, match="training abandoned"):
        tsm.train_shared(None, frame, frame, FEATURES, None, [], {}, abandoned)
    assert taken == []


def test_targets_share_matrices_by_row_order_and_max_bin_and_ranking_needs_a_group():
    from rapids_engage.backend import CPU
    from rapids_engage.train_shared_matrix import target_groups

    assert target_groups(_cfg(), CPU, KINDS, "page") == [(False, ["like", "rare"]), (False, ["count"]), (True, ["click"])]
    with pytest.raises(ValueError, match=r"ranking objectives for \['click'\] need a ranking group"):
        target_groups(_cfg(), CPU, KINDS, None)
    assert target_groups(_cfg(), CPU, {"like": "binary"}, None) == [(False, ["like"])]


def test_a_model_keeps_its_validation_history_as_history_and_its_training_one_apart():
    import xgboost as xgb

    from rapids_engage.train_shared_matrix import TargetSpec, trained_model

    rows = xgb.DMatrix(np.arange(40.0).reshape(20, 2), label=np.arange(20) % 2)
    booster = xgb.train({"objective": "binary:logistic"}, rows, 2)
    spec = TargetSpec("like", {"objective": "binary:logistic"}, 2, 0, False)
    model = trained_model(spec, "binary", booster, {"train": {"logloss": [0.6, 0.5]}, "valid": {"logloss": [0.7, 0.65]}})
    assert (model.history, model.train_history, model.best_iteration) == ({"logloss": [0.7, 0.65]}, {"logloss": [0.6, 0.5]}, 1)


def test_every_worker_holding_rows_trains_and_the_model_is_a_training_worker_s(monkeypatch):
    """A worker holding validation rows only joins the collective (its matrices' calls must match), and returns no
    booster: the model is the first that a worker with training rows returned."""
    import rapids_engage.train
    import rapids_engage.train_shared_matrix as tsm

    frame = type("Frame", (), {"__getitem__": lambda self, columns: self})()
    train, valid = frame, type("Frame", (), {"__getitem__": lambda self, columns: self})()
    monkeypatch.setattr(tsm, "worker_parts", lambda client, f: {"tcp://a": ["t0"]} if f is train else {"tcp://b": ["v0"]})
    monkeypatch.setattr(tsm, "start_tracker", lambda client, n: {"n": n})
    locks: list[str] = []
    _stub_lock(monkeypatch, locks)
    submitted = []

    class Client:
        def submit(self, fn, train_parts, valid_parts, *args, workers, **kwargs):
            submitted.append((workers, train_parts, valid_parts, args[-2]))
            return {"tcp://a": {"like": (b"raw", {"valid": {}})}, "tcp://b": tsm.EMPTY}[workers[0]]

    monkeypatch.setattr(tsm, "gather_cause", lambda client, futures: futures)
    monkeypatch.setattr(rapids_engage.train, "loaded_booster", lambda raw, params: ("booster", raw))
    spec = tsm.TargetSpec("like", {"max_bin": 256}, 2, 0, False)
    out = tsm.train_shared(Client(), train, valid, FEATURES, None, [spec], {}, Abandonment())
    assert submitted == [(["tcp://a"], ["t0"], [], {"n": 2}), (["tcp://b"], [], ["v0"], {"n": 2})]
    assert out == {"like": (("booster", b"raw"), {"valid": {}})} and locks == ["locked", "released"]


def test_the_cause_failing_after_its_peer_s_lost_connection_is_waited_for_and_raised(monkeypatch):
    """The peer's lost connection reached the driver first: the cause, failing within the grace period, is raised."""
    import distributed

    import rapids_engage.train_shared_matrix as tsm

    class Future:
        def __init__(self, error):
            self.status, self.error = "pending", error

        def exception(self):
            return self.error

        def result(self):
            raise self.error

    peer, cause = Future(RuntimeError("Ring allreduce small failed: connection reset")), Future(KeyError("the cause"))
    peer.status = "error"
    waited = []

    def wait(futures, timeout):
        waited.append(timeout)
        cause.status = "error"  # its failure arrives within the grace period

    monkeypatch.setattr(distributed, "as_completed", lambda futures: iter([peer, cause]))
    monkeypatch.setattr(distributed, "wait", wait)
    with pytest.raises(KeyError, match="the cause"):
        tsm.gather_cause(None, [peer, cause], grace_s=7.0)
    assert waited == [7.0]


def test_a_partition_that_fails_to_compute_raises_its_own_error():
    """Its error, not a lookup of where a partition that does not exist lies."""
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    from rapids_engage.train_shared_matrix import worker_parts

    def refuse(part):
        if part["a"].iloc[0] >= 2:
            raise KeyError("partition 1 refused")
        return part

    frame = dd.from_pandas(pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]}), npartitions=2, sort=False)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        (parts,) = worker_parts(client, frame).values()
        assert [len(p.result()) for p in parts] == [2, 2]
        with pytest.raises(KeyError, match="partition 1 refused"):
            worker_parts(client, frame.map_partitions(refuse, meta=frame._meta))


def test_a_worker_whose_peer_never_joins_is_let_go_by_the_tracker(monkeypatch):
    """A worker lost before joining XGBoost's group (killed as the training started) left its peers' training tasks
    waiting for it in ``collective.init`` for ever: on an existing cluster their threads stayed taken after the run
    ended and the next run hung. The tracker now gives up on the group, and the waiting task fails."""
    import rapids_engage.train_shared_matrix as tsm

    monkeypatch.setattr(tsm, "TRACKER_TIMEOUT_S", 1)
    monkeypatch.setattr(tsm, "tracker_addresses", lambda client: ["127.0.0.1"])
    client = _scheduler_here()
    args = tsm.start_tracker(client, 2)
    waiting, outcome = _join_group(args, "alone")  # daemon: without the timeout it never ends
    waiting.join(60)  # a bound on a hang, not a timing: the tracker lets go after TRACKER_TIMEOUT_S
    assert not waiting.is_alive() and outcome == ["XGBoostError"]


def _join_group(coll_args: dict, task_id: str) -> tuple[threading.Thread, list[str]]:
    """A daemon thread joining the XGBoost group of ``coll_args`` as ``task_id``, started, and the list it appends
    ``"joined"`` or the name of the exception it got to."""
    from xgboost import collective

    from rapids_engage.train_abandon import worker_args

    outcome: list[str] = []

    def join() -> None:
        try:
            with collective.CommunicatorContext(**worker_args(coll_args), dmlc_task_id=task_id):
                outcome.append("joined")
        except Exception as exc:  # noqa: BLE001 - the failure is what is asserted
            outcome.append(type(exc).__name__)

    thread = threading.Thread(target=join, daemon=True)
    thread.start()
    return thread, outcome


def _until(done, bound_s: float = 60) -> bool:
    """Whether ``done()`` holds within ``bound_s``: a bound on a hang, not a timing."""
    import time

    deadline = time.monotonic() + bound_s
    while not done() and time.monotonic() < deadline:
        time.sleep(0.05)
    return done()


def test_stopping_an_ended_tracker_leaves_a_later_tracker_on_its_port_alone(monkeypatch):
    """The scheduler listed its trackers by port alone: a run given up after its tracker had ended (Ctrl-C as its
    boosters loaded) stopped the tracker listening on that port then, another run's when dask's
    ``xgboost.scheduler_address`` names a port (every tracker's), and that run's group could not form."""
    import socket

    import rapids_engage.train_shared_matrix as tsm
    from rapids_engage.train_abandon import TRACKERS, stop_tracker

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(tsm, "tracker_addresses", lambda client: [("127.0.0.1", port)])
    client = _scheduler_here()
    listed = lambda: client.run_on_scheduler(lambda dask_scheduler: dict(dask_scheduler.__dict__.get(TRACKERS, {})))
    monkeypatch.setattr(tsm, "TRACKER_TIMEOUT_S", 1)
    ended = tsm.start_tracker(client, 1)  # its group never forms: it ends after 1 s
    assert _until(lambda: not listed())
    monkeypatch.setattr(tsm, "TRACKER_TIMEOUT_S", 60)
    later = tsm.start_tracker(client, 1)
    assert later["dmlc_tracker_port"] == ended["dmlc_tracker_port"] == port
    stop_tracker(client, ended, grace_s=0)
    assert _until(lambda: not any(t.name == "stop-xgboost-tracker" for t in threading.enumerate()))
    joining, outcome = _join_group(later, "w")
    joining.join(120)  # a bound on a hang
    assert outcome == ["joined"]
    assert _until(lambda: not listed())


def test_the_tracker_starts_once_the_workers_training_locks_are_taken(monkeypatch):
    """The tracker's timeout bounds the wait for the training tasks: a run waiting for another run's training locks
    must not spend it waiting."""
    import rapids_engage.train_shared_matrix as tsm

    frame = type("Frame", (), {"__getitem__": lambda self, columns: self})()
    events: list[str] = []

    def tracker(client, n):
        events.append("tracker")
        raise RuntimeError("stop here")

    monkeypatch.setattr(tsm, "worker_parts", lambda client, f: {"tcp://w1": ["part"]})
    monkeypatch.setattr(tsm, "start_tracker", tracker)
    _stub_lock(monkeypatch, events)
    with pytest.raises(RuntimeError, match="stop here"):
        tsm.train_shared(None, frame, frame, FEATURES, None, [], {}, Abandonment())
    assert events == ["locked", "tracker", "released"]
