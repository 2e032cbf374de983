"""Incremental ingest: a cache entry built from an earlier entry's parts plus an ingest of the new files alone.

Each input file's parts and quarantined rows are a function of that file alone (:mod:`.file_output`: its own writer
and quarantine; ids are hashed, not assigned; a table's default row ids name the file by its name while the names
are unique), so where an earlier complete entry of the same ingest rules and options (its ``family``) ingested some
of today's files (name and content digest), today's entry is that entry's parts, hard-linked (else copied) and
renamed to today's file positions, plus an ingest of the other files alone, the small parts of each day it wrote
into merged, earlier and new (:mod:`.compact`), the quarantine and the summary combined in input order. The same
rows per day, dtypes, counts and quarantine rows as a full ingest, in other files: a day's rows of a new file that
sorts between earlier ones come after a merged run of theirs.

Files of the earlier entry gone today (a rolling window: the oldest deleted as new ones arrive) are left out where
its ``parts.json`` (:mod:`.part_sources`) says which rows of which parts are theirs: a part holding only their rows
is not linked, a part holding a kept file's rows too (a day's late events merged with the next file's) is written
anew without their row ranges (:func:`.compact.slice_part`, in the staged folder: the earlier entry's file is read,
never written), their quarantined rows are dropped and the counts are summed from today's files' own.

Each entry lists its inputs in ``inputs.json`` (:class:`Inputs`); an entry without it (written before) is not
built on. A full ingest as before, the reason in the data line, where an earlier entry of the family exists but:
the source is an event log (labels look at later events, in other files), two inputs share a name, a file of it
changed, a file of it is gone whose rows share a part with a kept file's and its ``parts.json`` records no row
ranges (written before them; or it has no ``parts.json``, or a damaged one), its files
are in another order now, or its output is not what its ingest wrote (a part or quarantined rows deleted since or
during the build, a file not an ingest's, a part to be rewritten unreadable).
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
from .compact import compact_day, slice_part
from .part_sources import PARTS_FILE, FileCounts, PartSources, after_merge, kept_ranges, listing, merged_ranges
from .quarantine import SCHEMA, Quarantine
from .reader_marks import reading
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
    """An earlier entry to build on: today's position of each of its files (in its order; None: removed since), those
    of the new files, and the input files of each of its parts (None: it records none, and no file was removed)."""

    earlier: Path
    inputs: Inputs
    positions: tuple[int | None, ...]
    new: tuple[int, ...]
    sources: PartSources | None = None

    @property
    def kept(self) -> int:
        return sum(p is not None for p in self.positions)


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
            removed = len(reuse.positions) - reuse.kept
            done = f"{len(reuse.new)} new file(s) ingested, {reuse.kept} reused" + (f", {removed} removed" if removed else "")
            return asdict(result) | {"incremental": f"{done} from {reuse.earlier}"}
        except _CannotReuse as exc:
            why = str(exc)
    result = ingest(list(today.paths), root)
    today.save(root)
    return asdict(result) | ({"incremental": f"full ingest: {why}"} if why else {})


def earlier_entries(root: Path, family: str) -> list[tuple[Path, Inputs]]:
    """The complete entries beside ``root`` of its kind and ``family``, with their inputs, the newest first
    (:func:`recency`)."""
    kind = root.name.rsplit("-", 1)[0] + "-"
    found = []
    for entry in root.parent.glob(f"{kind}*"):
        if entry != root and (entry / RESULT_FILE).is_file() and (held := Inputs.load(entry)) is not None and held.family == family:
            found.append((entry, held))
    return sorted(found, key=lambda f: recency(f[0]))


def recency(entry: Path) -> tuple[float, str]:
    """The key ordering ingest entries the newest first: their ``RESULT_FILE``'s modification time (one deleted
    meanwhile, by another run's pruning: the oldest), then their name."""
    try:
        written = (entry / RESULT_FILE).stat().st_mtime
    except OSError:
        written = 0.0
    return -written, entry.name


