"""A call holding state on every worker (xgboost.dask.train) fails fast when a worker dies instead of hanging."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from distributed import Client, LocalCluster

from rapids_engage.cluster import while_workers_live
from rapids_engage.cluster_errors import WorkerLostError


def test_a_lost_worker_ends_the_call_with_one_clear_error():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        assert while_workers_live(client, lambda: 42) == 42
        with pytest.raises(ValueError, match="inner"):
            while_workers_live(client, lambda: (_ for _ in ()).throw(ValueError("inner")))
        pid = next(iter(client.run(os.getpid).values()))  # one worker process (its nanny restarts it)
        killer = threading.Timer(0.5, os.kill, (pid, signal.SIGKILL))
        killer.start()
        start = time.monotonic()
        with pytest.raises(WorkerLostError, match=r"1 dask worker\(s\) died during training \(tcp://[\d.]+:\d+\)"):
            while_workers_live(client, lambda: time.sleep(120), poll_s=0.2)  # a collective waiting for a dead rank
        assert time.monotonic() - start < 60
        killer.join()


def _arrow_pool() -> str:
    import pyarrow as pa

    return pa.default_memory_pool().backend_name


def test_cpu_workers_return_freed_arrow_memory_to_the_system():
    """The CPU cluster's workers use pyarrow's system allocator (mimalloc kept freed buffers as
    unmanaged memory that paused workers under a tight memory_limit)."""
    from rapids_engage.backend import resolve
    from rapids_engage.cluster import start_cluster
    from rapids_engage.config import ClusterConfig

    with start_cluster(resolve("0"), ClusterConfig(gpus="0", n_workers=1, threads_per_worker=1)) as cluster:
        assert set(cluster.client.run(_arrow_pool).values()) == {"system"}


def test_an_existing_cluster_gets_our_backend_and_an_empty_one_is_a_clear_error():
    """--scheduler-address: workers are set up as ours, a restarted one too; a scheduler without workers is one line."""
    import dask

    from rapids_engage.backend import CPU
    from rapids_engage.cluster import start_cluster
    from rapids_engage.cluster_errors import ClusterError
    from rapids_engage.existing_cluster import _existing_workers_ready
    from rapids_engage.config import ClusterConfig

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with start_cluster(CPU, ClusterConfig(scheduler_address=cluster.scheduler_address)) as info:
            assert info.kind == "external" and info.n_workers == 1
            setup = info.client.run(lambda: (dask.config.get("dataframe.backend"), __import__("xgboost").get_config()["verbosity"]))
            assert list(setup.values()) == [("pandas", 0)]  # set up there (XGBoost quiet)
            info.client.restart_workers(list(info.client.nthreads()))  # its nanny restarts it: a fresh process
            setup = info.client.run(lambda: (dask.config.get("dataframe.backend"), __import__("xgboost").get_config()["verbosity"]))
            assert list(setup.values()) == [("pandas", 0)]  # the plugin set the new process up too
    with LocalCluster(n_workers=0, dashboard_address=None) as empty, Client(empty) as client:
        with pytest.raises(ClusterError, match=r"no worker joined the scheduler at tcp://.* within 1 s; start workers \(dask worker"):
            _existing_workers_ready(client, empty.scheduler_address, CPU, timeout_s=1)


def test_partitions_are_pinned_in_xgboost_rank_order():
    """Workers are taken in xgboost.dask's rank order (by name), not by address: ports are drawn anew
    each run, and address order let them swap which rank trained on which rows."""
    from rapids_engage.worker_order import rank_order

    class Scheduler:
        def run_on_scheduler(self, fn):
            return {"tcp://127.0.0.1:40001": 1, "tcp://127.0.0.1:50000": 0, "tcp://127.0.0.1:39999": 2}

    assert rank_order(Scheduler()) == ["tcp://127.0.0.1:50000", "tcp://127.0.0.1:40001", "tcp://127.0.0.1:39999"]


def test_rank_order_asks_the_scheduler_not_the_client_s_cached_identity():
    """client.scheduler_info() returns the client's cached identity, which its periodic refresh (cluster totals, no
    workers) can replace between the fetch and the read: a run then found no worker to pin its partitions to
    (ZeroDivisionError in pin_partitions, seen once in CI). The workers are asked of the scheduler."""
    from distributed import Client, LocalCluster

    from rapids_engage.worker_order import rank_order

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.scheduler_info = lambda *a, **k: {"workers": {}}  # what the refreshed cache holds
        assert sorted(rank_order(client)) == sorted(cluster.scheduler.workers)


def _bad_row() -> None:
    raise ValueError("bad row 7")


def test_a_failed_task_is_reported_once_by_the_driver(capfd):
    """dask's multi-line "Compute Failed" worker log is dropped: the driver reports the error (the
    pipeline in one line), in our clusters (preload, also after a restart) and existing ones."""
    from rapids_engage.backend import CPU
    from rapids_engage.cluster import start_cluster
    from rapids_engage.config import ClusterConfig

    with start_cluster(CPU, ClusterConfig(gpus="0", n_workers=1, threads_per_worker=1)) as ours:
        with pytest.raises(ValueError, match="bad row 7"):
            ours.client.submit(_bad_row, pure=False).result()
        ours.client.restart()
        with pytest.raises(ValueError, match="bad row 7"):
            ours.client.submit(_bad_row, pure=False).result()
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with start_cluster(CPU, ClusterConfig(scheduler_address=cluster.scheduler_address)) as theirs:
            with pytest.raises(ValueError, match="bad row 7"):
                theirs.client.submit(_bad_row, pure=False).result()
    time.sleep(0.5)  # the workers' stderr
    assert "Compute Failed" not in capfd.readouterr().err


def test_a_native_xgboost_error_is_told_by_its_message_not_its_source_file():
    from rapids_engage.cluster_errors import _one_line

    class XGBoostError(Exception):
        pass

    chained = XGBoostError("[10:21:07] /workspace/src/collective/result.cc:78: \n- [comm.cc:193|10:21:07]: Connection closed "
                           "by peer\n- [socket.h:1|10:21:07]: recv failed\nStack trace:\n  [bt] (0) /x/libxgboost.so(+0x1)")
    assert _one_line(chained) == "XGBoostError: Connection closed by peer"
    assert _one_line(XGBoostError("[9:01:02] /src/learner.cc:7: Check failed: n > 0\nStack trace:\n [bt]")) == \
        "XGBoostError: Check failed: n > 0"
    # a worker killed mid-training: the first line holds both prefixes and nothing else
    both = XGBoostError("[08:32:55] /__w/xgboost/xgboost/src/collective/result.cc:83: [cat_container.cc:308|08:32:55]:\n"
                        "- [socket.h:79|08:32:55]: Poll error condition:Success code:0\nStack trace:\n  [bt] (0) x")
    assert _one_line(both) == "XGBoostError: Poll error condition:Success code:0"
    assert _one_line(ValueError("x" * 300)).endswith("…") and len(_one_line(ValueError("x" * 300))) == 200


def test_a_scheduler_without_a_dashboard_gets_no_link(tmp_path):
    """``dask scheduler --no-dashboard`` still runs its HTTP server: the link the run logged was a 404."""
    import subprocess
    import sys

    from rapids_engage.existing_cluster import _served_dashboard

    info = tmp_path / "scheduler.json"
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--no-dashboard", "--port", "0",
                                  "--dashboard-address", ":0", "--scheduler-file", str(info)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not info.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        with Client(scheduler_file=str(info), timeout=30) as client:
            assert client.dashboard_link  # distributed's link regardless
            assert _served_dashboard(client) is None
    finally:
        scheduler.terminate()
        scheduler.wait(30)
    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as served, Client(served) as client:
        assert _served_dashboard(client) == client.dashboard_link


def _killing_first(client, real):
    """``real`` called after one worker process was killed (SIGKILL; its nanny restarts it under a new address)."""
    def call(*args, **kwargs):
        pid = next(iter(client.run(os.getpid).values()))
        os.kill(pid, signal.SIGKILL)
        return real(*args, **kwargs)

    return call


def _outcome(call, timeout_s: float = 60.0) -> BaseException | None:
    """The exception ``call()`` raised, in a thread given ``timeout_s`` (a hang fails the test instead of the suite)."""
    done: dict = {}
    thread = threading.Thread(target=lambda: done.setdefault("error", _raised(call)), daemon=True)
    thread.start()
    thread.join(timeout_s)
    assert not thread.is_alive(), f"still waiting after {timeout_s:.0f} s for a worker that died"
    return done["error"]


def _raised(call) -> BaseException | None:
    try:
        call()
    except BaseException as exc:  # noqa: BLE001 - returned to the test
        return exc
    return None


def _pinned_frame(client, rows: int = 400):
    import dask.dataframe as dd
    import numpy as np
    import pandas as pd

    from rapids_engage.worker_order import pin_partitions

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"row_id": np.arange(rows), "page": np.arange(rows) // 4, "a": rng.normal(size=rows),
                          "click": (rng.random(rows) < 0.3).astype("float32")})
    return pin_partitions(client, dd.from_pandas(frame, npartitions=4, sort=False))


def test_a_worker_lost_while_the_training_splits_are_pinned_ends_the_run(monkeypatch):
    """A worker killed after the features (`kill -9` of a worker of `--scheduler-address`, its nanny restarting it)
    left the run waiting forever: the pinned partitions' row counts waited for the dead worker's address."""
    from rapids_engage import run_stages

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        frame = _pinned_frame(client)
        monkeypatch.setattr(run_stages, "drop_empty_partitions", _killing_first(client, run_stages.drop_empty_partitions))
        error = _outcome(lambda: run_stages.pinned_splits(client, {"train": frame, "valid": frame}, set(client.nthreads()), False))
        assert isinstance(error, WorkerLostError), error


def test_a_worker_lost_while_a_training_sorts_its_groups_ends_the_training(monkeypatch):
    """The ranking sort (and a raw-count objective's label check) read the pinned partitions before the watched
    training: a worker lost then left the run waiting forever."""
    from rapids_engage import train
    from rapids_engage.backend import CPU
    from rapids_engage.config import TrainConfig
    from rapids_engage.train_shared_matrix import train_targets

    cfg = TrainConfig(targets=["click"], num_boost_round=5, per_target={"click": {"objective": "rank:ndcg"}})
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        frame, workers = _pinned_frame(client), set(client.nthreads())
        monkeypatch.setattr(train, "by_group", _killing_first(client, train.by_group))
        error = _outcome(lambda: train_targets(client, CPU, cfg, {"click": "binary"}, frame, frame, ["a"], group="page",
                                               workers=workers, row_key=("row_id",)))
        assert isinstance(error, WorkerLostError), error
