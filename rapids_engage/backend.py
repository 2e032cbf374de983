"""The one place that knows CPU from GPU.

Stage code is written once against the pandas-style dataframe API and asks this
module for the libraries of the resolved backend:

* CPU: pandas / dask.dataframe / numpy / XGBoost ``device="cpu"``;
* GPU: cudf / dask_cudf / cupy / XGBoost ``device="cuda"``.

Nothing here imports a GPU library, probes CUDA or creates a CUDA context at
import time: GPU counting uses NVML or ``CUDA_VISIBLE_DEVICES`` (no context), and
the RAPIDS libraries are imported on first use by :meth:`Backend.init`.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np


class BackendError(RuntimeError):
    """The requested backend cannot be used on this machine."""


def cuda_visible_devices() -> list[str] | None:
    """The entries of ``CUDA_VISIBLE_DEVICES`` (indices or ``GPU-`` UUIDs), None when it is unset."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is None:
        return None
    return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]


def visible_gpu_count() -> int:
    """Number of GPUs this process may use, without creating a CUDA context."""
    visible = cuda_visible_devices()
    if visible is not None:
        return len(visible)
    try:
        pynvml = importlib.import_module("pynvml")
        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - no NVML means "ask nvidia-smi", then none
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def worker_gpu() -> str | None:
    """``host/device`` of the GPU this process computes on (a dask-cuda worker's is the first of its
    ``CUDA_VISIBLE_DEVICES``; without that variable, device 0), None without one; no CUDA context. Run on each worker
    of an existing cluster (:func:`~.existing_cluster.worker_gpus`)."""
    import socket

    if visible_gpu_count() == 0:
        return None
    visible = cuda_visible_devices()
    return f"{socket.gethostname()}/{visible[0] if visible else '0'}"


def _visible_devices(pynvml: Any) -> list[str]:
    """The devices this process may use, in CUDA's order: ``CUDA_VISIBLE_DEVICES`` or all."""
    visible = cuda_visible_devices()
    return visible if visible is not None else [str(i) for i in range(int(pynvml.nvmlDeviceGetCount()))]


def _nvml_handle(pynvml: Any, device: str) -> Any:
    """The NVML handle of a ``CUDA_VISIBLE_DEVICES`` entry (an index or a ``GPU-`` UUID)."""
    if device.isdigit():
        return pynvml.nvmlDeviceGetHandleByIndex(int(device))
    return pynvml.nvmlDeviceGetHandleByUUID(device)


def rapids_available() -> bool:
    """True when the RAPIDS Python packages are installed (nothing is imported)."""
    return all(importlib.util.find_spec(m) is not None for m in ("cudf", "dask_cudf", "dask_cuda"))


def _load_gpu_libraries() -> None:
    """Import the GPU stack in the order the 26.10 wheels need (cuml before cudf)."""
    try:
        libcuml = importlib.import_module("libcuml")
        libcuml.load_library()
    except (ImportError, OSError):
        pass  # cuML is optional (the baselines' logistic regression); without it cudf imports fine
    importlib.import_module("cudf")
    importlib.import_module("dask_cudf")


