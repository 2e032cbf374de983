"""The audit's per-partition comparisons (:mod:`rapids_engage.audit_compare`) on hand-built frames."""

from __future__ import annotations

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from rapids_engage.audit_compare import (co_partitioned, merged_differences, per_partition_counts,
                                         sorted_differences, totals)


def _frames(**fresh_types):
    """200 rows (row key ``k``, time ``t``, encoding ``e``; every 10th key twice at one time), as stored in 3
    partitions and, shuffled, recomputed in 4 (``fresh_types``: dtypes of the recomputed columns)."""
    k = np.arange(200) % 190
    stored = pd.DataFrame({"k": k, "t": k * 10, "e": np.arange(200) / 7})
    stored.loc[stored.index[::17], "e"] = np.nan
    fresh = stored.sample(frac=1, random_state=1).astype(fresh_types or {})
    return dd.from_pandas(fresh, npartitions=4), dd.from_pandas(stored, npartitions=3)


def _count(count, fresh, stored, columns, *args):
    with dask.config.set(scheduler="sync"):
        return totals(per_partition_counts(count, *co_partitioned(fresh, stored, ["k", "t"]), columns, *args).compute())


def test_the_same_rows_in_other_partitions_and_dtypes_do_not_differ():
    """Rows pair up whatever partition, and however many partitions, they were in, and whatever their numbers' dtypes
    (the recomputed time as floats, the key as int32)."""
    fresh, stored = _frames(t="float64", k="int32")
    assert _count(sorted_differences, fresh, stored, ["e"], ["k", "t"], ["e"]) == {"e": 0}
    # copies of a key merge each with each: 10 keys twice, 4 pairs each, 2 of them across copies
    assert _count(merged_differences, fresh, stored, ["compared", "differing"], ["k", "t"], ["e"]) == {
        "compared": 220, "differing": 20}


def test_a_changed_value_and_a_missing_row_differ():
    """A changed encoding counts once; a row the store lacks counts every row of its partition as differing (the
    pairing by order is off there), not nothing."""
    fresh, stored = _frames()
    changed = fresh.assign(e=fresh["e"].where(fresh["k"] != 50, -1.0))
    assert _count(sorted_differences, changed, stored, ["e"], ["k", "t"], ["e"]) == {"e": 1}
    fewer = stored[stored["k"] != 7]
    fresh, fewer = co_partitioned(fresh, fewer, ["k", "t"])
    with dask.config.set(scheduler="sync"):
        parts = [len(p) for p in dask.compute(*fresh.to_delayed())]
        where = [int((p["k"] == 7).any()) for p in dask.compute(*fresh.to_delayed())].index(1)
        counts = per_partition_counts(sorted_differences, fresh, fewer, ["e"], ["k", "t"], ["e"]).compute()
    assert totals(counts) == {"e": parts[where]}


def _hash_categoricals_by_codes(monkeypatch) -> None:
    """dask hashes a pandas categorical by its codes from here on, as dask_cudf does a cudf one (``hash_values``)."""
    from dask.dataframe.dispatch import hash_object_dispatch

    by_values = hash_object_dispatch.dispatch(pd.DataFrame)

    def by_codes(frame, index=True, **kwargs):
        codes = {c: frame[c].cat.codes for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)}
        return by_values(frame.assign(**codes), index=index, **kwargs)

    monkeypatch.setitem(hash_object_dispatch._lookup, pd.DataFrame, by_codes)


@pytest.mark.parametrize("by_codes", [False, True], ids=["hash-by-values", "hash-by-codes"])
@pytest.mark.parametrize("fresh_strings", ["object", "category"])
def test_rows_pair_up_by_a_categorical_key_of_per_file_dictionaries(tmp_path, monkeypatch, by_codes, fresh_strings):
    """The store read from parquet files of a dictionary each (a categorical of unknown categories, its own per
    partition), the recomputed key as strings or as categoricals of their own: every row pairs up. Before, the fresh
    strings were cast to the store's unknown categories (all null: 0 compared, every encoding differing), and
    categoricals routed by their codes (dask_cudf) or sorted by them met other rows."""
    n = 300
    user = np.array([f"u{u}" for u in np.random.default_rng(0).integers(0, 40, n)], dtype=object)
    rows = pd.DataFrame({"k": np.arange(n), "user": user, "t": np.arange(n) * 10, "e": np.arange(n) / 7})
    for i in range(3):
        part = rows.iloc[i * 100 : (i + 1) * 100].copy()
        part["user"] = pd.Categorical(part["user"], categories=sorted(set(part["user"]), reverse=bool(i % 2)))
        part.to_parquet(tmp_path / f"part{i}.parquet", index=False)
    stored = dd.read_parquet(str(tmp_path))
    fresh = rows.sample(frac=1, random_state=1)
    parts = [fresh.iloc[i::4].astype({"user": fresh_strings}) for i in range(4)]  # categories of their own
    fresh = dd.from_map(lambda part: part, parts)
    if by_codes:
        _hash_categoricals_by_codes(monkeypatch)
    on = ["k", "user", "t"]
    with dask.config.set(scheduler="sync"):
        pair = co_partitioned(fresh, stored, on)
        merged = totals(per_partition_counts(merged_differences, *pair, ["compared", "differing"], on, ["e"]).compute())
        pair = co_partitioned(fresh, stored, on)
        sorted_ = totals(per_partition_counts(sorted_differences, *pair, ["e"], on, ["e"]).compute())
    assert merged == {"compared": n, "differing": 0} and sorted_ == {"e": 0}



@pytest.mark.parametrize("collect", [
    lambda f: f.compute(), lambda f: dask.compute(f), lambda f: dask.compute([f]), lambda f: dask.compute({"rows": f}),
    lambda f: f.set_index("k")["t"].compute(),
], ids=["frame", "compute", "in-a-list", "in-a-dict", "series-by-index"])
def test_refuse_rows_catches_rows_collected_in_any_form(refuse_rows, collect):
    """The guard the checks' tests use (``refuse_rows``) must see row-level rows however they come back: inside a
    list or a dict, or as a series (the time, indexed by the row key), as well as a frame."""
    import types

    fresh, _ = _frames()
    module = types.SimpleNamespace(collect=collect)
    refuse_rows(module, "collect", ["k", "t"])
    with dask.config.set(scheduler="sync"), pytest.raises(AssertionError, match="rows collected onto one process"):
        module.collect(fresh)
