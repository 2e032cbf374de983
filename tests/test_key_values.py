"""Categorical keys whose categories differ between partitions (a dictionary per parquet file of a user's data) meet
their own rows and state in every key-based shuffle, hash join and ``split_out`` groupby (:mod:`.key_values`).

dask_cudf routes a categorical by its codes (``hash_object_cudf`` -> cudf ``hash_values``), pandas by its values:
``routing`` runs each test both ways on pandas, the GPU's way emulated by hashing categoricals by their codes."""

from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from rapids_engage.features import TargetEncoder
from rapids_engage.features.by_key import encode_by_key
from rapids_engage.features.counts import DAY, CountEncoder
from rapids_engage.features.folds import FOLD, assign_folds
from rapids_engage.features.frames import Checkpoints
from rapids_engage.features.history import HistoryEncoder, history_features
from rapids_engage.features.sessions import SessionEncoder, session_features

T = "t"
TARGETS = ["like", "reply"]


@pytest.fixture(params=[False, True], ids=["hash-by-values", "hash-by-codes"])
def routing(request, monkeypatch) -> bool:
    """Whether dask hashes a pandas categorical by its codes here, as dask_cudf does a cudf one."""
    if request.param:
        from dask.dataframe.dispatch import hash_object_dispatch

        by_values = hash_object_dispatch.dispatch(pd.DataFrame)

        def by_codes(frame, index=True, **kwargs):
            codes = {c: frame[c].cat.codes for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)}
            return by_values(frame.assign(**codes), index=index, **kwargs)

        monkeypatch.setitem(hash_object_dispatch._lookup, pd.DataFrame, by_codes)
    return request.param


