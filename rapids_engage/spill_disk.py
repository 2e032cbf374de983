"""A full ``cluster.local_directory`` (dask's spill files, P2P shuffle files) ends the run in one line.

Dask keeps a partition in memory when writing it there fails, and a P2P shuffle that cannot write fails and
starts again: with that directory on a full disk a run went on until killed, logging thousands of lines. Each
worker counts the spill and shuffle writes that failed for lack of space (:func:`count_failed_writes`, from the
worker setup; while a run watches, those log lines are dropped: the run says it once); while a run uses the cluster,
:func:`full_disk_stops` asks the workers every few seconds and stops the run at the first such failure. Only a
failed write counts: a directory that is nearly full but still written to is no reason to stop.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from .failures import LocalDirectoryFull
from .stop_signals import interrupt_main_for

#: errno values of a write that found no room (a full disk, a quota).
NO_ROOM = (errno.ENOSPC, errno.EDQUOT)

#: Seconds between two questions to the workers.
POLL_S = 2.0

#: Seconds a worker's log leaves out what a run says in its place (:meth:`_FailedWrites.said_by_the_run`): its
#: writes that found no room, after the run last asked; the P2P shuffle errors that follow such a write.
QUIET_S = 30.0


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or during (at most 16)."""
    for _ in range(16):
        if exc is None:
            return
        yield exc
        exc = exc.__cause__ or exc.__context__


def failed_for_room(record: logging.LogRecord) -> str | None:
    """What ``record`` of a worker's ``distributed`` log says failed to be written for lack of space ("spill" or
    "P2P shuffle"), or None: the spill's and P2P shuffle's errors (by logger, or a ``P2POutOfDiskError`` logged
    elsewhere) caused by an ENOSPC / EDQUOT. A task's own write error (``to_parquet`` on a full store disk) is
    not one: it reaches the driver, which names its file."""
    exc = record.exc_info[1] if record.exc_info else None
    chain = list(_chain(exc))
    if not any(isinstance(e, OSError) and e.errno in NO_ROOM for e in chain):
        return None
    if record.name.startswith("distributed.spill"):
        return "spill"
    if record.name.startswith("distributed.shuffle") or any(type(e).__name__ == "P2POutOfDiskError" for e in chain):
        return "P2P shuffle"
    return None


class _FailedWrites(logging.Handler):
    """Counts the records :func:`failed_for_room` tells, and what failed last; knows when a run's watch last asked
    and when this worker's last failure since the latest watch opened was (:meth:`said_by_the_run`)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.what: str | None = None
        self.asked_at: float | None = None
        self.failed_at: float | None = None

    def emit(self, record: logging.LogRecord) -> None:
        what = failed_for_room(record)
        if what is not None:
            self.count += 1
            self.what = what
            self.failed_at = time.monotonic()

    def asked(self, opening: bool) -> None:
        """A run's watch asked; ``opening``: a new watch, for which earlier failures are not its own."""
        self.asked_at = time.monotonic()
        if opening:
            self.failed_at = None

    def said_by_the_run(self, record: logging.LogRecord) -> bool:
        """Whether a run says what ``record`` says, which the worker's log then leaves out: a write that found no
        room (:func:`failed_for_room`, with its traceback, every few seconds) while a run watches (asked within
        :data:`QUIET_S`), or a P2P shuffle error within :data:`QUIET_S` of such a failure seen since the latest
        watch opened (a shuffle the stopped run left behind). Any other record, and these once that time has
        passed or a new watch opened, is logged: a long-lived worker's later errors are not hidden."""
        now = time.monotonic()
        if failed_for_room(record) is not None:
            return self.asked_at is not None and now - self.asked_at < QUIET_S
        if self.failed_at is None or now - self.failed_at >= QUIET_S:
            return False
        exc = record.exc_info[1] if record.exc_info else None
        return any(type(e).__module__.startswith("distributed.shuffle") for e in _chain(exc))


class _SaidByTheRun(logging.Filter):
    """Drops, from a log handler of the worker, what a run says in its place (:meth:`_FailedWrites.said_by_the_run`)
    and the worker's line for each question of :func:`full_disk_stops`."""

    def __init__(self, counter: _FailedWrites) -> None:
        super().__init__()
        self.counter = counter

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Run out-of-band function") and record.args == ("rapids_engage_disk_state",):
            return False
        return not self.counter.said_by_the_run(record)


def _counter() -> _FailedWrites | None:
    """This process's :class:`_FailedWrites`, if installed."""
    return next((h for h in logging.getLogger("distributed").handlers if isinstance(h, _FailedWrites)), None)


def count_failed_writes() -> None:
    """In a worker process: count its spill / P2P shuffle writes that failed for lack of space (a handler on the
    ``distributed`` logger, which its modules log under) and drop their log lines while a run says them (once)."""
    log = logging.getLogger("distributed")
    counter = _counter()
    if counter is None:
        counter = _FailedWrites()
        log.addHandler(counter)
    for handler in log.handlers + logging.getLogger().handlers:
        if not isinstance(handler, _FailedWrites) and not any(isinstance(f, _SaidByTheRun) for f in handler.filters):
            handler.addFilter(_SaidByTheRun(counter))
    worker_log = logging.getLogger("distributed.worker")  # the "Run out-of-band function" line: logger-level too
    if not any(isinstance(f, _SaidByTheRun) for f in worker_log.filters):
        worker_log.addFilter(_SaidByTheRun(counter))