def plan(root: Path, today: Inputs, unsound: str | None = None) -> tuple[Reuse | None, str]:
    """(the earlier entry of the most of today's files, whose other files are gone from today's and had parts of their
    own (:func:`_sources`), or None; why none, "" where there is no earlier entry of the family at all)."""
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
        kept = [a for a in at if a is not None]
        if not kept:  # none of today's files: nothing to link, only its files to leave out
            why = why or f"no file of {entry} is one of today's"
            continue
        try:
            if changed := next((n for (n, _), a in zip(held.keys(), at) if a is None and n in names), None):
                raise _CannotReuse(f"{changed} changed since {entry}")
            if any(a >= b for a, b in zip(kept, kept[1:])):  # another order, or two of its files one of today's
                raise _CannotReuse(f"the files of {entry} sort in another order now")
            sources = _sources(entry, held, at)
        except _CannotReuse as exc:
            why = why or str(exc)
            continue
        if best is None or len(kept) > best.kept:
            best = Reuse(entry, held, tuple(at), tuple(sorted(set(range(len(names))) - set(kept))), sources)
    return (best, "") if best else (None, why)


def _sources(entry: Path, held: Inputs, at: list[int | None]) -> PartSources | None:
    """The input files of ``entry``'s parts (None where it records none and no file of it is gone): where files of
    it are gone (``at``: None), each part holding rows of one of them and of a kept file must have its row ranges
    recorded (it is rewritten without them: :func:`_rewrite_mixed`); else a :class:`_CannotReuse` saying which part
    mixes them."""
    try:
        sources = PartSources.load(entry)
    except (DamagedFile, OSError) as exc:  # hand-edited, cut short: its parts and counts are not to be trusted
        raise _CannotReuse(str(exc)) from None
    if sources is not None and len(sources.files) != len(at):
        raise _CannotReuse(f"{entry / PARTS_FILE} counts {len(sources.files)} input files, not its {len(at)}")
    gone = [n for (n, _), a in zip(held.keys(), at) if a is None]
    if not gone:
        return sources
    if sources is None:
        raise _CannotReuse(f"{gone[0]} of {entry} is gone (its {PARTS_FILE} does not say which parts hold its rows)")
    for part, files in sorted(sources.parts.items()) if sources.ranges is None else []:
        if any(at[f] is None for f in files) and (keep := next((f for f in files if at[f] is not None), None)) is not None:
            lost = next(Path(held.paths[f]).name for f in files if at[f] is None)
            raise _CannotReuse(f"{lost} of {entry} is gone and its part {part} holds rows of "
                               f"{Path(held.paths[keep]).name} too (its {PARTS_FILE} records no row ranges: written before them)")
    return sources


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
    with staged_dir(root) as tmp, reading(reuse.earlier, keep=False):  # data.keep_ingests deletes it not meanwhile
        mixed = _mixed(reuse)
        with _deleted_meanwhile(reuse.earlier):
            linked = link_parts(reuse.earlier / "data", tmp / "data", dict(enumerate(reuse.positions)), _link, mixed)
            linked |= _rewrite_mixed(reuse, mixed, tmp / "data")
        if len(linked) != earlier.get("output_files"):  # a part deleted since: its rows would be lost without a word
            raise _CannotReuse(f"{reuse.earlier} holds {len(linked)} of the {earlier.get('output_files')} parts it wrote")
        sources = _linked_sources(reuse, linked)
        fresh, new_at = None, {today.paths[i]: i for i in reuse.new}
        changed = {old.split("/", 1)[0] for old, new in linked.items() if new is None or old in mixed}  # rows left out
        if reuse.new:
            fresh = ingest([today.paths[i] for i in reuse.new], tmp / "_new")
            new_parts = link_parts(tmp / "_new" / "data", tmp / "data", dict(enumerate(reuse.new)), os.replace)
            sources = _new_sources(sources, PartSources.load(tmp / "_new"), reuse.new, new_parts)
            changed |= {d.name for d in (tmp / "_new" / "data").glob("day=*")}
        merge_small_parts(tmp / "data", sorted(d for d in changed if (tmp / "data" / d).is_dir()))
        parts = len(listing(tmp / "data"))
        layout = next((d / LAYOUT_FILE for d in (tmp / "_new", reuse.earlier) if (d / LAYOUT_FILE).is_file()), None)
        if layout is not None:  # the new files' ingest wrote the spec's (the earlier one may be deleted meanwhile)
            shutil.copyfile(layout, tmp / LAYOUT_FILE)
        with _deleted_meanwhile(reuse.earlier):
            quarantines = [(reuse.earlier / QUARANTINE_FILE, old_at), (tmp / "_new" / QUARANTINE_FILE, new_at)]
            first = merge_quarantines(quarantines, today.paths, tmp / QUARANTINE_FILE)
        shutil.rmtree(tmp / "_new", ignore_errors=True)
        if sources is None and reuse.kept < len(reuse.positions):  # the removed files' counts could not be left out
            raise _CannotReuse(f"the new files' ingest recorded no {PARTS_FILE}")
        if sources is not None:  # each file's counts: the removed files' left out
            after = listing(tmp / "data")
            ranges = merged_ranges(sources.ranges, after) if sources.ranges is not None else None
            sources = PartSources(after_merge(sources.parts, after), sources.files, ranges)
            result = combined([(summary_of(sources.files, today.paths), {p: i for i, p in enumerate(today.paths)})],
                              today.paths, root, first)
            sources.save(tmp)
        else:
            result = combined([(earlier, old_at), (asdict(fresh) if fresh else None, new_at)], today.paths, root, first)
        kept = pq.read_metadata(tmp / QUARANTINE_FILE).num_rows if (tmp / QUARANTINE_FILE).is_file() else 0
        if kept != result.quarantined_rows:  # the earlier quarantine deleted: its rows would be lost without a word
            new = fresh.quarantined_rows if fresh else 0
            raise _CannotReuse(f"{reuse.earlier} holds {kept - new} of the {result.quarantined_rows - new} quarantined "
                               "rows it wrote" + (" of the files kept" if reuse.kept < len(reuse.positions) else ""))
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


