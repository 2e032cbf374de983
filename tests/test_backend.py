"""Backend resolution: CPU without GPUs, one-line errors, nothing GPU imported at import time."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from rapids_engage import backend
from rapids_engage.backend import BackendError, resolve


def test_zero_is_cpu():
    b = resolve(0)
    assert b.kind == "cpu" and b.xgb_device == "cpu" and not b.is_gpu
    assert b.df.__name__ == "pandas" and b.xp.__name__ == "numpy"


def test_auto_without_gpu_is_cpu(monkeypatch):
    monkeypatch.setattr(backend, "visible_gpu_count", lambda: 0)
    assert resolve("auto").kind == "cpu"


def test_bad_values():
    for bad in ("-1", "many", 1.5j):
        with pytest.raises(BackendError, match="--gpus"):
            resolve(bad)


def test_gpu_without_rapids_or_devices(monkeypatch):
    monkeypatch.setattr(backend, "rapids_available", lambda: False)
    with pytest.raises(BackendError, match="needs the RAPIDS"):
        resolve(1)
    monkeypatch.setattr(backend, "rapids_available", lambda: True)
    monkeypatch.setattr(backend, "visible_gpu_count", lambda: 1)
    with pytest.raises(BackendError, match="only 1 GPU"):
        resolve(4)
    assert resolve(1).kind == "gpu"


def test_visible_gpu_count_respects_env(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    assert backend.visible_gpu_count() == 3
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert backend.visible_gpu_count() == 0


def test_import_loads_no_gpu_library():
    code = (
        "import sys, rapids_engage.pipeline, rapids_engage.features, rapids_engage.backend;"
        "bad = [m for m in ('cudf', 'cupy', 'cuml', 'rmm', 'dask_cudf', 'dask_cuda', 'numba.cuda') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_cuda_cluster_arguments(monkeypatch):
    """What LocalCUDACluster is asked for (dask-cuda stood in for): one worker per GPU whatever
    cluster.n_workers says, the visible devices, CuPy on the RMM pool only when there is one."""
    import sys
    import types

    from rapids_engage.backend import Backend
    from rapids_engage.cluster import _cuda_cluster
    from rapids_engage.config import ClusterConfig

    seen = {}
    fake = types.ModuleType("dask_cuda")
    fake.LocalCUDACluster = lambda **kw: seen.update(kw) or "cluster"
    monkeypatch.setitem(sys.modules, "dask_cuda", fake)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5,7")
    assert _cuda_cluster(ClusterConfig(n_workers=4, rmm_pool_size=0.8), Backend("gpu", 2)) == "cluster"
    assert seen["CUDA_VISIBLE_DEVICES"] == "3,5" and seen["n_workers"] == 2
    assert seen["rmm_pool_size"] == 0.8 and seen["rmm_allocator_external_lib_list"] == ["cupy"]
    assert seen["enable_cudf_spill"] is True and seen["preload"] == ["rapids_engage.worker_setup"]
    _cuda_cluster(ClusterConfig(), Backend("gpu", 1))
    assert seen["n_workers"] == 1 and seen["rmm_pool_size"] is None and seen["rmm_allocator_external_lib_list"] is None


def test_bincount_takes_empty_input_and_weights_give_float64():
    """cupy's bincount raises on an empty array; ours returns zeros, float64 whenever weighted (as a
    non-empty weighted one is), so a dask meta built from an empty frame matches its partitions."""
    from rapids_engage.backend import bincount

    empty = np.array([], dtype=np.int64)
    assert bincount(empty, minlength=3).tolist() == [0, 0, 0] and bincount(empty).dtype == np.int64
    assert bincount(empty, weights=np.array([]), minlength=2).dtype == np.float64
    assert bincount(np.array([0, 2, 2]), weights=np.array([1, 1, 1], dtype=np.int8)).tolist() == [1.0, 0.0, 2.0]


def test_series_like_refuses_a_series():
    """A Series would be realigned by label, which cudf refuses on the repeated labels of merged partitions."""
    from rapids_engage.backend import series_like

    frame = pd.DataFrame({"a": [1, 2]}, index=[0, 0])
    assert series_like(frame, np.array([3, 4])).tolist() == [3, 4]
    with pytest.raises(TypeError, match="array"):
        series_like(frame, frame["a"])
