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

from ..atomic import DamagedFile, read_json, write_text

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
        """The sources ``entry`` records; None where it records none (written before this module) or a damaged list."""
        try:
            held = read_json(entry / PARTS_FILE, {"parts": dict, "files": list})
            return cls({k: tuple(int(i) for i in v) for k, v in held["parts"].items()},
                       tuple(FileCounts(**f) for f in held["files"]))
        except (DamagedFile, OSError, TypeError, ValueError):
            return None


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
