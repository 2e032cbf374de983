"""What a run leaves on an existing cluster (``--scheduler-address``) it only connected to."""

from __future__ import annotations

import pytest


@pytest.fixture
def existing_cluster():
    """A cluster the user runs, which the test owns (the run only connects to it). Its worker is a process of its own: the
    backend's setup there (XGBoost's verbosity 0) would otherwise be this process's, which hides XGBoost's warnings
    from tests run after this one."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
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


def test_a_local_cluster_is_sized_by_the_cores_this_process_may_use(monkeypatch):
    """Under taskset, a Slurm job or a container's CPU quota the local cluster took the host's cores (os.cpu_count):
    with 1 of 2 cores allowed it started 2 workers, each with the whole machine's memory as its 'auto' limit (dask
    divides by the cores allowed), so together they could ask twice the memory and were killed instead of spilling;
    with 4 of 64 cores, 4 workers of 16 threads each. It takes the cores dask counts (affinity, cgroup quota)."""
    import dask.system
    import distributed

    from rapids_engage.cluster import _cpu_cluster
    from rapids_engage.config import ClusterConfig

    seen = {}

    def cluster(**kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop")

    monkeypatch.setattr("os.cpu_count", lambda: 64)  # the host's
    monkeypatch.setattr(dask.system, "CPU_COUNT", 4)  # this process's: affinity / cgroup quota
    monkeypatch.setattr(distributed, "LocalCluster", cluster)
    with pytest.raises(RuntimeError, match="stop"):
        _cpu_cluster(ClusterConfig())
    assert (seen["n_workers"], seen["threads_per_worker"]) == (4, 1)
    with pytest.raises(RuntimeError, match="stop"):
        _cpu_cluster(ClusterConfig(n_workers=2))
    assert (seen["n_workers"], seen["threads_per_worker"]) == (2, 2)



def test_a_scheduler_lost_mid_run_is_one_line_naming_it():
    """The user's scheduler went away mid-run (restarted, the network cut): the run ended after distributed's 30 s of
    reconnecting with its own traceback (``FutureCancelledError: ... cancelled for reason: scheduler-connection-lost``),
    not a line naming the scheduler lost and what to do. (Against a real scheduler closed mid-task, with the client's
    reconnecting shortened to 2 s: the ClusterError 2.1 s after the close; here a client in the state it is then.)"""
    from distributed.client import FutureCancelledError

    from rapids_engage.cluster import _scheduler_loss_named
    from rapids_engage.cluster_errors import ClusterError

    class Client:
        status = "connecting"  # distributed's, while it tries to reconnect; "closed" once it gave up

    lost = FutureCancelledError("sleep-1", reason="scheduler-connection-lost")
    with pytest.raises(ClusterError, match=r"^lost the dask scheduler at tcp://h:8786 during the run \(FutureCancelledError: "
                                           r"sleep-1 cancelled for reason: scheduler-connection-lost\.\); once it answers"):
        with _scheduler_loss_named(Client(), "tcp://h:8786"):
            raise lost
    Client.status = "running"  # any other error of a run whose scheduler is there stays as it was
    with pytest.raises(ValueError, match="^bad value$"):
        with _scheduler_loss_named(Client(), "tcp://h:8786"):
            raise ValueError("bad value")
