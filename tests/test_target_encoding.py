"""Out-of-fold target encoding against a brute-force reference (hypothesis)."""

from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rapids_engage.features import TargetEncoder
from rapids_engage.features.folds import FOLD, assign_folds


def make_frame(n: int, n_users: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "tweet_id": rng.integers(-(2**62), 2**62, n),
            "engaging_user_id": rng.integers(0, n_users, n),
            "lang": rng.choice(["a", "b", "c"], n),
            "like": rng.integers(0, 2, n).astype("int8"),
            "reply": (rng.random(n) < 0.1).astype("int8"),
        }
    )


def brute_force_oof(df: pd.DataFrame, folds: np.ndarray, key: list[str], target: str, s: float) -> np.ndarray:
    keys = list(map(tuple, df[key].to_numpy()))
    y = df[target].to_numpy().astype(float)
    out = np.empty(len(df))
    for i in range(len(df)):
        other = folds != folds[i]
        prior = y[other].mean()
        same = other & np.array([k == keys[i] for k in keys])
        with np.errstate(invalid="ignore"):
            out[i] = (y[same].sum() + s * prior) / (same.sum() + s)
    return out


def folds_of(df: pd.DataFrame, n_folds: int) -> np.ndarray:
    return assign_folds(df, ["tweet_id", "engaging_user_id"], n_folds).compute()[FOLD].to_numpy()


@settings(max_examples=25, deadline=None)
@given(n=st.integers(20, 120), n_users=st.integers(1, 15), k=st.integers(2, 6), s=st.sampled_from([0.0, 1.0, 20.0]), seed=st.integers(0, 10**6))
def test_oof_matches_brute_force(n, n_users, k, s, seed):
    df = make_frame(n, n_users, seed)
    key = ["engaging_user_id", "lang"]
    out = TargetEncoder(key, n_folds=k, smooth=s).fit_transform(df, ["like", "reply"])
    folds = folds_of(df, k)
    for t in ("like", "reply"):
        want = brute_force_oof(df, folds, key, t, s)
        got = out[f"te_engaging_user_id__lang_{t}"].to_numpy()
        finite = np.isfinite(want)  # s=0 with a key alone in its fold: encoder falls back to the prior
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-12, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10**6), row=st.integers(0, 79))
def test_own_fold_labels_never_used(seed, row):
    df = make_frame(80, 5, seed)
    enc = lambda d: TargetEncoder("engaging_user_id", n_folds=4).fit_transform(d, "like")["te_engaging_user_id_like"].to_numpy()
    before = enc(df)
    folds = folds_of(df, 4)
    changed = df.copy()
    same_fold = folds == folds[row]
    changed.loc[same_fold, "like"] = 1 - changed.loc[same_fold, "like"]
    after = enc(changed)
    np.testing.assert_array_equal(before[same_fold], after[same_fold])


def test_validation_rows_use_train_statistics_only():
    train = make_frame(500, 20, 1)
    valid = make_frame(200, 30, 2)
    enc = TargetEncoder("engaging_user_id", smooth=5).fit(train, "like")
    got = enc.transform(valid)["te_engaging_user_id_like"].to_numpy()
    prior = train["like"].mean()
    stats = train.groupby("engaging_user_id")["like"].agg(["sum", "count"])
    want = [
        (stats.loc[u, "sum"] + 5 * prior) / (stats.loc[u, "count"] + 5) if u in stats.index else prior
        for u in valid["engaging_user_id"]
    ]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # validation labels cannot matter: flip them all
    flipped = valid.assign(like=1 - valid["like"])
    np.testing.assert_array_equal(enc.transform(flipped)["te_engaging_user_id_like"].to_numpy(), got)


@pytest.mark.parametrize("nparts", [1, 3, 11])
def test_partitioning_does_not_change_values(nparts):
    df = make_frame(600, 25, 7)
    ref = TargetEncoder(["engaging_user_id", "lang"]).fit_transform(df, ["like"]).sort_values("tweet_id")
    got = TargetEncoder(["engaging_user_id", "lang"]).fit_transform(dd.from_pandas(df, npartitions=nparts), ["like"]).compute()
    got = got.sort_values("tweet_id")
    np.testing.assert_array_equal(got["te_engaging_user_id__lang_like"].to_numpy(), ref["te_engaging_user_id__lang_like"].to_numpy())


def test_dask_output_keeps_partition_rows_in_order():
    df = make_frame(300, 10, 3)
    ddf = dd.from_pandas(df, npartitions=4)
    out = TargetEncoder("lang").fit_transform(ddf, "like").compute()
    np.testing.assert_array_equal(out["tweet_id"].to_numpy(), df["tweet_id"].to_numpy())


def test_y_as_series_and_state_round_trip(tmp_path):
    df = make_frame(300, 10, 4)
    enc = TargetEncoder("engaging_user_id")
    out = enc.fit_transform(df.drop(columns=["like"]), df["like"])
    assert "te_engaging_user_id_like" in out
    enc.save(tmp_path)
    loaded = TargetEncoder.load(tmp_path, "te_engaging_user_id")
    pd.testing.assert_frame_equal(loaded.transform(df), enc.transform(df))


@pytest.mark.parametrize("method", ["contiguous", "random"])
def test_other_fold_methods(method):
    df = make_frame(200, 8, 5)
    out = TargetEncoder("engaging_user_id", n_folds=4, fold_method=method, seed=3).fit_transform(df, "like")
    assert out["te_engaging_user_id_like"].between(0, 1).all()
    folds = assign_folds(df, [], 4, method, 3).compute()[FOLD]
    assert set(folds) == {0, 1, 2, 3}


def test_clear_errors():
    df = make_frame(50, 5, 6)
    with pytest.raises(ValueError, match="not in the frame"):
        TargetEncoder("nope").fit(df, "like")
    with pytest.raises(ValueError, match="fold_method"):
        TargetEncoder("lang", fold_method="bogus").fit(df, "like")
    with pytest.raises(RuntimeError, match="not fitted"):
        TargetEncoder("lang").transform(df)
