"""An existing (multi-node) cluster (``--scheduler-address``): what the run asks of its workers, not of this process."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def other_machine(tmp_path_factory):
    """Two process workers that look as if on another machine: their own home and temporary directory, and one GPU
    (``CUDA_VISIBLE_DEVICES=0``: both, as two workers given one device) where this process has none."""
    from distributed import Client, LocalCluster

    home, tmp = tmp_path_factory.mktemp("worker-home"), tmp_path_factory.mktemp("worker-tmp")
    env = {"HOME": str(home), "TMPDIR": str(tmp), "CUDA_VISIBLE_DEVICES": "0"}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, env=env) as cluster, \
            Client(cluster) as client:
        yield client, cluster.scheduler_address, home, tmp


def test_gpus_asked_of_an_existing_cluster_are_the_workers(monkeypatch, other_machine):
    """``--gpus 2 --scheduler-address ...`` counted this process's GPUs (a login node's: often none, refused) and
    report.json's n_gpus was that count; the workers' are counted (two workers on one device: one GPU)."""
    from rapids_engage import backend
    from rapids_engage.cluster_errors import ClusterError
    from rapids_engage.existing_cluster import worker_gpus

    monkeypatch.setattr(backend, "rapids_available", lambda: True)
    monkeypatch.setattr(backend, "visible_gpu_count", lambda: 0)  # this process: none
    assert backend.resolve("2", "tcp://h:8786") == backend.Backend("gpu", 2)
    with pytest.raises(backend.BackendError, match="only 0 GPU"):
        backend.resolve("2")  # a local cluster: this machine's
    client, address, _, _ = other_machine
    assert worker_gpus(client, address, "1") == worker_gpus(client, address, "auto") == 1
    with pytest.raises(ClusterError, match=rf"^--gpus \(cluster.gpus\) 2 asked, but the 2 worker\(s\) of the cluster at "
                                           rf"{address} compute on 1 GPU\(s\) \(0 worker\(s\) without one\).*--gpus 1, or --gpus 0"):
        worker_gpus(client, address, "2")

    class CpuWorkers:
        def run(self, fn):
            return {"tcp://a:1": None}

    with pytest.raises(ClusterError, match=r"compute on 0 GPU\(s\) \(1 worker\(s\) without one\).* use --gpus 0 for"):
        worker_gpus(CpuWorkers(), "tcp://a:1", "auto")


def test_a_home_relative_local_directory_is_each_workers_home(other_machine):
    """``cluster.local_directory: ~/xgb`` was expanded by this process at load, so a worker whose HOME differs put
    train.external_memory's cache under the driver's home (made there if it could, else failed); each worker's own."""
    from rapids_engage.config import load_config
    from rapids_engage.train_external import cache_scratch, worker_cache_dir

    client, address, home, _ = other_machine
    cfg = load_config(None, ["cluster.local_directory=~/xgb", f"cluster.scheduler_address={address}"])
    scratch = client.submit(cache_scratch, worker_cache_dir(cfg.cluster.local_directory), pure=False).result()
    assert scratch.startswith(f"{home}/xgb/xgb-extmem-")
    assert load_config(None, ["cluster.local_directory=~/xgb"]).cluster.local_directory.startswith("/")  # a local cluster's: here


def test_a_lost_external_memory_worker_is_hinted_about_its_own_disk(other_machine, tmp_path):
    """After an external-memory training's worker died, "its cache filled the disk" was judged on this process's
    temporary directory, another machine's on an existing cluster; a worker on the dead worker's host is asked."""
    import pandas as pd

    from rapids_engage.train_external import cache_shortfall

    client, _, home, tmp = other_machine
    pd.DataFrame({"f": [1.0]}).to_parquet(tmp_path / "part.parquet")
    worker = sorted(client.nthreads())[0]
    huge = range(10**13)  # features: pages of 1 row x 10**13 values need more than any disk has
    short = cache_shortfall(client, worker, [str(tmp_path / "part.parquet")], huge, None)
    assert f"under {tmp}, which has" in short and short.endswith("(asked of a worker on 127.0.0.1)")  # its TMPDIR, not ours
    (home / "c").mkdir()
    assert f"under {home}/c, which has" in cache_shortfall(client, worker, [str(tmp_path / "part.parquet")], huge, "~/c")
    gone = cache_shortfall(client, "tcp://10.255.255.1:1", [str(tmp_path / "part.parquet")], huge, None, wait_s=0)
    assert gone.endswith("(this process's machine: no worker on 10.255.255.1 answered)")  # says whose it is


def test_a_worker_on_another_python_minor_version_is_one_line(other_machine):
    """The code check ships its function by value (this Python's bytecode): a worker on another Python minor version
    failed to load it with a raw error; the Python versions distributed gathers are compared first. (No second Python
    here: the versions are faked, and the function's load fails as it would there.)"""
    import sys

    from rapids_engage.backend import CPU
    from rapids_engage.cluster_errors import ClusterError
    from rapids_engage.existing_cluster import _existing_workers_ready
    from rapids_engage.worker_versions import check_same_python

    client, address, _, _ = other_machine
    check_same_python(client, address)  # distributed's real answer, one Python: passes
    newer = f"{sys.version_info[0]}.{sys.version_info[1] + 1}.0.final.0"

    class OtherPython:
        def wait_for_workers(self, n, timeout=None):
            pass

        def register_plugin(self, plugin):
            pass

        def get_versions(self):
            here = {"host": {"python": "{}.{}.{}.final.0".format(*sys.version_info[:3])}}
            return {"scheduler": here, "client": here, "workers": {"tcp://w1:1": here, "tcp://w2:2": {"host": {"python": newer}}}}

        def run(self, fn, *args):
            raise TypeError("code() argument 13 must be str, not int")  # a 3.11 code object loaded by another minor

    with pytest.raises(ClusterError, match=rf"^worker tcp://w2:2 of the cluster at tcp://s:1 runs Python {newer}, this "
                                           rf"process {sys.version.split()[0]}: .* every worker on Python "
                                           rf"{sys.version_info[0]}\.{sys.version_info[1]} ") as err:
        _existing_workers_ready(OtherPython(), "tcp://s:1", CPU)
    assert "\n" not in str(err.value)
