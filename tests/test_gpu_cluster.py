"""An existing dask-cuda cluster through ``--scheduler-address`` (``gpu`` marker: skipped without a GPU and RAPIDS;
``bench/gpu_session.sh``'s ``cluster`` step runs it).

GPU-unverified until run: ``existing_cluster.worker_gpus`` counting the GPUs of dask-cuda workers (NVML /
``CUDA_VISIBLE_DEVICES`` there, no CUDA context here), ``--gpus auto`` decided by them (``existing_cluster.run_backend``),
report.json's ``n_gpus`` taken from the workers, the run's
worker plugin removed from a cluster it does not own, and a whole GPU run (features, ``xgboost.dask`` training,
evaluation) on workers this process did not start.
"""

from __future__ import annotations

import json

import pytest

from rapids_engage.pipeline import main
from rapids_engage.cluster_errors import ClusterError
from rapids_engage.existing_cluster import run_backend, worker_gpus
from rapids_engage.config import ClusterConfig

pytestmark = pytest.mark.gpu


def _worker_plugins(client) -> list[str]:
    return client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.worker_plugins))


def test_a_run_on_an_existing_dask_cuda_cluster(tmp_path):
    from dask_cuda import LocalCUDACluster
    from distributed import Client

    with LocalCUDACluster(n_workers=1, dashboard_address=None) as cluster, Client(cluster) as client:
        address = cluster.scheduler_address
        assert worker_gpus(client, address, 1) == 1
        assert worker_gpus(client, address, "auto") == 1
        with pytest.raises(ClusterError, match="2 asked, but the 1 worker"):
            worker_gpus(client, address, 2)
        backend, why = run_backend(ClusterConfig(gpus="auto", scheduler_address=address))  # the workers' GPUs decide
        assert (backend.kind, backend.n_gpus) == ("gpu", 1), why
        before = _worker_plugins(client)
        out = tmp_path / "run"
        assert main(["--gpus", "1", "--scheduler-address", address, "--quiet", "--no-plots", "--rows", "3000",
                     "--out", str(out), "--set", f"data.cache_dir={tmp_path / 'cache'}"]) == 0
        report = json.loads((out / "report.json").read_text())
        assert report["n_gpus"] == 1, report.get("n_gpus")
        assert _worker_plugins(client) == before  # the user's cluster keeps no plugin of the run
        assert len(client.scheduler_info()["workers"]) == 1  # and its worker
