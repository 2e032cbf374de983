"""What the table readers share: a :class:`Chunk` of source rows as text, its :class:`Bad` rows,
the :class:`Source` that says how to read a file, and the message for missing columns."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd


class Bad(NamedTuple):
    """One bad source row."""

    line: int
    column: str | None
    reason: str
    detail: str
    raw: bytes | str


def by_line(bad: Bad) -> int:
    """Sort key of bad rows: their line."""
    return bad.line


@dataclass
class Chunk:
    """Source rows as strings (declared columns only), with their lines and the bad rows read among them."""

    frame: pd.DataFrame
    line: np.ndarray
    raw: Callable[[np.ndarray], list[bytes | str]]
    bad: list[Bad] = field(default_factory=list)
    missing: tuple[str, ...] = ()  # declared columns the file lacks
    bytes_done: int = 0
    names: tuple[str, ...] = ()  # the file's columns (header, keys seen, schema), for messages

    @property
    def rows(self) -> int:
        return len(self.line)

    def slices(self, limit: int, weights: np.ndarray | None = None) -> Iterator[Chunk]:
        """Consecutive parts of at most ``limit`` rows (or total ``weights``); bad rows go with their lines."""
        w = np.ones(self.rows, np.int64) if weights is None else np.maximum(weights, 1)
        group = (np.cumsum(w) - 1) // max(limit, 1)
        cuts = [0, *(np.flatnonzero(np.diff(group)) + 1).tolist(), self.rows]
        if len(cuts) <= 2:
            yield self
            return
        bad = sorted(self.bad, key=by_line)
        at = np.searchsorted([b.line for b in bad], self.line[cuts[1:-1]], side="left").tolist()
        for i, (a, b) in enumerate(zip(cuts[:-1], cuts[1:])):
            lo, hi = ([0] + at)[i], (at + [len(bad)])[i]
            yield Chunk(self.frame.iloc[a:b].reset_index(drop=True), self.line[a:b],
                        lambda rows, a=a: self.raw(np.asarray(rows) + a), bad[lo:hi], self.missing, self.bytes_done,
                        self.names)


def drop_rows(chunk: Chunk, column: np.ndarray, reason: np.ndarray, detail: np.ndarray) -> Chunk:
    """``chunk`` without the rows that name a ``column``, which become bad rows (``reason``, ``detail``)."""
    rows = column != None  # noqa: E711 - elementwise
    at, keep = np.flatnonzero(rows), np.flatnonzero(~rows)
    bad = [Bad(int(chunk.line[i]), column[i], reason[i], detail[i], r) for i, r in zip(at, chunk.raw(at))]
    return Chunk(chunk.frame.iloc[keep].reset_index(drop=True), chunk.line[keep],
                 lambda r: chunk.raw(keep[np.asarray(r, np.int64)]), chunk.bad + bad, chunk.missing, chunk.bytes_done,
                 chunk.names)


def missing_message(path: Path, fmt: str, chunk: Chunk) -> str:
    """What a file without the columns ``chunk.missing`` lacks, with the closest names it has."""
    has = {"jsonl": "the records have", "parquet": "the schema has"}.get(fmt, "the header has")
    parts = []
    for col in chunk.missing:
        near = close_names(col, chunk.names)
        parts.append(f"{col!r}" + (f" ({has} {', '.join(map(repr, near))})" if near else ""))
    msg = f"{path}: no column{'s' if len(parts) > 1 else ''} {', '.join(parts)}"
    if not any(close_names(c, chunk.names) for c in chunk.missing):
        msg += f"; {has} " + ", ".join(map(repr, chunk.names[:20])) + (", ..." if len(chunk.names) > 20 else "")
    return msg + delimiter_hint(fmt, chunk.names, chunk.missing)


#: Delimiters a header may be split by: (name, what to set).
_DELIMITERS = {",": ("comma", "format: csv?"), "\t": ("tab", "format: tsv?"),
               ";": ("semicolon", "only comma (csv) and tab (tsv) separated files are read"),
               "|": ("pipe", "only comma (csv) and tab (tsv) separated files are read")}


def delimiter_hint(fmt: str, names: tuple[str, ...], missing: tuple[str, ...]) -> str:
    """``"; the header looks comma-separated: format: csv?"`` when a CSV / TSV header split by another
    delimiter holds most of the ``missing`` columns, else ``""``."""
    if fmt not in ("csv", "tsv") or not missing:
        return ""
    own = "," if fmt == "csv" else "\t"
    for sep, (name, fix) in _DELIMITERS.items():
        if sep == own:
            continue
        pieces = {p.strip().strip('"').strip() for n in names for p in n.split(sep)} if any(sep in n for n in names) else set()
        if 2 * sum(c in pieces for c in missing) >= len(missing) and pieces & set(missing):
            return f"; the header looks {name}-separated: {fix}"
    return ""


def twice_message(path: Path, fmt: str, names: list[str] | tuple[str, ...], needed: tuple[str, ...]) -> str | None:
    """The error for a header (schema) naming a declared column more than once, whose copy to read is
    unknown; None when the ``needed`` columns are named once at most (undeclared ones may repeat)."""
    twice = next((c for c in needed if list(names).count(c) > 1), None)
    if twice is None:
        return None
    has = {"parquet": "the schema has"}.get(fmt, "the header has")
    at = [str(i + 1) for i, n in enumerate(names) if n == twice]
    return (f"{path}: {has} {len(at)} columns named {twice!r} (at positions {', '.join(at)}); "
            "rename all but the one to read")


def close_names(name: str, names: tuple[str, ...]) -> list[str]:
    """Up to 3 of ``names`` like ``name``: equal but for case and surrounding blanks first, then similar ones."""
    same = [n for n in names if n.strip().casefold() == name.strip().casefold()]
    return list(dict.fromkeys(same + difflib.get_close_matches(name, names, n=3, cutoff=0.75)))[:3]


@dataclass(frozen=True)
class Source:
    """How to read one kind of file."""

    fmt: str
    header: bool
    columns: tuple[str, ...]
    needed: tuple[str, ...]
    list_seps: dict[str, str]
    time: str | None = None
    time_format: str = "unix"
    scalars: dict[str, str] = field(default_factory=dict)  # column -> reason of a JSON list / object in it
    required: tuple[str, ...] = ()  # JSONL: keys one of the first block's records at least must have (or a key named like them)
