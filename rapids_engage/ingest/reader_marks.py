"""Reader marks on ingest cache folders: ``data.keep_ingests`` (:mod:`.cache_pruning`) never deletes one being read.

A command reading an ingest folder (``run`` / ``features`` from its data stage to their end, an incremental build the
earlier folder it links from, ``audit`` through its checks, ``predict`` the folder of its ``--input`` or ``--history``)
holds a SHARED ``fcntl.flock`` on ``.<folder>.readers.lock`` beside it (:func:`reading`); the pruning deletes a folder
only under an EXCLUSIVE non-blocking flock on that file, renaming it away and unlinking the lock file before it lets
go. The kernel releases a lock when its holder exits, however it ends: no stale mark. The file lies beside the folder,
not in it: a run marks the folder it is about to reuse or build before looking, and a reader that waited on a deleted
folder's file locks the new one (then finds the folder gone and ingests it again). A process marks a folder through
one descriptor however many blocks mark it (NFS locks per process: a second descriptor's release dropped the first's).

Limits, as :mod:`..build_lock`'s: a filesystem without locks, or a cache this user can neither write nor find a lock
file in, reads unmarked (the pruning keeps a folder it cannot lock: there, for the error of making its lock file);
platforms without ``fcntl``: unmarked.
"""

from __future__ import annotations

import errno
import os
import re
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from ..build_lock import NO_LOCKS, same_file
from .recsys import RESULT_FILE

#: An ingest cache folder's name (``data.cache_dir/<kind>-<12 hex digits>``).
ENTRY_NAME = re.compile(r"(recsys|table)-[0-9a-f]{12}")

#: The stacks of :func:`keep_reading` blocks of this thread, innermost last.
_outer = threading.local()


def marks_path(entry: str | os.PathLike) -> Path:
    """The readers' lock file of ingest folder ``entry``: ``.<name>.readers.lock`` beside it (hidden)."""
    entry = Path(entry)
    return entry.with_name(f".{entry.name}.readers.lock")


def ingest_entry(path: str | os.PathLike) -> Path | None:
    """The ingest cache folder ``path`` is or lies in (its ``data/`` or a day folder of it, as report.json's
    ``split.data_dir`` names it); None when it is not in one."""
    path = Path(path).absolute()
    for p in (path, *list(path.parents)[:2]):
        if ENTRY_NAME.fullmatch(p.name) and (p / RESULT_FILE).is_file():
            return p
    return None


@contextmanager
def reading(entry: str | os.PathLike, keep: bool = True) -> Iterator[None]:
    """Mark ``entry`` read while the block runs (a shared lock; waits only for a pruning renaming it away). ``keep``:
    an enclosing :func:`keep_reading` of this thread holds a mark of its own until it ends."""
    with ExitStack() as stack:
        stack.enter_context(_marked(Path(entry)))
        stacks = getattr(_outer, "stacks", [])
        if keep and stacks and Path(entry).absolute() not in stacks[-1][1]:
            stacks[-1][1].add(Path(entry).absolute())
            stacks[-1][0].enter_context(_marked(Path(entry)))
        yield


@contextmanager
def keep_reading() -> Iterator[None]:
    """The folders :func:`reading` marks in this thread during the block stay marked until its end (``audit``: its
    runs read the folder, then its checks read it again)."""
    stacks = _outer.__dict__.setdefault("stacks", [])
    with ExitStack() as stack:
        stacks.append((stack, set()))
        try:
            yield
        finally:
            stacks.pop()


@contextmanager
def read_if_ingest(path: str | os.PathLike) -> Iterator[None]:
    """:func:`reading` the ingest folder ``path`` lies in, if it lies in one."""
    entry = ingest_entry(path)
    with reading(entry) if entry is not None else ExitStack():
        yield


#: This process's marks: lock file -> [its one descriptor, the blocks holding it]. One descriptor per file: on NFS
#: (flock as POSIX locks, per process) a second one's release upgraded and closed the process's lock under the first.
_held: dict[Path, list[int]] = {}
_held_guard = threading.Lock()


def _forget_parents_marks() -> None:
    """In a forked child (a dask worker): the parent's marks are not its own (a shared descriptor let the parent's
    release unlink the file under the child's mark; POSIX locks are not inherited), nor is a guard held at the fork."""
    global _held_guard
    for fd, _ in _held.values():
        os.close(fd)
    _held.clear()
    _held_guard = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parents_marks)


def marked_here(entry: str | os.PathLike) -> bool:
    """Whether this process marks ``entry`` read now: on NFS (POSIX locks, per process) a pruning in this process
    would take the exclusive lock over this process's own shared one."""
    with _held_guard:
        return marks_path(entry).absolute() in _held


@contextmanager
def _marked(entry: Path) -> Iterator[None]:
    path = marks_path(entry).absolute()
    with _held_guard:
        held = _held.get(path)
        if held is None and (fd := lock_current(path)) is not None:
            held = _held[path] = [fd, 0]
        if held is not None:
            held[1] += 1
    try:
        yield
    finally:
        with _held_guard:  # not in a forked child leaving its parent's block: not its mark
            if held is not None and _held.get(path) is held:
                held[1] -= 1
                if not held[1]:
                    del _held[path]
                    _release(held[0], path)


def _release(fd: int, path: Path) -> None:
    """Let go of the shared lock on ``path``; its file goes when no other command holds it (taken exclusively at once:
    a reader or pruning waiting on the unlinked file sees it gone and locks the next one)."""
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if same_file(fd, path):
            path.unlink(missing_ok=True)
    except OSError:  # another command reads it too: the file stays for it
        pass
    finally:
        os.close(fd)  # releases the lock


def lock_current(path: Path, exclusive: bool = False) -> int | None:
    """A descriptor of the file at ``path`` now (not one unlinked since) holding a lock on it: shared (waiting only for
    a pruning) or, ``exclusive``, without waiting (``BlockingIOError`` where a command holds it; the OSError of making a
    file this user can neither create nor open); None where it cannot be locked (no ``fcntl``, a filesystem without
    locks, a file a reader can neither create nor open)."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        return None
    mode = fcntl.LOCK_EX | fcntl.LOCK_NB if exclusive else fcntl.LOCK_SH
    while True:
        fd = _open(path, exclusive)
        if fd is None:
            return None
        try:
            fcntl.flock(fd, mode)
        except OSError as exc:
            os.close(fd)
            if exc.errno in NO_LOCKS or exc.errno == errno.EBADF:  # a read-only descriptor on NFS
                return None
            raise
        if same_file(fd, path):
            return fd
        os.close(fd)  # unlinked by the command that held it (its last reader, a pruning): lock the next one


def _open(path: Path, exclusive: bool) -> int | None:
    """``path`` opened (made where missing); None where it cannot be, but the error of making it for ``exclusive`` (a
    pruning: it could delete nothing there, and says why)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        made = exc
    try:  # another user's cache: flock needs no write access
        return os.open(path, os.O_RDONLY)
    except OSError:
        if exclusive:
            raise made from None
        return None
