"""Content digests (SHA-256) of input files, cached by file identity.

A store version keys on what its input files hold, not on where or when they were written: a
dataset copied (``cp -r``, rsync without ``-t``), moved or ingested again to the same bytes is
the same input. Reading 100 GB on every run would cost minutes, so each digest is kept with
the file's size, modification time and inode, and read again only when one of them changes —
what ``make``, rsync and DVC trust too: an edit that restores all three is not seen. A file modified
within :data:`RACY_NS` of its hashing is not cached ("racy", as git calls it): on a filesystem with
coarse timestamps (1 s: ext3, some NFS servers) a same-size rewrite in that second keeps its mtime.
Runs sharing a cache (a sweep) merge their new digests into it under a lock: none is lost.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .atomic import write_text
from .build_lock import building

#: The digest cache's file name, in the directory that holds what is built from the files (a store, a data cache).
CACHE_FILE = ".input-digests.json"
#: Bytes read at a time (hashlib releases the GIL on large updates, so files hash in parallel).
CHUNK = 8 << 20
#: Files hashed at once.
MAX_THREADS = 8
#: Hashing more than this many bytes is logged (it takes a while, once).
LOG_BYTES = 1 << 30
#: A digest is cached only for a file last modified this long before it was hashed (coarse mtimes).
RACY_NS = 2 * 10**9


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of the file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _identity(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _load(cache: Path | None) -> dict[str, list]:
    try:
        data = json.loads(cache.read_text()) if cache is not None else {}
    except (OSError, ValueError):  # absent or damaged: every file is read again
        return {}
    return data if isinstance(data, dict) else {}


def content_digests(files: Sequence[Path], cache: Path | None = None,
                    log: Callable[[str], None] | None = None) -> dict[Path, str]:
    """SHA-256 of each file; those whose size, mtime and inode match ``cache`` (a JSON file, updated) are not read."""
    known = _load(cache)
    settled = time.time_ns() - RACY_NS  # modified after this: hashed, not cached (see RACY_NS)
    stats = {f: _identity(f.stat()) for f in files}
    keys = {f: str(f.resolve()) for f in files}
    found = {f: known[keys[f]][3] for f in files
             if isinstance(known.get(keys[f]), list) and len(known[keys[f]]) == 4 and known[keys[f]][:3] == stats[f]}
    todo = [f for f in files if f not in found]
    size = sum(stats[f][0] for f in todo)
    if log is not None and size > LOG_BYTES:
        log(f"hashing {len(todo):,} input file(s), {size / 2**30:.1f} GiB (once: a digest is kept until the file changes)")
    with ThreadPoolExecutor(max_workers=max(1, min(MAX_THREADS, os.cpu_count() or 1, len(todo)))) as pool:
        found.update(zip(todo, pool.map(file_digest, todo)))
    if cache is not None and todo:
        _save(cache, {keys[f]: [*stats[f], found[f]] for f in todo if stats[f][1] < settled})
    return found


def _save(cache: Path, new: dict[str, list]) -> None:
    """Add ``new`` entries to ``cache``: read, merged and written (atomically) under its lock, so runs updating it at
    once (processes or threads) keep each other's entries; entries of files gone are dropped. A cache that cannot be
    written (a read-only store) is left: the digests are read again next time."""
    try:
        with building(cache):  # held for the read-merge-write only (milliseconds)
            kept = {k: v for k, v in _load(cache).items() if os.path.exists(k)}
            write_text(cache, json.dumps(kept | new, indent=0))
    except OSError:
        pass
