"""Side tables left-joined to a table's rows before typing (``data.table.join``).

:func:`read_side` reads one whole: a :class:`SideTable` joins the first row of each key; with a
``time``, an :class:`AsOfSide` joins, per key, the latest side row strictly earlier than each row's
own time (point-in-time: a value recorded at the row's instant or later is never joined), from a
wide table (a column per kept value) or a long one (key, time, property, value: each kept property
looked up over its own rows).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..config import SideTableSpec
from .quarantine import StrictModeError
from .reader import IngestError
from .recsys import input_paths
from . import table_read
from .table_read import Bad, Chunk, Source, by_line, missing_message, read
from .table_types import Errors, blank, parse_time

#: Kept rows of a point-in-time side table checked (key, time) at once: not one check per read block.
CHECK_ROWS = 1 << 20
#: Bytes per CSV / JSONL read block of a side table: pyarrow's CSV reader reads up to 32 blocks ahead of the
#: parsing, which with the ingest's 16 MiB blocks held ~1.5 GiB while a 20M-row long side table was read.
SIDE_BLOCK_BYTES = 2 << 20


@dataclass(frozen=True)
class SideTable:
    """A side table's kept columns indexed by its key (the first row of each key)."""

    on: str
    keep: tuple[str, ...]
    table: pd.DataFrame

    def join(self, frame: pd.DataFrame, ms: np.ndarray | None = None) -> pd.DataFrame:  # noqa: ARG002 - AsOfSide's
        """``frame`` with the kept columns of the rows matching its ``on`` values ("" where none does)."""
        found = self.table.reindex(frame[self.on].to_numpy(dtype=object))
        return frame.assign(**{c: found[c].fillna("").set_axis(frame.index) for c in self.keep})


@dataclass(frozen=True)
class AsOfColumn:
    """One kept column's side rows sorted by (key, time, file order): ``order`` is key code * (distinct times
    + 1) + time rank, ascending; ``codes`` their texts' positions in ``texts``, the column's distinct texts."""

    order: np.ndarray
    codes: np.ndarray
    texts: np.ndarray


@dataclass(frozen=True)
class AsOfSide:
    """A side table joined point-in-time: per key, the values of the latest side row strictly earlier than
    the row's time (of equal side times, the later row of the file); "" where none is."""

    on: str
    keys: pd.Index  # the side table's keys; a key's code is its position
    times: np.ndarray  # the side rows' distinct times (unix ms), ascending
    columns: dict[str, AsOfColumn]

    @property
    def keep(self) -> tuple[str, ...]:
        return tuple(self.columns)

    def join(self, frame: pd.DataFrame, ms: np.ndarray | None = None) -> pd.DataFrame:
        """``frame`` with the kept columns as of each row's time ``ms`` (unix milliseconds)."""
        if ms is None:
            raise ValueError("a point-in-time side table joins rows by their times")
        code = self.keys.get_indexer(frame[self.on].to_numpy(dtype=object)).astype(np.int64)
        span = len(self.times) + 1
        want = code * span + _search(self.times, ms)  # below: earlier times of the same key
        ahead = np.argsort(want, kind="stable")  # the needles searched in order (the cache), sorted once
        known = code >= 0
        out = {}
        for name, col in self.columns.items():
            at = _search(col.order, want, ahead) - 1
            hit = known & (at >= 0)
            hit[hit] = col.order[at[hit]] // span == code[hit]
            values = np.full(len(frame), "", dtype=object)
            values[hit] = col.texts[col.codes[at[hit]]]
            out[name] = pd.Series(values, index=frame.index, dtype="str").fillna("")
        return frame.assign(**out)


