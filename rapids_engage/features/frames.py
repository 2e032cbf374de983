"""Dataframe plumbing shared by the feature groups (pandas/cudf and their dask forms).

Feature tables (one row per key) are joined onto event partitions in one of two ways:

* small tables (in memory) are broadcast to every partition: the event frame
  is not shuffled, so partition ``i`` of the features is partition ``i`` of the
  input, in the same row order, whatever the backend (cudf merges do not keep
  row order; the ``_pos`` column restores it);
* large tables stay partitioned on the workers (persisted dask frames, see
  :func:`key_tables`) and are joined by a hash (shuffle) join: no worker and
  not the driver ever holds the whole table; the events are reshuffled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd

_POS = "_pos"


def group_ids(keys: Any) -> Any:
    """Dense int64 ids (numpy/cupy) of the rows of a frame of key columns; null keys form their own group.

    cudf's ``ngroup`` gives rows with a null key a null id whatever ``dropna``
    says, so keys with nulls are grouped on (key filled, is-null flag) pairs.
    """
    from ..backend import values

    if bool(keys.isna().any().any()):
        flags = {f"__null_{i}": keys[c].isna() for i, c in enumerate(keys.columns)}
        fill = {c: 0 if keys[c].dtype.kind in "iufb" else "" for c in keys.columns}
        keys = keys.fillna(fill).assign(**flags)
    gid = keys.groupby(list(keys.columns), sort=False, dropna=False).ngroup()
    return values(gid).astype(np.int64)


def is_dask(obj: Any) -> bool:
    return isinstance(obj, (dd.DataFrame, dd.Series))


def as_dask(frame: Any) -> Any:
    """A dask frame for ``frame`` (in-memory frames become one partition)."""
    return frame if is_dask(frame) else dd.from_pandas(frame, npartitions=1, sort=False)


def meta_with(meta: Any, columns: dict[str, str]) -> Any:
    """``meta`` (an empty frame) plus empty columns of the given dtypes."""
    empty = meta.iloc[:0]
    return empty.assign(**{name: empty.index.to_series().astype(dtype) for name, dtype in columns.items()})


def merge_keep_order(part: Any, tables: list[tuple[Any, list[str], dict[str, Any] | None]]) -> Any:
    """Left-join every (table, on, fill) onto ``part`` one after the other, then restore ``part``'s
    rows and order with one sort (cudf merges reorder rows)."""
    from ..backend import array_module

    xp = array_module(part)
    merged = part.reset_index(drop=True)
    merged[_POS] = xp.arange(len(merged), dtype=np.int64)
    for table, on, _ in tables:
        merged = merged.merge(table, on=on, how="left", sort=False)
    merged = merged.sort_values(_POS).drop(columns=[_POS])
    merged.index = part.index
    fills = {k: v for _, _, fill in tables for k, v in (fill or {}).items() if k in merged.columns}
    return merged.fillna(fills) if fills else merged


@dataclass(frozen=True)
class Join:
    """One key table to left-join onto event rows: ``new_columns`` name -> dtype it adds."""

    table: Any
    on: list[str]
    new_columns: dict[str, str]
    fill: dict[str, Any] | None = None


class KeyTable:
    """A key table prepared for repeated left-joins on the workers.

    pandas: the key columns become a (Multi)Index whose hash engine is built
    once per worker and reused by every partition (``get_indexer``), instead of
    re-hashing the table in each merge. cudf: a GPU hash merge per partition.
    """

    def __init__(self, table: Any, on: list[str]) -> None:
        from ..backend import is_gpu_object

        self.on = list(on)
        self.table = table
        self.index = None
        if not is_gpu_object(table):
            keys = table[on[0]] if len(on) == 1 else table[on]
            self.index = pd.Index(keys) if len(on) == 1 else pd.MultiIndex.from_frame(keys)
            self.columns = {c: table[c].to_numpy() for c in table.columns if c not in on}

    def lookup_keys(self, part: Any) -> Any:
        """pandas: ``part``'s keys in the form :meth:`columns_for` looks up (shareable by tables on the same key)."""
        return part[self.on[0]] if len(self.on) == 1 else pd.MultiIndex.from_frame(part[self.on])

    def columns_for(self, part: Any, fill: dict[str, Any] | None, dtypes: dict[str, str], keys: Any = None) -> dict[str, Any]:
        """pandas tables: the table's columns (numpy arrays) for the keys of ``part``'s rows
        (``keys``: their :meth:`lookup_keys`, when already built)."""
        pos = self.index.get_indexer(self.lookup_keys(part) if keys is None else keys)
        missing = pos < 0
        added = {}
        for name, col in self.columns.items():
            taken = col[np.where(missing, 0, pos)] if len(col) else np.zeros(len(pos), col.dtype)
            if missing.any():
                default = (fill or {}).get(name, np.nan)
                taken = np.where(missing, default, taken)
            added[name] = taken.astype(dtypes.get(name, taken.dtype), copy=False)
        return added


