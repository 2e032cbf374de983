"""Dask worker preload (both backends): quiet the logs of handled task errors and XGBoost's
console lines, count the spill / shuffle writes that failed for a full disk (``spill_disk``); on
GPU workers, load libcuml before cudf is first imported.

With the RAPIDS 26.10 wheels, importing cudf before cuml makes cuml fail with
"libcuml.so: cannot open shared object file". Workers import cudf as soon as
they deserialize a cudf partition, so the preload runs before any task. A
preload also runs in a worker its nanny restarts.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import threading
import warnings
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

#: The ctypes callback XGBoost logs through (kept alive here: XGBoost holds only its address).
_XGBOOST_LOG_CALLBACK: Any = None


class _HandledTaskErrors(logging.Filter):
    """Drops dask's "Compute Failed" worker log (task, exception and traceback, several lines): the
    exception reaches the driver, which reports it in one line (with ``--debug``: its traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Compute Failed")


def quiet_task_errors() -> None:
    """Install :class:`_HandledTaskErrors` on this process's ``distributed.worker`` logger (once)."""
    add_log_filter("distributed.worker", _HandledTaskErrors)


class _LostConnections(logging.Filter):
    """Drops, with its traceback, a worker's log of a connection lost to something the run already handles,
    on a cluster the run started (each printed ~25 lines)."""

    PREFIXES = (
        # the scheduler lives in the driver and goes when the run closes the cluster: a heartbeat in flight
        # printed under the run's one-line error (or after its summary)
        "Failed to communicate with scheduler during heartbeat",
        # a peer it fetched data from died (killed for memory under a tight cluster.memory_limit): dask fetches
        # or recomputes the data, and the run says what workers it lost
        "Worker stream died during communication",
        # a peer it sent data to went mid-send (the run stopped by Ctrl-C or an error, or the peer killed): the
        # transfer is the receiver's to redo; the run says what stopped it or which workers it lost
        "failed during get data with",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.PREFIXES)


def add_log_filter(logger: str, kind: type[logging.Filter]) -> None:
    """Install a ``kind`` filter on the ``logger`` of this process, once."""
    log = logging.getLogger(logger)
    if not any(isinstance(f, kind) for f in log.filters):
        log.addFilter(kind())


#: XGBoost warnings about what a run does by design: a worker holding none of the validation (or training) rows, as
#: when they lie in fewer partitions than there are workers (the last day of a small table: every run with 2 workers).
EXPECTED_XGBOOST_WARNINGS = ("Empty dataset at worker",)


def _xgboost_line(message: bytes) -> None:
    text = message.decode("utf-8", "replace")
    if "WARNING:" in text and not any(w in text for w in EXPECTED_XGBOOST_WARNINGS):
        warnings.warn(text, UserWarning, stacklevel=2)
    else:
        logging.getLogger("xgboost").info(text)


def xgboost_console_to_log() -> None:
    """Send XGBoost's native console lines to this process's ``xgboost`` logger at INFO instead of
    stderr; its warnings stay warnings. Its collective prints "Task [xgboost.dask-0]:... got rank 0"
    on every worker for every model trained, whatever the verbosity; workers log WARNING and up.

    XGBoost's log callback is per thread and xgboost.dask starts the collective in a task thread,
    so the callback is registered there: on entering the collective's context (once per process).
    """
    global _XGBOOST_LOG_CALLBACK
    try:
        from xgboost import collective, core
    except ImportError:  # no XGBoost on this worker
        return
    context = collective.CommunicatorContext
    if _XGBOOST_LOG_CALLBACK is not None or not hasattr(core._LIB, "XGBRegisterLogCallback"):
        return
    _XGBOOST_LOG_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_char_p)(_xgboost_line)
    enter = context.__enter__

    def __enter__(self: Any) -> Any:
        core._LIB.XGBRegisterLogCallback(_XGBOOST_LOG_CALLBACK)
        return enter(self)

    context.__enter__ = __enter__


def quiet_worker() -> None:
    """Quiet this worker: handled task errors and XGBoost's console lines; count its spill / shuffle writes that
    failed for lack of space (which the run reports)."""
    from .spill_disk import count_failed_writes

    quiet_task_errors()
    xgboost_console_to_log()
    count_failed_writes()


def setup_backend(kind: str) -> None:
    """Set this worker up for the ``kind`` backend: its libraries imported in the right order, XGBoost and
    the logs of task errors the driver reports quiet."""
    import xgboost

    from .backend import Backend

    Backend(kind).init()
    xgboost.set_config(verbosity=0)
    quiet_worker()


class BackendSetup(WorkerPlugin):
    """A dask worker plugin that runs :func:`setup_backend` on every worker of the run's cluster (one it
    started or an existing one): those there now and those that join later, a worker its nanny restarts
    (after a crash or for memory) included, which a one-off ``client.run`` missed (it then ran with
    XGBoost's console lines and the default dataframe backend). On an existing cluster each run registers its own, under
    a name of its own, and unregisters it as it leaves (``existing_cluster._plugin_removed``)."""

    name = "rapids-engage-backend"

    def __init__(self, kind: str, name: str | None = None) -> None:
        self.kind = kind
        if name is not None:  # dask registers a plugin under its ``name``
            self.name = name

    def setup(self, worker: Any) -> None:  # noqa: ARG002 - dask's hook signature
        setup_backend(self.kind)



def ignore_interrupts() -> None:
    """Ignore SIGINT in this worker process (of a cluster the driver started): a terminal's Ctrl-C reaches
    every process of its group, and each worker printed its own KeyboardInterrupt traceback (~30 lines)
    while the driver was already stopping the cluster."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def dask_setup(worker) -> None:  # noqa: ARG001 - dask's preload hook signature
    """The preload of the workers of a cluster the run starts (an existing cluster's get :class:`BackendSetup` only)."""
    ignore_interrupts()
    add_log_filter("distributed.worker", _LostConnections)
    try:
        import libcuml

        libcuml.load_library()
    except (ImportError, OSError):  # cuML is optional (only the driver's baseline uses it); absent on CPU
        pass
    quiet_worker()