def rapids_engage_disk_state(dask_worker: Any, opening: bool = False) -> dict[str, Any]:
    """(Run on a worker, by a run's watch; ``opening``: one that opens.) Its failed writes for lack of space, what
    failed last, its local directory and the bytes free there (None when that cannot be read)."""
    counter = _counter()
    if counter is not None:
        counter.asked(opening)
    directory = str(dask_worker.local_directory)
    try:
        free: int | None = shutil.disk_usage(directory).free
    except OSError:
        free = None
    return {"failures": counter.count if counter else 0, "what": counter.what if counter else None,
            "directory": directory, "free": free}


def _disk_states(client: Any, opening: bool = False) -> dict[str, dict[str, Any]]:
    """:func:`rapids_engage_disk_state` of each worker of ``client`` that answered; {} when they cannot be asked."""
    try:
        states = client.run(rapids_engage_disk_state, on_error="return", opening=opening)
    except Exception:  # noqa: BLE001 - best effort: the scheduler is gone, the run ends anyway
        return {}
    return {w: s for w, s in states.items() if isinstance(s, dict)}


def failed_writes(client: Any) -> dict[str, int]:
    """Each worker's failed writes so far, asked by a watch that opens: those before a run are not its own (a
    long-lived worker of an existing cluster keeps its count from run to run), nor are the P2P shuffle errors
    after them (its log shows them again)."""
    return {w: s["failures"] for w, s in _disk_states(client, opening=True).items()}


def full_directory(client: Any, directory: str | None = None, external: bool = False,
                   before: dict[str, int] | None = None) -> LocalDirectoryFull | None:
    """The error for the workers of ``client`` whose spill or shuffle writes failed for lack of space, or None (none
    did, or they cannot be asked). ``directory``: ``cluster.local_directory`` as configured (else the worker's
    own); ``external``: the workers of an existing cluster, started with their own directory; ``before``: each
    worker's :func:`failed_writes` when the run began (only failures since count)."""
    from .progress import byte_size

    before = before or {}
    failed = sorted((w, s | {"failures": s["failures"] - before.get(w, 0)})
                    for w, s in _disk_states(client).items() if s["failures"] > before.get(w, 0))
    if not failed:
        return None
    worker, state = failed[0]
    where = directory or state["directory"]
    free = "free space unknown" if state["free"] is None else f"{byte_size(state['free'])} free"
    others = f" and {len(failed) - 1} more worker(s)" if len(failed) > 1 else ""
    key = "the workers' local directory" if external else "cluster.local_directory"
    fix = ("or start the workers with a --local-directory on a larger disk" if external
           else "or point cluster.local_directory at a larger disk")
    return LocalDirectoryFull(
        where, f"disk full in {key} {where}: dask's {state['what']} files no longer fit ({free}; {state['failures']} "
        f"failed write(s) on worker {worker}{others}); free space there, {fix}; the published store and caches are intact")


def _asked_within(ask: Any, *args: Any, timeout_s: float = 10.0) -> Any:
    """``ask(*args)``, or None when the workers do not answer within ``timeout_s`` (a run failing on a cluster that
    went away does not wait for it)."""
    from concurrent.futures import ThreadPoolExecutor
    from concurrent.futures import TimeoutError as Late

    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(ask, *args).result(timeout=timeout_s)
    except Late:
        return None
    finally:
        pool.shutdown(wait=False)


@contextlib.contextmanager
def full_disk_stops(client: Any, directory: str | None = None, external: bool = False,
                    poll_s: float = POLL_S) -> Iterator[None]:
    """While open, ask the workers every ``poll_s`` s (:func:`full_directory`); at the first failed write since it
    opened (a worker of an existing cluster keeps the count of an earlier run's, on a disk since freed), stop the
    block (:func:`~.stop_signals.interrupt_main_for`: a SIGINT to the main thread, as Ctrl-C, the same clean-up) and
    raise :class:`LocalDirectoryFull` in place of what it raised; where the interrupt surfaces past this (a stage's
    end), the command's handler says the same line. An error of the block (a ``P2POutOfDiskError``, a worker lost
    for memory it could not spill) is replaced too when the workers say the same after it. Stopping needs the block
    in the main thread, with a Python SIGINT handler; elsewhere the error is raised only once the block fails."""
    found: list[LocalDirectoryFull] = []
    stop, lock = threading.Event(), threading.Lock()
    main = threading.current_thread() is threading.main_thread()
    before = _asked_within(failed_writes, client) or {}  # an earlier run's failures: not this run's

    def watch() -> None:
        while not stop.wait(poll_s):
            error = full_directory(client, directory, external, before)
            if error is None:
                continue
            with lock:  # not once the block has ended: the signal would stop what comes after it
                if not stop.is_set():
                    found.append(error)
                    if main and callable(signal.getsignal(signal.SIGINT)):
                        interrupt_main_for(error)
            return

    def halt() -> None:
        """End the watch; our own signal, when it lands here, is dropped: ``found`` is raised instead."""
        try:
            with lock:
                stop.set()
        except KeyboardInterrupt:
            if not found:
                raise

    thread = threading.Thread(target=watch, name="full-disk-watch", daemon=True)
    thread.start()
    try:
        yield
    except GeneratorExit:  # never resumed: our interrupt landed in the ``with``'s exit; the run says it
        halt()
        raise
    except BaseException as exc:
        halt()
        if not found and isinstance(exc, Exception):
            found.extend(error for error in [_asked_within(full_directory, client, directory, external, before)] if error is not None)
        if found:
            raise found[0] from None
        raise
    halt()
    if found:
        raise found[0] from None
