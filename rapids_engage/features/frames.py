"""Dataframe plumbing shared by the feature groups (pandas/cudf and their dask forms).

Feature tables (one row per key) are joined onto event partitions by
broadcasting the table to every partition: the event frame is never shuffled,
so partition ``i`` of the features is partition ``i`` of the input, in the same
row order, whatever the backend (cudf merges do not keep row order; the
``_pos`` column restores it).
"""

from __future__ import annotations

from typing import Any

import dask
import dask.dataframe as dd
import numpy as np

_POS = "_pos"


def is_dask(obj: Any) -> bool:
    return isinstance(obj, (dd.DataFrame, dd.Series))


def as_dask(frame: Any) -> Any:
    """A dask frame for ``frame`` (in-memory frames become one partition)."""
    return frame if is_dask(frame) else dd.from_pandas(frame, npartitions=1, sort=False)


def meta_with(meta: Any, columns: dict[str, str]) -> Any:
    """``meta`` (an empty frame) plus empty columns of the given dtypes."""
    empty = meta.iloc[:0]
    return empty.assign(**{name: empty.index.to_series().astype(dtype) for name, dtype in columns.items()})


def merge_keep_order(part: Any, table: Any, on: list[str], fill: dict[str, Any] | None = None) -> Any:
    """Left-join ``table`` onto ``part`` on ``on``, keeping ``part``'s rows and order."""
    from ..backend import array_module

    xp = array_module(part)
    left = part.reset_index(drop=True)
    left[_POS] = xp.arange(len(left), dtype=np.int64)
    merged = left.merge(table, on=on, how="left", sort=False)
    merged = merged.sort_values(_POS).drop(columns=[_POS])
    merged.index = part.index
    if fill:
        merged = merged.fillna({k: v for k, v in fill.items() if k in merged.columns})
    return merged


def broadcast_join(events: Any, table: Any, on: list[str], new_columns: dict[str, str], fill: dict[str, Any] | None = None) -> Any:
    """Join a key table onto every partition of the dask frame ``events``.

    ``table`` is a small in-memory frame or a dask frame (reduced to one
    partition and sent once to each worker). ``new_columns`` names the columns
    the join adds, with their dtypes (the output metadata).
    """
    if is_dask(table):
        table = table.repartition(npartitions=1).to_delayed()[0]
    else:
        table = dask.delayed(table)
    meta = meta_with(events._meta, new_columns)
    return events.map_partitions(merge_keep_order, table, on, fill, meta=meta)


def key_name(key: list[str]) -> str:
    """Column-name fragment for a (possibly multi-column) key."""
    return "__".join(key)
