"""A store's temporary directories: who builds in them, and deleting what killed builds left.

A version is built in ``<store>/.tmp-<id>/`` holding :data:`OWNER` (the host and process id of the
build), removed just before it is published. A directory whose builder is gone (a process of this
host no longer running) is a killed build's; the leftovers of a replaced version
(``.tmp-old-*``) or of a deletion (``.trash-*``) are garbage. A build on another host sharing the
store, or one started by a release that wrote no owner, cannot be checked from here.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from .atomic import OLD_PREFIX, process_alive, write_text

OWNER = ".owner.json"
#: Prefixes of a store's temporary directories.
PREFIXES = (".tmp-", ".trash-")
#: The states of :func:`state`.
LIVE, KILLED, LEFTOVER, UNKNOWN = "live", "killed", "leftover", "unknown"


def claim(tmp: Path) -> None:
    """Mark ``tmp`` as built by this process."""
    (tmp / OWNER).write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))


def release(tmp: Path) -> None:
    """Remove the mark before publishing (a version lists every file it holds)."""
    (tmp / OWNER).unlink(missing_ok=True)


def state(tmp: Path) -> str:
    """:data:`LIVE`, :data:`KILLED`, :data:`LEFTOVER` or :data:`UNKNOWN` (see the module docstring)."""
    if tmp.name.startswith((OLD_PREFIX, ".trash-")):
        return LEFTOVER
    try:
        owner = json.loads((tmp / OWNER).read_text())
        host, pid = owner["host"], int(owner["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return UNKNOWN
    if host != socket.gethostname():
        return UNKNOWN
    return LIVE if process_alive(pid) else KILLED


def temporary_dirs(store: Path) -> list[Path]:
    return sorted(d for d in store.iterdir() if d.is_dir() and d.name.startswith(PREFIXES)) if store.is_dir() else []


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def sweep(store: Path) -> tuple[int, int, list[Path]]:
    """Delete the temporary directories of killed builds and the leftovers; (how many, bytes freed,
    the temporary directories left: live builds and those that cannot be checked)."""
    deleted = freed = 0
    left = []
    for d in temporary_dirs(store):
        if state(d) in (KILLED, LEFTOVER):
            size = dir_size(d)
            shutil.rmtree(d, ignore_errors=True)
            deleted, freed = deleted + 1, freed + size
        else:
            left.append(d)
    return deleted, freed, left


#: Directory of a store's marks of the versions runs in progress train from (:func:`in_use`).
IN_USE = ".in-use"


@contextmanager
def in_use(store: Path, version: str, models: Path) -> Iterator[None]:
    """Mark ``version`` as used while the block runs: by a run training ``models`` from it, whose models (which
    ``store --keep`` / ``--delete`` see) are not published yet. A killed run's mark names a process no longer running."""
    mark = store / IN_USE / f"{version}.{uuid.uuid4().hex[:12]}.json"
    mark.parent.mkdir(exist_ok=True)
    for stale in _dead_marks(mark.parent):  # killed runs'
        stale.unlink(missing_ok=True)
    write_text(mark, json.dumps({"version": version, "host": socket.gethostname(), "pid": os.getpid(),
                                 "models": str(Path(models).absolute())}))
    try:
        yield
    finally:
        mark.unlink(missing_ok=True)
        with suppress(OSError):  # another run's mark there
            mark.parent.rmdir()


def _marks(directory: Path) -> Iterator[tuple[Path, dict]]:
    """(mark, its fields) of the readable marks under ``directory``."""
    for mark in sorted(directory.glob("*.json")):
        try:
            m = json.loads(mark.read_text())
            yield mark, {"version": str(m["version"]), "host": str(m["host"]), "pid": int(m["pid"]), "models": str(m["models"])}
        except (OSError, ValueError, KeyError, TypeError):
            continue


def _dead_marks(directory: Path) -> list[Path]:
    """The marks of processes of this host no longer running."""
    return [mark for mark, m in _marks(directory) if m["host"] == socket.gethostname() and not process_alive(m["pid"])]


def versions_in_use(store: Path) -> dict[str, list[str]]:
    """version -> the models of the runs in progress training from it (``<out>/models (training: process N)``),
    from their marks; a mark of a process no longer running on this host is ignored, another host's counts."""
    found: dict[str, list[str]] = {}
    dead = set(_dead_marks(store / IN_USE))
    for mark, m in _marks(store / IN_USE):
        if mark not in dead:
            where = f"process {m['pid']}" + ("" if m["host"] == socket.gethostname() else f" on {m['host']}")
            found.setdefault(m["version"], []).append(f"{m['models']} (training: {where})")
    return found
