"""``data.keep_ingests``: a successful ``run`` / ``features`` deletes its ingest family's older cache folders at its end.

A rolling window ingests a folder a day, each built on the one before with hard links (:mod:`.incremental`): without
pruning the cache holds a folder per day and every part ever ingested. The family is the folders of the same ingest
rules and options (``inputs.json``'s ``family``: the cache key's salt); of its complete folders, all but the N newest
(by their ``ingest.json``) are deleted, never the one this run read, each only under an exclusive non-blocking lock on
its readers' lock file (:mod:`.reader_marks`; else kept: a command reads it), renamed away under it, then removed.
The bytes freed are those of files no other folder links (a superseded folder's parts mostly are today's too); a
killed pruning's folder left renamed away goes too, and so do the lock files killed commands left (no lock held).
A deletion that fails is said and recorded, never the run's failure: its models are published already.
"""

from __future__ import annotations

import bisect
import os
import re
import uuid
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from ..atomic import OLD_PREFIX, remove_tree
from ..build_lock import remove_unheld
from ..retention import summary_line
from .incremental import Inputs, earlier_entries, recency
from .reader_marks import ingest_entry, lock_current, marked_here, marks_path

SAID = "data.keep_ingests"
#: An ingest folder renamed away to be deleted (:func:`_delete_unless_read`, :func:`..atomic.replace_dir`).
LEFTOVER = re.compile(rf"{re.escape(OLD_PREFIX)}(recsys|table)-[0-9a-f]{{12}}-[0-9a-f]{{8}}")
#: An ingest folder's build lock file (:func:`..build_lock.lock_path`) or readers' (:func:`.reader_marks.marks_path`).
LOCK_FILE = re.compile(r"\.((?:recsys|table)-[0-9a-f]{12})(\.readers)?\.lock")
OWN = "this run's"


def prune_ingests(data_dir: str | os.PathLike, keep: int | None, log: Callable[[str], None]) -> dict | None:
    """Delete what ``data.keep_ingests`` (``keep``; None: keep all) selects of the family of the ingest folder holding
    ``data_dir`` (the run's data); one line to ``log``. report.json's ``ingest.retention``: ``keep_ingests``,
    ``deleted`` / ``kept`` (folder names, oldest first), ``in_use`` (those kept as read by a command), ``freed_bytes``,
    ``errors``; None when ``keep`` is None or the data are no ingest folder."""
    if keep is None or (own := ingest_entry(data_dir)) is None:
        return None
    held = Inputs.load(own)
    if held is None:  # written before inputs.json: its family cannot be told
        log(f"{SAID} {keep}: {own} lists no inputs.json (an older ingest): nothing pruned")
        return {"keep_ingests": keep, "deleted": [], "kept": [own.name], "in_use": [], "freed_bytes": 0, "errors": []}
    family = _newest_first(own, held.family)
    doomed = [e for e in family[keep:] if e != own]
    deleted, in_use, errors, freed, why = [], [], [], 0, {}
    for entry in doomed:
        try:
            gone = _delete_unless_read(entry)
        except OSError as exc:
            errors.append(f"{entry}: {exc.strerror or exc}")
            why[entry.name] = f"its deletion failed: {exc.strerror or exc}"
            continue
        if gone is None:
            in_use.append(entry.name)
            why[entry.name] = "a command is reading it"
        elif gone is False:
            why[entry.name] = "its filesystem does not lock: whether a command reads it cannot be told"
        else:
            deleted.append(entry.name)
            freed += gone
    freed += _sweep_leftovers(own.parent)
    _sweep_stale_locks(own.parent)
    deleted.reverse()  # oldest first, as kept
    in_use.reverse()
    kept = [e.name for e in reversed(family) if e.name not in deleted]
    shown = [f"{n} ({why.get(n) or (OWN if n == own.name else 'newest')})" for n in kept]
    log(summary_line(f"{SAID} {keep}", "ingest folder", own.parent, deleted, freed, shown))
    return {"keep_ingests": keep, "deleted": deleted, "kept": kept, "in_use": in_use, "freed_bytes": freed,
            "errors": errors}


def _newest_first(own: Path, family: str) -> list[Path]:
    """The complete folders of ``family`` beside ``own``, ``own`` among them, the newest first."""
    found = [e for e, _ in earlier_entries(own, family)]
    bisect.insort(found, own, key=recency)  # in its place in that order
    return found


def _delete_unless_read(entry: Path) -> int | bool | None:
    """Delete ``entry`` under an exclusive lock on its readers' lock file; the bytes freed (0 where it was gone
    already), None where a command reads it, False where it cannot be locked (a filesystem without locks)."""
    path = marks_path(entry)
    if marked_here(entry):  # this process reads it (its own lock would not stop it on NFS)
        return None
    try:
        fd = lock_current(path, exclusive=True)
    except BlockingIOError:
        return None
    if fd is None:
        return False
    try:
        if not entry.is_dir():  # another run's pruning deleted it meanwhile
            path.unlink(missing_ok=True)
            return 0
        aside = entry.with_name(f"{OLD_PREFIX}{entry.name}-{uuid.uuid4().hex[:8]}")
        os.replace(entry, aside)
        with suppress(OSError):  # another user's in a sticky cache: a reader waiting on it finds no folder all the same
            path.unlink(missing_ok=True)  # while held: a reader waiting on it locks the next one, finds no folder
    finally:
        os.close(fd)
    freed = _unshared_bytes(aside)
    return 0 if remove_tree(aside) else freed


def _sweep_leftovers(cache: Path) -> int:
    """Delete the ingest folders a killed pruning (or rebuild) renamed away but did not remove (no run removed them:
    each day's folder has a name of its own); the bytes freed."""
    freed = 0
    for aside in cache.glob(f"{OLD_PREFIX}*"):
        if LEFTOVER.fullmatch(aside.name) and aside.is_dir():  # a link to one: the link alone (remove_tree)
            size = _unshared_bytes(aside)
            freed += 0 if remove_tree(aside) else size  # a read-only cache: left, not counted as freed
    return freed


def _sweep_stale_locks(cache: Path) -> None:
    """Delete the ingest folders' lock files no command holds: a killed build's (its file went at the folder's next
    build only, and a rolling window builds no folder twice) and a killed pruning's (its folder renamed away before
    the file went); the mark this process holds stays (on NFS its own lock would not stop :func:`remove_unheld`)."""
    for path in cache.glob(".*.lock"):
        match = LOCK_FILE.fullmatch(path.name)
        if match is None or (match.group(2) and marked_here(cache / match.group(1))):
            continue
        remove_unheld(path)


def _unshared_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder`` no other folder links (one link): what deleting it frees (a link to a
    folder: nothing, :func:`~..atomic.remove_tree` removes the link alone)."""
    if folder.is_symlink():
        return 0
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            total += st.st_size if st.st_nlink == 1 else 0
    return total
