"""``python -m rapids_engage.pipeline store DIR``: list a feature store's versions, delete old ones.

Every version is a full copy of the features (a tuning loop that changes feature settings adds
one per change), so stores grow. Listing shows each version's rows, features, size, age and what
it reused; ``--keep N`` deletes all but the N newest intact versions (and damaged ones),
``--delete V`` deletes named ones, ``--tmp`` the temporary directories of killed builds.
A deleted version disappears at once (renamed away, then removed): a run never reads half of one.
Models trained on a deleted version can no longer be served: a version the models of the runs
beside the store use is kept (``--keep``) or refused (``--delete``) unless ``--force``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .atomic import read_json
from .cli import Parser, command_name
from .progress import byte_size
from .store import MANIFEST, FeatureStore, is_version_dir, use_lock
from .store_builds import (KILLED, LEFTOVER, LIVE, UNKNOWN, builds_reading, dir_size, freed_size, live_marks, state,
                           temporary_dirs, versions_in_use, versions_read_by_builds)


@dataclass(frozen=True)
class VersionInfo:
    version: str
    problem: str | None  # None: intact
    created: float | None
    rows: dict[str, int]
    n_features: int | None
    reused_from: str | None
    bytes: int


def describe(store: FeatureStore) -> tuple[list[VersionInfo], list[Path]]:
    """(every version directory, intact ones oldest first then damaged ones; the temporary
    directories of builds, finished or killed)."""
    found = sorted(d for d in store.path.iterdir() if d.is_dir()) if store.path.is_dir() else []
    infos = []
    for d in (d for d in found if not d.name.startswith(".") and is_version_dir(d)):
        manifest, problem = store.check(d.name)
        m = manifest or {}
        infos.append(VersionInfo(d.name, problem, m.get("created"), m.get("rows") or {},
                                 len(m["features"]) if "features" in m else None, (m.get("reused") or {}).get("from"), dir_size(d)))
    infos.sort(key=lambda i: (i.problem is not None, i.created or 0.0, i.version))
    return infos, temporary_dirs(store.path)


def models_using(store: FeatureStore) -> dict[str, list[str]]:
    """version -> the ``models/`` directories found whose models were trained on it: the run beside
    the store (``<out>/store``, ``<out>/models``; also when the run was copied or moved, which
    ``predict`` serves from this store) and the runs beside it (a store shared by ``--store
    runs/store``: ``runs/<run>/models``). Runs elsewhere are not seen."""
    here = store.path.resolve()
    beside = here.parent / "models" if here.name == "store" else None  # predict's fallback: <run>/store
    found: dict[str, list[str]] = {}
    for models in sorted({*here.parent.glob("models"), *here.parent.glob("*/models")}):
        for meta in sorted(models.glob("*.meta.json")):
            try:  # a damaged meta serves nothing (predict refuses it)
                trained = read_json(meta, {"store": (dict, type(None))}).get("store") or {}
            except (OSError, ValueError):
                continue
            if not isinstance(trained.get("version"), str) or not isinstance(trained.get("path", ""), str):
                continue
            if trained["version"] and (models == beside or Path(trained.get("path", "")).resolve() == here):
                users = found.setdefault(trained["version"], [])
                if str(models) not in users:
                    users.append(str(models))
    return found


def spare_served(doomed: list[str], named: list[str], served: dict[str, list[str]], force: bool,
                 read: dict[str, list[str]] | None = None, hint: str = " (--force deletes it)") -> tuple[list[str], list[str]]:
    """(what to delete, lines for the versions kept, each ending in ``hint``): without ``force`` a version that found
    models use, or that builds in progress ``read`` (:func:`~.store_builds.versions_read_by_builds`), is kept when
    ``--keep`` chose it, and refused when ``--delete`` named it."""
    read = read or {}
    if force:
        return doomed, []
    for v in named:
        if v in served:
            raise ValueError(f"store: version {v} serves the models in {', '.join(served[v])}; "
                             "--force deletes it anyway (they can no longer be served)")
        if v in read:
            raise ValueError(f"store: version {v} is read by {', '.join(read[v])}; --force deletes it anyway (the build fails)")
    kept = [f"keeping {v}: {_users(v, served, read)}{hint}" for v in doomed if v in served or v in read]
    return [v for v in doomed if v not in served and v not in read], kept


def _users(version: str, served: dict[str, list[str]], read: dict[str, list[str]]) -> str:
    """``the models in X use it``, ``the build of version V in Y (process N) reads it``, or both joined by ``and``."""
    users = [f"the models in {', '.join(served[version])} use it"] if version in served else []
    return " and ".join(users + ([f"{', '.join(read[version])} reads it"] if version in read else []))


def remove(store: FeatureStore, name: str) -> None:
    """Delete ``<store>/<name>``: renamed out of sight first, so no reader sees part of it."""
    _remove_renamed(store, name, _rename_away(store, name))


def remove_unless_in_use(store: FeatureStore, version: str) -> list[str]:
    """Delete ``version`` as :func:`remove` does unless a run, predict or build marked it in use since it was selected
    (:func:`select` read the marks earlier: a run marking it and finding it meanwhile would have trained from a version
    deleted under it); the marks read again and the rename under the version's :func:`~.store.use_lock`, which a run
    holds from its mark to its check. Returns who uses it (nothing deleted), or [] once deleted."""
    with use_lock(store.path, version):
        marks = live_marks(store.path)
        users = [*versions_in_use(marks).get(version, []), *versions_read_by_builds(marks).get(version, [])]
        if users:
            return users
        trash = _rename_away(store, version)
    _remove_renamed(store, version, trash)
    return []


def _rename_away(store: FeatureStore, name: str) -> Path:
    """``<store>/<name>`` renamed to a ``.trash-`` directory (out of every reader's sight); that directory."""
    trash = store.path / f".trash-{name.lstrip('.')}-{uuid.uuid4().hex[:8]}"
    try:
        (store.path / name).rename(trash)
    except OSError as exc:
        raise ValueError(f"store: cannot delete {name} from {store.path}: {exc.strerror or exc} (a read-only store: "
                         "run the store command as a user who may write it, or where it is mounted read-write)") from exc
    return trash


def _remove_renamed(store: FeatureStore, name: str, trash: Path) -> None:
    """Remove ``trash``, what :func:`_rename_away` made of ``<store>/<name>``."""
    try:
        if trash.is_symlink():  # a version linked from another disk: the link goes, not what it points to
            trash.unlink()
        else:
            shutil.rmtree(trash)
    except OSError as exc:
        raise ValueError(f"store: cannot delete {name} from {store.path}: {exc.strerror or exc}{_at(exc, store.path)}; it is "
                         f"renamed to {trash.name}, which `store --tmp` deletes (run it as a user who may write every "
                         "file of it)") from exc


def _at(exc: OSError, root: Path) -> str:
    """`` (<file>)``: the file an OS error names, relative to ``root`` where it lies inside it; empty if it names none."""
    if not exc.filename:
        return ""
    path = Path(exc.filename)
    return f" ({path.relative_to(root) if path.is_relative_to(root) else path})"


def to_delete(infos: list[VersionInfo], keep: int | None, named: list[str]) -> list[str]:
    """The versions ``--keep`` / ``--delete`` select (``keep``: all but the newest ``keep`` intact ones, and the damaged)."""
    known = {i.version for i in infos}
    unknown = [v for v in named if v not in known]
    if unknown:
        raise ValueError(f"store: no version {', '.join(unknown)} (have: {', '.join(sorted(known)) or 'none'})")
    chosen = list(named)
    if keep is not None:
        if keep < 0:
            raise ValueError(f"store --keep must be >= 0, got {keep}")
        intact = [i.version for i in infos if i.problem is None]
        chosen += intact[: max(len(intact) - keep, 0)] + [i.version for i in infos if i.problem is not None]
    return list(dict.fromkeys(chosen))


def _tmp_states(states: dict[str, str]) -> str:
    """What the temporary directories are, and which option deletes them."""
    said = {KILLED: "of killed builds", LEFTOVER: "left by a replace or delete", LIVE: "of builds in progress, kept",
            UNKNOWN: "of another host's builds or an older release, --tmp --force deletes them"}
    counts = {s: sum(1 for v in states.values() if v == s) for s in said}
    parts = [f"{n} {said[s]}" for s, n in counts.items() if n]
    return "; ".join(parts) + ("; --tmp deletes those of killed builds and leftovers" if counts[KILLED] + counts[LEFTOVER] else "")


def versions_table(store: FeatureStore, infos: list[VersionInfo], served: dict[str, list[str]],
                   building: dict[str, list[str]] | None = None) -> Table:
    """The listing; ``served``: version -> the models using it, ``building``: version -> the versions that builds in
    progress reusing its feature groups build (both shown under models: a run's name, ``build of V``)."""
    building = building or {}
    table = Table(title=f"feature store {store.path}")
    for col in ("version", "created (UTC)", "train rows", "valid rows", "features", "size", "reused from", "models", "state"):
        table.add_column(col, justify="right" if col.endswith(("rows", "features", "size")) else "left")
    for i in infos:
        created = dt.datetime.fromtimestamp(i.created, dt.timezone.utc).strftime("%Y-%m-%d %H:%M") if i.created else "—"
        users = ", ".join([*(Path(m).parent.name for m in served.get(i.version, [])),
                           *(f"build of {v}" for v in building.get(i.version, []))]) or "—"
        table.add_row(i.version, created, f"{i.rows.get('train', 0):,}" if i.rows else "—", f"{i.rows.get('valid', 0):,}" if i.rows else "—",
                      str(i.n_features) if i.n_features is not None else "—", byte_size(i.bytes), i.reused_from or "—", users,
                      "intact" if i.problem is None else f"[red]damaged[/red]: {i.problem}")
    return table


def build_store_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog=command_name("store"),
        description="List the versions of a feature store (rows, features, size, age, reuse, intact or damaged) and "
        "delete old ones. Models trained on a deleted version can no longer be served.",
    )
    p.add_argument("path", help="the store directory (features.store; a run's <out>/store by default)")
    p.add_argument("--keep", type=int, metavar="N", help="delete all but the N newest intact versions, and damaged ones")
    p.add_argument("--delete", nargs="+", default=[], metavar="VERSION", help="delete these versions")
    p.add_argument("--tmp", action="store_true", help="delete the temporary directories of killed builds (never a "
                   "build's in progress on this machine; those of another host's builds only with --force)")
    p.add_argument("--dry-run", action="store_true", help="say what would be deleted, delete nothing")
    p.add_argument("--force", action="store_true", help="delete versions that models of the runs beside the store use "
                   "(kept otherwise); with --tmp, the temporary directories this machine cannot check too")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def check_store_path(path: Path) -> None:
    """A one-line error when ``path`` is no store: missing, not a directory, or a run directory (whose
    models, plots and store are not versions)."""
    if not path.is_dir():
        raise FileNotFoundError(f"store: {path} is not a directory (a run's store is <out>/store)")
    if (path / MANIFEST).exists():
        raise ValueError(f"store: {path} is a version directory; its store is {path.parent}")
    if (path / "report.json").is_file() or (path / "models").is_dir() or (path / "features.json").is_file():
        where = f"; its store is {path / 'store'}" if (path / "store").is_dir() else ""
        raise ValueError(f"store: {path} is a run directory, not a feature store{where}")


