"""Fold assignment for out-of-fold encodings.

* ``hash`` (default): fold = splitmix64 hash of the row key columns mod K. It
  depends only on the row's own key, so folds are identical whatever the
  partitioning, worker count or backend (NVTabular-style per-partition folds
  are not).
* ``contiguous``: K equal blocks of rows in data order (time order for the
  day-partitioned store); depends on row order, not on partition count.
* ``random``: a seeded random fold per row, drawn per partition; it changes
  when the data are re-partitioned (offered for comparison only).
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from .. import hashing
from ..backend import array_module, series_like, values
from .frames import as_dask

FOLD = "_fold"
MAX_FOLDS = 127  # fold ids are int8
FOLD_METHODS = ("hash", "contiguous", "random")


def _hash_folds(part: Any, row_key: list[str], n_folds: int, seed: int) -> Any:
    nulls = [c for c in row_key if bool(part[c].isna().any())]
    if nulls:
        raise ValueError(f"fold_method='hash': the row key column(s) {nulls} hold missing ids; a row without its "
                         "identity has no stable fold: fill or drop those rows")
    h = hashing.combine([values(part[c]).astype(np.int64) for c in row_key], seed)
    return (h % np.uint64(n_folds)).astype(np.int8)


def _assign(part: Any, row_key: list[str], n_folds: int, method: str, seed: int, offset: int, total: int, partition_info: dict | None = None) -> Any:
    xp = array_module(part)
    if method == "hash":
        folds = _hash_folds(part, row_key, n_folds, seed)
    elif method == "contiguous":
        pos = xp.arange(offset, offset + len(part), dtype=np.int64)
        folds = (pos * n_folds // max(total, 1)).astype(np.int8)
    else:
        number = (partition_info or {}).get("number", 0)
        rng = np.random.default_rng([operator.index(seed) & 0xFFFFFFFFFFFFFFFF, number])  # any int seed (numpy too), as hashing.combine takes it
        folds = xp.asarray(rng.integers(0, n_folds, len(part)).astype(np.int8))
    return part.assign(**{FOLD: series_like(part, folds)})


def assign_folds(frame: Any, row_key: list[str], n_folds: int, method: str = "hash", seed: int = 0) -> Any:
    """``frame`` (dask) with an int8 ``_fold`` column in [0, n_folds)."""
    if method not in FOLD_METHODS:
        raise ValueError(f"fold_method must be one of {FOLD_METHODS}, got {method!r}")
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or not 2 <= n_folds <= MAX_FOLDS:
        raise ValueError(f"n_folds must be a whole number from 2 to {MAX_FOLDS}, got {n_folds!r}")
    missing = [c for c in row_key if c not in frame.columns]
    if method == "hash" and missing:
        raise ValueError(f"fold_method='hash' needs the row key columns {missing} (set row_key=...)")
    frame = as_dask(frame)
    if method == "hash":
        import pandas as pd

        odd = {c: str(frame._meta[c].dtype) for c in row_key if not pd.api.types.is_integer_dtype(frame._meta[c].dtype)}
        if odd:
            raise ValueError(f"fold_method='hash' hashes integer row ids; the row key columns {odd} are not integers "
                             "(pass integer id columns as row_key, e.g. ids hashed to int64, or another fold_method)")
    meta = frame._meta.assign(**{FOLD: frame._meta.index.to_series().astype("int8")})
    if method != "contiguous":
        return frame.map_partitions(_assign, row_key, n_folds, method, seed, 0, 0, meta=meta)
    sizes = frame.map_partitions(len).compute().tolist()
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).tolist()
    total = int(sum(sizes))
    parts = [
        frame.partitions[i].map_partitions(_assign, row_key, n_folds, method, seed, int(off), total, meta=meta)
        for i, off in enumerate(offsets)
    ]
    import dask.dataframe as dd

    return dd.concat(parts)
