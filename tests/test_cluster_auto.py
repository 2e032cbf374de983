"""``--gpus`` with ``--scheduler-address``: ``auto`` decided by the workers' GPUs, and a count the workers exceed said."""

from __future__ import annotations

import pytest

from rapids_engage.config import ClusterConfig


@pytest.fixture(scope="module")
def gpu_workers():
    """Two process workers with one GPU between them (``CUDA_VISIBLE_DEVICES=0``), where this process has none."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      env={"CUDA_VISIBLE_DEVICES": "0"}) as cluster, Client(cluster):
        yield cluster.scheduler_address


@pytest.fixture
def driver_without_gpus(monkeypatch):
    """This process (a login node): RAPIDS installed (faked), no GPU."""
    from rapids_engage import backend

    monkeypatch.setattr(backend, "rapids_available", lambda: True)
    monkeypatch.setattr(backend, "visible_gpu_count", lambda: 0)


def test_auto_with_an_address_is_decided_by_the_workers_gpus(driver_without_gpus, gpu_workers):
    """``--gpus auto --scheduler-address ...`` counted this process's GPUs: a login node without any ran a GPU
    cluster on the CPU, unsaid. The workers' GPUs decide, and a line says which and why."""
    from rapids_engage.backend import Backend
    from rapids_engage.existing_cluster import run_backend

    backend, why = run_backend(ClusterConfig(gpus="auto", scheduler_address=gpu_workers))
    assert backend == Backend("gpu", 1)
    assert why == (f"--gpus auto: GPU backend, the 2 worker(s) of the cluster at {gpu_workers} compute on 1 GPU(s) "
                   "and RAPIDS is installed here")


def test_auto_with_an_address_is_the_cpu_without_worker_gpus_or_rapids_here(monkeypatch, driver_without_gpus):
    from rapids_engage import backend
    from rapids_engage.existing_cluster import auto_backend, run_backend

    cpu, why = auto_backend({"tcp://a:1": None, "tcp://a:2": None}, "tcp://a:8786")
    assert cpu == backend.CPU
    assert why == "--gpus auto: CPU backend, none of the 2 worker(s) of the cluster at tcp://a:8786 has a GPU"
    monkeypatch.setattr(backend, "rapids_available", lambda: False)
    cpu, why = run_backend(ClusterConfig(gpus="auto", scheduler_address="tcp://127.0.0.1:9"))  # nothing there: not asked
    assert cpu == backend.CPU
    assert why.startswith("--gpus auto: CPU backend, RAPIDS (cudf, dask_cudf, dask_cuda) is not installed here")


def test_without_an_address_or_with_a_count_resolve_decides(driver_without_gpus):
    """No address: this machine's GPUs, as before (none here: the CPU); ``--gpus N``: N, counted once connected."""
    from rapids_engage.backend import CPU, Backend
    from rapids_engage.existing_cluster import run_backend

    assert run_backend(ClusterConfig(gpus="auto")) == (CPU, None)
    assert run_backend(ClusterConfig(gpus=2, scheduler_address="tcp://h:8786")) == (Backend("gpu", 2), None)


def test_gpus_fewer_than_the_workers_are_said_not_to_limit_them():
    """``--gpus 1`` on a cluster whose workers compute on 4 GPUs is not refused, and the workers use all 4 (report.json
    says 4): it was not said."""
    from rapids_engage.backend import Backend
    from rapids_engage.cluster import ignored_settings

    line = "the cluster's workers compute on 4 GPU(s); --gpus 1 does not limit an existing cluster"
    assert ignored_settings(ClusterConfig(gpus=1, scheduler_address="tcp://h:8786"), Backend("gpu", 1), workers_gpus=4) == [line]
    for gpus in (4, "auto"):
        assert ignored_settings(ClusterConfig(gpus=gpus, scheduler_address="tcp://h:8786"), Backend("gpu", 4), workers_gpus=4) == []
