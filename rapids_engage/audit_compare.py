"""The audit's row-by-row comparisons of recomputed features with the store's, partition by partition on the cluster.

Both frames are shuffled by the matched columns to the same partitions (every copy of a matched row lands in one
partition of each), each pair of partitions is compared where it lies, and only a one-row frame of counts per
partition comes back: no row-level data is collected onto one process (issue #3).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .backend import frame_library, to_host_f64
from .features.key_values import with_key_values


def co_partitioned(fresh: Any, stored: Any, on: list[str]) -> tuple[Any, Any]:
    """``fresh`` and ``stored`` (dask) shuffled by ``on`` to the same number of partitions: rows with the same values of
    ``on`` lie in the same partition of both. Numbers hash alike whatever their dtype (dask's shuffle hashes them as
    float64); categorical ``on`` columns of either side become their values first (dask_cudf hashes a categorical by
    its codes, and a categorical sorts by them: a dictionary per stored file codes a value its own way; cast to the
    store's unknown categories, fresh strings became null), then ``fresh``'s other ``on`` columns take ``stored``'s
    dtypes where they differ (object and arrow strings)."""
    fresh, stored = with_key_values(fresh, on), with_key_values(stored, on)
    casts = {c: stored._meta[c].dtype for c in on
             if fresh._meta[c].dtype != stored._meta[c].dtype and not (_numeric(fresh._meta[c]) and _numeric(stored._meta[c]))}
    n = max(fresh.npartitions, stored.npartitions)
    return (fresh.astype(casts) if casts else fresh).shuffle(on=on, npartitions=n), stored.shuffle(on=on, npartitions=n)


def _numeric(column: Any) -> bool:
    return getattr(column.dtype, "kind", "O") in "iufb"


def per_partition_counts(count: Callable[..., dict], fresh: Any, stored: Any, columns: list[str], *args: Any) -> Any:
    """A dask frame of one row per partition pair of ``fresh`` and ``stored`` (co-partitioned: :func:`co_partitioned`):
    ``count(fresh_part, stored_part, *args)``, a dict of the ``columns``' integers, as a frame of the partitions'
    library (pandas or cudf)."""
    import dask.dataframe as dd

    meta = frame_library(fresh).DataFrame({c: np.array([], dtype=np.int64) for c in columns})
    return dd.map_partitions(_count_frame, fresh, stored, count, columns, *args, meta=meta, align_dataframes=False)


def _count_frame(fresh: Any, stored: Any, count: Callable[..., dict], columns: list[str], *args: Any) -> Any:
    counts = count(fresh, stored, *args)
    return frame_library(fresh).DataFrame({c: np.array([counts[c]], dtype=np.int64) for c in columns})


def totals(counts: Any) -> dict[str, int]:
    """The column sums of a computed count frame (:func:`per_partition_counts`) as Python ints."""
    return {c: int(counts[c].sum()) for c in counts.columns}


def merged_differences(fresh: Any, stored: Any, on: list[str], names: list[str]) -> dict:
    """``compared``: the rows of ``fresh`` merged with ``stored`` on ``on`` (each copy with every copy); ``differing``:
    those where any of ``names`` differs from the store's (a null equals a null). Partitions of co-partitioned frames."""
    both = fresh[[*on, *names]].merge(stored[[*on, *names]], on=on, suffixes=("", "_store"))
    same = np.ones(len(both), dtype=bool)
    for n in names:
        a, b = to_host_f64(both[n]), to_host_f64(both[n + "_store"])
        same &= (a == b) | (np.isnan(a) & np.isnan(b))
    return {"compared": len(both), "differing": int((~same).sum())}


def sorted_differences(fresh: Any, stored: Any, matched: list[str], names: list[str]) -> dict:
    """``{name: how many of fresh's encodings name differ from stored's}`` for each of ``names``, ``fresh`` and
    ``stored`` being partitions of co-partitioned frames of the same rows, paired by ``matched`` (row key, time, fold
    key) and, among copies of a row sharing those, by the order of their encodings ``names``: a merge on ``matched``
    paired each copy with every copy (a difference without a leak). Where the partitions hold different numbers of
    rows (rows that one side lacks), every row of the larger one counts as differing."""
    order = [*matched, *names]
    x, y = fresh.sort_values(order), stored.sort_values(order)
    if len(x) != len(y):
        return dict.fromkeys(names, max(len(x), len(y)))
    out = {}
    for n in names:
        a, b = to_host_f64(x[n]), to_host_f64(y[n])
        out[n] = int((~(np.isclose(a, b, rtol=1e-12, atol=0.0) | (np.isnan(a) & np.isnan(b)))).sum())
    return out
