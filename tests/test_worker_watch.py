"""A call holding state on every worker (xgboost.dask.train) fails fast when a worker dies instead of hanging."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from distributed import Client, LocalCluster

from rapids_engage.cluster import WorkerLostError, while_workers_live


def test_a_lost_worker_ends_the_call_with_one_clear_error():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        assert while_workers_live(client, lambda: 42) == 42
        with pytest.raises(ValueError, match="inner"):
            while_workers_live(client, lambda: (_ for _ in ()).throw(ValueError("inner")))
        pid = next(iter(client.run(os.getpid).values()))  # one worker process (its nanny restarts it)
        killer = threading.Timer(0.5, os.kill, (pid, signal.SIGKILL))
        killer.start()
        start = time.monotonic()
        with pytest.raises(WorkerLostError, match=r"1 dask worker\(s\) died during training"):
            while_workers_live(client, lambda: time.sleep(120), poll_s=0.2)  # a collective waiting for a dead rank
        assert time.monotonic() - start < 60
        killer.join()
