"""Day-partitioned parquet output: ``<dir>/day=YYYY-MM-DD/<prefix>NNNNN.parquet`` (prefix ``part-``; an ingest's
writer of input file F: ``part-FFFFF-``, so the parts of every file sort in input order).

Rows are grouped by the UTC day of their time column (``tweet_timestamp`` unless
``time_column`` names another int64 unix-seconds column) and buffered per day
until a day has ``row_group_rows`` rows (one row group) or all buffers together
pass ``max_buffer_bytes`` (then the largest days are flushed). Each day has at
most one open :class:`pyarrow.parquet.ParquetWriter`, rolled over to a new part
after ``rows_per_file`` rows. Parts are written under a temporary name and
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


def day_name(day: int) -> str:
    return str(np.datetime64(int(day), "D"))


class DayWriter:
    """Appends tables to per-day parquet parts under ``root`` (day: UTC day of ``time_column``, unix seconds)."""

    def __init__(self, root: Path, schema: pa.Schema, *, rows_per_file: int = 1_000_000,
                 row_group_rows: int = 250_000, max_buffer_bytes: int = 256 << 20, time_column: str = EVENT_TIME,
                 prefix: str = "part-") -> None:
        self.root, self.schema, self.time_column, self.prefix = Path(root), schema, time_column, prefix
        self.rows_per_file, self.row_group_rows, self.max_buffer_bytes = rows_per_file, row_group_rows, max_buffer_bytes
        self.rows_per_day: dict[str, int] = {}
        self.files = 0
        self._buf: dict[int, list[pa.Table]] = {}
        self._buf_rows: dict[int, int] = {}
        self._buf_size: dict[int, float] = {}  # estimated bytes buffered per day
        self._open: dict[int, tuple[pq.ParquetWriter, Path, int]] = {}  # day -> (writer, final path, rows)
        self.root.mkdir(parents=True, exist_ok=True)

    def write(self, table: pa.Table) -> None:
        """Add rows (already in ``schema``) to their days' buffers."""
        if table.num_rows == 0:
            return
        day = table[self.time_column].to_numpy() // SECONDS_PER_DAY
        order = np.argsort(day, kind="stable")
        day = day[order]
        table = table.take(pa.array(order))
        per_row = table.nbytes / table.num_rows
        cuts = np.concatenate([[0], np.flatnonzero(np.diff(day)) + 1, [len(day)]])
        for start, stop in zip(cuts[:-1], cuts[1:]):
            d, n = int(day[start]), int(stop - start)
            self._buf.setdefault(d, []).append(table.slice(start, n))
            self._buf_rows[d] = self._buf_rows.get(d, 0) + n
            self._buf_size[d] = self._buf_size.get(d, 0.0) + n * per_row
            if self._buf_rows[d] >= self.row_group_rows:
                self._flush(d)
        if sum(self._buf_size.values()) > self.max_buffer_bytes:
            while self._buf and sum(self._buf_size.values()) > self.max_buffer_bytes / 2:
                self._flush(max(self._buf_size, key=self._buf_size.__getitem__))

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
        table = pa.concat_tables(parts)
        name = day_name(d)
        self.rows_per_day[name] = self.rows_per_day.get(name, 0) + rows
        while table.num_rows:
            if d not in self._open:
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
            if done + take >= self.rows_per_file:
                self._close(d)

    def _close(self, d: int) -> None:
        writer, path, _ = self._open.pop(d)
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


__all__ = ["DayWriter", "canonical_schema", "conform"]
