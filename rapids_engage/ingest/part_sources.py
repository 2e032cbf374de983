"""Which input files each output part's rows come from, and each input file's counts: ``parts.json`` in an ingest's
output, written into its staged folder (published whole with it), so that an incremental ingest (:mod:`.incremental`)
can leave out the parts of input files removed since and count the summary without them.

A part is first written by one input file (``day=D/part-FFFFF-KKKKK.parquet``: ``F`` its position); merging a day's
small parts (:mod:`.compact`) rewrites a run of consecutive parts as one, named as the run's first, so a part left
holds the rows of the parts from its name up to the next part left in its day (:func:`after_merge`). Sources are
positions in the ingest's input order (its ``inputs.json``).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from ..atomic import DamagedFile, check_fields, read_json, write_text

PARTS_FILE = "parts.json"
PART = re.compile(r"part-(\d+)-(\d+)\.parquet")


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
    """Each part (``day=D/part-....parquet``, relative to ``data``) with the input positions of its rows, and each
    input file's :class:`FileCounts` (in input order)."""

    parts: dict[str, tuple[int, ...]]
    files: tuple[FileCounts, ...]

    def save(self, entry: Path) -> None:
        held = {"parts": {k: list(v) for k, v in sorted(self.parts.items())}, "files": [asdict(f) for f in self.files]}
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
        return cls(parts, files)


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


def after_merge(before: dict[str, tuple[int, ...]], after: list[str]) -> dict[str, tuple[int, ...]]:
    """The sources of the parts ``after`` a merge of runs of ``before``'s (sorted names in each day): each part left
    holds its own rows and those of the parts before it merged into it (up to the next part left in its day)."""
    left, out = set(after), {}
    current = None
    for name in sorted(before):
        if name in left:
            current = name
            out[name] = set(before[name])
        elif current is None or current.split("/", 1)[0] != name.split("/", 1)[0]:
            raise ValueError(f"{name} was merged into no part before it in its day")
        else:
            out[current] |= set(before[name])
    return {k: tuple(sorted(v)) for k, v in out.items()}


__all__ = ["PARTS_FILE", "FileCounts", "PartSources", "after_merge", "listing", "own_sources"]
