"""Key-table joins: the hash-index path (pandas) and the merge path (cudf's, run here on pandas) agree."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rapids_engage.features.frames import KeyTable, join_all, key_ids


def _tables(rng):
    users = pd.DataFrame({"u": np.arange(0, 40, 2), "te_u": rng.random(20)})
    pairs = pd.DataFrame({"u": [0, 2, 4, 4], "lang": ["x", "x", "y", None], "cnt_pair": [5, 6, 7, 8]})
    counts = pd.DataFrame({"u": np.arange(0, 40, 4), "cnt_u": np.arange(10)})
    return [
        (users, ["u"], {"te_u": 0.5}, {"te_u": "float32"}),
        (pairs, ["u", "lang"], {"cnt_pair": 0}, {"cnt_pair": "int64"}),
        (counts, ["u"], {"cnt_u": 0}, {"cnt_u": "int64"}),
    ]


def test_merge_path_equals_index_path():
    rng = np.random.default_rng(0)
    part = pd.DataFrame({"u": rng.integers(0, 50, 300), "lang": rng.choice(["x", "y", "z"], 300).astype(object)})
    part.loc[::11, "lang"] = None
    part.index = rng.permutation(np.arange(1000, 1300))  # a shuffled index that must survive
    specs = _tables(rng)
    indexed = [(KeyTable(t, on), fill, dtypes) for t, on, fill, dtypes in specs]
    merged = []
    for t, on, fill, dtypes in specs:
        table = KeyTable(t, on)
        table.index = None  # what a cudf table gets: merges instead of a hash index
        merged.append((table, fill, dtypes))
    want, got = join_all(part, indexed), join_all(part, merged)
    pd.testing.assert_frame_equal(got[want.columns], want)
    assert want.index.equals(part.index) and (want["te_u"][part["u"] % 2 == 1] == 0.5).all()
    both = (part["u"] == 4) & part["lang"].isna()
    assert (want.loc[both, "cnt_pair"] == 8).all()  # a null key component matches the table's null


def test_key_ids_of_keys_with_nulls_in_several_columns():
    """-1 for every row with a null in its key, several null groups and columns included; the keyed
    rows get dense ids, one per key (the ids cudf's ngroup would have got wrong: GPU parity test)."""
    part = pd.DataFrame({"u": [1, 1, 2, 3, 2, 3, 1], "day": ["a", None, None, "b", "a", "b", None]})
    ids = key_ids(part, ["u", "day"])
    assert ids.dtype == np.int64
    np.testing.assert_array_equal(ids, [0, -1, -1, 1, 2, 1, -1])
    np.testing.assert_array_equal(key_ids(part, ["day"]), [0, -1, -1, 1, 0, 1, -1])
    np.testing.assert_array_equal(key_ids(part.iloc[[1, 2]], ["u", "day"]), [-1, -1])
    np.testing.assert_array_equal(key_ids(part.dropna(), ["u", "day"]), [0, 1, 2, 1])


def test_key_kinds_of_cudf_strings():
    """cudf's string columns are of dtype object, which a pandas column's may hold anything in: the
    number / text check of the encoders' keys took them for unknown and never fired on GPU."""
    from rapids_engage.features.estimator_conventions import _key_kind

    assert _key_kind(np.dtype(object), gpu=True) == "text" and _key_kind(np.dtype(object)) is None
    assert _key_kind(pd.CategoricalDtype(pd.Index(["a"], dtype=object)), gpu=True) == "text"
    assert _key_kind(np.dtype("int64"), gpu=True) == "numbers"


def test_broadcast_tables_go_to_the_workers_in_one_scatter(monkeypatch):
    """apply_joins ships all its in-memory key tables in one scatter: a scatter each was a round trip to the
    scheduler per table (15 a feature build of the demo, twice); the joined values are join_all's."""
    import dask
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    from rapids_engage.features.frames import Join, apply_joins

    rng = np.random.default_rng(1)
    part = pd.DataFrame({"u": rng.integers(0, 50, 200), "lang": rng.choice(["x", "y"], 200).astype(object)})
    specs = _tables(rng)
    joins = [Join(t, on, dtypes, fill) for t, on, fill, dtypes in specs]
    calls = []
    scatter = Client.scatter
    monkeypatch.setattr(Client, "scatter", lambda self, data, **kw: calls.append(data) or scatter(self, data, **kw))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, Client(cluster):
        with dask.config.set({"dataframe.convert-string": False}):  # object keys, as the pandas part's
            got = apply_joins(dd.from_pandas(part, npartitions=2), joins).compute()
    assert len(calls) == 1 and len(calls[0]) == 3
    want = join_all(part, [(KeyTable(t, on), fill, dtypes) for t, on, fill, dtypes in specs])
    pd.testing.assert_frame_equal(got, want)


def test_a_pickled_key_table_carries_what_the_workers_join_with_not_the_table_too():
    """A KeyTable goes to every worker (scatter): with a hash index (pandas) it ships the index and the
    columns the joins read, not the table they came from as well; the copy joins as the original."""
    import pickle

    rng = np.random.default_rng(2)
    part = pd.DataFrame({"u": rng.integers(0, 50, 300), "lang": rng.choice(["x", "y", "z"], 300).astype(object)})
    for t, on, fill, dtypes in _tables(rng):
        table = KeyTable(t, on)
        needed = len(pickle.dumps((table.index, table.columns, table.on)))
        copy = pickle.loads(pickle.dumps(table))
        assert len(pickle.dumps(table)) < needed + 200
        pd.testing.assert_frame_equal(join_all(part, [(copy, fill, dtypes)]), join_all(part, [(table, fill, dtypes)]))


def test_the_merge_path_keeps_a_column_named_like_its_row_positions():
    """cudf's merge path numbered the rows in a column `_pos`, replacing the frame's own `_pos`, then dropped it:
    a TargetEncoder / CountEncoder transform or a store's features on GPU lost that column."""
    rng = np.random.default_rng(1)
    part = pd.DataFrame({"u": rng.integers(0, 50, 100), "lang": rng.choice(["x", "y"], 100).astype(object),
                         "_pos": rng.permutation(100).astype(str)}, index=rng.permutation(np.arange(100, 200)))
    specs = _tables(rng)
    merged = []
    for t, on, fill, dtypes in specs:
        table = KeyTable(t, on)
        table.index = None  # the cudf route
        merged.append((table, fill, dtypes))
    got, want = join_all(part, merged), join_all(part, [(KeyTable(t, on), fill, dtypes) for t, on, fill, dtypes in specs])
    assert got["_pos"].tolist() == part["_pos"].tolist()
    pd.testing.assert_frame_equal(got[want.columns], want)


def test_tables_sharing_key_columns_join_as_the_merge_path():
    """The hash-index path factorizes a key column once per partition for every table holding it (in any order
    of the key's columns, nulls and strings included); each table's values equal those of its own merge."""
    rng = np.random.default_rng(3)
    part = pd.DataFrame({"u": rng.integers(0, 6, 400), "lang": pd.array(rng.choice(["x", "y", "z"], 400), dtype="string"),
                         "day": rng.integers(0, 3, 400).astype("int8")})
    part.loc[::13, "lang"] = None
    pairs = part.drop_duplicates(["u", "lang"]).iloc[::2][["u", "lang"]].assign(cnt_pair=lambda t: np.arange(len(t)))
    flipped = part.drop_duplicates(["lang", "u"]).iloc[1::2][["lang", "u"]].assign(te_pair=lambda t: rng.random(len(t)))
    days = part.drop_duplicates(["u", "day"]).iloc[::3][["u", "day"]].assign(cnt_day=lambda t: np.arange(len(t)))
    specs = [(pairs, ["u", "lang"], {"cnt_pair": 0}, {"cnt_pair": "int64"}), (flipped, ["lang", "u"], None, {"te_pair": "float64"}),
             (days, ["u", "day"], {"cnt_day": 0}, {"cnt_day": "int64"})]
    want = []
    for t, on, fill, dtypes in specs:
        table = KeyTable(t, on)
        table.index = None  # the merge route, table by table
        want.append(join_all(part, [(table, fill, dtypes)]))
    got = join_all(part, [(KeyTable(t, on), fill, dtypes) for t, on, fill, dtypes in specs])
    for (_, _, _, dtypes), alone in zip(specs, want):
        pd.testing.assert_frame_equal(got[list(dtypes)], alone[list(dtypes)])
    assert got["te_pair"].notna().any() and got["te_pair"].isna().any() and (got["cnt_day"] > 0).any()


def test_a_shuffle_join_writes_only_the_keys_later_joins_read(tmp_path):
    """Partitioned tables joined by hash joins (on disk: written after each join): a key column no later join reads
    is not shuffled or written again (every join's checkpoint held every key); the values are the broadcast joins'."""
    import dask
    import dask.dataframe as dd
    import pyarrow.parquet as pq

    from rapids_engage.features.frames import POSITION, Checkpoints, Join, shuffle_joins

    rng = np.random.default_rng(4)
    part = pd.DataFrame({"u": rng.integers(0, 50, 200), "lang": rng.choice(["x", "y"], 200).astype(object),
                         "v": rng.random(200)})
    specs = _tables(rng)[1::-1]  # the pair first: its lang is read by it alone
    with dask.config.set({"dataframe.convert-string": False}):  # object keys, as the pandas part's
        joins = [Join(dd.from_pandas(t, npartitions=2), on, dtypes, fill) for t, on, fill, dtypes in specs]
        got = shuffle_joins(dd.from_pandas(part, npartitions=3), joins, Checkpoints(tmp_path)).compute()
    written = [set(pq.read_schema(next(path.glob("*.parquet"))).names) for path in sorted(tmp_path.iterdir())]
    assert written == [{POSITION, "u", "cnt_pair"}, {POSITION, "cnt_pair", "te_u"}]
    want = join_all(part, [(KeyTable(t, on), fill, dtypes) for t, on, fill, dtypes in specs])
    assert sorted(got.columns) == sorted(want.columns)
    pd.testing.assert_frame_equal(got, want[got.columns])
