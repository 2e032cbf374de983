"""One run at a time into a ``--out`` directory.

Two runs into one ``--out`` (a daily job started while yesterday's still ran) each published their models,
report.json and config.yaml there, the one ending last over the other's: yesterday's models could replace
today's, and a report could describe the other run's models. :func:`out_lock` holds an exclusive
``fcntl.flock`` on ``<out>/.run.lock`` for the whole run; a second run is refused at its start, naming the
process holding it (``predict`` takes the same lock for its ``--out``: a retried cron job's second predict
interleaved the first's ``predictions/`` parts and ``predict.json``). The kernel releases the lock when its holder
exits, however it ends (the file stays, locking nothing; a run that wrote nothing there, refused by its checks, leaves no ``--out``, nor the parent folders it made for it). A filesystem without locks runs unlocked, as :mod:`.build_lock` does.
A lock file this user may not write (another user's) is locked read-only; one that cannot be opened or locked at all
refuses the run (:class:`OutInUse`): going on unlocked could let two runs write one ``--out``.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .build_lock import NO_LOCKS

#: The lock file of a run directory (hidden: never taken for a run's output).
LOCK_NAME = ".run.lock"


class OutInUse(ValueError):
    """Another run is writing to this ``--out``, or its lock file cannot be opened or locked to tell."""


#: The ``--out`` directories whose lock this thread holds (``audit`` holds its own while its runs write there).
_held = threading.local()


@contextmanager
def out_lock(out: Path, command: str = "run") -> Iterator[None]:
    """Hold ``out``'s run lock while the block runs; :class:`OutInUse` at once when another process (or thread) holds
    it. A thread holding it already holds it on (the audit's real-label run into the audit's own ``--out``)."""
    key = os.path.realpath(out)  # one directory by any path to it (a symlink, ..): the lock file is the same one
    held = _held.__dict__.setdefault("paths", set())
    if key in held:
        yield
        return
    held.add(key)
    try:
        with _flock(Path(out), command):
            yield
    finally:
        held.discard(key)


@contextmanager
def _flock(out: Path, command: str) -> Iterator[None]:
    """:func:`out_lock`'s ``fcntl.flock`` on ``out``'s lock file."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    out = Path(out)
    path = out / LOCK_NAME
    made = _missing_dirs(out)  # ``out`` and the parents this run makes, deepest first
    created = bool(made)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, writable = _open_lock(path)
    except OSError:  # not a directory, or not writable: the run's own checks say so, naming the setting
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = True
        except BlockingIOError:
            raise _in_use(out, path, command) from None
        except OSError as exc:
            if exc.errno in NO_LOCKS:
                locked = False
            elif not writable:  # a filesystem that locks only a descriptor open for writing (NFS)
                raise _unusable(path, exc) from None
            else:
                raise
        if locked and writable:  # read-only, the file keeps its last holder's words
            holder = {"command": command, "pid": os.getpid(), "host": socket.gethostname(),
                      "since": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder).encode(), 0)
        yield
    finally:
        if created and [p.name for p in out.iterdir()] == [LOCK_NAME]:  # refused before it wrote: no --out left
            path.unlink(missing_ok=True)
            _remove_empty(made)
        os.close(fd)  # releases the lock


def _missing_dirs(out: Path) -> list[Path]:
    """``out`` and its parents that are not there, deepest first: what ``mkdir(parents=True)`` makes."""
    missing = []
    for d in (out, *out.parents):
        if d.exists():
            break
        missing.append(d)
    return missing


def _remove_empty(made: list[Path]) -> None:
    """Remove the folders this run made (deepest first), up to the first that is no longer empty (another process
    wrote there meanwhile): never a folder that was there before."""
    for d in made:
        try:
            d.rmdir()
        except OSError:
            return


def _open_lock(path: Path) -> tuple[int, bool]:
    """(descriptor of lock file ``path``, whether it is open for writing): read-write, made if missing; read-only when
    it is there but this user may not write it (another user's: flock needs no write access). An :class:`OutInUse`
    when it is there and cannot be opened at all: whether a run holds it cannot be told, and going on unlocked could
    let two runs write one --out. Any other OSError (``out`` is not a writable directory) is the caller's."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666), True
    except OSError:
        if not path.is_file():
            raise
    try:
        return os.open(path, os.O_RDONLY), False
    except OSError as exc:
        raise _unusable(path, exc) from None


def _in_use(out: Path, path: Path, command: str) -> OutInUse:
    """The refusal of ``command`` into ``out`` while another process holds its lock file ``path``, naming the holder
    and, by both commands, what writing there at once would do."""
    holding = _holder_record(path).get("command")
    if command == "predict" and holding == "predict":  # its outputs are not a run's: predictions/ and predict.json
        return OutInUse(f"{out}: another command is writing there ({_holder(path)}); two predicts into one --out would "
                        "interleave their predictions/ parts and predict.json: wait for it to end, or give this predict "
                        "another --out")
    if "predict" in (command, holding):  # a predict and a run (or a holder not yet named)
        return OutInUse(f"{out}: another command is writing there ({_holder(path)}); one command at a time writes an "
                        f"--out (a run's models and report, a predict's predictions/ and predict.json): wait for it "
                        f"to end, or give this {command} another --out")
    return OutInUse(f"{out}: another run is writing there ({_holder(path)}); two runs into one --out would each replace "
                    "the other's models and report: wait for it to end, or give this one another --out")


def _unusable(path: Path, exc: OSError) -> OutInUse:
    """The refusal of a lock file that this user cannot lock, naming it and why."""
    return OutInUse(f"{path}: cannot lock this --out's run lock ({exc.strerror or exc}), so whether another run is writing "
                    "there cannot be told: let this user read it, remove it if no run is writing there, or give this "
                    "run another --out")


def _holder_record(path: Path) -> dict:
    """What the holder of ``path`` wrote there (``command``, ``pid``, ``host``, ``since``); {} when unreadable (written
    in the instant after it locked)."""
    try:
        h = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return h if isinstance(h, dict) else {}


def _holder(path: Path) -> str:
    """Who holds ``path`` as its holder wrote it (``run, process 123 on host, since ...``)."""
    h = _holder_record(path)
    try:
        return f"{h['command']}, process {h['pid']} on {h['host']}, since {h['since']}"
    except KeyError:
        return "a process that has just started"
