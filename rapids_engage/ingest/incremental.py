"""Incremental ingest: a cache entry built from an earlier entry's parts plus an ingest of the new files alone.

Each input file's parts and quarantined rows are a function of that file alone (:mod:`.file_output`: its own writer
and quarantine; ids are hashed, not assigned; a table's default row ids name the file by its name while the names
are unique), so where an earlier complete entry of the same ingest rules and options (its ``family``) ingested some
of today's files (name and content digest), today's entry is that entry's parts, hard-linked (else copied) and
renamed to today's file positions, plus an ingest of the other files alone, the small parts of each day it wrote
into merged, earlier and new (:mod:`.compact`), the quarantine and the summary combined in input order. The same
rows per day, dtypes, counts and quarantine rows as a full ingest, in other files: a day's rows of a new file that
sorts between earlier ones come after a merged run of theirs.

Each entry lists its inputs in ``inputs.json`` (:class:`Inputs`); an entry without it (written before) is not
built on. A full ingest as before, the reason in the data line, where an earlier entry of the family exists but:
the source is an event log (labels look at later events, in other files), two inputs share a name, a file of it
changed or is gone, its files are in another order now, or its output is not what its ingest wrote (a part or
quarantined rows deleted since or during the build, a file not an ingest's).
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import DamagedFile, read_json, staged_dir, write_text
from ..digests import CACHE_FILE, content_digests
from ..layout import LAYOUT_FILE
from ..store import parquet_files
from .compact import compact_day
from .quarantine import SCHEMA, Quarantine
from .recsys import QUARANTINE_FILE, RESULT_FILE, IngestResult, _publish, _write_json

MANIFEST = "inputs.json"
PART = re.compile(r"part-(\d+)-(\d+)\.parquet")
#: An ingest of the files (paths, in input order) into an output directory.
Ingest = Callable[[list[str], Path], IngestResult]


class _CannotReuse(Exception):
    """The earlier entry cannot be built on; the message says why (a clause of the data line)."""


@dataclass(frozen=True)
class Inputs:
    """The input files of an ingest cache entry, in input order, and the family of its rules and options."""

    family: str
    paths: tuple[str, ...]
    digests: tuple[str, ...]

    @classmethod
    def of(cls, files: list[str], rules: str, cache: Path) -> Inputs:
        """``files`` with their content digests (kept in ``cache``); ``rules``: the ingest rules and options."""
        paths = [Path(f) for f in files]
        digests = content_digests(paths, cache / CACHE_FILE)
        return cls(hashlib.sha256(rules.encode()).hexdigest()[:16], tuple(map(str, paths)), tuple(digests[p] for p in paths))

    def keys(self) -> list[tuple[str, str]]:
        """(name, digest) of each file: what the cache key holds of it."""
        return [(Path(p).name, d) for p, d in zip(self.paths, self.digests)]

    def save(self, entry: Path) -> None:
        write_text(entry / MANIFEST, json.dumps({"family": self.family, "paths": self.paths, "digests": self.digests}))

    @classmethod
    def load(cls, entry: Path) -> Inputs | None:
        """The inputs ``entry`` lists; None where it lists none (written before this module) or a damaged list."""
        try:
            held = read_json(entry / MANIFEST, {"family": str, "paths": list, "digests": list})
        except (DamagedFile, OSError):
            return None
        return cls(held["family"], tuple(held["paths"]), tuple(held["digests"]))


@dataclass(frozen=True)
class Reuse:
    """An earlier entry to build on: today's position of each of its files (in its order), those of the new files."""

    earlier: Path
    inputs: Inputs
    positions: tuple[int, ...]
    new: tuple[int, ...]


