"""The worker set-up: XGBoost's collective lines do not reach the console once workers are quieted."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd


def _printed_training(client, frame, capfd) -> str:
    import xgboost as xgb
    import xgboost.dask  # noqa: F401

    dtrain = xgb.dask.DaskDMatrix(client, frame[["a", "b"]], frame["y"])
    out = xgb.dask.train(client, {"objective": "binary:logistic", "nthread": 1}, dtrain, num_boost_round=2)
    assert out["booster"].num_boosted_rounds() == 2
    time.sleep(0.5)  # the workers write to the console on their own
    return "".join(capfd.readouterr())


def test_quiet_workers_print_no_rank_lines(capfd):
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    from rapids_engage.worker_setup import quiet_worker

    rng = np.random.default_rng(0)
    frame = dd.from_pandas(pd.DataFrame({"a": rng.random(400), "b": rng.random(400), "y": rng.integers(0, 2, 400)}), npartitions=2)
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster) as client:
        # XGBoost prints them on workers that are not quieted: this test sees them when they are there
        assert "got rank" in _printed_training(client, frame, capfd)
        client.run(quiet_worker)  # what the preload of our clusters and the set-up of an existing one run
        assert "got rank" not in _printed_training(client, frame, capfd)


def test_a_restarted_worker_is_counted_as_lost():
    import os
    import signal

    from rapids_engage.backend import CPU
    from rapids_engage.cluster import start_cluster
    from rapids_engage.config import ClusterConfig

    with start_cluster(CPU, ClusterConfig(gpus="0", n_workers=1, threads_per_worker=1)) as cluster:
        assert cluster.workers_lost() == 0
        pid = next(iter(cluster.client.run(os.getpid).values()))
        os.kill(pid, signal.SIGKILL)  # its nanny restarts it under a new address
        deadline = time.monotonic() + 60
        while cluster.workers_lost() == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert cluster.workers_lost() == 1


async def _heartbeat_to_a_gone_scheduler(dask_worker) -> None:
    """The race of a cluster's close: the worker's heartbeat finds the scheduler gone."""

    async def gone(**_):
        raise OSError("Stream is closed")

    real = dask_worker.scheduler.heartbeat_worker
    dask_worker.scheduler.heartbeat_worker = gone
    try:
        await dask_worker.heartbeat()
    finally:
        dask_worker.scheduler.heartbeat_worker = real


def _peer_gone(dask_worker) -> None:
    """What a worker logs when a peer it gathers from dies mid-transfer (killed for memory)."""
    import logging

    try:
        raise OSError("Stream is closed")
    except OSError:
        logging.getLogger("distributed.worker").exception("Worker stream died during communication: %s", "tcp://127.0.0.1:1")


def _receiver_gone(dask_worker) -> None:
    """What a worker logs when the peer it sends data to goes mid-send (a Ctrl-C stopped the run)."""
    import logging

    try:
        raise OSError("Stream is closed")
    except OSError:
        logging.getLogger("distributed.worker").exception("failed during get data with %s -> %s", "tcp://127.0.0.1:1",
                                                          "tcp://127.0.0.1:2")


#: What our workers' preload filters: (what makes a worker log it, what distributed prints).
NOISE = {
    # the scheduler is the driver's, gone at the close: a run that stopped on an error printed ~25 lines under
    # its one-line error on a slow machine
    "heartbeat": (_heartbeat_to_a_gone_scheduler, "during heartbeat"),
    # a worker killed for memory (cluster.memory_limit=400MB) made the other print ~25 lines mid-stage
    "peer lost": (_peer_gone, "Worker stream died"),
    # a Ctrl-C in the feature build: the traceback of a send to a peer already gone printed above `error: interrupted`
    "receiver lost": (_receiver_gone, "failed during get data"),
}


def test_our_workers_print_no_traceback_for_a_heartbeat_lost_to_the_close_or_a_peer_lost(capfd):
    """distributed's own log on a plain LocalCluster (so this test sees it when it is there), nothing on ours."""
    from distributed import LocalCluster

    from rapids_engage.backend import CPU
    from rapids_engage.cluster import start_cluster
    from rapids_engage.config import ClusterConfig

    def printed(client, make_noise) -> str:
        client.run(make_noise)
        time.sleep(0.5)  # the worker's stderr
        return capfd.readouterr().err

    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster, cluster.get_client() as client:
        for name, (make_noise, text) in NOISE.items():
            assert text in printed(client, make_noise), name
    with start_cluster(CPU, ClusterConfig(gpus="0", n_workers=1, threads_per_worker=1)) as ours:
        for name, (make_noise, text) in NOISE.items():
            assert text not in printed(ours.client, make_noise), name
