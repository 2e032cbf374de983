"""Dataframe plumbing shared by the feature groups (pandas/cudf and their dask forms).

Feature tables (one row per key) are joined onto event partitions in one of two ways:

* small tables (in memory) are broadcast to every partition: the event frame
  is not shuffled, so partition ``i`` of the features is partition ``i`` of the
  input, in the same row order, whatever the backend (cudf merges do not keep
  row order; the ``_pos`` column restores it);
* large tables stay partitioned on the workers (persisted dask frames, see
  :func:`key_tables`) and are joined by a hash (shuffle) join of the rows'
  positions and keys (:func:`shuffle_joins`): no worker and not the driver ever
  holds the whole table. When fitting, the training rows' own values of such
  keys are computed without a table join (:mod:`.by_key`); both routes take the
  values home with :func:`route_back`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd

from ..failures import naming

_POS = "_pos"


def group_ids(keys: Any) -> Any:
    """Dense int64 ids (numpy/cupy) of the rows of a frame of key columns; null keys form their own group.

    cudf's ``ngroup`` gives rows with a null key a null id whatever ``dropna``
    says, so keys with nulls are grouped on (key filled, is-null flag) pairs.
    """
    from ..backend import values

    keys = keys.reset_index(drop=True)  # an index level named like a key column makes the groupby ambiguous
    categorical = [c for c in keys.columns if str(keys[c].dtype) == "category"]
    if categorical:  # by their codes (-1: null, a group of its own): "" is no category to fill a null with
        keys = keys.assign(**{c: keys[c].cat.codes for c in categorical})
    if bool(keys.isna().any().any()):
        flags = {f"__null_{i}": keys[c].isna() for i, c in enumerate(keys.columns)}
        fill = {c: 0 if keys[c].dtype.kind in "iufb" else "" for c in keys.columns}
        keys = keys.fillna(fill).assign(**flags)
    gid = keys.groupby(list(keys.columns), sort=False, dropna=False).ngroup()
    return values(gid).astype(np.int64)


def cast_to_state(state: Any, rows: Any) -> tuple[Any, Any]:
    """(``state``, ``rows`` cast to its dtypes) for a concat: a categorical column of the state first takes the
    values of ``rows`` it lacks as categories (a cast to the state's categories alone made them null, their keys'
    state lost)."""
    from ..backend import frame_library

    lib = frame_library(state)
    for c in rows.columns:
        if str(state[c].dtype) != "category":
            continue
        incoming = rows[c].cat.categories if str(rows[c].dtype) == "category" else rows[c].dropna().unique()
        new = lib.Index(incoming).difference(state[c].cat.categories)
        if len(new):
            state = state.assign(**{c: state[c].cat.add_categories(new)})
    return state, rows.astype({c: state.dtypes[c] for c in rows.columns})


def null_key_rows(keys: Any) -> Any:
    """Whether each row of a frame of key columns has a null in its key (a boolean Series): such a row
    has no key (the encoders' rule: the target-encoding prior, count 0, no history)."""
    null = keys[keys.columns[0]].isna()
    for c in keys.columns[1:]:
        null = null | keys[c].isna()
    return null


def key_ids(frame: Any, columns: list[str]) -> Any:
    """Dense int64 ids (numpy/cupy) of the rows' ``columns`` values in an in-memory frame; -1 for a
    row with a null in its key (such rows belong to no key, as in a ``groupby``)."""
    from ..backend import array_module, values

    keys = frame[list(columns)].reset_index(drop=True)  # an index level named like a key column: ambiguous groupby
    null = null_key_rows(keys)
    if not bool(null.any()):
        return values(keys.groupby(list(columns), sort=False).ngroup()).astype(np.int64)
    # not ngroup(dropna=True) on the rows with null keys: cudf's numbers the sorted unique keys and nulls only
    # the last one, so with several key columns (or several null groups) null keys got ids, and a key sorted
    # last none; the keyed rows are numbered alone instead (pandas: the same ids, in order of appearance)
    ids = array_module(frame).full(len(keys), -1, dtype=np.int64)
    ids[~values(null)] = values(keys[~null].groupby(list(columns), sort=False).ngroup()).astype(np.int64)
    return ids


def keys_of_ids(frame: Any, columns: list[str], ids: Any) -> Any:
    """The ``columns`` values of each id of :func:`key_ids`, one row per id in id order (index 0..n-1)."""
    from ..backend import series_like

    keys = frame[list(columns)].assign(__id=series_like(frame, ids))
    keys = keys[keys["__id"] >= 0].drop_duplicates(subset="__id").sort_values("__id")
    return keys[list(columns)].reset_index(drop=True)


def is_dask(obj: Any) -> bool:
    return isinstance(obj, (dd.DataFrame, dd.Series))


def _index_refused(frame: Any) -> bool:
    """Whether dask cannot take ``frame``'s index (``from_pandas`` raises): a MultiIndex, or a null in an index
    that is not numeric (strings or times with a None / NaN / NaT)."""
    index = frame.index
    if getattr(index, "nlevels", 1) > 1:
        return True
    return not pd.api.types.is_any_real_numeric_dtype(index.dtype) and bool(index.isna().any())


def as_dask(frame: Any) -> Any:
    """A dask frame for ``frame`` (in-memory frames become one partition, their columns and index as they are:
    not dask's arrow strings, which would turn an object column of lists into their text). An index dask
    refuses (:func:`_index_refused`) is left behind (row positions instead): the features never read it, and
    :func:`computed_like` puts it back on an in-memory result."""
    if is_dask(frame):
        return frame
    if _index_refused(frame):
        frame = frame.reset_index(drop=True)
    with dask.config.set({"dataframe.convert-string": False}):
        return dd.from_pandas(frame, npartitions=1, sort=False)


def index_named(frame: Any, name: Any) -> Any:
    """Dask ``frame`` with its index named ``name`` (None: unnamed), per partition. The features group and shuffle
    on key columns, which pandas refuses as ambiguous where the index is named like one (rows indexed by
    ``set_index("user_id", drop=False)``): they run unnamed, and the name is put back on the output."""
    if frame._meta.index.name == name:
        return frame
    return frame.map_partitions(_index_renamed, name, meta=_index_renamed(frame._meta, name))


def _index_renamed(part: Any, name: Any) -> Any:
    out = part.copy(deep=False)  # the caller's index object is not renamed in place
    out.index = part.index.rename(name)
    return out


def computed_like(out: Any, frame: Any) -> Any:
    """``out`` (lazy, ``frame``'s rows in their order) as ``frame`` came: lazy for a dask ``frame``, else
    computed, with the index :func:`as_dask` left behind put back."""
    if is_dask(frame):
        return out
    done = out.compute()
    if _index_refused(frame):
        done.index = frame.index
    return done


def without(frame: Any, columns: list[str]) -> Any:
    """``frame`` less those of ``columns`` it has (an encoder's earlier output, before it is added again)."""
    present = [c for c in columns if c in frame.columns]
    return frame.drop(columns=present) if present else frame


def drop_per_partition(frame: Any, columns: list[str]) -> Any:
    """Dask ``frame`` without ``columns``, dropped per partition: not shuffled or written further. Not by
    ``frame.drop``: dask takes a projection into the parquet read of a checkpoint below, and fuses that read's
    partitions, which then no longer line up with the kept rows' (a shuffle join then found no rows)."""
    if not columns:
        return frame
    return frame.map_partitions(_drop_columns, columns, meta=frame._meta.drop(columns=columns))


def _drop_columns(part: Any, columns: list[str]) -> Any:
    return part.drop(columns=columns)


def meta_with(meta: Any, columns: dict[str, str]) -> Any:
    """``meta`` (an empty frame) plus empty columns of the given dtypes, whatever its index (not the index cast
    to them: a time index cannot be cast to int8)."""
    from ..backend import frame_library

    empty = meta.iloc[:0]
    lib = frame_library(empty)
    return empty.assign(**{name: lib.Series([], dtype=dtype, index=empty.index) for name, dtype in columns.items()})


def free_name(name: str, columns: Any) -> str:
    """``name`` with underscores put before it until no column of ``columns`` has it (an internal column
    that must not replace one of the user's)."""
    while name in columns:
        name = f"_{name}"
    return name


def merge_keep_order(part: Any, tables: list[tuple[Any, list[str], dict[str, Any] | None]]) -> Any:
    """Left-join every (table, on, fill) onto ``part`` one after the other, then restore ``part``'s
    rows and order with one sort (cudf merges reorder rows)."""
    from ..backend import array_module

    xp = array_module(part)
    merged = part.reset_index(drop=True)
    pos = free_name(_POS, [*merged.columns, *(c for table, _, _ in tables for c in table.columns)])  # not a column of theirs
    merged[pos] = xp.arange(len(merged), dtype=np.int64)
    for table, on, _ in tables:
        merged = merged.merge(table, on=on, how="left", sort=False)
    merged = merged.sort_values(pos).drop(columns=[pos])
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

    def __getstate__(self) -> dict:
        """What a scatter ships: with a hash index (pandas), its index and columns without the table they
        came from, which the workers do not read (it doubled the bytes broadcast to every worker)."""
        state = self.__dict__.copy()
        if self.index is not None:
            state["table"] = None
        return state

    def lookup_keys(self, part: Any, factorized: dict[str, tuple[Any, Any]] | None = None) -> Any:
        """pandas: ``part``'s keys in the form :meth:`columns_for` looks up (shareable by tables on the same key).
        ``factorized``: column -> ``pd.factorize`` of ``part``'s column, filled in and reused by other key tables
        (a key column is hashed once per partition, not once per table holding it)."""
        if len(self.on) == 1:
            return part[self.on[0]]
        factorized = {} if factorized is None else factorized
        for c in self.on:
            if c not in factorized:
                factorized[c] = pd.factorize(part[c])  # a null: code -1, as MultiIndex.from_frame has it
        codes, levels = zip(*(factorized[c] for c in self.on))
        return pd.MultiIndex(levels=list(levels), codes=list(codes), names=self.on, verify_integrity=False)

    def columns_for(self, part: Any, fill: dict[str, Any] | None, dtypes: dict[str, str], keys: Any = None) -> dict[str, Any]:
        """pandas tables: the table's columns (numpy arrays) for the keys of ``part``'s rows
        (``keys``: their :meth:`lookup_keys`, when already built)."""
        pos = self.index.get_indexer(self.lookup_keys(part) if keys is None else keys)
        missing = pos < 0
        any_missing = bool(missing.any())
        rows = np.where(missing, 0, pos) if any_missing else pos
        added = {}
        for name, col in self.columns.items():
            taken = col.take(rows) if len(col) else np.zeros(len(pos), col.dtype)
            if any_missing:
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
    factorized: dict[str, tuple[Any, Any]] = {}  # one factorization per key column
    for table, fill, dtypes in joins:
        if table.index is not None:
            on = tuple(table.on)
            if on not in keys:
                keys[on] = table.lookup_keys(part, factorized)
            added.update(table.columns_for(part, fill, dtypes, keys[on]))
    if not added:
        return part
    kept = part.drop(columns=[c for c in added if c in part.columns])
    return pd.concat([kept, pd.DataFrame(added, index=part.index)], axis=1)


def share(table: Any) -> Any:
    """Ship an in-memory object to the workers once (scatter) instead of inside every task."""
    return share_all([table])[0]


def share_all(objects: list[Any]) -> list[Any]:
    """:func:`share` of each of ``objects``, in one scatter: a round trip to the scheduler for all of them
    (a feature build's 15 key tables took 15, about 0.4 s on a 2-core CPU)."""
    try:
        from distributed import get_client

        client = get_client()
    except (ImportError, ValueError):
        return [dask.delayed(o) for o in objects]
    return client.scatter(list(objects), broadcast=True, hash=False) if objects else []


def _apply_joins(part: Any, specs: list[tuple], *tables: KeyTable) -> Any:
    return join_all(part, [(table, fill, dtypes) for (fill, dtypes), table in zip(specs, tables)])


def _fill_cast(part: Any, fill: dict[str, Any] | None, dtypes: dict[str, str]) -> Any:
    if fill:
        part = part.fillna({k: v for k, v in fill.items() if k in part.columns})
    return part.assign(**{c: part[c].astype(d) for c, d in dtypes.items()})


#: A row's place in its frame, ``partition << 32 | position``: where a shuffle join's columns go back to.
POSITION = "__row_position"


def _keys_with_position(part: Any, keys: list[str], partition_info: dict | None = None) -> Any:
    """The key columns of a whole partition and each row's :data:`POSITION`. It takes the whole
    partition so that a parquet read of the frame is not re-partitioned for a narrow projection
    (dask fuses the files of small projections): positions refer to the frame's own partitions."""
    from ..backend import array_module

    first = (partition_info["number"] if partition_info else 0) << 32
    return part[keys].assign(**{POSITION: array_module(part).arange(first, first + len(part), dtype=np.int64)})


def _attach(part: Any, specs: list[list[tuple[dict[str, Any] | None, dict[str, str]]]], *routed: Any) -> Any:
    """``part`` plus the columns of each frame of ``routed`` (its rows, sorted by position), filled and cast per
    join (``specs``: one list of joins per frame; they replace columns of the same names)."""
    from ..backend import frame_library

    columns = []
    for added, joins in zip(routed, specs):
        if len(added) != len(part):
            raise AssertionError(f"shuffle join: {len(added)} joined rows for a partition of {len(part)}")
        for fill, dtypes in joins:
            added = _fill_cast(added, fill, dtypes)
        added = added.reset_index(drop=True)
        added.index = part.index
        columns.append(added)
    new = {c for added in columns for c in added.columns}
    kept = part.drop(columns=[c for c in part.columns if c in new])  # taken whole: see _keys_with_position
    return frame_library(part).concat([kept, *columns], axis=1)


def narrow_frame(events: Any, columns: list[str]) -> Any:
    """Each row's :data:`POSITION` in ``events`` and its ``columns``: what a shuffle carries instead of whole rows."""
    return events.map_partitions(_keys_with_position, columns, meta=meta_with(events._meta[columns], {POSITION: "int64"}))


def route_back(events: Any, narrow: list[tuple[Any, list[tuple[dict[str, Any] | None, dict[str, str]]]]]) -> Any:
    """``events`` plus the columns that each frame of ``narrow`` (from :func:`narrow_frame` of ``events``, in any
    partitioning) gained: a range shuffle per frame on the position takes them to their rows' partitions, where
    they are attached in place (partition *i* of the output is partition *i* of ``events``, same order).
    ``narrow``: (frame, its joins' (fill, name -> dtype) of the new columns), the frames' columns distinct."""
    n = events.npartitions
    bounds = [i << 32 for i in range(n)] + [((n - 1) << 32) | 0xFFFFFFFF]
    new_columns = {c: d for _, joins in narrow for _, dtypes in joins for c, d in dtypes.items()}
    routed = [frame[[POSITION, *(c for _, dtypes in joins for c in dtypes)]].set_index(POSITION, divisions=bounds)
              for frame, joins in narrow]
    meta = meta_with(events._meta.drop(columns=[c for c in new_columns if c in events.columns]), new_columns)
    specs = [joins for _, joins in narrow]
    return dd.map_partitions(_attach, events, specs, *routed, meta=meta, align_dataframes=False)


def shuffle_joins(events: Any, joins: list[Join], checkpoint: Checkpoints | None = None) -> Any:
    """Left-join partitioned (dask) key tables onto ``events`` by hash joins, moving only keys.

    A narrow frame (each row's position and the key columns) is merged with each table in turn,
    then routed back to the rows' partitions (:func:`route_back`): no shuffle carries the rows'
    other columns, nor a key no later join reads. On disk (``checkpoint``) the narrow frame is written after
    each join, so one shuffle at a time holds memory.
    """
    from .key_values import with_key_values  # it imports this module

    keys = list(dict.fromkeys(c for j in joins for c in j.on))
    narrow = with_key_values(narrow_frame(events, keys), keys)  # a hash join routes both sides by the keys' values
    for i, j in enumerate(joins):
        narrow = narrow.merge(with_key_values(j.table[[*j.on, *j.new_columns]], j.on), on=j.on, how="left")
        later = {c for k in joins[i + 1 :] for c in k.on}
        narrow = drop_per_partition(narrow, [c for c in keys if c in narrow.columns and c not in later])
        if checkpoint is not None and checkpoint.directory is not None:
            narrow = checkpoint(narrow)
    return route_back(events, [(narrow, [(j.fill, j.new_columns) for j in joins])])


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
            with naming(path):  # a worker's write error (a full disk) names no file
                frame.to_parquet(str(path), write_index=False)
        except (pa.ArrowException, TypeError) as exc:  # a column parquet cannot hold (e.g. Python objects)
            import warnings

            warnings.warn(f"intermediates: kept in memory, not written as parquet ({exc})", stacklevel=2)
            return frame.persist()
        return dd.read_parquet(str(path), blocksize=None)  # a file per partition: never split (keys stay whole)


def apply_joins(events: Any, joins: list[Join], checkpoint: Checkpoints | None = None) -> Any:
    """Join every key table onto every partition of ``events``.

    In-memory tables are broadcast (see :func:`share`) and joined in one pass
    that keeps partition ``i`` of the output = partition ``i`` of the input,
    same order; partitioned (dask) tables are joined first, by
    :func:`shuffle_joins`, which keeps the partitions and order too.
    """
    events = as_dask(events)
    partitioned = [j for j in joins if is_dask(j.table)]
    if partitioned:
        events = shuffle_joins(events, partitioned, checkpoint)
    joins = [j for j in joins if not is_dask(j.table)]
    if not joins:
        return events
    new_columns: dict[str, str] = {}
    for j in joins:
        new_columns.update(j.new_columns)
    meta = meta_with(events._meta, new_columns)
    specs = [(j.fill, j.new_columns) for j in joins]
    tables = share_all([KeyTable(j.table, j.on) for j in joins])
    return events.map_partitions(_apply_joins, specs, *tables, meta=meta)


def sample_rows(frame: Any, columns: list[str], max_rows: int, seed: int = 0) -> Any:
    """A lazy sample of about ``max_rows`` rows of dask ``frame[columns]`` (all of them when it has fewer;
    counting the rows costs a pass over the frame)."""
    n = int(frame.map_partitions(len).sum().compute())
    frac = min(1.0, max_rows / max(n, 1))
    part = frame[columns]
    return part.sample(frac=frac, random_state=seed) if frac < 1.0 else part


def in_memory(obj: Any) -> Any:
    """``obj`` computed if it is a dask collection (a partitioned table, a lazy reduction)."""
    return obj.compute() if is_dask(obj) else obj


def key_tables(graphs: list[Any], limit: int | None, partitioned: list[bool] | None = None, also: tuple | list = ()) -> list[Any]:
    """Compute lazy key tables (``None`` entries pass through), all in one pass.

    A table reduced into one partition (``partitioned`` False, the default) is computed into
    memory on the driver. One reduced ``partitioned`` is persisted on the workers and sized:
    gathered when it has at most ``limit`` rows (broadcast joins), else left there, partitioned
    (shuffle joins). ``also``: further lazy values computed in the same pass, returned after the tables.
    """
    flags = partitioned or [False] * len(graphs)
    small = [g for g, p in zip(graphs, flags) if g is not None and not p]
    large = dask.persist(*[g for g, p in zip(graphs, flags) if g is not None and p])
    done = dask.compute(*small, *also, *[t.map_partitions(len).sum() for t in large])
    tables, extra, sizes = iter(done[: len(small)]), done[len(small) : len(small) + len(also)], done[len(small) + len(also) :]
    kept = iter([t.compute() if limit is not None and n <= limit else t for t, n in zip(large, sizes)])
    return [None if g is None else next(kept) if p else next(tables) for g, p in zip(graphs, flags)] + list(extra)


def key_name(key: list[str]) -> str:
    """Column-name fragment for a (possibly multi-column) key."""
    return "__".join(key)


def drop_empty_partitions(frame: Any) -> Any:
    """``frame`` (dask, ideally persisted) without its empty partitions (at least one kept)."""
    sizes = frame.map_partitions(len).compute().tolist()
    keep = [i for i, n in enumerate(sizes) if n > 0] or [0]
    return frame if len(keep) == len(sizes) else frame.partitions[keep]
