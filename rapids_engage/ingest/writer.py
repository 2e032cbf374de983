"""Day-partitioned parquet output: ``<dir>/day=YYYY-MM-DD/<prefix>NNNNN.parquet`` (prefix ``part-``; an ingest's
writer of input file F: ``part-FFFFF-``, so the parts of every file sort in input order).

Rows are grouped by the UTC day of their time column (``tweet_timestamp`` unless
``time_column`` names another int64 unix-seconds column) and buffered per day
(each day's rows a copy of their own, so a flushed day frees them) until a day has
``row_group_rows`` rows (one row group) or all buffers together pass
``max_buffer_bytes`` (then days are flushed, those written to least recently
first, the largest of those first, down to half of it). Each day has at
most one open :class:`pyarrow.parquet.ParquetWriter`, rolled over to a new part
after ``rows_per_file`` rows; at most ``max_open_parts`` are open (an open part holds
its last row group's dictionary encoders: ~4-6 MiB with high-cardinality strings), so
before another opens the one written to least recently is closed (its day's later rows
go to a new part). Parts are written under a temporary name and
renamed when closed. The ``day`` is in the directory name only, not a column.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..failures import naming
from ..schema import DTYPES, EVENT_TIME

SECONDS_PER_DAY = 86_400


def canonical_schema() -> pa.Schema:
    """Arrow schema of the canonical columns, with pandas metadata (so ``Int64`` reads back as ``Int64``)."""
    empty = pd.DataFrame({c: pd.Series([], dtype=d) for c, d in DTYPES.items()})
    return pa.Schema.from_pandas(empty, preserve_index=False)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with ``schema``'s columns and types; columns it lacks become nulls."""
    cols = [
        table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(cols, schema=schema)


def _copy(table: pa.Table) -> pa.Table:
    """``table`` (a slice) in buffers of its own."""
    return table.take(pa.array(np.arange(table.num_rows)))


def day_name(day: int) -> str:
    return str(np.datetime64(int(day), "D"))


class DayWriter:
    """Appends tables to per-day parquet parts under ``root`` (day: UTC day of ``time_column``, unix seconds)."""

    def __init__(self, root: Path, schema: pa.Schema, *, rows_per_file: int = 1_000_000,
                 row_group_rows: int = 250_000, max_buffer_bytes: int = 256 << 20, time_column: str = EVENT_TIME,
                 prefix: str = "part-", max_open_parts: int | None = None) -> None:
        self.root, self.schema, self.time_column, self.prefix = Path(root), schema, time_column, prefix
        self.rows_per_file, self.row_group_rows, self.max_buffer_bytes = rows_per_file, row_group_rows, max_buffer_bytes
        self.max_open_parts = max_open_parts  # None: a part per day open until it rolls over or the writer closes
        self.rows_per_day: dict[str, int] = {}
        self.files = 0
        self._buf: dict[int, list[pa.Table]] = {}
        self._buf_rows: dict[int, int] = {}
        self._buf_size: dict[int, int] = {}  # bytes buffered per day
        self._open: dict[int, tuple[pq.ParquetWriter, Path, int]] = {}  # day -> (writer, final path, rows)
        self._writes = 0  # write() calls so far
        self._buffered_at: dict[int, int] = {}  # day -> the write() call that last buffered rows of it
        self._part_writes = 0  # row groups written so far
        self._written_at: dict[int, int] = {}  # day of an open part -> the row group last written to it
        self.root.mkdir(parents=True, exist_ok=True)

    def write(self, table: pa.Table) -> None:
        """Add rows (already in ``schema``) to their days' buffers."""
        if table.num_rows == 0:
            return
        self._writes += 1
        day = table[self.time_column].to_numpy() // SECONDS_PER_DAY
        order = np.argsort(day, kind="stable")
        day = day[order]
        table = table.take(pa.array(order))
        cuts = np.concatenate([[0], np.flatnonzero(np.diff(day)) + 1, [len(day)]])
        for start, stop in zip(cuts[:-1], cuts[1:]):
            d, n = int(day[start]), int(stop - start)
            rows = _copy(table.slice(start, n)) if n < table.num_rows else table  # not a slice holding all days alive
            self._buf.setdefault(d, []).append(rows)
            self._buf_rows[d] = self._buf_rows.get(d, 0) + n
            self._buf_size[d] = self._buf_size.get(d, 0) + rows.nbytes
            self._buffered_at[d] = self._writes
            if self._buf_rows[d] >= self.row_group_rows:
                self._flush(d)
        if self.buffered_bytes() > self.max_buffer_bytes:
            while self._buf and self.buffered_bytes() > self.max_buffer_bytes / 2:
                self._flush(min(self._buf, key=lambda d: (self._buffered_at[d], -self._buf_size[d])))

    def buffered_bytes(self) -> int:
        """The bytes of the rows buffered (not yet written), all days together."""
        return sum(self._buf_size.values())

    def _flush(self, d: int) -> None:
        try:
            self._write(d)
        except BaseException:
            self.abort()
            raise

    def _write(self, d: int) -> None:
        parts = self._buf.pop(d)
        rows = self._buf_rows.pop(d)
        self._buf_size.pop(d)
        self._buffered_at.pop(d)
        table = pa.concat_tables(parts)
        name = day_name(d)
        self.rows_per_day[name] = self.rows_per_day.get(name, 0) + rows
        while table.num_rows:
            if d not in self._open:
                if self.max_open_parts and len(self._open) >= self.max_open_parts:
                    self._close(min(self._open, key=self._written_at.__getitem__))
                path = self.root / f"day={name}" / f"{self.prefix}{self.files:05d}.parquet"
                path.parent.mkdir(parents=True, exist_ok=True)
                self.files += 1
                with naming(path):  # pyarrow's write error (a full disk) names no file
                    self._open[d] = (pq.ParquetWriter(path.with_name(f".{path.name}.tmp"), self.schema), path, 0)
            writer, path, done = self._open[d]
            take = min(table.num_rows, self.rows_per_file - done)
            with naming(path):
                writer.write_table(table.slice(0, take), row_group_size=max(take, 1))
            table = table.slice(take)
            self._open[d] = (writer, path, done + take)
            self._part_writes += 1
            self._written_at[d] = self._part_writes
            if done + take >= self.rows_per_file:
                self._close(d)

    def _close(self, d: int) -> None:
        writer, path, _ = self._open.pop(d)
        self._written_at.pop(d, None)
        try:
            with naming(path):
                writer.close()
        except BaseException:
            self.abort()
            raise
        os.replace(path.with_name(f".{path.name}.tmp"), path)

    def close(self) -> None:
        """Flush every buffer and close every part."""
        for d in sorted(self._buf):
            self._flush(d)
        for d in sorted(self._open):
            self._close(d)

    def abort(self) -> None:
        """Close the open parts after a failed write, ignoring their errors (a full disk fails their footers too):
        left open, their writers' finalizers tried again at exit and printed a traceback after the run's one-line
        error. The caller discards the directory."""
        for writer, _, _ in self._open.values():
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - the write's own error is the one raised
                writer.is_open = False  # its finalizer would close it again, and fail again
        self._open.clear()
        self._written_at.clear()


__all__ = ["DayWriter", "canonical_schema", "conform"]
