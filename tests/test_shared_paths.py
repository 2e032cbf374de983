"""An existing cluster's workers must see the driver's paths: checked up front, in one line."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from rapids_engage.cluster_errors import ClusterError
from rapids_engage.existing_cluster import check_shared_paths
from rapids_engage.train_external import parquet_files


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


def test_paths_the_workers_see_pass_and_leave_nothing(client, tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    check_shared_paths(client, "tcp://sched:8786", read=["data"], write=["runs/a/store"])  # relative: this process's
    assert (tmp_path / "runs/a/store").is_dir() and list((tmp_path / "runs/a/store").iterdir()) == []


def test_a_path_a_worker_does_not_see_is_one_line(client, tmp_path):
    with pytest.raises(ClusterError) as err:
        check_shared_paths(client, "tcp://sched:8786", read=[tmp_path / "gone"], write=[tmp_path / "store"])
    message = str(err.value)
    assert "\n" not in message and f"does not see {tmp_path / 'gone'} as this process does" in message
    assert "tcp://sched:8786" in message and "every worker mounts at the same path" in message
    assert list((tmp_path / "store").iterdir()) == []  # the probe is gone


def test_a_directory_the_workers_cannot_write_is_named(client, tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # the workers' user may not write there
    with pytest.raises(ClusterError, match=f"cannot write {tmp_path / 'store'} as this process does"):
        check_shared_paths(client, "tcp://sched:8786", write=[tmp_path / "store"])


def test_external_memory_files_are_absolute(tmp_path, monkeypatch):
    """A worker started in another directory read ``runs/x/store/.../part.0.parquet`` from its own cwd:
    ``error: runs/e1/store/<version>/train/part.0.parquet`` with train.external_memory and a relative --out."""
    (tmp_path / "train").mkdir()
    pd.DataFrame({"a": [1.0]}).to_parquet(tmp_path / "train" / "part.0.parquet")
    monkeypatch.chdir(tmp_path)
    assert parquet_files("train") == [str(tmp_path / "train" / "part.0.parquet")]
