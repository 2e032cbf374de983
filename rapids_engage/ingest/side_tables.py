"""Side tables left-joined to a table's rows before typing (``data.table.join``): reading them.

:func:`read_side` reads one whole: a :class:`.side_join.SideTable` joins the first row of each key; with a
``time``, an :class:`.side_join.AsOfSide` joins, per key, the latest side row strictly earlier than each row's
own time (point-in-time: a value recorded at the row's instant or later is never joined), from a
wide table (a column per kept value) or a long one (key, time, property, value: each kept property
looked up over its own rows). Side rows without a key (blank, null, ``nan``) are never joined.
:func:`check_side_columns` refuses a side table that is not there or lacks a column, and :func:`check_kept_names` a
kept column the table's files have too (the join would replace it), from headers only: before any side table is read.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
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
from .side_join import AsOfSide, KeyIndex, SideTable, no_key
from .table_types import Errors, parse_time

#: Kept rows of a point-in-time side table checked (key, time) at once: not one check per read block.
CHECK_ROWS = 1 << 20
#: Bytes per CSV / JSONL read block of a side table: pyarrow's CSV reader reads up to 32 blocks ahead of the
#: parsing, which with the ingest's 16 MiB blocks held ~1.5 GiB while a 20M-row long side table was read.
SIDE_BLOCK_BYTES = 2 << 20


def read_side(side: SideTableSpec, strict: bool, chunk_rows: int, time_format: str = "unix") -> SideTable | AsOfSide:
    """Read a whole side table (``time_format``: the table's, for a side ``time`` without its own); its malformed
    rows are skipped with a warning (strict: StrictModeError). Without ``time``, of rows repeating a key the first is
    kept, rows without a key (:func:`.side_join.no_key`) are dropped, each with a warning; with it, rows with a bad time
    or no key are skipped like malformed rows."""
    path = _path(side)
    if side.time:
        return _read_as_of(path, side, strict, chunk_rows, side.time_format or time_format)
    needed = _needed(side)
    frames = [chunk.frame[list(needed)] for chunk in _chunks(path, side, needed, strict, chunk_rows)]
    table = pd.concat(frames, ignore_index=True) if frames else _empty_frame(needed)
    keyless = no_key(table[side.key])
    if keyless.any():
        warnings.warn(f"{path}: {int(keyless.sum())} side-table row(s) have no {side.key} (blank, null or nan) and are "
                      "never joined", stacklevel=3)
        table = table[~keyless]
    repeats = int(table[side.key].duplicated().sum())
    if repeats:
        warnings.warn(f"{path}: {repeats} side-table row(s) repeat the {side.key} of an earlier row; the first row of "
                      "each key is joined", stacklevel=3)
    table = table.drop_duplicates(subset=side.key, keep="first")
    keys = KeyIndex.of(table[side.key].to_numpy(dtype=object))
    values = table[list(side.keep)]
    arrays = [pa.array(values[c].to_numpy(dtype=object), pa.large_string()) for c in side.keep]
    return SideTable(side.key, keys, pa.Table.from_arrays(arrays, names=[f"c{i}" for i in range(len(arrays))]),
                     kept_names(side))


def _path(side: SideTableSpec) -> Path:
    try:
        return input_paths([side.path])[0]
    except IngestError as exc:
        raise IngestError(f"data.table.join: side table {exc}") from None


def check_side_columns(side: SideTableSpec, chunk_rows: int) -> None:
    """The IngestError :func:`read_side` would give first when the side table is not there or lacks a column it
    needs, from its first read block only (CSV / TSV: the header line, gzip too; JSONL: the first records; parquet:
    the schema and first batch), so that it comes before any side table is read whole."""
    path = _path(side)
    reader = read(path, _source(side, _needed(side), "unix"), chunk_rows, _block_bytes())  # the format: text only
    try:
        first = next(iter(reader), None)
    finally:
        reader.close()
    if first is not None and first.missing:
        raise IngestError(f"side table {missing_message(path, side.format, first)}")


def kept_names(side: SideTableSpec) -> tuple[str, ...]:
    """The names a side table's kept columns (properties) have in the joined rows: ``prefix`` + each."""
    return tuple(side.prefix + c for c in side.keep)


def check_kept_names(paths: list[Path], src: Source, joins: list[SideTableSpec], chunk_rows: int) -> None:
    """An IngestError when an input file (of ``paths``, read as ``src``) has a column named like a side table's kept
    column (``prefix`` + column): the join would replace the file's column. Each file's header (JSONL: the keys of
    its first block's records; parquet: its schema) is read."""
    kept = {name: j for j in joins for name in kept_names(j)}
    if not kept:
        return
    for path in paths:
        reader = read(path, src, chunk_rows)
        try:
            names = next(iter(reader), None)
        finally:
            reader.close()
        clash = next((c for c in (names.names if names else ()) if c in kept), None)
        if clash is not None:
            j = kept[clash]
            raise IngestError(f"data.table.join {j.path}: kept column {clash!r} is also a column of {path}, which the "
                              f"join would replace; set prefix on this join (its kept columns are then named prefix + "
                              f"column, e.g. prefix: side_ gives 'side_{clash[len(j.prefix):]}') or keep another column")


def _needed(side: SideTableSpec) -> tuple[str, ...]:
    """The columns read of a side table: its key, time (point in time) and kept columns (long: property and value)."""
    if side.property:
        return side.key, side.time, side.property, side.value
    return (side.key, side.time, *side.keep) if side.time else (side.key, *side.keep)


def _source(side: SideTableSpec, needed: tuple[str, ...], time_format: str) -> Source:
    return Source(side.format, side.header, tuple(side.columns), needed, {}, side.time or None, time_format)


def _block_bytes() -> int:
    return min(SIDE_BLOCK_BYTES, table_read.BLOCK_BYTES)


def _chunks(path: Path, side: SideTableSpec, needed: tuple[str, ...], strict: bool, chunk_rows: int,
            time_format: str = "unix") -> Iterator[Chunk]:
    """The side table's chunks (a parquet timestamp ``side.time`` column as text in ``time_format``); its malformed
    rows skipped with a warning (strict: StrictModeError)."""
    skipped = 0
    for chunk in read(path, _source(side, needed, time_format), chunk_rows, _block_bytes()):
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
    needed = _needed(side)
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
    codes, distinct_keys = pd.factorize(frame[side.key])
    keys = KeyIndex.of(distinct_keys)
    distinct = np.unique(ms)
    order = codes.astype(np.int64) * (len(distinct) + 1) + np.searchsorted(distinct, ms, side="left")
    if long:
        value = _encoded(frame[side.value])
        columns = {p: _sorted(order, value, (frame[side.property] == p).to_numpy(bool)) for p in side.keep}
        absent = [p for p in side.keep if not columns[p].num_rows]
        if absent:
            warnings.warn(f"{path}: no row of {side.property} {', '.join(map(repr, absent))} (data.table.join keep): "
                          "null in every row", stacklevel=3)
    else:
        columns = {c: _sorted(order, _encoded(frame[c]), np.ones(len(frame), bool)) for c in side.keep}
    named = dict(zip(kept_names(side), columns.values()))
    return AsOfSide(side.key, keys, pa.table({"ms": pa.array(distinct, pa.int64())}), named)


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
    err.add(no_key(frame[side.key]), "missing_key", side.key, None, "missing side-table key")
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


def _sorted(order: np.ndarray, values: tuple[np.ndarray, np.ndarray], rows: np.ndarray) -> pa.Table:
    """The ``rows`` of one column sorted by ``order``, the file's order kept among equal ones: ``order`` and
    ``value`` (a dictionary of the column's distinct texts)."""
    order = order[rows]
    perm = np.argsort(order, kind="stable")
    value = pa.DictionaryArray.from_arrays(pa.array(values[0][rows][perm]), pa.array(values[1], pa.large_string()))
    return pa.table({"order": pa.array(order[perm], pa.int64()), "value": value})


__all__ = ["AsOfSide", "SideTable", "check_kept_names", "check_side_columns", "kept_names", "read_side"]
