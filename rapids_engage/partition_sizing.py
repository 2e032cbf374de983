"""Partition sizes of a frame read a parquet file per partition, from the files' row counts.

:func:`sized_partitions` splits files over ``data.partition_rows`` evenly and merges consecutive files under
``data.min_partition_rows`` (dask's ``repartition``), keeping at least ``min_partitions``; :func:`merged_count`
is the merge's partition count, which :mod:`.grouped_read` reads a group of files per task into.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence


def sized_partitions(
    frame: Any, files: list[Path], max_rows: int | None, min_rows: int | None, min_partitions: int = 1,
    rows: list[int] | None = None,
) -> Any:
    """``frame`` (read from ``files``, in order) with partitions of at most about ``max_rows`` rows
    (a file with more split evenly into as few as that takes) and, where files are smaller than
    ``min_rows``, consecutive partitions merged into about ``min_rows`` (at most ``max_rows``), keeping
    at least ``min_partitions`` (fewer files: the largest split further, a partition per worker thread; never
    an empty one). Row counts come from the parquet footers (``rows``: the files' counts, their footers read
    already): nothing is read."""
    import pyarrow.parquet as pq

    from .data import DataError  # it imports this module

    for name, value in (("partition_rows", max_rows), ("min_partition_rows", min_rows)):
        if value is not None and value < 1:
            raise DataError(f"data.{name} must be >= 1, got {value}")
    if max_rows is None and min_rows is None:
        return frame
    if rows is None:
        rows = [pq.read_metadata(f).num_rows for f in files]
    if max_rows is not None and max(rows) > max_rows:
        pieces = [math.ceil(n / max_rows) if n > max_rows else 0 for n in rows]  # 0: a small file, merged
        sized = _split_large(frame, rows, pieces, max_rows, min_rows)
    else:
        sized = _merge_small(frame, rows, max_rows, min_rows, min_partitions)
    if sized.npartitions >= min_partitions or min_rows is None:  # None: a partition per file, as asked
        return sized
    # fewer than min_partitions even unmerged (few files): the files with the most rows per partition split further
    unmerged = [math.ceil(n / max_rows) if max_rows is not None and n > max_rows else 1 for n in rows]
    return _split_large(frame, rows, _spread(rows, unmerged, min_partitions), max_rows, None)


def _spread(rows: list[int], pieces: list[int], min_partitions: int) -> list[int]:
    """``pieces`` (each file's partitions, at least one) raised until they sum to ``min_partitions``, a piece
    more each time for the file with the most rows per piece; a file never gets more pieces than rows
    (no empty partition), so files of fewer rows in all than ``min_partitions`` stop short of it."""
    import heapq

    pieces = list(pieces)
    heap = [(-n / p, i) for i, (n, p) in enumerate(zip(rows, pieces)) if p < n]
    heapq.heapify(heap)
    for _ in range(min_partitions - sum(pieces)):
        if not heap:
            break
        _, i = heapq.heappop(heap)
        pieces[i] += 1
        if pieces[i] < rows[i]:
            heapq.heappush(heap, (-rows[i] / pieces[i], i))
    return pieces


def _split_large(frame: Any, rows: list[int], pieces: list[int], max_rows: int | None, min_rows: int | None) -> Any:
    """``frame`` with file ``i`` split into ``pieces[i]`` partitions and each run of consecutive files of
    ``pieces`` 0 merged (:func:`_merge_small`; ``min_rows`` None: a partition per file): splitting every file
    by the largest's count made a small file partitions of a row or none."""
    import dask.dataframe as dd

    parts, start = [], 0
    for end in range(1, len(rows) + 1):  # runs of files of the same split count (small files: one run)
        if end < len(rows) and pieces[end] == pieces[start]:
            continue
        run = frame.partitions[start:end]
        if pieces[start] == 1:  # as they are
            parts.append(run)
        elif pieces[start]:
            parts.append(run.repartition(npartitions=(end - start) * pieces[start]))
        else:
            parts.append(_merge_small(run, rows[start:end], max_rows, min_rows, 1))
        start = end
    return dd.concat(parts) if len(parts) > 1 else parts[0]


def _merge_small(frame: Any, rows: list[int], max_rows: int | None, min_rows: int | None, min_partitions: int) -> Any:
    """``frame`` (files of ``rows`` rows, none over ``max_rows``) with consecutive partitions merged into
    about ``min_rows`` rows (at most ``max_rows``), keeping at least ``min_partitions``."""
    if min_rows is None:
        return frame
    merged = merged_count(rows, max_rows, min_rows, min_partitions)
    return frame.repartition(npartitions=merged) if merged < frame.npartitions else frame


def _merged_rows(rows: list[int], n: int) -> list[int]:
    """The rows of each partition of ``frame.repartition(npartitions=n)`` for partitions of ``rows`` rows
    (n fewer): dask merges consecutive partitions by their count, ``int(i * len(rows) / n)`` the first of
    merged partition ``i``, whatever their rows."""
    import numpy as np

    cuts = [int(i * (len(rows) / n)) for i in range(n)] + [len(rows)]
    return np.add.reduceat(np.asarray(rows, dtype=np.int64), cuts[:-1]).tolist() if n else []


def merged_count(rows: Sequence[int], max_rows: int | None, min_rows: int, min_partitions: int) -> int:
    """The partitions :func:`.data.sized_partitions` merges files of ``rows`` rows (none over ``max_rows``) into:
    about ``min_rows`` rows each (at most ``max_rows``), at least ``min_partitions``; ``len(rows)`` or more: no merge."""
    target = min(min_rows, max_rows or min_rows)
    merged = max(math.ceil(sum(rows) / target), min_partitions)
    if max_rows is not None:  # more partitions where merging so few would put more than max_rows in one
        merged = next((n for n in range(merged, len(rows)) if max(_merged_rows(rows, n)) <= max_rows), len(rows))
    return merged