@dataclass(frozen=True)
class Selection:
    """What ``--keep`` / ``--delete`` choose in a store at one moment (:func:`select`)."""

    infos: list[VersionInfo]
    tmps: list[Path]
    served: dict[str, list[str]]  # version -> the models using it: found beside the store, and of runs in progress
    marks: list[dict]  # the live in-use marks read once (:func:`~.store_builds.live_marks`)
    doomed: list[str]  # the versions to delete
    kept: list[str]  # a line per version chosen but kept (in use)


def select(store: FeatureStore, keep: int | None, named: list[str], force: bool,
           hint: str = " (--force deletes it)") -> Selection:
    """The versions ``keep`` / ``named`` choose (:func:`to_delete`) less those in use (:func:`spare_served`): the
    ``store`` subcommand's selection, and a run's ``features.keep_versions`` (:mod:`.retention`)."""
    infos, tmps = describe(store)
    served, marks = models_using(store), live_marks(store.path)  # one moment's marks for all that follows
    for version, runs in versions_in_use(marks).items():  # runs in progress, their models not yet published
        served.setdefault(version, []).extend(runs)
    doomed, kept = spare_served(to_delete(infos, keep, named), named, served, force,
                                versions_read_by_builds(marks), hint)  # builds in progress reusing its feature groups
    return Selection(infos, tmps, served, marks, doomed, kept)


