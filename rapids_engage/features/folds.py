"""Fold assignment for out-of-fold encodings.

Rows that share the fold key (``key``: a ranking group, so that one impression's rows share a fold, or the row
key, so that copies of a row do) share a fold under every method:

* ``hash`` (default): fold = splitmix64 hash of the key columns mod K. It
  depends only on the row's own key, so folds are identical whatever the
  partitioning, worker count or backend (NVTabular-style per-partition folds
  are not).
* ``contiguous``: K equal blocks of rows in data order (time order for the
  day-partitioned store), a key's rows in the block of its first row; depends
  on row order, not on partition count.
* ``random``: a seeded random fold per key (a hash of the key salted apart from
  ``hash``'s, so the same seed draws other folds); without a key (``key=[]``) a
  seeded random fold per row, drawn per partition, which changes when the data
  are re-partitioned (offered for comparison only).
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from .. import hashing
from ..backend import array_module, series_like, values
from .frames import POSITION, Checkpoints, Join, as_dask, meta_with, narrow_frame, shuffle_joins
from .key_values import with_key_values

FOLD = "_fold"
MAX_FOLDS = 127  # fold ids are int8
FOLD_METHODS = ("hash", "contiguous", "random")
#: Mixed into the seed of ``random`` folds: a random fold is not the ``hash`` fold of the same seed.
RANDOM_SALT = 0x5EED_F01D_0000_0001


def _checked_key(part: Any, key: list[str], method: str, what: str) -> Any:
    """``part``, refused when a key column holds a missing value (such a row has no stable fold)."""
    nulls = [c for c in key if bool(part[c].isna().any())]
    if nulls:
        raise ValueError(f"fold_method={method!r}: the {what} column(s) {nulls} hold missing ids; a row without its "
                         f"{what} has no stable fold: fill or drop those rows")
    return part


def _hash_folds(part: Any, key: list[str], n_folds: int, seed: int) -> Any:
    h = hashing.combine([values(part[c]).astype(np.int64) for c in key], seed)
    return (h % np.uint64(n_folds)).astype(np.int8)


def _assign(part: Any, key: list[str], n_folds: int, method: str, seed: int, what: str, partition_info: dict | None = None) -> Any:
    if key:
        _checked_key(part, key, method, what)
    if method == "hash":
        folds = _hash_folds(part, key, n_folds, seed)
    elif key:  # random, by key
        folds = _hash_folds(part, key, n_folds, (operator.index(seed) & 0xFFFFFFFFFFFFFFFF) ^ RANDOM_SALT)
    else:
        number = (partition_info or {}).get("number", 0)
        rng = np.random.default_rng([operator.index(seed) & 0xFFFFFFFFFFFFFFFF, number])  # any int seed (numpy too), as hashing.combine takes it
        folds = array_module(part).asarray(rng.integers(0, n_folds, len(part)).astype(np.int8))
    return part.assign(**{FOLD: series_like(part, folds)})


def _block_folds(firsts: Any, offsets: np.ndarray, n_folds: int, total: int) -> Any:
    """The fold of each key of ``firsts`` from the :data:`POSITION` of its first row: the block of that row's
    place in data order (``offsets``: each partition's first row's)."""
    xp = array_module(firsts)
    pos = values(firsts[POSITION]).astype(np.int64)
    row = xp.asarray(offsets)[pos >> 32] + (pos & 0xFFFFFFFF)
    return firsts.drop(columns=[POSITION]).assign(**{FOLD: series_like(firsts, (row * n_folds // max(total, 1)).astype(np.int8))})


def _contiguous(frame: Any, key: list[str], n_folds: int, what: str, meta: Any, checkpoint: Checkpoints | None) -> Any:
    """Blocks in data order; a key's rows take the block of its first row (found by a groupby of the rows' keys
    and positions, joined back by a shuffle join that keeps the partitions and their order). The rows are kept
    first (``checkpoint``, default persisted): positions and the join need partitions that a lazy read would
    re-partition differently for each of its projections."""
    if key:
        frame = (checkpoint or Checkpoints())(frame.map_partitions(_checked_key, key, "contiguous", what, meta=frame._meta))
    sizes = frame.map_partitions(len).compute().tolist()
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    total = int(sum(sizes))
    if not key:
        return frame.map_partitions(_row_blocks, offsets, n_folds, total, meta=meta)
    firsts = with_key_values(narrow_frame(frame, key), key).groupby(key, sort=False).agg({POSITION: "min"}, split_out=frame.npartitions).reset_index()
    # the table's keys are the values the groupby took (not the rows' categoricals, which its meta said they were)
    table = firsts.map_partitions(_block_folds, offsets, n_folds, total, meta=_block_folds(firsts._meta, offsets, n_folds, total))
    return shuffle_joins(frame, [Join(table, key, {FOLD: "int8"})])


def _row_blocks(part: Any, offsets: np.ndarray, n_folds: int, total: int, partition_info: dict | None = None) -> Any:
    """``part`` with each row's block of its place in data order (``offsets``: each partition's first row's)."""
    start = int(offsets[(partition_info or {}).get("number", 0)])
    row = array_module(part).arange(start, start + len(part), dtype=np.int64)
    return part.assign(**{FOLD: series_like(part, (row * n_folds // max(total, 1)).astype(np.int8))})


def assign_folds(frame: Any, key: list[str], n_folds: int, method: str = "hash", seed: int = 0, what: str = "row key",
                 checkpoint: Checkpoints | None = None) -> Any:
    """``frame`` (dask) with an int8 ``_fold`` column in [0, n_folds): rows with equal ``key`` values in one fold
    (``key``: the fold key; ``what``: what it is, for messages: ``row key``, ``group``; ``checkpoint``: where
    contiguous folds by key keep the rows, see :class:`~.frames.Checkpoints`)."""
    if method not in FOLD_METHODS:
        raise ValueError(f"fold_method must be one of {FOLD_METHODS}, got {method!r}")
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or not 2 <= n_folds <= MAX_FOLDS:
        raise ValueError(f"n_folds must be a whole number from 2 to {MAX_FOLDS}, got {n_folds!r}")
    key = list(key)
    missing = [c for c in key if c not in frame.columns]
    if missing:
        raise ValueError(f"fold_method={method!r} needs the {what} columns {missing}, whose rows share a fold "
                         "(set row_key=...; row_key=() gives contiguous and random folds per row)")
    if method == "hash" and not key:
        raise ValueError("fold_method='hash' hashes the row key: row_key=() leaves nothing to hash (name the id "
                         "columns, or take fold_method contiguous or random for folds per row)")
    frame = as_dask(frame)
    if method != "contiguous" and key:
        import pandas as pd

        odd = {c: str(frame._meta[c].dtype) for c in key if not pd.api.types.is_integer_dtype(frame._meta[c].dtype)}
        if odd:
            raise ValueError(f"fold_method={method!r} hashes integer ids; the {what} columns {odd} are not integers "
                             "(pass integer id columns as row_key, e.g. ids hashed to int64, or fold_method contiguous)")
    meta = meta_with(frame._meta, {FOLD: "int8"})
    if method == "contiguous":
        return _contiguous(frame, key, n_folds, what, meta, checkpoint)
    return frame.map_partitions(_assign, key, n_folds, method, seed, what, meta=meta)