def join_all(part: Any, joins: list[tuple[KeyTable, dict[str, Any] | None, dict[str, str]]]) -> Any:
    """``part`` with the columns of every (table, fill, dtypes) in ``joins``. pandas tables add
    their columns in one block (one copy of ``part`` whatever their number); cudf tables merge
    one after the other, with one sort at the end."""
    merges = [(table, fill, dtypes) for table, fill, dtypes in joins if table.index is None]
    if merges:
        part = merge_keep_order(part, [(table.table, table.on, fill) for table, fill, _ in merges])
        part = part.assign(**{c: part[c].astype(d) for _, _, dtypes in merges for c, d in dtypes.items()})
    added: dict[str, Any] = {}
    keys: dict[tuple[str, ...], Any] = {}  # one lookup key per distinct key columns
    for table, fill, dtypes in joins:
        if table.index is not None:
            on = tuple(table.on)
            if on not in keys:
                keys[on] = table.lookup_keys(part)
            added.update(table.columns_for(part, fill, dtypes, keys[on]))
    if not added:
        return part
    kept = part.drop(columns=[c for c in added if c in part.columns])
    return pd.concat([kept, pd.DataFrame(added, index=part.index)], axis=1)


def share(table: Any) -> Any:
    """Ship an in-memory object to the workers once (scatter) instead of inside every task."""
    try:
        from distributed import get_client

        client = get_client()
    except (ImportError, ValueError):
        return dask.delayed(table)
    return client.scatter(table, broadcast=True, hash=False)


def _apply_joins(part: Any, specs: list[tuple], *tables: KeyTable) -> Any:
    return join_all(part, [(table, fill, dtypes) for (fill, dtypes), table in zip(specs, tables)])


def _fill_cast(part: Any, fill: dict[str, Any] | None, dtypes: dict[str, str]) -> Any:
    if fill:
        part = part.fillna({k: v for k, v in fill.items() if k in part.columns})
    return part.assign(**{c: part[c].astype(d) for c, d in dtypes.items()})


def shuffle_join(events: Any, join: Join) -> Any:
    """Left-join a partitioned (dask) key table onto ``events`` by a hash join on the key."""
    kept = events.drop(columns=[c for c in join.new_columns if c in events.columns])
    merged = kept.merge(join.table[[*join.on, *join.new_columns]], on=join.on, how="left")
    return merged.map_partitions(_fill_cast, join.fill, join.new_columns, meta=meta_with(kept._meta, join.new_columns))


class Checkpoints:
    """Where the feature build keeps a frame it reads more than once.

    ``directory`` None: persisted on the workers (fast; under a memory limit
    dask spills it). Otherwise each frame is written there as parquet and read
    back lazily, one file per partition: the workers hold a few partitions at a
    time whatever the data size (compressed on disk, several times smaller
    than in memory). The caller removes ``directory`` once the results that
    read it are written.
    """

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = None if directory is None else Path(directory)
        self._count = 0

    def __call__(self, frame: Any) -> Any:
        if self.directory is None:
            return frame.persist()
        import pyarrow as pa

        self._count += 1
        path = self.directory / f"{self._count:03d}"
        try:
            frame.to_parquet(str(path), write_index=False)
        except (pa.ArrowException, TypeError) as exc:  # a column parquet cannot hold (e.g. Python objects)
            import warnings

            warnings.warn(f"intermediates: kept in memory, not written as parquet ({exc})", stacklevel=2)
            return frame.persist()
        return dd.read_parquet(str(path))


