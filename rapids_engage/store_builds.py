"""A store's temporary directories: who builds in them, and deleting what killed builds left.

A version is built in ``<store>/.tmp-<id>/`` holding :data:`OWNER` (the host and process id of the
build; not listed in its manifest), removed once it is renamed in place. A directory whose builder is gone
(a process of this host no longer running) is a killed build's (a mark a publication killed after its rename left in
the version goes too); the leftovers of a replaced version
(``.tmp-old-*``) or of a deletion (``.trash-*``) are garbage. A build on another host sharing the
store, or one started by a release that wrote no owner, cannot be checked from here.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from .atomic import OLD_PREFIX, pid_namespace, process_alive, remove_tree, write_text
from .periodic import every

OWNER = ".owner.json"
#: Prefixes of a store's temporary directories.
PREFIXES = (".tmp-", ".trash-")
#: The states of :func:`state`.
LIVE, KILLED, LEFTOVER, UNKNOWN = "live", "killed", "leftover", "unknown"


def this_process() -> dict:
    """This process as build owners and in-use marks record it: host, process id and PID namespace."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "pidns": pid_namespace()}


def checkable(host: str, pidns: str | None) -> bool:
    """Whether the process ids of ``host`` in PID namespace ``pidns`` can be checked here: this host's and this
    namespace's (another container with the host's name, host networking, numbers its own; a record without one,
    of an earlier release, is taken for this namespace's)."""
    return host == socket.gethostname() and (pidns is None or pidns == pid_namespace())


def claim(tmp: Path) -> None:
    """Mark ``tmp`` as built by this process."""
    (tmp / OWNER).write_text(json.dumps(this_process()))


def release(tmp: Path) -> None:
    """Remove the mark of ``tmp`` (a version once it is in place: its mark is unlisted, a leftover there)."""
    (tmp / OWNER).unlink(missing_ok=True)


def state(tmp: Path) -> str:
    """:data:`LIVE`, :data:`KILLED`, :data:`LEFTOVER` or :data:`UNKNOWN` (see the module docstring)."""
    if tmp.name.startswith((OLD_PREFIX, ".trash-")):
        return LEFTOVER
    try:
        owner = json.loads((tmp / OWNER).read_text())
        host, pid, pidns = owner["host"], int(owner["pid"]), owner.get("pidns")
    except (OSError, ValueError, KeyError, TypeError):
        return UNKNOWN
    if not checkable(host, pidns):
        return UNKNOWN
    return LIVE if process_alive(pid) else KILLED


def temporary_dirs(store: Path) -> list[Path]:
    return sorted(d for d in store.iterdir() if d.is_dir() and d.name.startswith(PREFIXES)) if store.is_dir() else []


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def freed_size(path: Path) -> int:
    """What deleting ``path`` frees: :func:`dir_size`, 0 for a link (:func:`~.atomic.remove_tree` removes the link
    alone)."""
    return 0 if path.is_symlink() else dir_size(path)


def sweep(store: Path) -> tuple[int, int, list[Path], dict[Path, str]]:
    """Delete the temporary directories of killed builds and the leftovers; (how many, bytes freed,
    the temporary directories left: live builds and those that cannot be checked, and those of killed builds or
    leftovers that could not be deleted -> the first refusal, ``Read-only file system: <file>``: a read-only store)."""
    deleted = freed = 0
    left, stuck = [], {}
    for d in temporary_dirs(store):
        if state(d) in (KILLED, LEFTOVER):
            size = freed_size(d)
            refusal = remove_tree(d)
            if refusal:
                stuck[d] = refusal
            else:
                deleted, freed = deleted + 1, freed + size
        else:
            left.append(d)
    for d in store.iterdir() if store.is_dir() else ():  # a publication killed between its rename and its mark's removal
        if not d.name.startswith(".") and (d / OWNER).is_file() and state(d) == KILLED:
            with suppress(OSError):  # a read-only store: left, as its other leftovers are
                release(d)
    return deleted, freed, left, stuck


#: Directory of a store's marks of the versions runs in progress train from (:func:`in_use`).
IN_USE = ".in-use"
#: Seconds between a run's rewrites of its mark, and after which a mark not rewritten is a killed run's, whatever
#: its host (a process of another host or container cannot be checked; a killed run's process id may be reused).
REFRESH_S, STALE_S = 60.0, 15 * 60.0


