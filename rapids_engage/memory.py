"""Peak memory per pipeline stage, sampled in a background thread.

Host: the resident set size (RSS) of this process plus all its descendants, i.e. the
driver and the workers of a local cluster (an external cluster's workers live elsewhere
and are not counted). GPU: device memory in use on the run's GPUs as NVML reports it
(every process on them; an RMM pool counts at its full size). Each stage is sampled at
its start, every ``interval`` seconds while it runs, and at its end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psutil

#: What the host figure covers, by whether the workers are this process's children.
HOST_SCOPE = {False: "RSS of the driver and its local dask workers (process tree)",
              True: "RSS of the driver only (the external cluster's workers are not sampled)"}


def tree_rss(root: psutil.Process) -> int:
    """RSS in bytes of ``root`` and every descendant still alive."""
    total = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass  # exited between the listing and the read
    return total


class MemoryWatch:
    """Peak host RSS (and GPU memory in use, when ``gpu_used`` is given) per stage.

    Use as a context manager around the run; :meth:`begin` / :meth:`end` bracket a stage.
    ``gpu_used`` returns the bytes in use on the run's GPUs (see :meth:`Backend.gpu_memory_probe`).
    """

    def __init__(self, gpu_used: Callable[[], int] | None = None, interval: float = 0.25, external: bool = False) -> None:
        self.gpu_used = gpu_used
        self.interval = interval
        self.external = external
        self.host_peak: dict[str, int] = {}
        self.gpu_peak: dict[str, int] = {}
        self._root = psutil.Process()
        self._lock = threading.Lock()
        self._stage: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rapids-engage-memory", daemon=True)

    @classmethod
    def for_run(cls, backend: Any, scheduler_address: str | None) -> MemoryWatch:
        """The watch of a run on ``backend``: the GPUs too, unless the workers are an external
        cluster's (its machines are not this one's to sample)."""
        remote = bool(scheduler_address)
        return cls(None if remote else backend.gpu_memory_probe(), external=remote)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def begin(self, stage: str) -> None:
        with self._lock:
            self._stage = stage
        self.sample()

    def end(self, stage: str) -> None:
        self.sample()
        with self._lock:
            if self._stage == stage:
                self._stage = None

    def sample(self) -> None:
        """Read the memory now and raise the current stage's peaks (nothing between stages)."""
        with self._lock:
            stage = self._stage
        if stage is None:
            return
        host, gpu = tree_rss(self._root), self._gpu()
        with self._lock:
            self.host_peak[stage] = max(self.host_peak.get(stage, 0), host)
            if gpu is not None:
                self.gpu_peak[stage] = max(self.gpu_peak.get(stage, 0), gpu)

    def to_report(self) -> dict:
        """The ``memory`` section of report.json."""
        out: dict = {"interval_s": self.interval, "host_scope": HOST_SCOPE[self.external],
                     "host_rss_peak_bytes": dict(self.host_peak)}
        if self.gpu_used is not None:
            out["gpu_scope"] = "device memory in use on the run's GPUs (NVML, all processes; an RMM pool counts whole)"
            out["gpu_used_peak_bytes"] = dict(self.gpu_peak)
        return out

    def _gpu(self) -> int | None:
        if self.gpu_used is None:
            return None
        try:
            return int(self.gpu_used())
        except Exception:  # noqa: BLE001 - a failed NVML read loses a sample, not the run
            return None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()
