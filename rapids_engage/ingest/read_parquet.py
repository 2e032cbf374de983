"""Parquet reader: record batches of the declared columns as text (line = 1-based record number)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .reader import IngestError
from .table_chunk import Chunk, Source, drop_rows, twice_message

#: Ticks per second of each time unit.
PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def read_parquet(path: Path, src: Source, batch_rows: int) -> Iterator[Chunk]:
    """Parquet chunks of ``batch_rows`` records; line = 1-based record number."""
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise IngestError(f"{path}: not a readable parquet file ({exc})") from exc
    names = pf.schema_arrow.names
    twice = twice_message(path, src.fmt, names, src.needed)
    if twice:  # which one is meant is unknown (pyarrow's KeyError before)
        raise IngestError(twice)
    missing = tuple(c for c in src.needed if c not in names)
    cols = [c for c in src.needed if c in names]
    first = 1
    batches = pf.iter_batches(batch_size=batch_rows, columns=cols or names[:1])
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError) as exc:
            raise IngestError(f"{path}: unreadable input ({exc})") from exc
        if batch is None:
            return
        n = batch.num_rows
        texts, bad_col = {}, np.full(n, None, dtype=object)
        reason, detail = np.full(n, "invalid_utf8", dtype=object), np.full(n, "invalid UTF-8", dtype=object)
        for c in cols:
            texts[c], bad = arrow_text(batch.column(c), src.list_seps.get(c, " "),
                                        src.time_format if c == src.time else None)
            if c in src.scalars and pa.types.is_nested(batch.column(c).type):
                nested = batch.column(c).is_valid().to_numpy(zero_copy_only=False) & (bad_col == None)  # noqa: E711
                bad_col[nested], reason[nested] = c, src.scalars[c]
                detail[nested] = f"a parquet {batch.column(c).type} where one value is expected"
            bad_col[bad & (bad_col == None)] = c  # noqa: E711 - elementwise
        lines = np.arange(first, first + n, dtype=np.int64)
        records = batch.select(cols) if cols else None

        def raw(rows: np.ndarray, records: pa.RecordBatch | None = records) -> list[bytes | str]:
            if records is None:
                return ["{}"] * len(rows)
            picked = records.take(pa.array(rows, pa.int64())).to_pylist()
            return [json.dumps(r, default=str, ensure_ascii=False) for r in picked]

        done = int(os.path.getsize(path) * (first + n - 1) / max(pf.metadata.num_rows, first + n - 1))
        chunk = Chunk(pd.DataFrame(texts, index=range(n)), lines, raw, [], missing, done, tuple(names))
        if (bad_col != None).any():  # noqa: E711 - elementwise
            chunk = drop_rows(chunk, bad_col, reason, detail)
        first += n
        yield chunk


def arrow_text(arr: pa.Array, sep: str, time_format: str | None) -> tuple[pd.Series, np.ndarray]:
    """A parquet column as text (as a CSV field would hold it) and the rows whose bytes are not UTF-8."""
    t, bad = arr.type, np.zeros(len(arr), bool)
    try:
        if time_format and (pa.types.is_timestamp(t) or pa.types.is_date(t)):
            arr = _timestamp_text(arr, time_format)
        elif is_list_type(t):
            arr = pc.binary_join(_items_text(arr), sep)
        elif pa.types.is_floating(t):
            arr = float_text(arr)
        elif not (pa.types.is_string(t) or pa.types.is_large_string(t)):
            arr = pc.cast(arr, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        values = arr.to_pylist()
        if pa.types.is_binary(t) or pa.types.is_large_binary(t):
            bad = np.array([v is not None and not _is_utf8(v) for v in values], bool)
            arr = pa.array([None if b or v is None else v.decode() for v, b in zip(values, bad)], pa.string())
        else:
            arr = pa.array([None if v is None else json.dumps(v, default=str) for v in values], pa.string())
    return pc.fill_null(arr, "").to_pandas(), bad


#: Integral floats below this magnitude are exact integers (float64's 53-bit mantissa).
EXACT_INT = 2.0 ** 53


def float_text(arr: pa.Array) -> pa.Array:
    """Floats as text: an integral one below 2**53 as the integer's text (``123.0`` and ``1e+10`` as
    ``123`` and ``10000000000``: an id's key as in an int column; pandas makes an int column with a
    missing value float), any other as arrow casts it (``1.5``, ``nan``)."""
    values = arr.cast(pa.float64())
    whole = pc.and_(pc.equal(pc.floor(values), values), pc.less(pc.abs(values), EXACT_INT))
    ints = pc.cast(pc.if_else(whole, values, 0.0), pa.int64()).cast(pa.string())
    return pc.if_else(whole, ints, pc.cast(arr, pa.string()))


#: The list types arrow gives from a parquet file (the view and fixed-size types from the arrow schema it stores).
LIST_TYPES = (pa.types.is_list, pa.types.is_large_list, pa.types.is_fixed_size_list, pa.types.is_list_view,
              pa.types.is_large_list_view)


def is_list_type(t: pa.DataType) -> bool:
    """Whether ``t`` is one of :data:`LIST_TYPES`."""
    return any(is_type(t) for is_type in LIST_TYPES)


def _items_text(arr: pa.Array) -> pa.Array:
    """A list column (any of :data:`LIST_TYPES`) as a list of its items' text: floats by :func:`float_text`
    (``1.2e+10`` as ``12000000000``, as a float column and JSONL's list items), dictionary items by their values,
    a null item as an empty one (a JSON list's ``null``: no item; it made the whole list null); a list of lists
    as the items of its inner lists, in order (as a JSONL list of lists), a null inner list as none."""
    if (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)) and not is_list_type(arr.type.value_type):
        offsets = arr.offsets  # of a slice: into its whole child array, from offsets[0]
        start = offsets[0].as_py()
        items = arr.values.slice(start, offsets[-1].as_py() - start)
        offsets = pc.subtract(offsets, pa.scalar(start, offsets.type))
        return type(arr).from_arrays(offsets, _text(items), mask=arr.is_null())
    items, rows = _leaves(arr)  # offsets and sizes (views), a fixed size, lists of lists: arrow's flatten
    counts = np.bincount(rows.to_numpy(zero_copy_only=False), minlength=len(arr))
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]), pa.int64())
    return pa.LargeListArray.from_arrays(offsets, _text(items), mask=arr.is_null())


def _text(items: pa.Array) -> pa.Array:
    """List items as text (:func:`_items_text`), a null one empty."""
    if pa.types.is_dictionary(items.type):
        items = items.dictionary_decode()
    return pc.fill_null(float_text(items) if pa.types.is_floating(items.type) else pc.cast(items, pa.string()), "")


def _leaves(arr: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(the items of ``arr``'s lists, through lists of lists, in order; the row of ``arr`` each is in). Arrow's
    flatten reads offsets, sizes (views) and slices alike and skips the values under a null list (a fixed size's)."""
    rows, items = pc.list_parent_indices(arr), pc.list_flatten(arr)
    while is_list_type(items.type):
        rows, items = rows.take(pc.list_parent_indices(items)), pc.list_flatten(items)
    return items, rows


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _timestamp_text(arr: pa.Array, fmt: str) -> pa.Array:
    """Timestamps / dates as text in ``fmt`` (instants in UTC; a ``%z`` / ``%Z`` in a pattern writes ``+0000`` / ``UTC``,
    a ``%f`` ``000000``: a text time's fraction of a second is dropped too, and arrow writes no ``%f``)."""
    if pa.types.is_date(arr.type):
        arr = arr.cast(pa.timestamp("s"))
    per_s = PER_SECOND[arr.type.unit]
    ticks = pc.fill_null(arr.cast(pa.int64()), 0).to_numpy()
    secs = ticks // per_s
    if fmt in ("unix", "unix_ms"):
        text = pa.array((ticks * 1000 // per_s if fmt == "unix_ms" else secs).astype(str))
    else:
        utc = pa.array(secs, pa.timestamp("s", tz="UTC"))  # a zone to write: arrow cannot %z a naive time
        text = pc.strftime(utc, format="%Y-%m-%dT%H:%M:%S" if fmt == "iso" else _no_fraction(fmt))
    return pc.if_else(arr.is_null(), pa.scalar(None, pa.string()), text.cast(pa.string()))


def _no_fraction(fmt: str) -> str:
    """``fmt`` with its ``%f`` (microseconds, which arrow's strftime left as the text ``%f``: every row bad_time) written
    ``000000``; ``%%f`` is the text ``%f``."""
    return re.sub(r"%[%f]", lambda m: "000000" if m.group(0) == "%f" else "%%", fmt)
