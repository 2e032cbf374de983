"""Encodings computed where the key's rows are (by_key) against brute-force references (hypothesis)."""

from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from rapids_engage.features import TargetEncoder
from rapids_engage.features.by_key import encode_by_key
from rapids_engage.features.counts import DAY, CountEncoder
from rapids_engage.features.folds import FOLD, assign_folds
from rapids_engage.features.frames import Checkpoints

TARGETS = ["like", "reply"]
KEY = ["user", "lang"]


def make_frame(n: int, n_users: int, null_share: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lang = rng.choice(np.array(["a", "b", None], dtype=object), n, p=[0.5 * (1 - null_share)] * 2 + [null_share])
    return pd.DataFrame(
        {
            "tweet_id": rng.integers(-(2**62), 2**62, n),
            "user": rng.integers(0, n_users, n),
            "lang": pd.array(lang, dtype="string"),
            DAY: rng.integers(0, 3, n),
            "like": rng.integers(0, 2, n).astype("int8"),
            "reply": (rng.random(n) < 0.2).astype("int8"),
        }
    )


def brute_force(df: pd.DataFrame, k_folds: int, s: float) -> dict[str, np.ndarray]:
    """Each row's out-of-fold encodings, key count and per-day count, row by row."""
    folds = df[FOLD].to_numpy()
    keyed = df[KEY].notna().all(axis=1).to_numpy()
    keys = [tuple(r) for r in df[KEY].astype(object).fillna("<null>").to_numpy()]  # compared where keyed only
    days = df[DAY].to_numpy()
    out = {f"te_user__lang_{t}": np.full(len(df), np.nan) for t in TARGETS}
    out["cnt_user__lang"] = np.zeros(len(df), np.int64)
    out["cnt_day_user__lang"] = np.zeros(len(df), np.int64)
    for i in range(len(df)):
        other = folds != folds[i]  # the prior: every row outside the fold; a null key gets it
        if not keyed[i]:
            for t in TARGETS:
                y = df[t].to_numpy().astype(float)
                out[f"te_user__lang_{t}"][i] = y[other].mean() if other.any() else y.mean()
            continue
        same = keyed & np.array([key == keys[i] for key in keys])
        out["cnt_user__lang"][i] = same.sum()
        out["cnt_day_user__lang"][i] = (same & (days == days[i])).sum()
        for t in TARGETS:
            y = df[t].to_numpy().astype(float)
            prior = y[other].mean() if other.any() else y.mean()
            n = (same & other).sum()
            out[f"te_user__lang_{t}"][i] = (y[same & other].sum() + s * prior) / (n + s) if n + s > 0 else prior
    return out


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(30, 150),
    n_users=st.integers(1, 12),
    null_share=st.sampled_from([0.0, 0.2]),
    k=st.integers(2, 5),
    s=st.sampled_from([0.0, 1.0, 20.0]),
    nparts=st.integers(1, 5),
    limit=st.sampled_from([0, 10**9]),  # tables kept partitioned / gathered
    seed=st.integers(0, 10**6),
)
def test_values_and_tables_match_brute_force(n, n_users, null_share, k, s, nparts, limit, seed):
    df = make_frame(n, n_users, null_share, seed)
    # each partition indexed from 0, as parquet reads are: the shuffled key partitions repeat labels
    parts = dd.from_pandas(df, npartitions=nparts, sort=False).map_partitions(lambda p: p.reset_index(drop=True))
    frame = assign_folds(parts, ["tweet_id", "user"], k).persist()
    te, cnt = TargetEncoder(KEY, n_folds=k, smooth=s), CountEncoder(KEY)
    te.set_fold_totals(te.fold_totals_graph(frame, TARGETS).compute(), TARGETS)
    lazy = encode_by_key(frame, [te], [cnt], [cnt], Checkpoints(), limit)
    got = lazy.compute()
    assert dict(got.dtypes) == dict(lazy._meta.dtypes)
    assert list(got.index) == list(frame.compute().index)  # every partition keeps its rows, in order
    want = brute_force(got, k, s)
    for name, values in want.items():
        np.testing.assert_allclose(got[name].to_numpy(), values, rtol=1e-12, atol=1e-12, err_msg=name)
    # the fitted tables are the in-memory fit's (limit 0: they stay partitioned on the workers)
    ref = TargetEncoder(KEY, n_folds=k, smooth=s, row_key=["tweet_id", "user"]).fit(df, TARGETS)  # folds do not matter here
    if limit == 0:  # partitioned tables: their meta says what their partitions hold
        assert dict(te.stats_.compute().dtypes) == dict(te.stats_._meta.dtypes)
    stats = te.stats_.compute() if limit == 0 else te.stats_
    pd.testing.assert_frame_equal(_sorted(stats), _sorted(ref.stats_), check_dtype=True)
    assert te.prior_ == ref.prior_ and te.n_rows_ == ref.n_rows_
    counts = cnt.counts_.compute() if limit == 0 else cnt.counts_
    pd.testing.assert_frame_equal(_sorted(counts), _sorted(CountEncoder(KEY, per_day=False).fit(df).counts_))  # df has no time


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values(KEY).reset_index(drop=True)