def build_entry(root: Path, files: list[str], rules: str, ingest: Ingest, unsound: str | None = None) -> dict:
    """Ingest ``files`` into the cache entry ``root`` (``rules``: the ingest rules and options its key holds):
    incrementally where an earlier entry allows (:func:`plan`), else in full; the summary (the
    :class:`.IngestResult` as a dict) with ``incremental``: what was reused or why all was ingested, if anything
    could have been. ``unsound``: why this source is never built incrementally (None: it may be)."""
    today = Inputs.of(files, rules, root.parent)
    reuse, why = plan(root, today, unsound)
    if reuse is not None:
        try:
            result = incremental(root, today, reuse, ingest)
            return asdict(result) | {"incremental": f"{len(reuse.new)} new file(s) ingested, {len(reuse.positions)} "
                                                    f"reused from {reuse.earlier}"}
        except _CannotReuse as exc:
            why = str(exc)
    result = ingest(list(today.paths), root)
    today.save(root)
    return asdict(result) | ({"incremental": f"full ingest: {why}"} if why else {})


def earlier_entries(root: Path, family: str) -> list[tuple[Path, Inputs]]:
    """The complete entries beside ``root`` of its kind and ``family``, with their inputs, the newest first."""
    kind = root.name.rsplit("-", 1)[0] + "-"
    found = []
    for entry in root.parent.glob(f"{kind}*"):
        summary = entry / RESULT_FILE
        if entry != root and summary.is_file() and (held := Inputs.load(entry)) is not None and held.family == family:
            found.append((summary.stat().st_mtime, entry, held))
    return [(entry, held) for _, entry, held in sorted(found, key=lambda f: (-f[0], f[1].name))]


def plan(root: Path, today: Inputs, unsound: str | None = None) -> tuple[Reuse | None, str]:
    """(the earlier entry of the most of today's files, which holds no other, or None; why none, "" where there is
    no earlier entry of the family at all)."""
    earlier = earlier_entries(root, today.family)
    if not earlier:
        return None, ""
    if unsound:
        return None, unsound
    names = [name for name, _ in today.keys()]
    if len(set(names)) < len(names):
        return None, "two input files share a name"
    position = {key: i for i, key in enumerate(today.keys())}
    best, why = None, ""
    for entry, held in earlier:
        at = [position.get(key) for key in held.keys()]
        if None in at:
            why = why or _gone(entry, held, position)
        elif any(a >= b for a, b in zip(at, at[1:])):  # another order, or two of its files one of today's
            why = why or f"the files of {entry} sort in another order now"
        elif best is None or len(at) > len(best.positions):
            best = Reuse(entry, held, tuple(at), tuple(sorted(set(range(len(names))) - set(at))))
    return (best, "") if best else (None, why)


def _gone(entry: Path, held: Inputs, position: dict[tuple[str, str], int]) -> str:
    """Why ``entry`` cannot be built on: the first of its files that changed since (another digest today) or is gone."""
    names = {name for name, _ in position}
    name = next(n for n, d in held.keys() if (n, d) not in position)
    return f"{name} changed since {entry}" if name in names else f"{name} of {entry} is gone"


