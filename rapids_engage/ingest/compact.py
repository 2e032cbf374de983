"""Small parts merged once an ingest has written them all: each input file has parts of its own
(:mod:`.file_output`), so thousands of small input files left thousands of parquet files, each opened by every
later pass over the data (a task, a footer and a read per file per pass).

Within each ``day=D`` directory, runs of consecutive parts (in name order: input order) of fewer than
``max_rows`` rows together are rewritten as one file, named after the run's first part (so the files still sort
in input order), its rows those of the parts in order: the same rows in the same order as before. Runs in the
ingest's staged directory, before ``ingest.json`` and the publish (an interrupted ingest publishes nothing).
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..failures import naming
from ..store import parquet_files

#: Rows a merged file holds at most (as a :class:`.writer.DayWriter` row group): a part of this many or more stays.
MAX_MERGED_ROWS = 250_000


def runs(rows: list[int], max_rows: int = MAX_MERGED_ROWS) -> list[tuple[int, int]]:
    """(start, end) of the runs of consecutive parts of ``rows`` rows that are merged: each holds two parts or more
    and fewer than ``max_rows`` rows in all (greedy, in order)."""
    found, start, total = [], 0, 0
    for i, n in enumerate([*rows, max_rows]):  # the sentinel closes the last run
        if total + n < max_rows and i < len(rows):
            total += n
            continue
        if i - start > 1:
            found.append((start, i))
        start, total = (i, n) if n < max_rows else (i + 1, 0)
    return found


def compact_day(day_dir: Path, max_rows: int = MAX_MERGED_ROWS) -> int:
    """Merge the runs of small parts in ``day_dir`` (:func:`runs`); the number of parts left."""
    parts = parquet_files(day_dir)  # the one listing of a directory's parquet files (flat here), sorted
    rows = [pq.read_metadata(p).num_rows for p in parts]
    merged = 0
    for start, end in runs(rows, max_rows):
        group, target = parts[start:end], parts[start]
        tables = [pq.ParquetFile(p).read() for p in group]  # no hive day column
        if any(not t.schema.equals(tables[0].schema) for t in tables[1:]):
            continue  # parts of other column types (one writer's nulls typed otherwise): left as they are, read as before
        table = pa.concat_tables(tables)
        tmp = target.with_name(f".{target.name}.tmp")
        with naming(target):  # pyarrow's write error (a full disk) names no file
            pq.write_table(table, tmp, row_group_size=max(table.num_rows, 1))
        os.replace(tmp, target)
        for p in group[1:]:
            p.unlink()
        merged += end - start - 1
    return len(parts) - merged


def slice_part(table: pa.Table, keep: list[tuple[int, int]], target: Path) -> int:
    """Write the rows ``keep`` (``(start, end)`` runs, in order) of a part's rows ``table`` (as read: its schema and
    metadata kept) as the new file ``target``, through a temporary name (the part read, a hard link it shares with an
    earlier entry, is never written); its rows."""
    table = pa.concat_tables([table.slice(start, end - start) for start, end in keep])
    tmp = target.with_name(f".{target.name}.tmp")
    with naming(target):
        pq.write_table(table, tmp, row_group_size=max(table.num_rows, 1))
    os.replace(tmp, target)
    return table.num_rows


def compact_parts(data_dir: Path, max_rows: int = MAX_MERGED_ROWS) -> int:
    """Merge the small parts of every ``day=D`` directory under ``data_dir`` (:func:`compact_day`); the parquet
    files left."""
    days = sorted(d for d in Path(data_dir).glob("day=*") if d.is_dir())
    return sum(compact_day(d, max_rows) for d in days)


__all__ = ["MAX_MERGED_ROWS", "compact_day", "compact_parts", "runs", "slice_part"]