def test_a_fold_without_rows_and_all_null_partitions():
    """Keys in one partition only, partitions with no key at all: values stay the brute force's."""
    df = make_frame(60, 3, 0.0, 3)
    df.loc[:29, "lang"] = pd.NA  # the first partition has no keyed row
    frame = assign_folds(dd.from_pandas(df, npartitions=2, sort=False), ["tweet_id", "user"], 4).persist()
    te, cnt = TargetEncoder(KEY, n_folds=4, smooth=2.0), CountEncoder(KEY)
    te.set_fold_totals(te.fold_totals_graph(frame, TARGETS).compute(), TARGETS)
    got = encode_by_key(frame, [te], [cnt], [], Checkpoints(), None).compute()
    for name, values in brute_force(got, 4, 2.0).items():
        if name in got:
            np.testing.assert_allclose(got[name].to_numpy(), values, rtol=1e-12, atol=1e-12, err_msg=name)
    assert got.loc[:29, "cnt_user__lang"].eq(0).all() and got.loc[:29, "te_user__lang_like"].notna().all()


def test_a_table_of_exactly_the_limit_rows_is_gathered():
    """``broadcast_limit``: tables of more rows stay partitioned; one of exactly the limit is gathered (broadcast)."""
    from rapids_engage.features.frames import is_dask

    df = make_frame(80, 4, 0.0, 11)
    n_keys = len(df[KEY].drop_duplicates())
    frame = assign_folds(dd.from_pandas(df, npartitions=3, sort=False), ["tweet_id", "user"], 3).persist()
    for limit, partitioned in ((n_keys, False), (n_keys - 1, True)):
        cnt = CountEncoder(KEY)
        encode_by_key(frame, [], [cnt], [], Checkpoints(), limit)
        assert is_dask(cnt.counts_) == partitioned and len(cnt.counts_) == n_keys, limit


def test_gathered_tables_are_indexed_like_the_in_memory_fit():
    """A gathered table (the partitions' tables concatenated) is the fitted ``stats_`` / ``counts_``
    (public attributes): indexed 0..n-1 as an in-memory fit's, not by the repeated labels of its partitions."""
    df = make_frame(90, 6, 0.2, 5)
    frame = assign_folds(dd.from_pandas(df, npartitions=3, sort=False), ["tweet_id", "user"], 3).persist()
    te, cnt = TargetEncoder(KEY, n_folds=3, smooth=1.0), CountEncoder(KEY)
    te.set_fold_totals(te.fold_totals_graph(frame, TARGETS).compute(), TARGETS)
    encode_by_key(frame, [te], [cnt], [], Checkpoints(), 10**9)
    for table in (te.stats_, cnt.counts_):
        assert isinstance(table, pd.DataFrame)
        pd.testing.assert_index_equal(table.index, pd.RangeIndex(len(table)), exact=False)
        assert table.index.is_unique and len(table.loc[[0]]) == 1


def test_a_pass_shuffles_and_writes_only_what_it_and_later_passes_read(tmp_path):
    """Each key's shuffle carries the narrow columns its pass and the later ones read, and no earlier pass's
    values (they were shuffled and written again by every later pass); a key column, the folds and the labels
    that only earlier passes read are not shuffled or written again either."""
    import pyarrow.parquet as pq

    from rapids_engage.features.frames import POSITION

    df = make_frame(120, 5, 0.2, 7)
    frame = assign_folds(dd.from_pandas(df, npartitions=3, sort=False), ["tweet_id", "user"], 3).persist()
    te = TargetEncoder(KEY, n_folds=3, smooth=1.0)
    te.set_fold_totals(te.fold_totals_graph(frame, TARGETS).compute(), TARGETS)
    by_user = CountEncoder(["user"])
    got = encode_by_key(frame, [te], [by_user], [], Checkpoints(tmp_path), 0).compute()
    written = [set(pq.read_schema(next(path.glob("*.parquet"))).names) for path in sorted(tmp_path.iterdir())]
    assert written[0] == {POSITION, *KEY, FOLD, *TARGETS}
    assert written[1] == {POSITION, "user"}  # no lang, folds, labels, nor the first pass's te_user__lang_*
    want = brute_force(got, 3, 1.0)
    for t in TARGETS:
        np.testing.assert_allclose(got[f"te_user__lang_{t}"].to_numpy(), want[f"te_user__lang_{t}"], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(got["cnt_user"].to_numpy(), df.groupby("user")["user"].transform("size").to_numpy())