def apply_joins(events: Any, joins: list[Join], checkpoint: Checkpoints | None = None) -> Any:
    """Join every key table onto every partition of ``events``.

    In-memory tables are broadcast (see :func:`share`) and joined in one pass
    that keeps partition ``i`` of the output = partition ``i`` of the input,
    same order; partitioned (dask) tables are shuffle-joined first, each
    result kept by ``checkpoint`` when given (on disk: one shuffle at a time
    holds memory, instead of a chain of them running together).
    """
    events = as_dask(events)
    for j in [j for j in joins if is_dask(j.table)]:
        events = shuffle_join(events, j)
        if checkpoint is not None and checkpoint.directory is not None:
            events = checkpoint(events)
    joins = [j for j in joins if not is_dask(j.table)]
    if not joins:
        return events
    new_columns: dict[str, str] = {}
    for j in joins:
        new_columns.update(j.new_columns)
    meta = meta_with(events._meta, new_columns)
    specs = [(j.fill, j.new_columns) for j in joins]
    tables = [share(KeyTable(j.table, j.on)) for j in joins]
    return events.map_partitions(_apply_joins, specs, *tables, meta=meta)


def in_memory(obj: Any) -> Any:
    """``obj`` computed if it is a dask collection (a partitioned table, a lazy reduction)."""
    return obj.compute() if is_dask(obj) else obj


def key_tables(graphs: list[Any], limit: int | None) -> list[Any]:
    """Compute lazy key tables (``None`` entries pass through).

    ``limit`` None: all in memory on the driver. Otherwise every table is
    persisted on the workers first; those of at most ``limit`` rows are then
    gathered (broadcast joins), the others stay partitioned (shuffle joins).
    """
    lazy = [g for g in graphs if g is not None]
    if limit is None:
        done = iter(dask.compute(*lazy))
    else:
        persisted = dask.persist(*lazy)
        sizes = dask.compute(*[t.map_partitions(len).sum() for t in persisted])
        done = iter([t.compute() if n <= limit else t for t, n in zip(persisted, sizes)])
    return [None if g is None else next(done) for g in graphs]


def key_name(key: list[str]) -> str:
    """Column-name fragment for a (possibly multi-column) key."""
    return "__".join(key)


def drop_empty_partitions(frame: Any) -> Any:
    """``frame`` (dask, ideally persisted) without its empty partitions (at least one kept)."""
    sizes = frame.map_partitions(len).compute().tolist()
    keep = [i for i, n in enumerate(sizes) if n > 0] or [0]
    return frame if len(keep) == len(sizes) else frame.partitions[keep]


def save_state(directory: str | Path, stem: str, table: Any, state: dict) -> None:
    """An encoder's fitted state: ``<stem>.parquet`` (its table) and ``<stem>.json`` (params and scalars)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if is_dask(table):  # a partitioned table: a directory of parquet parts, written by the workers
        table.to_parquet(str(directory / f"{stem}.parquet"), write_index=False)
    else:
        table.to_parquet(directory / f"{stem}.parquet", index=False)
    (directory / f"{stem}.json").write_text(json.dumps(state, indent=1))


def load_state(directory: str | Path, stem: str, df_lib: Any = None) -> tuple[dict, Any]:
    """(JSON state, table as a ``df_lib`` frame; pandas by default) written by :func:`save_state`
    (a partitioned table's directory of parts is read as one frame)."""
    directory = Path(directory)
    state = json.loads((directory / f"{stem}.json").read_text())
    return state, (df_lib or pd).read_parquet(directory / f"{stem}.parquet")
