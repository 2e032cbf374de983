"""Which input files each output part's rows come from, and each input file's counts: ``parts.json`` in an ingest's
output, written into its staged folder (published whole with it), so that an incremental ingest (:mod:`.incremental`)
can leave out the rows of input files removed since and count the summary without them.

A part is first written by one input file (``day=D/part-FFFFF-KKKKK.parquet``: ``F`` its position); merging a day's
small parts (:mod:`.compact`) rewrites a run of consecutive parts as one, named as the run's first, their rows
concatenated in name order, so a part left holds the rows of the parts from its name up to the next part left in its
day (:func:`after_merge`). Each part's ``ranges`` say which rows: ``[F, K, start, end]`` per part merged into it, in
row order (:func:`merged_ranges`), so a removed file's rows can be sliced out of a part it shares. Sources are
positions in the ingest's input order (its ``inputs.json``); an entry written before ranges were recorded has none.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow.parquet as pq

from ..atomic import DamagedFile, check_fields, read_json, write_text

PARTS_FILE = "parts.json"
PART = re.compile(r"part-(\d+)-(\d+)\.parquet")
#: Rows ``start`` to ``end`` (exclusive) of a part are the rows input file ``F`` wrote as its part ``K``: (F, K, start, end).
Range = tuple[int, int, int, int]


@dataclass(frozen=True)
class FileCounts:
    """What ingesting one input file gave: its input and ingested rows, rows per day, quarantined rows per reason."""

    rows: int
    ingested: int
    rows_per_day: dict[str, int]
    quarantined: dict[str, int]
    test_file: bool = False


@dataclass(frozen=True)
class PartSources:
    """Each part (``day=D/part-....parquet``, relative to ``data``) with the input positions of its rows, each input
    file's :class:`FileCounts` (in input order) and each part's row :data:`Range` s (None: not recorded)."""

    parts: dict[str, tuple[int, ...]]
    files: tuple[FileCounts, ...]
    ranges: dict[str, tuple[Range, ...]] | None = None

    def save(self, entry: Path) -> None:
        held = {"parts": {k: list(v) for k, v in sorted(self.parts.items())}, "files": [asdict(f) for f in self.files]}
        if self.ranges is not None:
            held["ranges"] = {k: [list(r) for r in v] for k, v in sorted(self.ranges.items())}
        write_text(entry / PARTS_FILE, json.dumps(held, separators=(",", ":")))

    @classmethod
    def load(cls, entry: Path) -> PartSources | None:
        """The sources ``entry`` records; None where it records none (written before this module); a
        :class:`.DamagedFile` naming the file and entry where it does not read back as written (cut short, edited)."""
        path = entry / PARTS_FILE
        try:
            held = read_json(path, {"parts": dict, "files": list})
        except FileNotFoundError:
            return None
        files = tuple(_file_counts(f, path, i) for i, f in enumerate(held["files"]))
        parts = {k: _positions(v, len(files), path, k) for k, v in held["parts"].items()}
        if "ranges" not in held:  # written before ranges were recorded
            return cls(parts, files)
        ranges = held["ranges"]
        if not isinstance(ranges, dict) or set(ranges) != set(parts):
            raise DamagedFile(path, "its ranges do not list its parts")
        return cls(parts, files, {k: _ranges(v, parts[k], path, k) for k, v in ranges.items()})


def _positions(value: object, files: int, path: Path, part: str) -> tuple[int, ...]:
    """A part's input positions as :meth:`PartSources.save` wrote them: increasing, each an input of the entry, its
    name's among them; else a :class:`.DamagedFile`."""
    name = PART.fullmatch(part.rsplit("/", 1)[-1]) if part.startswith("day=") else None
    ok = (name is not None and isinstance(value, list) and value
          and all(type(f) is int and 0 <= f < files for f in value) and value == sorted(set(value))
          and int(name[1]) in value)
    if not ok:
        raise DamagedFile(path, f"part {part!r}: {json.dumps(value)} is not the input positions of a part of its "
                                f"{files} input files")
    return tuple(value)


