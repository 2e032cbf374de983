"""An ordered map over worker processes, shared by the RecSys and the table ingest.

The main process hands each input file (:func:`by_file`: as many files as workers or more), else each
block (chunk) it reads, to :func:`ordered_map`, which runs ``work(state, payload)`` in a pool of
``forkserver`` (else ``spawn``) processes and yields the results **in input order**: a file's writer and
quarantine (:mod:`.file_output`) see exactly what a serial ingest gives them, and the files' tallies are
merged in input order, so the output is byte-identical whatever the worker count; in strict mode the
error of the first bad row in input order is raised, whichever worker met its row first. ``state`` is
built once per worker by ``setup(*setup_args)`` (the pool initializer), never per task. At most
:data:`IN_FLIGHT` tasks per worker are submitted ahead (memory bounded). One worker: everything runs in
process, nothing is started.

Errors raised by ``work`` in a worker are raised again in the main process, the same class and
message. Workers ignore SIGINT: Ctrl-C reaches the main process, which terminates the pool (no
orphan process) before the KeyboardInterrupt goes on.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

Tag = TypeVar("Tag")

#: Tasks (blocks, or files) per worker submitted ahead of the one the main process waits for.
IN_FLIGHT = 2
#: Memory a worker of ``ingest_workers: auto`` is given: a 64 MiB block parsed, its Arrow result, one input file's
#: write buffers (``max(2 x block, 64 MiB)``), pandas, pyarrow; a worker ingesting whole 125 MB files peaked at
#: 638-687 MiB (bench/README.md). A table ingest in one process (side tables too, CSV in 2 MiB blocks) peaked at
#: ~360 MiB on a 16 MB file, 643-668 MiB on one 190 MB file and 675 MiB on one 634 MB file since the day writer's
#: buffers are bounded (:data:`.table.OPEN_PARTS`, :data:`.table.BUFFER_BYTES`; 854-928 MiB before, growing with the
#: file; 1,255 MiB in 16 MiB read blocks, whose read-ahead grew too). Side tables are not in
#: it: every worker maps one shared copy (:mod:`.side_share`), counted once by :func:`worker_count`.
WORKER_BYTES = 3 << 29  # 1.5 GiB
#: Modules the forkserver imports once, so each worker starts without importing them again.
PRELOAD = ["rapids_engage.ingest.recsys", "rapids_engage.ingest.table"]

_STATE: Any = None


def worker_count(requested: int | str, tasks: int, files: int = 1, shared_bytes: int = 0) -> int:
    """The workers to run for ``tasks`` blocks of ``files`` input files: ``requested`` (an int >= 1, or ``"auto"``:
    the cores this process may use, all of them when there are as many files or more (each worker then reads,
    parses and writes whole files, :func:`by_file`; the main process waits: 0.04 CPU s of a 4-file ingest), else
    all but one, left to the main process's reading and writing; at most one per :data:`WORKER_BYTES` of the
    available memory less ``shared_bytes``, what all workers share once: the memory-mapped side tables), never more
    than ``tasks``; 1: serial. On 2 cores, 2 workers parsing blocks for the main process were
    slower than 1 (bench/README.md)."""
    if requested == "auto":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        spare = _available_memory() - shared_bytes
        requested = max(1, min(cores if files >= cores else cores - 1, spare // WORKER_BYTES))
    return max(1, min(int(requested), tasks))


def _available_memory() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def by_file(workers: int, files: int) -> bool:
    """Whether the workers take whole input files (each read, parsed and written by one worker: nothing but
    the merge of their tallies stays in the main process): when there are as many files as workers or more.
    Fewer files: the main process reads and writes them, the workers parse their blocks."""
    return workers > 1 and files >= workers


def blocks_of(size: int, block_size: int) -> int:
    """The blocks a file of ``size`` bytes is read in, about (a compressed file has more)."""
    return max(1, math.ceil(size / max(block_size, 1)))


def _context() -> multiprocessing.context.BaseContext:
    """``forkserver`` where the platform has it, else ``spawn``: never ``fork`` (the caller may have threads)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


def _init(setup: Callable[..., Any], setup_args: tuple) -> None:
    global _STATE
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    _STATE = setup(*setup_args)


def _call(work: Callable[[Any, Any], Any], payload: Any) -> Any:
    return work(_STATE, payload)


def ordered_map(work: Callable[[Any, Any], Any], setup: Callable[..., Any], setup_args: tuple,
                tasks: Iterable[tuple[Tag, Any]], workers: int) -> Iterator[tuple[Tag, Any]]:
    """``(tag, work(state, payload))`` for each ``(tag, payload)`` of ``tasks``, in their order (a None payload:
    a None result, nothing run); ``state`` is ``setup(*setup_args)``, built once per worker. ``work`` and
    ``setup`` must be module-level functions and ``payload`` / ``setup_args`` picklable when ``workers > 1``;
    the tags stay in this process. An error raised by ``tasks`` (reading) comes after the results of the
    tasks before it, as in a serial run."""
    if workers <= 1:
        state = setup(*setup_args)
        for tag, payload in tasks:
            yield tag, None if payload is None else work(state, payload)
        return
    pool = ProcessPoolExecutor(workers, mp_context=_context(), initializer=_init, initargs=(setup, setup_args))
    pending: deque[tuple[Tag, Future | None]] = deque()
    done = False
    try:
        try:
            for tag, payload in tasks:
                pending.append((tag, None if payload is None else pool.submit(_call, work, payload)))
                while len(pending) >= IN_FLIGHT * workers:
                    yield _result(*pending.popleft())
        except Exception:
            while pending:  # the blocks read before the error first: one of them may fail first
                yield _result(*pending.popleft())
            raise
        while pending:
            yield _result(*pending.popleft())
        done = True
    finally:
        if not done:  # an error, Ctrl-C or the caller stopped early: the running blocks are not waited for
            for _, future in pending:
                if future is not None:
                    future.cancel()
            for process in list((pool._processes or {}).values()):  # no public way to stop running workers
                process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


def _result(tag: Tag, future: Future | None) -> tuple[Tag, Any]:
    try:
        return tag, None if future is None else future.result()
    except BrokenProcessPool:
        raise RuntimeError("an ingest worker process died (out of memory?); set data.ingest_workers lower "
                           "(--ingest-workers), 1 ingests in this process") from None


__all__ = ["IN_FLIGHT", "WORKER_BYTES", "blocks_of", "by_file", "ordered_map", "worker_count"]
