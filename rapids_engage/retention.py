"""``features.keep_versions``: a successful ``run`` / ``features`` deletes its store's older versions at its end.

The selection is ``store --keep N``'s (:func:`~.store_admin.select`): all but the N newest intact versions, and
the damaged ones, less every version in use (models beside the store, runs and predicts in progress, builds
reusing its feature groups); the version this run built or found is never deleted either (a cache hit on an
older version keeps N + 1). A version a run marks in use after the selection, before its deletion, is kept
(:func:`~.store_admin.remove_unless_in_use`). The versions' lock files killed runs left (no lock held) go too. A deletion that fails is said and recorded, never the run's failure: its models
are published already.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from .build_lock import remove_unheld
from .progress import byte_size
from .store import FeatureStore
from .store_admin import remove_unless_in_use, select
from .store_builds import freed_size

#: A version's build lock file (:func:`~.build_lock.lock_path`) or its :func:`~.store.use_lock`'s.
LOCK_FILE = re.compile(r"\.[0-9a-f]{16}(\.use)?\.lock")


def apply_retention(store_dir: str | Path, keep: int | None, own: str, log: Callable[[str], None]) -> dict | None:
    """Delete what ``features.keep_versions`` (``keep``; None: keep all) selects in ``store_dir``, never version
    ``own``; a line per version kept in use and one summing up go to ``log``. Returns report.json's
    ``store.retention``: ``keep_versions``, ``deleted``, ``kept`` (the versions left, oldest first),
    ``freed_bytes`` and ``errors`` (one line per deletion that failed); None when ``keep`` is None."""
    if keep is None:
        return None
    store = FeatureStore(store_dir)
    chosen = select(store, keep, [], force=False, hint="")
    said = "features.keep_versions"
    for line in chosen.kept:
        log(f"{said}: {line}")
    if own in chosen.doomed:
        log(f"{said}: keeping {own}: this run's version")
    deleted, errors, freed = [], [], 0
    for version in (v for v in chosen.doomed if v != own):
        size = _size(store.path / version)
        try:
            users = remove_unless_in_use(store, version)
        except ValueError as exc:
            if (store.path / version).exists():  # else another run deleted it meanwhile
                errors.append(str(exc))
                log(f"{said}: {exc}")
            continue
        if users:  # marked since the selection: a run found it and trains from it
            log(f"{said}: keeping {version}: {', '.join(users)} use(s) it")
            continue
        deleted.append(version)
        freed += size
    for path in store.path.glob(".*.lock"):  # a killed build's (it went at the version's next build only) or deletion's
        if LOCK_FILE.fullmatch(path.name):
            remove_unheld(path)
    kept = [i.version for i in chosen.infos if i.version not in deleted]
    log(summary_line(f"{said} {keep}", "version", store.path, deleted, freed, kept))
    return {"keep_versions": keep, "deleted": deleted, "kept": kept, "freed_bytes": freed, "errors": errors}


def summary_line(said: str, what: str, where: str | Path, deleted: list[str], freed: int, kept: list[str]) -> str:
    """The line a retention (``features.keep_versions``, ``data.keep_ingests``) ends with: what it deleted of
    ``where``, the bytes freed, and what it kept (each as shown: a reason beside it where it has one)."""
    gone = f" ({', '.join(deleted)}; {byte_size(freed)} freed)" if deleted else ""
    return f"{said}: deleted {len(deleted)} {what}(s) of {where}{gone}; kept {len(kept)}: {', '.join(kept) or 'none'}"


def _size(path: Path) -> int:
    """Bytes deleting ``path`` frees (:func:`~.store_builds.freed_size`); 0 where it goes meanwhile (another run
    deleting it)."""
    try:
        return freed_size(path)
    except OSError:
        return 0