def _ranges(value: object, positions: tuple[int, ...], path: Path, part: str) -> tuple[Range, ...]:
    """A part's row ranges as :meth:`PartSources.save` wrote them: [F, K, start, end], each from the last's end, the
    first its name's (F, K), the files its ``positions``; else a :class:`.DamagedFile`."""
    name = PART.fullmatch(part.rsplit("/", 1)[-1])
    held = value if isinstance(value, list) else []
    ok = bool(held) and all(isinstance(r, list) and len(r) == 4 and all(type(n) is int and n >= 0 for n in r)
                            for r in held)
    ok = ok and held[0][:2] == [int(name[1]), int(name[2])] and held[0][2] == 0 and {r[0] for r in held} == set(positions)
    ok = ok and all(r[2] <= r[3] for r in held) and all(a[3] == b[2] for a, b in zip(held, held[1:]))
    if not ok:
        raise DamagedFile(path, f"ranges of part {part!r}: {json.dumps(value)[:200]} are not its rows' [file, part, "
                                "start, end] in order")
    return tuple(tuple(r) for r in held)


def _file_counts(value: object, path: Path, at: int) -> FileCounts:
    """Input file ``at``'s :class:`FileCounts` as :meth:`PartSources.save` wrote them; else a :class:`.DamagedFile`."""
    held = check_fields(value, {"rows": int, "ingested": int, "rows_per_day": dict, "quarantined": dict,
                                "test_file": (bool, type(None))}, path, where=f"files[{at}]")
    counts = [held["rows"], held["ingested"], *held["rows_per_day"].values(), *held["quarantined"].values()]
    if any(type(n) is not int or n < 0 for n in counts):
        raise DamagedFile(path, f"files[{at}] holds a count that is not a whole number of rows")
    return FileCounts(held["rows"], held["ingested"], dict(held["rows_per_day"]), dict(held["quarantined"]),
                      bool(held.get("test_file")))


def listing(data: Path) -> list[str]:
    """The parts under ``data`` (``day=D/part-....parquet``), sorted (in input order within each day)."""
    return sorted(f"{d.name}/{p.name}" for d in data.glob("day=*") if d.is_dir()
                  for p in d.iterdir() if PART.fullmatch(p.name))


def own_sources(parts: list[str]) -> dict[str, tuple[int, ...]]:
    """Each of ``parts`` as written by one input file: its own position, from its name."""
    return {p: (int(PART.fullmatch(p.rsplit("/", 1)[1])[1]),) for p in parts}


def own_ranges(data: Path, parts: list[str]) -> dict[str, tuple[Range, ...]]:
    """Each of ``parts`` (under ``data``) as written by one input file: all its rows (its footer's count) its own."""
    out = {}
    for p in parts:
        name = PART.fullmatch(p.rsplit("/", 1)[1])
        out[p] = ((int(name[1]), int(name[2]), 0, pq.read_metadata(data / p).num_rows),)
    return out


def _merged_into(before: list[str], after: list[str]) -> dict[str, list[str]]:
    """Each part ``after`` a merge of runs of ``before``'s (sorted names in each day): the parts merged into it, in
    order (itself first, up to the next part left in its day)."""
    left, out = set(after), {}
    current = None
    for name in sorted(before):
        if name in left:
            current = name
            out[name] = [name]
        elif current is None or current.split("/", 1)[0] != name.split("/", 1)[0]:
            raise ValueError(f"{name} was merged into no part before it in its day")
        else:
            out[current].append(name)
    return out


def after_merge(before: Mapping[str, tuple[int, ...]], after: list[str]) -> dict[str, tuple[int, ...]]:
    """The sources of the parts ``after`` a merge of runs of ``before``'s: each part left holds its own rows and
    those of the parts merged into it."""
    return {k: tuple(sorted({f for n in v for f in before[n]})) for k, v in _merged_into(list(before), after).items()}


def merged_ranges(before: Mapping[str, tuple[Range, ...]], after: list[str]) -> dict[str, tuple[Range, ...]]:
    """The row ranges of the parts ``after`` a merge of runs of ``before``'s: those of the parts merged into each,
    in order (as :func:`.compact.compact_day` concatenates them), each from the last's end."""
    out = {}
    for k, names in _merged_into(list(before), after).items():
        rows, at = [], 0
        for f, part, start, end in (r for n in names for r in before[n]):
            rows.append((f, part, at, at + end - start))
            at += end - start
        out[k] = tuple(rows)
    return out


def kept_ranges(ranges: tuple[Range, ...], at: tuple[int | None, ...]) -> tuple[Range, ...]:
    """``ranges`` without the rows of the files removed (``at[F]`` None; else F's position now), each from the
    last's end: the ranges of the part rewritten without those rows."""
    out, row = [], 0
    for f, k, start, end in ranges:
        if at[f] is not None:
            out.append((at[f], k, row, row + end - start))
            row += end - start
    return tuple(out)


__all__ = ["PARTS_FILE", "FileCounts", "PartSources", "Range", "after_merge", "kept_ranges", "listing",
           "merged_ranges", "own_ranges", "own_sources"]