@contextmanager
def in_use(store: Path, version: str, models: Path, building: str | None = None, serving: bool = False) -> Iterator[None]:
    """Mark ``version`` as used while the block runs: by a run training ``models`` from it, whose models (which
    ``store --keep`` / ``--delete`` see) are not published yet; or (``building``) by the build of that version in
    the temporary directory ``models``, which reads feature groups of ``version``; or (``serving``) by a predict
    serving ``models`` (which may lie where ``store`` does not look) from it. The mark is rewritten every
    :data:`REFRESH_S` seconds; a killed run's names a process no longer running, or was not rewritten for :data:`STALE_S`."""
    mark = store / IN_USE / f"{version}.{uuid.uuid4().hex[:12]}.json"
    mark.parent.mkdir(parents=True, exist_ok=True)  # a run's first build marks its version before making the store
    for stale in _dead_marks(mark.parent):  # killed runs'
        stale.unlink(missing_ok=True)
    text = json.dumps({"version": version, **this_process(), "models": str(Path(models).absolute())}
                      | ({"building": building} if building else {}) | ({"serving": True} if serving else {}))
    write_text(mark, text)
    try:
        with every(REFRESH_S, lambda: _refresh(mark, text), "store in-use mark"):
            yield
    finally:
        mark.unlink(missing_ok=True)
        with suppress(OSError):  # another run's mark there
            mark.parent.rmdir()


def _refresh(mark: Path, text: str) -> None:
    """Rewrite ``mark`` (anew if a run took it for a killed one's)."""
    with suppress(OSError):  # the store unreachable a while: the next rewrite
        mark.parent.mkdir(exist_ok=True)
        write_text(mark, text)


def _marks(directory: Path) -> Iterator[tuple[Path, dict]]:
    """(mark, its fields and when it was last written) of the readable marks under ``directory``."""
    for mark in sorted(directory.glob("*.json")):
        try:
            m = json.loads(mark.read_text())
            yield mark, {"version": str(m["version"]), "host": str(m["host"]), "pid": int(m["pid"]), "models": str(m["models"]),
                         "pidns": None if m.get("pidns") is None else str(m["pidns"]), "written": mark.stat().st_mtime,
                         "building": None if m.get("building") is None else str(m["building"]),
                         "serving": m.get("serving") is True}
        except (OSError, ValueError, KeyError, TypeError):
            continue


def _dead_marks(directory: Path) -> list[Path]:
    """The marks of killed runs under ``directory``."""
    now = time.time()
    return [mark for mark, m in _marks(directory) if _dead(m, now)]


def _dead(m: dict, now: float) -> bool:
    """Whether mark ``m`` is a killed run's: not rewritten for :data:`STALE_S` seconds, or of a process of this
    host no longer running."""
    return now - m["written"] > STALE_S or (checkable(m["host"], m["pidns"]) and not process_alive(m["pid"]))


def live_marks(store: Path) -> list[dict]:
    """The fields of the marks of the runs and builds in progress on ``store`` (a killed one's left out), read once
    for :func:`versions_in_use`, :func:`versions_read_by_builds` and :func:`builds_reading` to describe one moment."""
    now = time.time()
    return [m for _, m in _marks(store / IN_USE) if not _dead(m, now)]


def versions_in_use(marks: list[dict]) -> dict[str, list[str]]:
    """version -> the models of the runs in progress training from it (``<out>/models (training: process N)``) and
    of the predicts serving from it (``<model-dir> (predicting: process N)``), from their :func:`live_marks`; the
    marks of builds (:func:`versions_read_by_builds`) are left out."""
    return _in_use(marks, lambda m: None if m["building"] else
                   f"{m['models']} ({'predicting' if m['serving'] else 'training'}: {_where(m)})")


def versions_read_by_builds(marks: list[dict]) -> dict[str, list[str]]:
    """version -> the builds in progress reading its feature groups (``the build of version V in <store>/.tmp-x
    (process N)``), from their :func:`live_marks`."""
    return _in_use(marks, lambda m: m["building"] and f"the build of version {m['building']} in {m['models']} ({_where(m)})")


def builds_reading(marks: list[dict]) -> dict[str, list[str]]:
    """version -> the versions that builds in progress reading its feature groups build (the listing's words)."""
    return _in_use(marks, lambda m: m["building"])


def _in_use(marks: list[dict], describe: Callable[[dict], str | None]) -> dict[str, list[str]]:
    """version -> ``describe(mark)`` of ``marks`` (a None description: not listed)."""
    found: dict[str, list[str]] = {}
    for m in marks:
        if text := describe(m):
            found.setdefault(m["version"], []).append(text)
    return found


def _where(m: dict) -> str:
    """The process of mark ``m``: ``process N``, ``on <host>`` when it cannot be checked from here."""
    return f"process {m['pid']}" + ("" if checkable(m["host"], m["pidns"]) else f" on {m['host']}"
                                    + (" (another container)" if m["host"] == socket.gethostname() else ""))