def _search(sorted_values: np.ndarray, needles: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """``np.searchsorted(sorted_values, needles, side="left")``, the needles searched in order (4x faster on 200k
    random needles in 400k values: the cache; ``order``: their argsort, if known)."""
    order = np.argsort(needles, kind="stable") if order is None else order
    found = np.empty(len(needles), np.int64)
    found[order] = np.searchsorted(sorted_values, needles[order], side="left")
    return found


def read_side(side: SideTableSpec, strict: bool, chunk_rows: int, time_format: str = "unix") -> SideTable | AsOfSide:
    """Read a whole side table (``time_format``: the table's, for a side ``time`` without its own); its malformed
    rows are skipped with a warning (strict: StrictModeError). Without ``time``, of rows repeating a key the first is
    kept, with a warning; with it, rows with a bad time or a blank key are skipped like malformed rows."""
    try:
        path = input_paths([side.path])[0]
    except IngestError as exc:
        raise IngestError(f"data.table.join: side table {exc}") from None
    if side.time:
        return _read_as_of(path, side, strict, chunk_rows, side.time_format or time_format)
    needed = (side.key, *side.keep)
    frames = [chunk.frame[list(needed)] for chunk in _chunks(path, side, needed, strict, chunk_rows)]
    table = pd.concat(frames, ignore_index=True) if frames else _empty_frame(needed)
    repeats = int(table[side.key].duplicated().sum())
    if repeats:
        warnings.warn(f"{path}: {repeats} side-table row(s) repeat the {side.key} of an earlier row; the first row of "
                      "each key is joined", stacklevel=3)
    table = table.drop_duplicates(subset=side.key, keep="first").set_index(side.key)
    return SideTable(side.key, tuple(side.keep), table)


def _chunks(path: Path, side: SideTableSpec, needed: tuple[str, ...], strict: bool, chunk_rows: int,
            time_format: str = "unix") -> Iterator[Chunk]:
    """The side table's chunks (a parquet timestamp ``side.time`` column as text in ``time_format``); its malformed
    rows skipped with a warning (strict: StrictModeError)."""
    src = Source(side.format, side.header, tuple(side.columns), needed, {}, side.time or None, time_format)
    skipped = 0
    for chunk in read(path, src, chunk_rows, min(SIDE_BLOCK_BYTES, table_read.BLOCK_BYTES)):
        if chunk.missing:
            raise IngestError(f"side table {missing_message(path, side.format, chunk)}")
        if chunk.bad:
            if strict:
                _stop(path, chunk.bad)
            skipped += len(chunk.bad)
        yield chunk
    if skipped:
        warnings.warn(f"{path}: skipped {skipped} malformed side-table rows", stacklevel=4)


def _stop(path: Path, bad: list[Bad]) -> None:
    b = min(bad, key=by_line)
    raise StrictModeError(str(path), b.line, b.column, b.reason, b.detail)


def _empty_frame(columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype="str") for c in columns})


def _read_as_of(path: Path, side: SideTableSpec, strict: bool, chunk_rows: int, fmt: str) -> AsOfSide:
    """The point-in-time side table of ``path`` (long: only the kept properties' rows are held, their keys and
    values as codes into their distinct texts)."""
    long = bool(side.property)
    needed = (side.key, side.time, side.property, side.value) if long else (side.key, side.time, *side.keep)
    fmt = _instants_format(path, side, fmt)
    held: list[tuple[pd.DataFrame, np.ndarray]] = []  # kept rows not checked yet, their lines
    reader_bad: list[Bad] = []  # strict: the reader's bad rows not checked yet
    good: list[tuple[pd.DataFrame, np.ndarray]] = []  # checked rows, their times (unix ms)
    first_bad, skipped = None, 0
    for chunk in _chunks(path, side, needed, False, chunk_rows, fmt):  # strict: the first bad row of either kind, below
        frame, line = chunk.frame, chunk.line
        if long:
            kept = frame[side.property].isin(side.keep).to_numpy(bool)
            frame, line = frame[kept], line[kept]
        if len(frame):
            held.append((frame, line))
        reader_bad += chunk.bad if strict else []
        if sum(len(f) for f, _ in held) >= CHECK_ROWS or reader_bad:
            first_bad, skipped = _check(path, side, fmt, strict, held, reader_bad, good, first_bad, skipped)
            held, reader_bad = [], []
    first_bad, skipped = _check(path, side, fmt, strict, held, reader_bad, good, first_bad, skipped)
    if skipped:
        line, column, detail = first_bad
        warnings.warn(f"{path}: skipped {skipped} side-table row(s) with a bad time or key (the first: line {line}, "
                      f"column {column!r}: {detail})", stacklevel=3)
    frame = pd.concat([f for f, _ in good], ignore_index=True) if good else _empty_frame(needed)
    ms = np.concatenate([t for _, t in good]) if good else np.zeros(0, np.int64)
    del good
    codes, keys = pd.factorize(frame[side.key])
    index = pd.Index(np.asarray(keys, dtype=object), dtype=object)
    distinct = np.unique(ms)
    order = codes.astype(np.int64) * (len(distinct) + 1) + np.searchsorted(distinct, ms, side="left")
    if long:
        value = _encoded(frame[side.value])
        columns = {p: _sorted(order, value, (frame[side.property] == p).to_numpy(bool)) for p in side.keep}
        absent = [p for p in side.keep if not len(columns[p].order)]
        if absent:
            warnings.warn(f"{path}: no row of {side.property} {', '.join(map(repr, absent))} (data.table.join keep): "
                          "null in every row", stacklevel=3)
    else:
        columns = {c: _sorted(order, _encoded(frame[c]), np.ones(len(frame), bool)) for c in side.keep}
    return AsOfSide(side.key, index, distinct, columns)