def run_store_command(args: argparse.Namespace, console: Console) -> None:
    """The ``store`` subcommand: the listing and what is deleted on stdout (``console``: errors only)."""
    store = FeatureStore(args.path)
    check_store_path(store.path)
    out = Console(highlight=False, soft_wrap=True, width=console.width)  # a file or pipe gets the log width too
    chosen = select(store, args.keep, args.delete, args.force)
    infos, tmps, served, marks, doomed, kept = (chosen.infos, chosen.tmps, chosen.served, chosen.marks, chosen.doomed,
                                                chosen.kept)
    states = {t.name: state(t) for t in tmps}
    deletable = (KILLED, LEFTOVER, UNKNOWN) if args.force else (KILLED, LEFTOVER)
    doomed_tmp = [name for name, s in states.items() if s in deletable] if args.tmp else []
    if not args.quiet:
        out.print(versions_table(store, infos, served, builds_reading(marks)))
        for line in kept:
            out.print(line)
        total = sum(i.bytes for i in infos)
        leftovers = f"; {len(tmps)} temporary dir(s), {byte_size(sum(dir_size(t) for t in tmps))} ({_tmp_states(states)})" if tmps else ""
        others = [d.name for d in sorted(store.path.iterdir()) if d.is_dir() and not d.name.startswith(".") and not is_version_dir(d)]
        foreign = f"; not versions, left alone: {', '.join(others)}" if others else ""
        out.print(f"{len(infos)} version(s), {byte_size(total)}{leftovers}{foreign}")
        if (args.keep is not None or args.delete or args.tmp) and not doomed and not doomed_tmp:
            unknown = sum(1 for s in states.values() if s == UNKNOWN) if args.tmp and not args.force else 0
            out.print("nothing to delete" + (f" ({unknown} temporary dir(s) this machine cannot check: --tmp --force)"
                                             if unknown else ""))
    for name in [*doomed, *doomed_tmp]:
        freed = byte_size(freed_size(store.path / name))
        if not args.dry_run and name in doomed and not args.force:
            users = remove_unless_in_use(store, name)  # a run may have marked it since the selection
            if users:
                if not args.quiet:
                    out.print(f"keeping {name}: {', '.join(users)} use(s) it (--force deletes it)")
                continue
        elif not args.dry_run:
            remove(store, name)
        if not args.quiet:
            out.print(f"{'would delete' if args.dry_run else 'deleted'} {name} ({freed})")
