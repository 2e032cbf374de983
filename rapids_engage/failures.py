"""Which failures a run reports in one line, and that line: what the user can fix (a known error, running out
of memory, a full disk, an unusable path) gets its message, with what to change for the last three; anything
else is a bug, and keeps its traceback."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager

#: Substrings of out-of-memory errors from RMM / cuDF / CUDA / XGBoost (raised as MemoryError, RuntimeError or XGBoostError).
OOM_MARKERS = ("out of memory", "out_of_memory", "bad_alloc", "cudaerrormemoryallocation", "memoryerror")
OOM_HINT = (
    "out of memory. GPU: keep cuDF spilling on (cluster.spill: true), give RMM a pool below the card "
    "(cluster.rmm_pool_size: 0.8 with the RAPIDS conda XGBoost; at most 0.5 with pip's, which allocates "
    "beside the pool), spread the data over more GPUs (--gpus N) or smaller partitions (data.partition_rows); "
    "CPU: set cluster.memory_limit (e.g. 8GB) so dask spills to cluster.local_directory, or use fewer workers"
)


DISK_FULL_HINT = (
    "disk full{where}: free space, or point the large outputs elsewhere (features.store, data.cache_dir, "
    "--out, and cluster.local_directory for dask's spill files); the published store and caches are intact"
)


class LocalDirectoryFull(OSError):
    """Dask's spill or P2P shuffle files no longer fit in the workers' local directory (``spill_disk``): an
    ENOSPC whose text is the run's whole line (the directory, its free space, what to do)."""

    def __init__(self, directory: str, line: str) -> None:
        super().__init__(errno.ENOSPC, line, directory)

    def __str__(self) -> str:
        return str(self.strerror)


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


@contextmanager
def naming(path: str | os.PathLike) -> Iterator[None]:
    """Errors of writing ``path`` name it: an OSError raised without a file name (pyarrow's and Python's write
    errors, a dask worker's ``to_parquet``) is raised again with ``path`` as its file name, so a full disk's one
    line says where it filled up."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None or exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from exc


def is_path_error(exc: BaseException) -> bool:
    """A path the run cannot write or use: read-only, not permitted, a file where a directory goes
    (or the other way round), an existing file in the way: the user's to fix, in one line."""
    return isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.EEXIST, errno.ENOTDIR,
                                                      errno.EISDIR)


def is_out_of_memory(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return isinstance(exc, MemoryError) or any(m in text for m in OOM_MARKERS)


def one_line(exc: BaseException, known: tuple[type[BaseException], ...]) -> str | None:
    """The one-line message for ``exc`` when it is a ``known`` error or one of the user's to fix, else None."""
    if isinstance(exc, LocalDirectoryFull):
        return str(exc)
    if is_disk_full(exc):
        return DISK_FULL_HINT.format(where=f" writing {exc.filename}" if getattr(exc, "filename", None) else "")
    if is_out_of_memory(exc):
        return f"{OOM_HINT} ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0]})"
    if isinstance(exc, known) or is_path_error(exc):
        return str(exc)
    return None
