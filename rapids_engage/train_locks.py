"""xgboost.dask's worker locks on a shared cluster: released when a run stops mid-training, named when waited on.

``xgboost.dask.train``, and the run's training (:mod:`.train_shared_matrix`, which takes the same lock; and
:mod:`.train_external`'s, on the one worker it trains on), holds a ``distributed.MultiLock`` named by each worker's address while it trains; the scheduler keeps such a lock until its holder releases it. A run stopped mid-training
(Ctrl-C, SIGTERM, a lost worker, any error) abandons its training thread, which never does: every
later training on those workers of that scheduler then waited forever. :func:`released_on_abort`
releases what the run's training took, with Ctrl-C / SIGTERM held back meanwhile (a second Ctrl-C
while it released them left them held: every later run waited); a driver killed outright (SIGKILL)
cannot, and its locks last until the scheduler restarts, so a training that must wait says for what.
Only the run's own locks are released: another run's training, waiting on a shared scheduler, keeps its place.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

#: The scheduler extension that keeps ``distributed.MultiLock`` state.
EXTENSION = "multi_locks"

#: ``id(client)`` -> a set per :func:`released_on_abort` block running on that client, of the lock ids
#: requested through it meanwhile: its training's, not another run's.
_requested: dict[int, list[set[str]]] = {}
_requested_guard = threading.Lock()


class Abandonment(threading.Event):
    """Set when the run gives its training up; what the training started on the cluster (its tracker, its tasks) is
    stopped then by the calls it registered (:meth:`on_abandon`), each at most once and best effort."""

    def __init__(self) -> None:
        super().__init__()
        self._stops: list[Callable[[], Any]] = []
        self._guard = threading.Lock()

    def on_abandon(self, stop: Callable[[], Any]) -> None:
        """Call ``stop`` when the training is abandoned: at once if it already was (a training thread left behind)."""
        with self._guard:
            if not self.is_set():
                self._stops.append(stop)
                return
        _best_effort(stop)

    def abandon(self) -> None:
        """Set the event and call the registered stops, in their order."""
        with self._guard:
            self.set()
            stops, self._stops = self._stops, []
        for stop in stops:
            _best_effort(stop)


def _best_effort(call: Callable[[], Any]) -> None:
    try:
        call()
    except Exception:  # noqa: BLE001 - best effort: the scheduler may be what failed
        pass


# The functions run on the scheduler are nested, so they travel by value: an existing cluster's
# scheduler need not have rapids_engage installed.


def lock_queues(client: Any, workers: Iterable[str]) -> dict[str, list[str]]:
    """Per worker address, the ids of the locks on it: the first holds it, the others wait."""
    def queues(dask_scheduler: Any, workers: list[str]) -> dict[str, list[str]]:
        ext = dask_scheduler.extensions.get(EXTENSION)
        return {w: [str(i) for i in ext.locks.get(w, [])] for w in workers} if ext is not None else {}

    return client.run_on_scheduler(queues, workers=sorted(workers))


def least_queued(client: Any, workers: Iterable[str]) -> str:
    """Of ``workers``, the one whose training lock has the fewest holders and waiters (a free one first; the first
    address among equals): where a training of one worker queues the least behind other runs."""
    workers = sorted(workers)
    if not workers:
        raise RuntimeError("no dask worker is connected to train on")
    queues = lock_queues(client, workers)
    return min(workers, key=lambda w: len(queues.get(w, ())))


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
def training_lock(client: Any, workers: list[str]) -> Iterator[None]:
    """xgboost.dask's lock on ``workers`` held for the block (``distributed.MultiLock``, looked up now: a
    :func:`released_on_abort` block records its id). Released as the block ends unless the run's abort has released it
    (:func:`release_locks` checks on the scheduler, so exactly one of the two releases it): ``MultiLock.release`` there
    raised the scheduler's KeyError, and the scheduler logged its traceback for every run given up mid-training."""
    import distributed

    lock = distributed.MultiLock(workers, client)
    lock.acquire()
    try:
        yield
    finally:
        release_locks(client, [lock.id])


def _record_lock_ids() -> None:
    """Make ``distributed.MultiLock``, which each training looks up when it takes it, note each lock's
    id in the sets of :data:`_requested` of its client (once per process)."""
    import distributed

    if getattr(distributed.MultiLock, "records_ids", False):
        return
    base = distributed.MultiLock

    class MultiLock(base):  # type: ignore[misc,valid-type]
        records_ids = True

        def __init__(self, names: list[str] | None = None, client: Any = None) -> None:
            super().__init__(names, client)
            with _requested_guard:
                for ids in _requested.get(id(self.client), ()):
                    ids.add(self.id)

        def __reduce__(self) -> Any:
            return base, (self.names,)

    distributed.MultiLock = MultiLock


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
def released_on_abort(client: Any, workers: Iterable[str], log: Callable[[str], None] | None = None) -> Iterator[Abandonment]:
    """Around one training on ``workers`` (its ``distributed.MultiLock``): says who holds their locks if one is held, and
    releases the locks taken inside when the block ends by an exception (KeyboardInterrupt included),
    a further Ctrl-C held back until they are released (:func:`signals_held`). Yields an :class:`Abandonment` set when
    the block was left that way, its stops called first (the training's tasks and tracker, :mod:`.train_abandon`): a
    training thread the block abandoned checks it before taking locks, which no one would release after this. Locks another client requested meanwhile (another run's training
    waiting behind this one) are left alone."""
    workers = sorted(workers)
    if any(lock_queues(client, workers).values()) and log is not None:
        log(f"waiting for xgboost.dask's lock on {len(workers)} worker(s): another training on this cluster holds it "
            "(a run whose driver was killed outright holds it until the scheduler restarts)")
    _record_lock_ids()
    abandoned, mine = Abandonment(), set[str]()
    with _requested_guard:
        _requested.setdefault(id(client), []).append(mine)
    try:
        yield abandoned
    except BaseException:
        with signals_held():
            abandoned.abandon()
            try:
                with _requested_guard:
                    taken = set(mine)
                release_locks(client, taken)
            except Exception:  # noqa: BLE001 - best effort: the scheduler may be what failed
                pass
        raise
    finally:
        with _requested_guard:
            blocks = [b for b in _requested.pop(id(client)) if b is not mine]  # by identity: == would match any like set
            if blocks:
                _requested[id(client)] = blocks