def incremental(root: Path, today: Inputs, reuse: Reuse, ingest: Ingest) -> IngestResult:
    """Build ``root`` from ``reuse.earlier``'s parts and an ingest of the new files alone, staged and published
    whole (a failed or killed build leaves the earlier entry as it was and no new one)."""
    start = time.perf_counter()
    try:
        earlier = read_json(reuse.earlier / RESULT_FILE)
    except (DamagedFile, OSError) as exc:
        raise _CannotReuse(f"{reuse.earlier / RESULT_FILE} is unreadable ({exc})") from None
    if earlier.get("events"):
        raise _CannotReuse(f"{reuse.earlier} is an event log's")
    old_at = dict(zip(reuse.inputs.paths, reuse.positions))
    with staged_dir(root) as tmp:
        with _deleted_meanwhile(reuse.earlier):
            parts = link_parts(reuse.earlier / "data", tmp / "data", dict(enumerate(reuse.positions)), _link)
        if parts != earlier.get("output_files"):  # a part deleted since: its rows would be lost without a word
            raise _CannotReuse(f"{reuse.earlier} holds {parts} of the {earlier.get('output_files')} parts it wrote")
        fresh, new_at = None, {today.paths[i]: i for i in reuse.new}
        if reuse.new:
            fresh = ingest([today.paths[i] for i in reuse.new], tmp / "_new")
            parts += link_parts(tmp / "_new" / "data", tmp / "data", dict(enumerate(reuse.new)), os.replace)
            parts -= merge_small_parts(tmp / "data", [d.name for d in (tmp / "_new" / "data").glob("day=*")])
        layout = next((d / LAYOUT_FILE for d in (tmp / "_new", reuse.earlier) if (d / LAYOUT_FILE).is_file()), None)
        if layout is not None:  # the new files' ingest wrote the spec's (the earlier one may be deleted meanwhile)
            shutil.copyfile(layout, tmp / LAYOUT_FILE)
        with _deleted_meanwhile(reuse.earlier):
            sources = [(reuse.earlier / QUARANTINE_FILE, old_at), (tmp / "_new" / QUARANTINE_FILE, new_at)]
            first = merge_quarantines(sources, today.paths, tmp / QUARANTINE_FILE)
        shutil.rmtree(tmp / "_new", ignore_errors=True)
        result = combined([(earlier, old_at), (asdict(fresh) if fresh else None, new_at)], today.paths, root, first)
        kept = pq.read_metadata(tmp / QUARANTINE_FILE).num_rows if (tmp / QUARANTINE_FILE).is_file() else 0
        if kept != result.quarantined_rows:  # the earlier quarantine deleted: its rows would be lost without a word
            raise _CannotReuse(f"{reuse.earlier} holds {kept - (fresh.quarantined_rows if fresh else 0)} of the "
                               f"{earlier['quarantined_rows']} quarantined rows it wrote")
        result.output_files, result.elapsed_s = parts, round(time.perf_counter() - start, 3)
        result.workers = fresh.workers if fresh else 1
        today.save(tmp)
        _write_json(tmp / RESULT_FILE, {k: v for k, v in asdict(result).items() if k != "workers"})
        _publish(tmp, root)
    return result


@contextmanager
def _deleted_meanwhile(entry: Path) -> Iterator[None]:
    """A file not found while reading ``entry`` (deleted meanwhile: ``rm -r`` of an old cache folder, or a run
    ingesting it again) as a :class:`_CannotReuse` saying so: a full ingest, not a crash nor rows left out."""
    try:
        yield
    except FileNotFoundError as exc:
        raise _CannotReuse(f"{entry} was deleted meanwhile ({exc})") from None


def _link(src: Path, dst: Path) -> None:
    """``dst`` a hard link to ``src``, else (another filesystem, no links) a copy."""
    try:
        os.link(src, dst)
    except FileNotFoundError:
        raise _CannotReuse(f"{src} was deleted meanwhile") from None
    except OSError:
        shutil.copyfile(src, dst)


def link_parts(src: Path, dst: Path, position: dict[int, int], place: Callable[[Path, Path], Any]) -> int:
    """Place (``place(part, target)``) each part of the day folders under ``src`` under ``dst``, renamed from its
    input file's position there to ``position[it]``; the parts placed."""
    placed = 0
    for day in sorted(src.iterdir()) if src.is_dir() else []:
        if not day.exists():
            raise FileNotFoundError(f"{day} is gone")
        if not (day.is_dir() and day.name.startswith("day=")):
            raise _CannotReuse(f"{day} is not a day folder of an ingest")
        (dst / day.name).mkdir(parents=True, exist_ok=True)
        for part in sorted(day.iterdir()):
            match = PART.fullmatch(part.name)
            if part.name.startswith("."):
                continue
            if match is None or int(match[1]) not in position:
                raise _CannotReuse(f"{part} is not a part of an input file of its ingest")
            place(part, dst / day.name / f"part-{position[int(match[1])]:05d}-{match[2]}.parquet")
            placed += 1
    return placed


