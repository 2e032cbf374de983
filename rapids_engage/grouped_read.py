"""Consecutive small parquet files read a group per task.

:func:`.partition_sizing.sized_partitions` merges consecutive files smaller than ``data.min_partition_rows`` into partitions of
about that many rows; read a file per task first, thousands of small files (hourly dumps, Spark's part files) cost
a task each in every graph that reads the events, and a merge on top. Where the merge is all the sizing does, each
merged partition is read here by one task, its files in one read (:func:`.backend.read_parquet_files`): the same
partitions, the same rows in the same order, of the same dtypes.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Sequence

from .backend import frame_library, read_parquet_files
from .partition_sizing import merged_count


def file_groups(rows: Sequence[int], max_rows: int | None, min_rows: int | None, min_partitions: int) -> list[range] | None:
    """The files of each partition where :func:`.partition_sizing.sized_partitions` only merges consecutive files (dask's
    ``repartition(npartitions=n)``: file ``int(i * len(rows) / n)`` starts partition ``i``); None where it merges
    none (``min_rows`` None, files as large) or splits a file (over ``max_rows``, or fewer than ``min_partitions``),
    and for a bound under 1 (:func:`.partition_sizing.sized_partitions` refuses it)."""
    if min_rows is None or min_rows < 1 or (max_rows is not None and (max_rows < 1 or max(rows) > max_rows)):
        return None
    merged = merged_count(rows, max_rows, min_rows, min_partitions)
    if merged >= len(rows):
        return None
    cuts = [int(i * (len(rows) / merged)) for i in range(merged)] + [len(rows)]
    return [range(a, b) for a, b in zip(cuts, cuts[1:])]


def grouped_frame(frame: Any, footers: Sequence[Any], groups: list[range], skip: Sequence[bool] | None, same: bool) -> Any | None:
    """``frame`` (read a partition per file of ``footers``) as a partition per group of ``groups``, each read by one
    task, the files flagged in ``skip`` left out (a group of them only: an empty partition of ``frame``'s meta);
    None where ``frame`` holds a column the first file lacks (a ``key=value`` directory's: dask's per-file read
    types it). ``same``: every file's fields are the first's (:func:`.file_types.check_files`, which the caller ran)."""
    import dask.dataframe as dd

    meta = frame._meta
    if any(c not in footers[0].names for c in meta.columns):
        return None
    schema = None if same else footers[0].metadata.schema.to_arrow_schema()
    parts = [[str(footers[i].path) for i in group if not (skip and skip[i])] for group in groups]
    return dd.from_map(partial(read_group, meta=meta, schema=schema), parts, meta=meta, enforce_metadata=False)


def cast_partitions(frame: Any) -> Any:
    """``frame`` (a partition per file, or per piece of one, each read in its file's types) with every partition in
    the meta's dtypes (:func:`as_meta`): the files' types were checked to widen to them (:func:`.file_types.check_files`)."""
    return frame.map_partitions(partial(as_meta, meta=frame._meta), meta=frame._meta, enforce_metadata=False)


def read_group(paths: list[str], meta: Any, schema: Any = None) -> Any:
    """The rows of ``paths`` in order as one frame of ``meta``'s library, columns and dtypes (none: a copy of
    ``meta``); a categorical column of the files' categories (dask's meta may not know them), an integer or bool
    column holding nulls as pandas' nullable type. ``schema``: the first input file's arrow schema where some file's
    types or nullability differ from it (widening only): cudf then reads the files one by one (its reader refuses
    a list of files of other schemas), pyarrow into ``schema``'s types."""
    if not paths:
        return meta.copy()
    columns = list(meta.columns)
    if schema is not None and frame_library(meta).__name__ == "cudf":
        frames = [as_meta(read_parquet_files(meta, [p], columns), meta) for p in paths]
        return frame_library(meta).concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return as_meta(read_parquet_files(meta, paths, columns, schema), meta)


def as_meta(frame: Any, meta: Any) -> Any:
    """``frame`` in ``meta``'s dtypes, but for a categorical column, whose categories are the file's (dask's meta may not
    know them): a column read as its values (cudf's parquet reader has no categorical type, cudf#12497) becomes a
    categorical of them; and, on pandas, an integer or bool column holding nulls, which ``meta``'s numpy type cannot
    hold: pandas' nullable type of it (``Int64``, ``boolean``; cudf's columns hold nulls in any type)."""
    pandas = frame_library(meta).__name__ != "cudf"
    cast = {}
    for column, want in meta.dtypes.items():
        got = frame[column].dtype
        if str(want) == "category":
            if str(got) != "category":
                cast[column] = "category"
            continue
        if got == want:
            continue
        if pandas and getattr(want, "kind", None) in ("i", "u", "b") and bool(frame[column].isna().any()):
            nullable = "boolean" if want.kind == "b" else str(want).capitalize().replace("Ui", "UI")
            if str(got) != nullable:
                cast[column] = nullable
            continue
        cast[column] = want
    return frame.astype(cast) if cast else frame