def _check(path: Path, side: SideTableSpec, fmt: str, strict: bool, held: list[tuple[pd.DataFrame, np.ndarray]],
           reader_bad: list[Bad], good: list[tuple[pd.DataFrame, np.ndarray]], first_bad: tuple | None,
           skipped: int) -> tuple[tuple | None, int]:
    """Append to ``good`` the ``held`` rows (frames and their lines, in file order) with a key and a good time, with
    their times; the first bad row so far (line, column, detail) and how many were skipped. Strict: StrictModeError
    naming the first of these bad rows and ``reader_bad`` (the reader's, of the same lines)."""
    if not held and not reader_bad:
        return first_bad, skipped
    frame = pd.concat([f for f, _ in held], ignore_index=True) if held else _empty_frame((side.key, side.time))
    line = np.concatenate([n for _, n in held]) if held else np.zeros(0, np.int64)
    err = Errors(len(frame))
    err.add(blank(frame[side.key]), "missing_key", side.key, None, "missing side-table key")
    _, ms = parse_time(frame[side.time], fmt, side.time, err)
    bad = np.flatnonzero(err.bad)
    if strict and (len(bad) or reader_bad):
        _stop(path, reader_bad + [Bad(int(line[i]), err.column[i], err.reason[i], err.detail[i], "") for i in bad[:1]])
    if len(bad):
        first_bad = first_bad or (int(line[bad[0]]), err.column[bad[0]], err.detail[bad[0]])
        keep = ~err.bad
        frame, ms = frame[keep], ms[keep]
    good.append((frame.drop(columns=[side.time]), ms))  # the times are in ms
    return first_bad, skipped + len(bad)


def _instants_format(path: Path, side: SideTableSpec, fmt: str) -> str:
    """``fmt``, but unix_ms for a parquet side table's timestamp / date time column: its instants to the millisecond
    (written in unix or iso a timestamp drops its fraction of a second: a value of later in that second joined)."""
    if side.format != "parquet":
        return fmt
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException):
        return fmt  # the reader names what is wrong with the file
    at = schema.get_field_index(side.time)  # -1: missing or twice, which the reader names
    kind = schema.field(at).type if at >= 0 else pa.string()
    return "unix_ms" if pa.types.is_timestamp(kind) or pa.types.is_date(kind) else fmt


def _encoded(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(each value's code, the distinct texts) of a column (arrow's dictionary encoding for arrow-backed text)."""
    codes, texts = pd.factorize(values)
    return codes.astype(np.int32 if len(texts) < 2**31 else np.int64), np.asarray(texts, dtype=object)


def _sorted(order: np.ndarray, values: tuple[np.ndarray, np.ndarray], rows: np.ndarray) -> AsOfColumn:
    """The ``rows`` of one column (codes, distinct texts) sorted by ``order``, the file's order kept among equal
    ones."""
    order = order[rows]
    perm = np.argsort(order, kind="stable")
    return AsOfColumn(order[perm], values[0][rows][perm], values[1])


__all__ = ["AsOfSide", "SideTable", "read_side"]
