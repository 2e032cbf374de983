"""What a run leaves on an existing cluster (``--scheduler-address``) it only connected to."""

from __future__ import annotations

import pytest


@pytest.fixture
def existing_cluster():
    """A cluster the user runs: an in-process scheduler and worker the test owns (the run only connects to it)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as owner:
        yield cluster.scheduler_address, owner


def _worker_plugins(owner) -> list[str]:
    return owner.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.worker_plugins))


def test_a_run_on_an_existing_cluster_leaves_no_worker_plugin_there(existing_cluster):
    """The backend plugin stayed on the user's scheduler after the run, so every worker joining later had to unpickle it:
    one whose environment lacks rapids_engage (another job's) failed to start (``Nanny failed to start``:
    ``No module named 'rapids_engage'``) until the scheduler restarted; it is the run's only, removed as it leaves."""
    from rapids_engage.backend import CPU
    from rapids_engage.cluster import start_cluster
    from rapids_engage.config import ClusterConfig

    address, owner = existing_cluster
    before = _worker_plugins(owner)
    with start_cluster(CPU, ClusterConfig(scheduler_address=address)) as cluster:
        assert len(_worker_plugins(owner)) == len(before) + 1  # set up for the run while it runs
        assert cluster.kind == "external"
    assert _worker_plugins(owner) == before
    assert owner.run(lambda: 1)  # the user's worker is still there, untouched