def link_parts(src: Path, dst: Path, position: dict[int, int | None], place: Callable[[Path, Path], Any],
               skip: frozenset[str] = frozenset()) -> dict[str, str | None]:
    """Place (``place(part, target)``) each part of the day folders under ``src`` under ``dst``, renamed from its
    input file's position there to ``position[it]`` (None: a file removed since, its part left out); each part
    found (``day=D/part-...``) with its name under ``dst`` (None: left out, as the parts ``skip``)."""
    placed: dict[str, str | None] = {}
    for day in sorted(src.iterdir()) if src.is_dir() else []:
        if not day.exists():
            raise FileNotFoundError(f"{day} is gone")
        if not (day.is_dir() and day.name.startswith("day=")):
            raise _CannotReuse(f"{day} is not a day folder of an ingest")
        for part in sorted(day.iterdir()):
            match = PART.fullmatch(part.name)
            if part.name.startswith("."):
                continue
            if match is None or int(match[1]) not in position:
                raise _CannotReuse(f"{part} is not a part of an input file of its ingest")
            if (at := position[int(match[1])]) is None or f"{day.name}/{part.name}" in skip:
                placed[f"{day.name}/{part.name}"] = None
                continue
            (dst / day.name).mkdir(parents=True, exist_ok=True)
            place(part, dst / day.name / f"part-{at:05d}-{match[2]}.parquet")
            placed[f"{day.name}/{part.name}"] = f"{day.name}/part-{at:05d}-{match[2]}.parquet"
    return placed


def _mixed(reuse: Reuse) -> frozenset[str]:
    """The earlier entry's parts holding rows of a file removed since and of a file kept."""
    parts = reuse.sources.parts if reuse.sources is not None else {}
    at = reuse.positions
    return frozenset(k for k, files in parts.items()
                     if any(at[f] is None for f in files) and any(at[f] is not None for f in files))


def _rewrite_mixed(reuse: Reuse, mixed: frozenset[str], data: Path) -> dict[str, str]:
    """Each of the ``mixed`` parts of the earlier entry written under ``data`` without its removed files' row ranges
    (:func:`.compact.slice_part`), named as the first kept range's part was (today's position): the part's name
    there. A part unreadable (cut short, not parquet) or whose rows are not those its ``parts.json`` counts: a
    :class:`_CannotReuse`; a part gone is left out (the caller counts the parts), or FileNotFoundError (gone while read)."""
    written = {}
    for old in sorted(mixed):
        ranges, src = reuse.sources.ranges[old], reuse.earlier / "data" / old
        if not src.is_file():  # deleted since, as a linked part can be: the parts counted after say so
            continue
        try:
            table = pq.ParquetFile(src).read()  # no hive day column
        except FileNotFoundError:
            raise
        except (OSError, pa.ArrowException) as exc:  # a linked part is not read; this one is, so it must be whole
            raise _CannotReuse(f"{src} is unreadable ({exc})") from None
        if table.num_rows != ranges[-1][3]:
            raise _CannotReuse(f"{src} holds {table.num_rows} rows, not the {ranges[-1][3]} its {PARTS_FILE} lists")
        f, k = next((reuse.positions[f], k) for f, k, _, _ in ranges if reuse.positions[f] is not None)
        new = f"{old.split('/', 1)[0]}/part-{f:05d}-{k:05d}.parquet"
        if (data / new).exists():
            raise _CannotReuse(f"{reuse.earlier}'s part {old} rewritten would replace {new}")
        (data / new).parent.mkdir(parents=True, exist_ok=True)
        slice_part(table, [(s, e) for f, _, s, e in ranges if reuse.positions[f] is not None], data / new)
        written[old] = new
    return written