def events(n: int, seed: int, start: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    user = pd.array([f"u{u}" for u in rng.integers(0, 30, n)], dtype=object)
    user[rng.random(n) < 0.05] = None
    return pd.DataFrame({"row": np.arange(start, start + n), "user": user, "lang": rng.choice(["en", "fr", "ja"], n),
                         "group": [f"g{g}" for g in rng.integers(0, 20, n)],
                         T: start * 60 + np.sort(rng.integers(0, n * 60, n)), DAY: rng.integers(0, 3, n),
                         "like": rng.integers(0, 2, n).astype("int8"), "reply": (rng.random(n) < 0.3).astype("int8")})


def categorical_parts(frame: pd.DataFrame, n: int, columns: list[str]) -> dd.DataFrame:
    """``frame`` in ``n`` dask partitions whose ``columns`` are categoricals of their own values, in an order of their
    own (the meta: the first partition's categories)."""
    bounds = np.linspace(0, len(frame), n + 1).astype(int)
    parts = []
    for i in range(n):
        part = frame.iloc[bounds[i] : bounds[i + 1]].reset_index(drop=True)
        for c in columns:
            values = sorted(part[c].dropna().unique())
            part[c] = pd.Categorical(part[c], categories=values[::-1] if i % 2 else values)
        parts.append(part)
    return dd.from_map(lambda part: part, parts)


def by_row(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index("row").sort_index()


@pytest.mark.parametrize("limit", [None, 0])
def test_history_and_sessions_of_categorical_keys_match_in_memory(routing, limit):
    """Fitting (the state gathered, or kept partitioned) and serving: the features of the in-memory encoders. Before,
    equal keys of differently coded partitions were fitted apart under dask_cudf's routing, and on both backends a
    partitioned state served with its keys cast to the rows' meta categories (the first partition's): the others
    became null and their history was lost."""
    train, later = events(400, 1), events(150, 2, start=400)
    for make, run in ((lambda: HistoryEncoder("user", TARGETS, (3600,), time_column=T), history_features),
                      (lambda: SessionEncoder("user", 600, T), session_features)):
        want = by_row(make().fit_transform(train))
        features = [c for c in want.columns if c not in train.columns]
        enc = make()
        got = by_row(run(categorical_parts(train, 4, ["user"]), enc, limit=limit).compute())
        pd.testing.assert_frame_equal(got[features], want[features])
        served = by_row(run(categorical_parts(later, 3, ["user"]), enc, fit=False).compute())
        pd.testing.assert_frame_equal(served[features], by_row(make().fit(train).transform(later))[features])


def test_by_key_tables_and_contiguous_folds_of_categorical_keys(routing):
    """Target encodings and counts (tables kept partitioned: shuffle joins), per-day counts, contiguous folds (a
    ``split_out`` groupby and a hash join): a key's rows are counted together and all take one fold."""
    df = events(300, 3)
    frame = assign_folds(categorical_parts(df, 4, ["user", "lang", "group"]), ["group"], 3, method="contiguous").persist()
    folds = frame[["group", FOLD]].compute()
    assert len(folds) == len(df) and folds.groupby(folds["group"].astype(object))[FOLD].nunique().eq(1).all()
    te, cnt = TargetEncoder(["user", "lang"], n_folds=3, smooth=1.0), CountEncoder(["user", "lang"])
    te.set_fold_totals(te.fold_totals_graph(frame, TARGETS).compute(), TARGETS)
    got = encode_by_key(frame, [te], [cnt], [cnt], Checkpoints(), 0).compute()
    keys = got[["user", "lang"]].astype(object)
    keyed = keys.notna().all(axis=1)
    same_key = keys.fillna("").agg("|".join, axis=1)
    want_count = same_key.map(same_key[keyed].value_counts()).where(keyed, 0)
    np.testing.assert_array_equal(got["cnt_user__lang"].to_numpy(), want_count.to_numpy())
    per_day = (same_key + "|" + got[DAY].astype(str))
    want_daily = per_day.map(per_day[keyed].value_counts()).where(keyed, 0)
    np.testing.assert_array_equal(got["cnt_day_user__lang"].to_numpy(), want_daily.to_numpy())
    stats = te.stats_.compute()
    assert not stats[["user", "lang"]].astype(object).duplicated().any() and stats["_n"].sum() == keyed.sum()



def parquet_parts(frame: pd.DataFrame, n: int, directory, columns: tuple[str, ...] = ("user",)) -> dd.DataFrame:
    """``frame`` with integer users (some null) in ``n`` parquet files, its ``columns`` a dictionary each of the file's
    values, read by ``dd.read_parquet``: a meta that does not know the categories (its placeholder is text)."""
    directory.mkdir()
    frame = frame.assign(user=frame["user"].str[1:].astype("Int64"))
    bounds = np.linspace(0, len(frame), n + 1).astype(int)
    for i in range(n):
        part = frame.iloc[bounds[i] : bounds[i + 1]].reset_index(drop=True)
        for c in columns:
            values = sorted(part[c].dropna().unique())
            part[c] = pd.Categorical(part[c], categories=values[::-1] if i % 2 else values)
        part.to_parquet(directory / f"part.{i}.parquet")
    return dd.read_parquet(str(directory))


def test_partitioned_state_of_integer_keys_read_with_unknown_categories(routing, tmp_path):
    """A meta's unknown categories (a text placeholder) made the keys' values text: an integer key was '25' in a
    partition without a null and '25.0' in one with, the partitioned state's int64 keys '25', so served rows met no
    state (fitting too: 52% of hist_user_n wrong, under pandas hashing as well). The partitions' categories now give it."""
    train, later = events(400, 1), events(150, 2, start=400)
    train.loc[:99, "user"] = train.loc[:99, "user"].fillna("u1")  # a file without a null: its keys were '25'

    def ints(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(user=frame["user"].str[1:].astype("Int64"))

    for make, run in ((lambda: HistoryEncoder("user", TARGETS, (3600,), time_column=T), history_features),
                      (lambda: SessionEncoder("user", 600, T), session_features)):
        enc = make()
        got = by_row(run(parquet_parts(train, 4, tmp_path / f"{run.__name__}_train"), enc, limit=0).compute())
        want = by_row(make().fit_transform(ints(train)))
        features = [c for c in want.columns if c not in train.columns]
        pd.testing.assert_frame_equal(got[features], want[features])
        served = by_row(run(parquet_parts(later, 3, tmp_path / f"{run.__name__}_later"), enc, fit=False).compute())
        pd.testing.assert_frame_equal(served[features], by_row(make().fit(ints(train)).transform(ints(later)))[features])


def test_folds_and_by_key_tables_of_keys_read_with_unknown_categories(routing, tmp_path):
    """Contiguous folds' key -> fold table claimed the rows' (unknown) categoricals in its meta while holding the
    groupby's values: the shuffle join's key values read categories of a partition that had none (AttributeError)."""
    df = events(300, 3)
    frame = assign_folds(parquet_parts(df, 4, tmp_path / "rows", ("user", "group")), ["group"], 3, method="contiguous")
    frame = frame.persist()
    folds = frame[["group", FOLD]].compute()
    assert len(folds) == len(df) and folds.groupby(folds["group"].astype(object))[FOLD].nunique().eq(1).all()
    cnt = CountEncoder(["user", "lang"])
    got = encode_by_key(frame, [], [cnt], [], Checkpoints(), 0).compute()
    keys = got[["user", "lang"]].astype(object)
    keyed = keys.notna().all(axis=1)
    same_key = keys.astype(str).where(keyed, "").agg("|".join, axis=1)
    np.testing.assert_array_equal(got["cnt_user__lang"].to_numpy(), same_key.map(same_key[keyed].value_counts()).where(keyed, 0))
