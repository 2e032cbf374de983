"""Dask worker preload for GPU workers: load libcuml before cudf is first imported.

With the RAPIDS 26.10 wheels, importing cudf before cuml makes cuml fail with
"libcuml.so: cannot open shared object file". Workers import cudf as soon as
they deserialize a cudf partition, so the preload runs before any task.
"""

from __future__ import annotations


def dask_setup(worker) -> None:  # noqa: ARG001 - dask's preload hook signature
    try:
        import libcuml

        libcuml.load_library()
    except (ImportError, OSError):  # cuML is optional (only the driver's baseline uses it): never stop a worker
        pass