def _linked_sources(reuse: Reuse, linked: dict[str, str | None]) -> PartSources | None:
    """The input files (today's positions) of the earlier parts linked, and the kept files' counts (today's order;
    the new files' come in :func:`_new_sources`); None where the earlier entry records none."""
    if reuse.sources is None:
        return None
    if set(linked) != set(reuse.sources.parts):  # a part not its ingest's, or listed but not there
        odd = sorted(set(linked) ^ set(reuse.sources.parts))[0]
        raise _CannotReuse(f"{reuse.earlier}'s part {odd} is not as its {PARTS_FILE} lists its parts")
    at = reuse.positions
    parts = {new: tuple(at[f] for f in reuse.sources.parts[old] if at[f] is not None)
             for old, new in linked.items() if new is not None}
    ranges = None if reuse.sources.ranges is None else {
        new: kept_ranges(reuse.sources.ranges[old], at) for old, new in linked.items() if new is not None}
    files = {at[i]: counts for i, counts in enumerate(reuse.sources.files) if at[i] is not None}
    return PartSources(parts, tuple(files[i] for i in sorted(files)), ranges)


def _new_sources(sources: PartSources | None, fresh: PartSources | None, new: tuple[int, ...],
                 placed: dict[str, str | None]) -> PartSources | None:
    """``sources`` with the new files' parts (``placed``: named by today's positions ``new``) and counts, in today's
    input order; None where either records none."""
    if sources is None or fresh is None or set(placed) != set(fresh.parts):
        return None
    kept = sorted(set(range(len(sources.files) + len(new))) - set(new))
    files = dict(zip(kept, sources.files)) | dict(zip(new, fresh.files))
    parts = sources.parts | {placed[old]: tuple(new[f] for f in fresh.parts[old]) for old in placed}
    ranges = None if sources.ranges is None or fresh.ranges is None else sources.ranges | {
        placed[old]: tuple((new[f], k, s, e) for f, k, s, e in fresh.ranges[old]) for old in placed}
    return PartSources(parts, tuple(files[i] for i in sorted(files)), ranges)


def summary_of(files: tuple[FileCounts, ...], paths: tuple[str, ...]) -> dict:
    """The counts of an ingest of ``paths`` from each file's (as :func:`combined` takes an ingest's summary)."""
    counts: dict[str, int] = {}
    days: dict[str, int] = {}
    for f in files:
        for reason, n in f.quarantined.items():
            counts[reason] = counts.get(reason, 0) + n
        for day, n in f.rows_per_day.items():
            days[day] = days.get(day, 0) + n
    return {"input_rows": sum(f.rows for f in files), "ingested_rows": sum(f.ingested for f in files),
            "quarantined_rows": sum(counts.values()), "output_rows": sum(days.values()), "quarantine_counts": counts,
            "rows_per_day": days, "empty_files": [p for p, f in zip(paths, files) if f.rows == 0],
            "test_files": [p for p, f in zip(paths, files) if f.test_file]}


def merge_small_parts(data: Path, days: list[str]) -> int:
    """Merge the runs of small parts of the ``days`` (the new files wrote into, or rows were left out of) under
    ``data``, earlier parts and new (:func:`.compact.compact_day`: each merged file written anew and renamed in, so a
    linked part's earlier entry keeps its own); the parts fewer. Without it, each day's parts grew by a file per run adding files to it."""
    return sum(len(parquet_files(data / d)) - compact_day(data / d) for d in days)


def _segments(path: Path, position: dict[str, int | None], paths: tuple[str, ...]) -> Iterator[tuple[int, pa.Table]]:
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
            if at[a] is None:  # a file removed since: its rows left out
                continue
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


__all__ = ["Inputs", "Reuse", "build_entry", "combined", "earlier_entries", "recency", "incremental", "link_parts",
           "merge_quarantines", "merge_small_parts", "plan", "summary_of"]