@dataclass(frozen=True)
class Backend:
    """A resolved compute backend: ``kind`` is "cpu" or "gpu"; ``n_gpus`` 0 on CPU."""

    kind: str
    n_gpus: int = 0

    @property
    def is_gpu(self) -> bool:
        return self.kind == "gpu"

    @property
    def xgb_device(self) -> str:
        return "cuda" if self.is_gpu else "cpu"

    @property
    def min_partition_rows(self) -> int:
        """Rows below which ``data.min_partition_rows: auto`` merges input files into one partition:
        every task and shuffle of a partition costs a fixed overhead (more on a GPU, a kernel launch
        per column operation), so partitions much smaller than this are slower without saving memory."""
        return 2_000_000 if self.is_gpu else 250_000

    def init(self) -> Backend:
        """Import the backend's libraries and set dask's dataframe backend; idempotent."""
        import warnings

        import dask

        if self.is_gpu:
            _load_gpu_libraries()
        dask.config.set({"dataframe.backend": "cudf" if self.is_gpu else "pandas"})
        # dask's parquet reader under pandas >= 3.1: a deprecation per partition read, nothing a user can act on
        warnings.filterwarnings("ignore", message="The inplace keyword in DataFrame.reset_index", module="dask.dataframe.io.parquet")
        return self

    @property
    def df(self) -> ModuleType:
        """The single-node dataframe library (pandas or cudf)."""
        return importlib.import_module("cudf" if self.is_gpu else "pandas")

    @property
    def xp(self) -> ModuleType:
        """The array library (numpy or cupy)."""
        return importlib.import_module("cupy" if self.is_gpu else "numpy")

    def logistic_regression(self, **params: Any) -> Any:
        """An unfitted logistic regression: cuML on GPU, scikit-learn on CPU."""
        if self.is_gpu:
            from cuml.linear_model import LogisticRegression
        else:
            from sklearn.linear_model import LogisticRegression
        return LogisticRegression(**params)

    def linear_regression(self) -> Any:
        """An unfitted least-squares linear regression: cuML on GPU, scikit-learn on CPU."""
        if self.is_gpu:
            from cuml.linear_model import LinearRegression
        else:
            from sklearn.linear_model import LinearRegression
        return LinearRegression()

    def gpu_memory_probe(self) -> Any:
        """A function giving the bytes in use on this run's GPUs (NVML: no CUDA context), or
        None on CPU or where NVML cannot name the devices (e.g. MIG instances)."""
        if not self.is_gpu:
            return None
        try:
            pynvml = importlib.import_module("pynvml")
            pynvml.nvmlInit()
            handles = [_nvml_handle(pynvml, d) for d in _visible_devices(pynvml)[: self.n_gpus]]
        except Exception:  # noqa: BLE001 - memory figures are informative; the run goes on without them
            return None
        return lambda: sum(int(pynvml.nvmlDeviceGetMemoryInfo(h).used) for h in handles)

    def from_pandas(self, frame: Any) -> Any:
        """A pandas frame as a frame of this backend."""
        return self.df.from_pandas(frame) if self.is_gpu else frame


CPU = Backend("cpu", 0)


def gpus_auto(gpus: str | int | None) -> bool:
    """Whether ``--gpus`` (``cluster.gpus``) is ``auto``: unset, or the word in any case."""
    return gpus is None or str(gpus).strip().lower() == "auto"


def resolve(gpus: str | int | None, scheduler_address: str | None = None) -> Backend:
    """Resolve ``--gpus`` ("auto", "0", "N" or an int) to a :class:`Backend`.

    ``auto`` takes every visible GPU when RAPIDS is installed, else the CPU.
    Asking for more GPUs than are visible, or for any GPU without RAPIDS, is a
    :class:`BackendError` with a one-line message. With ``scheduler_address`` (an
    existing cluster) ``N`` GPUs are the workers', counted once connected
    (:func:`~.existing_cluster.worker_gpus`): this process (a login node) needs RAPIDS only.
    """
    if gpus_auto(gpus):
        n = visible_gpu_count() if rapids_available() else 0
        return Backend("gpu", n) if n > 0 else CPU
    try:
        wanted = int(gpus)
    except (TypeError, ValueError):
        raise BackendError(f"--gpus must be 'auto' or a whole number >= 0, got {gpus!r}") from None
    if wanted < 0:
        raise BackendError(f"--gpus must be 'auto' or a whole number >= 0, got {gpus!r}")
    if wanted == 0:
        return CPU
    if not rapids_available():
        raise BackendError(
            f"--gpus (cluster.gpus) {wanted} needs the RAPIDS libraries (cudf, dask_cudf, dask_cuda): "
            "install with `pip install 'rapids_engage[gpu]'` or use --gpus 0"
        )
    if scheduler_address:
        return Backend("gpu", wanted)
    visible = visible_gpu_count()
    if wanted > visible:
        raise BackendError(f"--gpus (cluster.gpus) {wanted} asked, but only {visible} GPU(s) are visible; use --gpus {visible} or auto")
    return Backend("gpu", wanted)


def array_module(obj: Any) -> ModuleType:
    """numpy or cupy, whichever holds ``obj`` (a cudf/pandas object or an array)."""
    mod = type(obj).__module__.split(".")[0]
    if mod in ("cudf", "cupy", "dask_cudf"):
        return importlib.import_module("cupy")
    return np


def is_gpu_object(obj: Any) -> bool:
    """True for cudf / cupy objects (and dask collections of them)."""
    meta = getattr(obj, "_meta", obj)
    return type(meta).__module__.split(".")[0] in ("cudf", "cupy")


def values(series: Any) -> Any:
    """The values of a pandas/cudf Series as a numpy/cupy array (stays on its device)."""
    if is_gpu_object(series):
        return series.values
    return series.to_numpy()


