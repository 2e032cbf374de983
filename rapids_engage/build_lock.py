"""One build at a time of a cache entry or store version, across processes and threads sharing its directory.

Runs of a sweep start together on the same ``data.cache_dir`` and ``features.store``: each generated, ingested or
built the same entry, the work done as many times (its publication atomic: correct, but wasted). :func:`building`
holds an exclusive ``fcntl.flock`` on a hidden ``.<name>.lock`` file beside the entry while it is built; a second
run waits (logging for what), then finds the entry whole and reuses it. :func:`build_once` is the sequence around
it: look, lock, look again, build. The kernel releases the lock when its
holder exits, however it ends; the lock file goes when its build ends (a waiter that locked the deleted file locks
the new one), a killed run's stays, blocking nothing, until the next build of the entry, or the next pruning
(``data.keep_ingests``, ``features.keep_versions``: :func:`remove_unheld`).

Limits: flock locks on local disks and on NFS (Linux clients since 2.6.12 lock the server's files through NFS
locks); a filesystem without locks (some FUSE mounts) is said once per build and built unlocked, as before: each
run builds, the last to publish wins. Platforms without ``fcntl``: unlocked.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

#: errno values of a filesystem that does not lock (the build then runs unlocked).
NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


def lock_path(entry: str | os.PathLike) -> Path:
    """The lock file of ``entry``: ``.<name>.lock`` in its directory (hidden: never taken for an entry)."""
    entry = Path(entry)
    return entry.with_name(f".{entry.name}.lock")


@contextmanager
def building(entry: str | os.PathLike, log: Callable[[str], None] | None = None) -> Iterator[bool]:
    """Hold ``entry``'s build lock while the block runs; when another run (process or thread) holds it, say so with
    ``log`` ("waiting for another run building <entry>") and wait for it. The caller checks again, inside the block,
    whether the entry is there now: the run it waited for has built it. The lock file is deleted on release. Yields
    whether it locked (False: a filesystem or platform without locks, the block run unlocked)."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield False
        return
    path = lock_path(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    said = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            locked, waited = _lock(fcntl, fd, entry, None if said else log)
        except BaseException:
            os.close(fd)
            raise
        said = said or waited
        if locked and not same_file(fd, path):  # deleted by the holder this one waited for: lock the new file
            os.close(fd)
            continue
        try:
            yield locked
        finally:
            if locked:
                path.unlink(missing_ok=True)  # while held: a waiter on this file sees it gone and locks the next one
            os.close(fd)  # releases the lock
        return


def build_once(lock: AbstractContextManager, look: Callable[[], tuple[T | None, str | None]],
               build: Callable[[str | None], T]) -> tuple[T, bool]:
    """(the entry, whether another run built it while this one waited): ``look()`` gives (the entry where it is there
    whole, else None; why a copy there is unusable, else None); not there, :func:`look_again_or_build` under ``lock``
    (:func:`building`: entered only then)."""
    found, _ = look()
    if found is not None:
        return found, False
    return look_again_or_build(lock, look, build)


def look_again_or_build(lock: AbstractContextManager, look: Callable[[], tuple[T | None, str | None]],
                        build: Callable[[str | None], T]) -> tuple[T, bool]:
    """Under ``lock``: (``look()``'s entry, True) where a run this one waited for built it meanwhile, else
    (``build(why)``, False), ``why`` the reason ``look`` gave for not using the copy there."""
    with lock:
        found, why = look()
        if found is not None:
            return found, True
        return build(why), False


def remove_unheld(path: Path) -> bool:
    """Delete lock file ``path`` where no command holds its lock (a killed command's: left for good where its entry is
    not built again, a rolling window's): locked exclusively without waiting and unlinked while held, as a holder's
    release does (a command waiting on it then locks the next one). Whether it went."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        return False
    try:
        fd = os.open(path, os.O_RDWR)  # not made: one gone meanwhile stays gone
    except OSError:  # gone, or not this user's
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if same_file(fd, path):
            path.unlink()
            return True
    except OSError:  # held (BlockingIOError), a filesystem without locks, a sticky directory
        pass
    finally:
        os.close(fd)
    return False


def same_file(fd: int, path: Path) -> bool:
    """Whether ``fd`` is open on the file at ``path`` now (not one unlinked since)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _lock(fcntl, fd: int, entry: str | os.PathLike, log: Callable[[str], None] | None) -> tuple[bool, bool]:
    """(whether the lock on ``fd`` was taken: False where the filesystem does not lock, whether it was waited for)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True, False
    except BlockingIOError:
        if log is not None:
            log(f"waiting for another run building {entry}")
    except OSError as exc:
        return _unlocked(exc, entry, log), False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return True, True
    except OSError as exc:
        return _unlocked(exc, entry, log), True


def _unlocked(exc: OSError, entry: str | os.PathLike, log: Callable[[str], None] | None) -> bool:
    if exc.errno not in NO_LOCKS:
        raise exc
    if log is not None:
        log(f"{entry}: its filesystem does not lock ({exc.strerror}); building without a lock "
            "(runs sharing it may build it twice)")
    return False
