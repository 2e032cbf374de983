"""xgboost.dask's worker locks on a shared cluster: released when a run stops mid-training, named when waited on.

``xgboost.dask.train`` holds a ``distributed.MultiLock`` named by each worker's address while it
trains; the scheduler keeps such a lock until its holder releases it. A run stopped mid-training
(Ctrl-C, SIGTERM, a lost worker, any error) abandons its training thread, which never does: every
later training on those workers of that scheduler then waited forever. :func:`released_on_abort`
releases what the run's training took, with Ctrl-C / SIGTERM held back meanwhile (a second Ctrl-C
while it released them left them held: every later run waited); a driver killed outright (SIGKILL)
cannot, and its locks last until the scheduler restarts, so a training that must wait says for what.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

#: The scheduler extension that keeps ``distributed.MultiLock`` state.
EXTENSION = "multi_locks"


# The functions run on the scheduler are nested, so they travel by value: an existing cluster's
# scheduler need not have rapids_engage installed.


def lock_queues(client: Any, workers: Iterable[str]) -> dict[str, list[str]]:
    """Per worker address, the ids of the locks on it: the first holds it, the others wait."""
    def queues(dask_scheduler: Any, workers: list[str]) -> dict[str, list[str]]:
        ext = dask_scheduler.extensions.get(EXTENSION)
        return {w: [str(i) for i in ext.locks.get(w, [])] for w in workers} if ext is not None else {}

    return client.run_on_scheduler(queues, workers=sorted(workers))


def release_locks(client: Any, ids: Iterable[str]) -> int:
    """Release the locks (held or waited for) of these lock ids; returns how many were found."""
    def release(dask_scheduler: Any, ids: list[str]) -> int:
        ext = dask_scheduler.extensions.get(EXTENSION)
        found = [i for i in ids if ext is not None and i in ext.requests]
        for i in found:
            ext.release(id=i)
        return len(found)

    return client.run_on_scheduler(release, ids=sorted(ids))


@contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM that arrive inside the block take effect when it ends (their handlers run then),
    so a second Ctrl-C cannot cut short what the first one's clean-up must finish. Main thread only
    (elsewhere: nothing is held)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    before = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
        if caught:
            signal.raise_signal(caught[0])


@contextmanager
def released_on_abort(client: Any, workers: Iterable[str], log: Callable[[str], None] | None = None) -> Iterator[threading.Event]:
    """Around one ``xgboost.dask.train`` on ``workers``: says who holds their locks if one is held, and
    releases the locks taken inside when the block ends by an exception (KeyboardInterrupt included),
    a further Ctrl-C held back until they are released (:func:`signals_held`). Yields an event set when
    the block was left that way: a training thread the block abandoned checks it before taking locks,
    which no one would release after this."""
    workers = sorted(workers)
    before = {i for q in lock_queues(client, workers).values() for i in q}
    if before and log is not None:
        log(f"waiting for xgboost.dask's lock on {len(workers)} worker(s): another training on this cluster holds it "
            "(a run whose driver was killed outright holds it until the scheduler restarts)")
    abandoned = threading.Event()
    try:
        yield abandoned
    except BaseException:
        abandoned.set()
        with signals_held():
            try:
                taken = {i for q in lock_queues(client, workers).values() for i in q} - before
                release_locks(client, taken)
            except Exception:  # noqa: BLE001 - best effort: the scheduler may be what failed
                pass
        raise
