"""Dask worker preload (both backends): quiet the logs of handled task errors; on GPU workers,
load libcuml before cudf is first imported.

With the RAPIDS 26.10 wheels, importing cudf before cuml makes cuml fail with
"libcuml.so: cannot open shared object file". Workers import cudf as soon as
they deserialize a cudf partition, so the preload runs before any task. A
preload also runs in a worker its nanny restarts.
"""

from __future__ import annotations

import logging


class _HandledTaskErrors(logging.Filter):
    """Drops dask's "Compute Failed" worker log (task, exception and traceback, several lines): the
    exception reaches the driver, which reports it in one line (with ``--debug``: its traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Compute Failed")


def quiet_task_errors() -> None:
    """Install :class:`_HandledTaskErrors` on this process's ``distributed.worker`` logger (once)."""
    log = logging.getLogger("distributed.worker")
    if not any(isinstance(f, _HandledTaskErrors) for f in log.filters):
        log.addFilter(_HandledTaskErrors())


def dask_setup(worker) -> None:  # noqa: ARG001 - dask's preload hook signature
    quiet_task_errors()
    try:
        import libcuml

        libcuml.load_library()
    except (ImportError, OSError):  # cuML is optional (only the driver's baseline uses it); absent on CPU
        pass