def float_values(series: Any) -> Any:
    """A pandas/cudf Series as a float64 numpy/cupy array (stays on its device), nulls as NaN
    (cudf's ``.values`` refuses a column with nulls)."""
    if is_gpu_object(series):  # cast, then fill: a bool / int column's nulls become NaN, not filled in its own dtype
        floats = series if series.dtype == np.float64 else series.astype(np.float64)
        return floats.to_cupy(na_value=np.nan)
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def to_host(obj: Any) -> Any:
    """numpy for arrays, pandas for frames, whatever the device they live on."""
    if hasattr(obj, "to_pandas"):
        return obj.to_pandas()
    if hasattr(obj, "get") and type(obj).__module__.startswith("cupy"):
        return obj.get()
    return obj


def host_frame(frame: Any) -> Any:
    """A pandas frame of a pandas or cudf ``frame`` whose integer and bool columns with nulls stay integer / bool
    (pandas' nullable ``Int64`` / ``boolean``): cudf's ``to_pandas`` makes them float64 (or object), so 64-bit ids
    above 2**53 lost their low digits and a row key was no longer integers."""
    if not is_gpu_object(frame):
        return frame
    host = frame.to_pandas()
    nullable = [c for c in frame.columns if getattr(frame[c].dtype, "kind", "O") in "iub" and frame[c].null_count]
    return host.assign(**{c: frame[c].to_pandas(nullable=True).array for c in nullable})  # positional: no realignment


def to_host_f64(obj: Any) -> Any:
    """``obj`` (numpy / cupy / pandas / cudf) as a 1-d float64 numpy array (nulls -> nan)."""
    import numpy as np

    obj = to_host(obj)
    if hasattr(obj, "to_numpy"):
        return obj.to_numpy(dtype=np.float64, na_value=np.nan).ravel()
    return np.asarray(obj, dtype=np.float64).ravel()


def bincount(x: Any, weights: Any = None, minlength: int = 0) -> Any:
    """``numpy/cupy.bincount`` of a numpy or cupy array that also takes an empty ``x`` (cupy's raises
    before it looks at ``minlength``, cupy#8116); float64 whenever ``weights`` are given (numpy's is
    int64 for an empty ``x``, so a dask meta would disagree with its partitions)."""
    xp = array_module(x)
    if len(x) == 0:
        return xp.zeros(minlength, dtype=np.float64 if weights is not None else np.int64)
    out = xp.bincount(x, weights=weights, minlength=minlength)
    return out.astype(np.float64, copy=False) if weights is not None else out


def argsort_stable(a: Any) -> Any:
    """Stable argsort of a numpy or cupy array (cupy's argsort is always stable and may not take ``kind``)."""
    return np.argsort(a, kind="stable") if array_module(a) is np else a.argsort()


def frame_library(obj: Any) -> ModuleType:
    """pandas or cudf: the single-node library of a frame or series (or of a dask collection's partitions)."""
    return importlib.import_module("cudf" if is_gpu_object(obj) else "pandas")


def series_like(frame: Any, data: Any, name: str | None = None) -> Any:
    """A Series of ``frame``'s library holding ``data`` (an array, in ``frame``'s row order) on
    ``frame``'s index. Not a Series: that would be realigned by label, which cudf refuses when labels
    repeat (partitions merged from several files do repeat them)."""
    if hasattr(data, "index"):
        raise TypeError("series_like takes an array (numpy / cupy), not a Series")
    lib = frame_library(frame)
    if lib.__name__ == "cudf":  # cudf turns NaN into null by default; pandas keeps NaN
        return lib.Series(data, index=frame.index, name=name, nan_as_null=False)
    return lib.Series(data, index=frame.index, name=name)


def read_parquet_files(like: Any, paths: list[str], columns: list[str], schema: Any = None) -> Any:
    """The rows of the parquet ``paths`` (``columns`` of each), in order, as one frame of ``like``'s library: cudf
    reads the list in one call (files of one schema), pandas through one pyarrow read of them all, into ``schema``'s
    types (an arrow schema; None: the first file's), integer and bool columns as pandas' nullable types."""
    lib = frame_library(like)
    if lib.__name__ == "cudf":
        return lib.read_parquet(list(paths), columns=list(columns))
    import pyarrow as pa
    import pyarrow.parquet as pq

    nullable = {pa.bool_(): lib.BooleanDtype(), **{getattr(pa, t)(): lib.api.types.pandas_dtype(t.capitalize().replace("Ui", "UI"))
                                                  for t in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")}}
    return pq.read_table(list(paths), columns=list(columns), schema=schema).to_pandas(types_mapper=nullable.get)
