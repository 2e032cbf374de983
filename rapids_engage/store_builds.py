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
from pathlib import Path

from .atomic import OLD_PREFIX, process_alive

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
