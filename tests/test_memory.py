"""Peak memory per stage: host RSS of the process tree, the GPU probe, the report section."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import psutil

from rapids_engage.backend import CPU, Backend
from rapids_engage.memory import MemoryWatch, tree_rss
from rapids_engage.progress import StageProgress

MiB = 2**20


def test_a_stage_holding_memory_has_the_higher_peak():
    with MemoryWatch(interval=0.05) as watch, StageProgress(quiet=True, memory=watch) as prog:
        with prog.stage("small"):
            time.sleep(0.1)
        with prog.stage("big"):
            block = np.ones(300 * MiB // 8)  # touched: resident
            time.sleep(0.1)
        del block
    assert watch.host_peak["big"] >= watch.host_peak["small"] + 250 * MiB
    assert set(watch.host_peak) == {"small", "big"}
    assert watch.gpu_peak == {}


def test_memory_freed_inside_a_stage_is_still_its_peak():
    """The sampler thread sees what a stage held between its start and end samples."""
    with MemoryWatch(interval=0.02) as watch:
        watch.begin("stage")
        block = np.ones(200 * MiB // 8)
        time.sleep(0.3)
        del block
        time.sleep(0.1)
        watch.end("stage")
        after = tree_rss(psutil.Process())
    assert watch.host_peak["stage"] >= after + 150 * MiB


def test_children_count():
    child = subprocess.Popen([sys.executable, "-c", "import time, numpy as np; a = np.ones(2**27 // 8 * 2); print(1, flush=True); time.sleep(30)"],
                             stdout=subprocess.PIPE)
    try:
        child.stdout.readline()  # the child holds its 256 MiB
        alone = psutil.Process().memory_info().rss
        assert tree_rss(psutil.Process()) >= alone + 200 * MiB
    finally:
        child.kill()
        child.wait()


def test_gpu_probe_and_report_section():
    used = iter([1 * MiB, 5 * MiB, 3 * MiB, 2 * MiB])
    with MemoryWatch(gpu_used=lambda: next(used, 0), interval=60) as watch:
        watch.begin("a")
        watch.sample()
        watch.end("a")
        watch.begin("b")
        watch.end("b")
    report = watch.to_report()
    assert report["gpu_used_peak_bytes"] == {"a": 5 * MiB, "b": 2 * MiB}
    assert set(report["host_rss_peak_bytes"]) == {"a", "b"} and "process tree" in report["host_scope"]
    assert "gpu_scope" in report
    assert "gpu_used_peak_bytes" not in MemoryWatch(external=True).to_report()
    assert "driver only" in MemoryWatch(external=True).to_report()["host_scope"]


def test_a_failing_probe_loses_samples_not_the_stage():
    def broken():
        raise RuntimeError("NVML gone")

    with MemoryWatch(gpu_used=broken, interval=60) as watch:
        watch.begin("a")
        watch.end("a")
    assert watch.host_peak["a"] > 0 and watch.gpu_peak == {}


def test_no_gpu_probe_on_cpu_or_without_nvml(monkeypatch):
    assert CPU.gpu_memory_probe() is None
    import importlib

    real = importlib.import_module

    def no_nvml(name, *a, **k):
        if name == "pynvml":
            raise ImportError("no pynvml")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", no_nvml)
    assert Backend("gpu", 1).gpu_memory_probe() is None


def test_gpu_probe_sums_the_runs_devices(monkeypatch):
    """With a stand-in NVML: the first n of CUDA_VISIBLE_DEVICES, by index or UUID."""
    import types

    used = {"3": 7, "GPU-abc": 11, "0": 100}
    fake = types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlDeviceGetCount=lambda: 4,
        nvmlDeviceGetHandleByIndex=lambda i: str(i),
        nvmlDeviceGetHandleByUUID=lambda u: u,
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(used=used[h]),
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,GPU-abc,0")
    assert Backend("gpu", 2).gpu_memory_probe()() == 18
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    used["1"] = 1
    assert Backend("gpu", 2).gpu_memory_probe()() == 101


def test_spilled_bytes_counts_what_dask_wrote_to_disk(tmp_path):
    """The figure the run reports after its feature stage and in report.json's spilled_bytes."""
    import dask
    from distributed import Client, LocalCluster

    from rapids_engage.cluster import spilled_bytes

    # the worker runs in this process, whose memory (the tests before it: 1.2 GiB in a CI run) it would take for its
    # own and pause at, refusing the scatter ('No valid workers found'): spilling by managed memory alone
    with dask.config.set({"distributed.worker.memory.pause": False, "distributed.worker.memory.terminate": False}), \
            LocalCluster(n_workers=1, threads_per_worker=1, processes=False, memory_limit="300MB", local_directory=str(tmp_path),
                         dashboard_address=None) as cluster, Client(cluster) as client:
        assert spilled_bytes(client) == 0
        kept = client.scatter([np.ones(12_500_000), np.zeros(12_500_000)])  # 100 MB each: above 60 % of the limit
        assert spilled_bytes(client) >= 100_000_000
        del kept