def merge_small_parts(data: Path, days: list[str]) -> int:
    """Merge the runs of small parts of the ``days`` (the new files wrote into) under ``data``, earlier parts and new
    (:func:`.compact.compact_day`: each merged file written anew and renamed in, so a linked part's earlier entry
    keeps its own); the parts fewer. Without it, each day's parts grew by a file per run adding files to it."""
    return sum(len(parquet_files(data / d)) - compact_day(data / d) for d in days)


def _segments(path: Path, position: dict[str, int], paths: tuple[str, ...]) -> Iterator[tuple[int, pa.Table]]:
    """The quarantined rows in ``path`` (if any) in runs of one input file: (its position today, its rows naming
    it by today's path)."""
    if not path.is_file():
        return
    for batch in pq.ParquetFile(path).iter_batches():
        rows = pa.Table.from_batches([batch])
        try:
            at = [position[f] for f in rows.column("file").to_pylist()]
        except KeyError as exc:
            raise _CannotReuse(f"{path} names {exc.args[0]}, not an input of its ingest") from None
        cuts = [0, *(i for i in range(1, len(at)) if at[i] != at[i - 1]), len(at)]
        for a, b in zip(cuts, cuts[1:]):
            yield at[a], rows.slice(a, b - a).set_column(0, "file", pa.array([paths[at[a]]] * (b - a), pa.string()))


def merge_quarantines(sources: list[tuple[Path, dict[str, int]]], paths: tuple[str, ...], out: Path) -> str | None:
    """Write the quarantined rows of ``sources`` (a quarantine file, the position today of each file it names) to
    ``out``, in input order (each file's rows as they are), when there are any; the first in short
    (:meth:`.Quarantine.first_text`)."""
    writer, first = None, None
    try:
        for _, rows in heapq.merge(*(_segments(p, at, paths) for p, at in sources), key=lambda s: s[0]):
            if writer is None:
                writer = pq.ParquetWriter(out, SCHEMA)
                row = rows.slice(0, 1).to_pylist()[0]
                first = (row["file"], row["line"], row["column"], row["reason"], row["detail"])
            writer.write_table(rows)
    finally:
        if writer is not None:
            writer.close()
    shown = Quarantine()
    shown.first = first
    return shown.first_text()


def combined(summaries: list[tuple[dict | None, dict[str, int]]], paths: tuple[str, ...], root: Path,
             first: str | None) -> IngestResult:
    """The summary of ingesting ``paths`` into ``root``, from the summaries of ingests of some of them (each with the
    position today of its files)."""
    held = [(s, at) for s, at in summaries if s is not None]
    total = {k: sum(s[k] for s, _ in held) for k in ("input_rows", "ingested_rows", "quarantined_rows", "output_rows")}
    counts: dict[str, int] = {}
    days: dict[str, int] = {}
    for s, _ in held:
        for reason, n in s["quarantine_counts"].items():
            counts[reason] = counts.get(reason, 0) + n
        for day, n in s["rows_per_day"].items():
            days[day] = days.get(day, 0) + n

    def listed(key: str) -> list[str]:
        try:
            return [paths[i] for i in sorted(at[p] for s, at in held for p in s.get(key) or [])]
        except KeyError as exc:
            raise _CannotReuse(f"its {key} names {exc.args[0]}, not an input of its ingest") from None

    quarantine = str(root / QUARANTINE_FILE) if total["quarantined_rows"] else None
    return IngestResult(total["input_rows"], total["ingested_rows"], total["quarantined_rows"], len(paths),
                        dict(sorted(counts.items())), str(root), 0.0, listed("empty_files"), listed("test_files"),
                        dict(sorted(days.items())), 0, total["output_rows"], quarantine, first)


__all__ = ["Inputs", "Reuse", "build_entry", "combined", "earlier_entries", "incremental", "link_parts",
           "merge_quarantines", "merge_small_parts", "plan"]
