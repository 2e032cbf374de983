"""Out-of-fold target encoding against a brute-force reference (hypothesis)."""

from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rapids_engage.features import CountEncoder, HistoryEncoder, NotFittedError, TargetEncoder
from rapids_engage.features.folds import FOLD, assign_folds


def make_frame(n: int, n_users: int, seed: int, null_share: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lang = rng.choice(np.array(["a", "b", "c"], dtype=object), n)
    lang[rng.random(n) < null_share] = None
    return pd.DataFrame(
        {
            "tweet_id": rng.integers(-(2**62), 2**62, n),
            "engaging_user_id": rng.integers(0, n_users, n),
            "lang": lang,
            "like": rng.integers(0, 2, n).astype("int8"),
            "reply": (rng.random(n) < 0.1).astype("int8"),
        }
    )


def brute_force_oof(df: pd.DataFrame, folds: np.ndarray, key: list[str], target: str, s: float) -> np.ndarray:
    """Row by row: the prior is the mean over every row outside the fold; a null key gets the prior."""
    keys = list(map(tuple, df[key].to_numpy()))
    keyed = df[key].notna().all(axis=1).to_numpy()
    y = df[target].to_numpy().astype(float)
    out = np.empty(len(df))
    for i in range(len(df)):
        other = folds != folds[i]
        prior = y[other].mean() if other.any() else y.mean()
        if not keyed[i]:
            out[i] = prior
            continue
        same = other & keyed & np.array([k == keys[i] for k in keys])
        with np.errstate(invalid="ignore"):
            out[i] = (y[same].sum() + s * prior) / (same.sum() + s)
    return out


def folds_of(df: pd.DataFrame, n_folds: int) -> np.ndarray:
    return assign_folds(df, ["tweet_id", "engaging_user_id"], n_folds).compute()[FOLD].to_numpy()


@settings(max_examples=25, deadline=None)
@given(n=st.integers(20, 120), n_users=st.integers(1, 15), k=st.integers(2, 6), s=st.sampled_from([0.0, 1.0, 20.0]),
       seed=st.integers(0, 10**6), null_share=st.sampled_from([0.0, 0.2]))
def test_oof_matches_brute_force(n, n_users, k, s, seed, null_share):
    df = make_frame(n, n_users, seed, null_share)
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
    with pytest.raises(NotFittedError, match="not fitted"):
        TargetEncoder("lang").transform(df)


def test_null_keys_get_the_prior_in_training_and_serving():
    """One rule for a key with a null: its fold's prior out of fold, the full prior at serving."""
    df = make_frame(400, 10, 8, null_share=0.3)
    enc = TargetEncoder("lang", n_folds=4)
    oof = enc.fit_transform(df, "like")["te_lang_like"].to_numpy()
    served = enc.transform(df)["te_lang_like"].to_numpy()
    null = df["lang"].isna().to_numpy()
    folds = folds_of(df, 4)
    y = df["like"].to_numpy().astype(float)
    np.testing.assert_allclose(oof[null], [y[folds != f].mean() for f in folds[null]], rtol=1e-12)
    np.testing.assert_allclose(served[null], y.mean(), rtol=1e-12)
    assert enc.prior_["like"] == pytest.approx(y.mean()) and enc.n_rows_ == len(df)


def test_labels_given_as_arrays_series_or_frames():
    df = make_frame(120, 6, 9)
    X = df.drop(columns=["like"])
    want = TargetEncoder("lang").fit_transform(df, "like")["te_lang_like"].to_numpy()
    for y, name in [(df["like"].to_numpy(), "y"), (pd.Series(df["like"].to_numpy()), "y"), (list(df["like"]), "y"),
                    (df[["like"]], "like"), (df["like"].to_numpy()[:, None], "y0")]:
        got = TargetEncoder("lang").fit_transform(X, y)
        np.testing.assert_array_equal(got[f"te_lang_{name}"].to_numpy(), want)
    with pytest.raises(ValueError, match="y has 3 rows"):
        TargetEncoder("lang").fit(X, [0, 1, 0])


def test_refit_on_its_own_output_and_sklearn_conventions():
    from sklearn.base import clone

    df = make_frame(150, 6, 10)
    enc = TargetEncoder("lang", smooth=5, row_key="tweet_id")
    out = enc.fit_transform(df, "like")
    again = enc.fit_transform(out, "like")  # a re-run notebook cell: the column is replaced
    np.testing.assert_array_equal(again["te_lang_like"].to_numpy(), out["te_lang_like"].to_numpy())
    assert enc.row_key == ["tweet_id"] and enc.output_names() == ["te_lang_like"]
    copy = clone(enc)
    assert copy.get_params() == enc.get_params() and not hasattr(copy, "stats_")
    assert copy.set_params(smooth=3).smooth == 3.0
    with pytest.raises(ValueError, match="no parameter"):
        copy.set_params(smoothing=3)


@pytest.mark.parametrize("make, change", [
    (lambda: CountEncoder(["lang"], per_day=False), {"per_day": True}),
    (lambda: HistoryEncoder("lang", ["like"], windows=(3600,)), {"windows": (60, 120), "rates": True}),
])
def test_count_and_history_encoders_follow_sklearn_conventions(make, change):
    """CountEncoder and HistoryEncoder (called sklearn-style) had no get_params / set_params: sklearn.base.clone
    and GridSearchCV refused them ('does not implement a get_params method'), and their repr was an address."""
    from sklearn.base import clone

    df = make_frame(60, 4, 12).assign(tweet_timestamp=1_600_000_000 + np.arange(60) * 600)
    enc = make()
    assert enc.fit(df) is enc
    copy = clone(enc)
    assert copy.get_params() == enc.get_params() and type(copy) is type(enc) and "(columns=['lang']" in repr(copy)
    assert not hasattr(copy, "counts_") and not hasattr(copy, "state_")
    copy.set_params(**change)
    assert all(copy.get_params()[k] == v for k, v in change.items())  # as given (scikit-learn's check_set_params)
    assert set(copy.fit(df).transform(df.assign(tweet_timestamp=1_700_000_000)).columns) >= set(copy.output_names())
    with pytest.raises(ValueError, match="no parameter"):
        copy.set_params(window=3)


@pytest.mark.parametrize("enc, keys", [
    (CountEncoder(["lang", "user"], per_day=False, time_column="t"), ["columns", "per_day", "time_column", "keep_input"]),
    (TargetEncoder("lang", n_folds=3, smooth=2, fold_method="random", seed=4, row_key=("g",), prefix="x", keep_input=False),
     ["columns", "n_folds", "smooth", "fold_method", "seed", "row_key", "prefix", "keep_input"]),
    (HistoryEncoder("lang", ("like",), windows=(5,), time_column="t", prefix="h", days=(1,), rates=True, label_delay=9,
                    row_key=("r",), engagement={"like": "like_at"}),
     ["columns", "targets", "windows", "time_column", "prefix", "days", "rates", "label_delay", "row_key", "engagement", "keep_input"]),
])
def test_params_are_the_constructors_arguments_in_its_order(enc, keys):
    """``params()`` (the saved state's ``params``, the keys in the order state JSON files hold them) comes from
    the constructor's signature for every encoder: the constructor takes it back unchanged."""
    assert list(enc.params()) == keys
    assert type(enc)(**enc.params()).params() == enc.params()


def test_a_new_encoder_gets_params_from_its_constructor():
    """No hand-kept copy of the constructor's parameters to forget: a subclass's params() are its own."""

    class Scaled(CountEncoder):
        def __init__(self, columns: str | list[str], scale: float = 1.0) -> None:
            super().__init__(columns)
            self.scale = scale

    assert Scaled("lang", scale=2.0).params() == {"columns": ["lang"], "scale": 2.0}


def test_bad_labels_and_parameters_are_refused_before_any_state_changes():
    df = make_frame(100, 5, 11)
    with pytest.raises(ValueError, match=r"missing label values \{'like': 2\}"):
        TargetEncoder("lang").fit(df.assign(like=df["like"].astype(float).mask(df.index < 2)), "like")
    with pytest.raises(ValueError, match="reserved"):
        TargetEncoder("lang").fit(df.assign(_fold=0), "like")
    with pytest.raises(ValueError, match="from 2 to 127"):
        TargetEncoder("lang", n_folds=200).fit(df, "like")
    with pytest.raises(ValueError, match="smooth"):
        TargetEncoder("lang", smooth=-1).fit(df, "like")
    with pytest.raises(ValueError, match=r"the row key columns \{'tweet_id': 'float64'\} are not integers"):
        TargetEncoder("lang").fit(df.astype({"tweet_id": "float64"}), "like")
    for text in (df["like"].astype(int).astype(str), df["like"].map({0: "no", 1: "yes"})):  # "1"/"0" were read as numbers
        with pytest.raises(TypeError, match=r"labels must be numbers .* got 'like' of dtype"):
            TargetEncoder("lang").fit(df.drop(columns="like"), text)
    enc = TargetEncoder("lang").fit(df, "like")
    before = enc.transform(df)
    with pytest.raises(ValueError, match="no training rows"):
        enc.fit(df.iloc[:0], "like")
    pd.testing.assert_frame_equal(enc.transform(df), before)  # the failed refit left the fit as it was


def test_fit_transform_gives_the_columns_of_transform_in_a_column_transformer():
    """Labels passed as y never come back as a column: a model after the encoder must not see them."""
    from sklearn.compose import ColumnTransformer

    df = make_frame(200, 8, 12)
    X, y = df.drop(columns=["like", "reply"]), df["like"]
    out = TargetEncoder("lang").fit_transform(X, y)
    assert list(out.columns) == [*X.columns, "te_lang_like"]
    ct = ColumnTransformer([("te", TargetEncoder("lang"), ["lang", "tweet_id", "engaging_user_id"])])
    fitted, served = ct.fit_transform(X, y), ct.transform(X)
    assert fitted.shape == served.shape == (200, 4)
    assert list(ct.get_feature_names_out()) == ["te__lang", "te__tweet_id", "te__engaging_user_id", "te__te_lang_like"]
    # labels named in X stay, as X's columns
    assert "like" in TargetEncoder("lang").fit_transform(df, "like").columns


def test_a_fold_holding_every_training_row_gets_the_full_prior():
    """No rows outside the fold: no out-of-fold statistic, so the prior of all rows (a constant: no row's own label)."""
    X = pd.DataFrame({"tweet_id": [5, 5, 5], "engaging_user_id": [7, 7, 7], "k": list("aba"), "like": [1, 0, 1]})
    out = TargetEncoder("k").fit_transform(X, "like")["te_k_like"].to_numpy()
    np.testing.assert_allclose(out, [2 / 3] * 3)
    folds = folds_of(X, 5)
    np.testing.assert_allclose(out, brute_force_oof(X, folds, ["k"], "like", 20.0))


def test_in_a_scikit_learn_pipeline_before_a_model():
    """keep_input=False: the encodings alone, so the model after it never sees the raw keys; estimator
    tags (check_is_fitted), set_output('pandas'), a readable repr, cross-validation."""
    from sklearn.compose import ColumnTransformer
    from sklearn.exceptions import NotFittedError as SkNotFitted
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.utils.validation import check_is_fitted

    df = make_frame(300, 8, 13)
    X, y = df.drop(columns=["like", "reply"]), df["like"]
    te = TargetEncoder("lang", keep_input=False)
    assert repr(te) == "TargetEncoder(columns=['lang'], keep_input=False)"
    with pytest.raises(SkNotFitted):
        check_is_fitted(te)
    with pytest.raises(SkNotFitted, match="not fitted"):  # our own error is scikit-learn's too
        te.transform(X)
    ct = ColumnTransformer([("te", te, ["lang", "tweet_id", "engaging_user_id"])]).set_output(transform="pandas")
    search = GridSearchCV(make_pipeline(ct, LogisticRegression()), {"columntransformer__te__smooth": [1, 20]}, cv=3).fit(X, y)
    fitted = search.best_estimator_.named_steps["columntransformer"]
    check_is_fitted(fitted.named_transformers_["te"])
    assert list(fitted.get_feature_names_out()) == ["te__te_lang_like"] and fitted.named_transformers_["te"].n_features_in_ == 3
    alone = TargetEncoder("lang", keep_input=False)
    assert list(alone.fit_transform(X, y).columns) == list(alone.transform(X).columns) == ["te_lang_like"]
    np.testing.assert_array_equal(alone.transform(X)["te_lang_like"], TargetEncoder("lang").fit(X, y).transform(X)["te_lang_like"])


def test_labels_named_like_a_column_of_x():
    df = make_frame(120, 6, 14)
    other = (df["reply"] * 7).rename("like")  # labels named like X's own label column: X's column comes back unchanged
    out = TargetEncoder("lang").fit_transform(df, other)
    pd.testing.assert_series_equal(out["like"], df["like"])
    want = TargetEncoder("lang").fit_transform(df.assign(like=other), "like")["te_lang_like"]
    pd.testing.assert_series_equal(out["te_lang_like"], want)
    for name in ("lang", "tweet_id"):  # the key, a row-key column: refused, not a raw KeyError
        with pytest.raises(ValueError, match=f"the labels y are named '{name}', a key column of X"):
            TargetEncoder("lang").fit(df, df["like"].rename(name))


def test_a_row_key_with_missing_ids_is_refused():
    df = make_frame(60, 5, 15).astype({"tweet_id": "Int64"})
    df.loc[df.index[3], "tweet_id"] = pd.NA
    with pytest.raises(ValueError, match=r"the row key column\(s\) \['tweet_id'\] hold missing ids"):
        TargetEncoder("lang").fit_transform(df, "like")


@pytest.mark.parametrize("smooth", [float("nan"), float("inf")])
def test_a_smooth_that_is_not_a_finite_number_is_refused(smooth):
    """smooth=nan / inf gave NaN encodings (nan: every served value), as the config's check refuses them."""
    with pytest.raises(ValueError, match=r"smooth must be a finite number >= 0, got (nan|inf)"):
        TargetEncoder("lang", smooth=smooth).fit(make_frame(50, 5, 16), "like")


def test_keys_of_another_kind_than_fitted_are_refused():
    """Users fitted as numbers, served as text (ids read from a CSV as strings): every row got the prior, silently."""
    df = make_frame(100, 6, 17)
    enc = TargetEncoder("engaging_user_id").fit(df, "like")
    with pytest.raises(TypeError, match=r"TargetEncoder\(engaging_user_id\): the key column 'engaging_user_id' holds "
                                        r"text \(str\) but held numbers \(int64\) when fitted"):
        enc.transform(df.astype({"engaging_user_id": "str"}))
    as_float = enc.transform(df.astype({"engaging_user_id": "float64"}))  # numbers of another width still match
    pd.testing.assert_series_equal(as_float["te_engaging_user_id_like"], enc.transform(df)["te_engaging_user_id_like"])


def test_parameters_are_checked_in_one_line():
    """n_folds=5.0 failed deep in fitting ('float' object cannot be interpreted as an integer), an empty or repeated
    key in pandas' groupby ('No group keys passed!'), and a negative seed worked for hash folds but not random ones."""
    df = make_frame(60, 5, 18)
    with pytest.raises(ValueError, match=r"n_folds must be a whole number from 2 to 127, got 5\.0"):
        TargetEncoder("lang", n_folds=5.0).fit(df, "like")
    with pytest.raises(ValueError, match=r"columns must name one or more distinct key columns, got \[\]"):
        TargetEncoder([]).fit(df, "like")
    with pytest.raises(ValueError, match=r"columns must name one or more distinct key columns, got \['lang', 'lang'\]"):
        TargetEncoder(["lang", "lang"]).fit(df, "like")
    for seed in (-1, 2**64 - 1):  # the same 64 bits: the same folds, as for fold_method="hash"
        got = TargetEncoder("lang", fold_method="random", seed=seed).fit_transform(df, "like")["te_lang_like"]
        assert got.notna().all()
    pd.testing.assert_frame_equal(assign_folds(df, [], 4, "random", -1).compute(), assign_folds(df, [], 4, "random", 2**64 - 1).compute())


def test_transform_of_a_frame_that_already_holds_the_encoding():
    """A frame encoded by two encoders (the first's column no longer last): transform raised dask's 'Order of columns
    does not match'; the column is replaced, at the end, where get_feature_names_out says."""
    df = make_frame(80, 5, 19)
    first, second = TargetEncoder("lang"), TargetEncoder("engaging_user_id")
    train = second.fit_transform(first.fit_transform(df, "like"), "like")
    again = first.transform(train)
    assert list(again.columns) == [c for c in train.columns if c != "te_lang_like"] + ["te_lang_like"]
    pd.testing.assert_series_equal(again["te_lang_like"], first.transform(df)["te_lang_like"])
    first.fit(train, "like")
    assert list(first.get_feature_names_out()) == list(first.transform(train).columns)


@pytest.mark.parametrize("method", ["random", "hash"])
def test_a_numpy_seed_draws_the_folds_of_its_value(method):
    """A grid search's numpy seed (np.int64): the 64-bit mask of the random folds' seed raised OverflowError
    ('Python int too large to convert to C long'), where the seed worked before; hash folds the same."""
    df = make_frame(60, 5, 18)
    want = TargetEncoder("lang", fold_method=method, seed=3).fit_transform(df, "like")["te_lang_like"]
    got = TargetEncoder("lang", fold_method=method, seed=np.int64(3)).fit_transform(df, "like")["te_lang_like"]
    pd.testing.assert_series_equal(got, want)


def test_a_key_column_of_unknown_kind_is_not_refused():
    """Only numbers against text is refused: an object column (Python strings, or mixed) may hold either, and
    its keys still match where they are equal (mutation round 3)."""
    df = make_frame(100, 6, 19)
    enc = TargetEncoder("lang").fit(df.astype({"lang": "str"}), "like")
    got = enc.transform(df.astype({"lang": object}))["te_lang_like"]
    pd.testing.assert_series_equal(got, enc.transform(df.astype({"lang": "str"}))["te_lang_like"])


def test_n_folds_may_be_the_most_an_int8_fold_id_holds():
    from rapids_engage.features.folds import MAX_FOLDS

    assert MAX_FOLDS == 127
    folds = assign_folds(make_frame(400, 6, 20), ["tweet_id", "engaging_user_id"], 127).compute()[FOLD]
    assert folds.between(0, 126).all() and folds.nunique() > 100
    with pytest.raises(ValueError, match=r"n_folds must be a whole number from 2 to 127, got 128"):
        assign_folds(make_frame(40, 6, 20), ["tweet_id", "engaging_user_id"], 128)


def test_pandas_columns_and_index_come_back_as_they_were(tmp_path):
    """dask's arrow strings turned a pandas frame's columns that the encoders only pass through into text: a
    column of lists came back as "['x']", a mixed index's 9 as '9', and str columns as another dtype
    (pd.NA for NaN). Frames read as dask (parquet: arrow strings) still meet the tables fitted on pandas."""
    df = make_frame(40, 5, seed=1, null_share=0.2).assign(
        lang=lambda d: d["lang"].astype("str"), tags=[["x"], [], ["y", "z"], None] * 10, tweet_timestamp=1_600_000_000)
    df.index = [9, "x", *range(2, 40)]
    for enc in (TargetEncoder("lang"), CountEncoder("lang")):
        enc.fit(df, "like")
        for out in (enc.transform(df), enc.fit_transform(df, "like")):
            pd.testing.assert_frame_equal(out[df.columns], df)
        df.reset_index(drop=True).to_parquet(tmp_path / "rows.parquet")
        lazy = enc.transform(dd.read_parquet(tmp_path / "rows.parquet")).compute()
        np.testing.assert_array_equal(lazy[enc.output_names()[0]], enc.transform(df)[enc.output_names()[0]])


@pytest.mark.parametrize("index", [
    pd.Index(["a", None, *map(str, range(2, 40))], dtype=object),  # text with a None
    pd.DatetimeIndex([pd.NaT, *pd.date_range("2021-02-01", periods=39)]),  # times with a NaT
    pd.MultiIndex.from_arrays([["a", "b"] * 20, range(40)]),
], ids=["text-null", "time-nat", "multi"])
def test_an_index_dask_refuses_comes_back_with_the_same_encodings(index):
    """dask's from_pandas refuses a non-numeric index with a null (and a MultiIndex): the encoders raised its
    NotImplementedError. They do not read the index: the same values as on a plain index, the caller's index back."""
    df = make_frame(40, 5, seed=2, null_share=0.1).assign(tweet_timestamp=1_600_000_000)
    odd = df.set_axis(index)
    for enc in (TargetEncoder("lang"), CountEncoder("lang")):
        for out, plain in ((enc.fit(odd, "like").transform(odd), enc.fit(df, "like").transform(df)),
                           (enc.fit_transform(odd, "like"), enc.fit_transform(df, "like"))):
            assert out.index.equals(index)
            pd.testing.assert_frame_equal(out.reset_index(drop=True), plain.reset_index(drop=True))


@pytest.mark.parametrize("method", ["hash", "random"])
def test_folds_by_a_key_of_floats_are_refused_but_contiguous_ones_take_it(method):
    """hash and random folds hash a key's integer ids: a float key (1.2 and 1.7 would share the fold of 1) is
    refused naming it under both (mutation round 6: random folds cast it silently); contiguous folds take it."""
    df = pd.DataFrame({"g": [1.2, 1.7, 2.5, 3.0] * 5, "x": np.arange(20)})
    with pytest.raises(ValueError, match=rf"fold_method='{method}' hashes integer ids; the row key columns "
                                         r"\{'g': 'float64'\} are not integers"):
        assign_folds(df, ["g"], 2, method)
    out = assign_folds(df, ["g"], 2, "contiguous").compute()
    assert (out.groupby("g")[FOLD].nunique() == 1).all() and out["x"].tolist() == list(range(20))


@pytest.mark.parametrize("index", [pd.Index([f"r{i}" for i in range(40)]), pd.date_range("2021-02-01", periods=40)],
                         ids=["text", "time"])
def test_an_index_dask_takes_is_kept(index):
    """A non-numeric index without a null is dask's to keep: folds and encodings keep it, with the values of a
    plain index (mutation round 6: every non-numeric index was taken for one dask refuses and replaced by row
    positions; a time index made the encoders raise pandas' TypeError, the meta's fold column cast from it)."""
    df = make_frame(40, 5, seed=2).assign(tweet_timestamp=1_600_000_000)
    odd = df.set_axis(index)
    assert assign_folds(odd, ["tweet_id"], 3).compute().index.equals(index)
    for enc in (TargetEncoder("lang"), CountEncoder("lang")):
        out = enc.fit_transform(odd, "like")
        assert out.index.equals(index)
        pd.testing.assert_frame_equal(out.reset_index(drop=True), enc.fit_transform(df, "like").reset_index(drop=True))


def _impressions(n: int = 150, seed: int = 3) -> pd.DataFrame:
    """Ranking groups as MIND's: an impression shows 2-6 articles to a user at one time, one of them clicked."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 7, n)
    imp = np.repeat(np.arange(n, dtype=np.int64) * 7919 + 11, sizes)
    click = np.concatenate([np.eye(s, dtype=np.int8)[rng.integers(s)] for s in sizes])
    return pd.DataFrame({"row_id": np.arange(len(imp), dtype=np.int64), "imp": imp,
                         "user": np.repeat(rng.integers(0, 12, n), sizes).astype(np.int64),
                         "item": rng.integers(0, 40, len(imp)).astype(np.int64),
                         "t": 1_600_000_000 + np.repeat(np.sort(rng.integers(0, 86_400 * 3, n)), sizes), "click": click})


@pytest.mark.parametrize("method", ["hash", "contiguous", "random"])
def test_a_ranking_group_s_rows_never_see_each_other_s_labels(method):
    """A grouped table's rows share their group's fold under every fold method: an impression's labels reach none
    of its own training encodings (a sibling's label tells the row's own where each impression has one click).
    Moving the click to another article of an impression leaves that impression's encodings as they were
    (contiguous and random folds were drawn per row: siblings in other folds saw the click)."""
    from rapids_engage.config import FeaturesConfig, section_from_dict
    from rapids_engage.features import FeatureBuilder
    from rapids_engage.layout import Layout, Target

    layout = Layout("table", ("row_id",), "t", (Target("click", "click", "binary"),), user="user", item="item", group="imp")
    cfg = section_from_dict(FeaturesConfig, {"content": False, "counts": [], "daily_counts": False,
                                             "target_encoding": {"keys": [["user"], ["item"]], "fold_method": method}}, "test")
    names = ["te_user_click", "te_item_click"]

    def encoded(rows: pd.DataFrame) -> pd.DataFrame:
        out = FeatureBuilder(cfg, ["click"], layout).fit_transform(dd.from_pandas(rows, npartitions=3, sort=False)).compute()
        return out.set_index("row_id").sort_index()

    rows = _impressions()
    base = encoded(rows)
    for imp in rows["imp"].unique()[:20:4]:
        moved = rows.copy()
        mine = moved["imp"] == imp
        moved.loc[mine, "click"] = np.roll(moved.loc[mine, "click"].to_numpy(), 1)
        ids = moved.loc[mine, "row_id"]
        pd.testing.assert_frame_equal(encoded(moved).loc[ids, names], base.loc[ids, names])


def test_fold_assignment_uses_every_fold_its_seed_and_partitions():
    """hash: K folds all used (not K-1), another seed another assignment (the same seed the same);
    contiguous: K blocks in data order across partitions (each partition at its offset); random: drawn
    per partition (two partitions of the same size do not get the same draws)."""
    df = make_frame(400, 6, 21)
    parts = dd.from_pandas(df, npartitions=4, sort=False)
    key = ["tweet_id", "engaging_user_id"]
    for k in (2, 5):
        assert set(assign_folds(parts, key, k).compute()[FOLD]) == set(range(k))
    seeded = [assign_folds(parts, key, 5, seed=s).compute()[FOLD].to_numpy() for s in (0, 0, 1)]
    np.testing.assert_array_equal(seeded[0], seeded[1])
    assert (seeded[0] != seeded[2]).mean() > 0.5
    contiguous = assign_folds(parts, [], 4, "contiguous").compute()[FOLD].to_numpy()
    np.testing.assert_array_equal(contiguous, np.repeat(np.arange(4), 100))
    drawn = assign_folds(parts, [], 5, "random", seed=3).compute()[FOLD].to_numpy().reshape(4, 100)
    assert (drawn[0] != drawn[1]).any() and (drawn[2] != drawn[3]).any()


# 20 examples: with the fold key ignored (the defect), 20 found straddling groups in 6 of 6 tries for contiguous
# folds alone and for random folds alone (each example tries all three methods)
@settings(max_examples=20, deadline=None)
@given(groups=st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=12), n=st.integers(1, 80),
       k=st.integers(2, 6), seed=st.integers(0, 2**64 - 1), parts=st.integers(2, 5), data=st.data())
def test_no_group_straddles_folds_under_any_method(groups, n, k, seed, parts, data):
    """Every fold method puts all rows of a fold key (a ranking group) in one fold, however the groups' rows are
    interleaved and partitioned; hash, random (by key) and contiguous folds do not depend on the partition count
    (contiguous: the block of the group's first row in data order)."""
    picks = data.draw(st.lists(st.integers(0, len(groups) - 1), min_size=n, max_size=n))
    df = pd.DataFrame({"g": np.asarray(groups, dtype=np.int64)[picks], "x": np.arange(n)})
    for method in ("hash", "contiguous", "random"):
        got = [assign_folds(dd.from_pandas(df, npartitions=p, sort=False), ["g"], k, method, seed).compute()
               for p in (1, parts)]
        for out in got:
            assert out["x"].tolist() == list(range(n)), method  # rows kept, in order
            assert out[FOLD].between(0, k - 1).all() and (out.groupby("g")[FOLD].nunique() == 1).all(), method
        np.testing.assert_array_equal(got[0][FOLD].to_numpy(), got[1][FOLD].to_numpy(), err_msg=method)
        if method == "contiguous":
            first = df.groupby("g")["x"].transform("min").to_numpy()
            np.testing.assert_array_equal(got[0][FOLD].to_numpy(), first * k // n)


def test_random_folds_by_key_are_seeded_and_not_the_hash_folds():
    df = make_frame(400, 6, 22)
    parts = dd.from_pandas(df, npartitions=3, sort=False)
    key = ["tweet_id", "engaging_user_id"]
    drawn = {s: assign_folds(parts, key, 5, "random", s).compute()[FOLD].to_numpy() for s in (0, 1)}
    assert set(drawn[0]) == set(range(5)) and (drawn[0] != drawn[1]).mean() > 0.5
    assert (drawn[0] != assign_folds(parts, key, 5, "hash", 0).compute()[FOLD].to_numpy()).mean() > 0.5


@pytest.mark.parametrize("method", ["hash", "contiguous", "random"])
def test_a_missing_or_null_group_is_named_as_the_group(method):
    """A grouped table's fold key is its group: a group column missing from the rows or holding a null is refused
    naming the group, under every method (the message said "row key"; contiguous and random folds took such rows
    one by one, apart from their siblings)."""
    from rapids_engage.config import FeaturesConfig, section_from_dict
    from rapids_engage.features import FeatureBuilder
    from rapids_engage.layout import Layout, Target

    layout = Layout("table", ("row_id",), "t", (Target("click", "click", "binary"),), user="user", item="item", group="imp")
    cfg = section_from_dict(FeaturesConfig, {"content": False, "counts": [], "daily_counts": False,
                                             "target_encoding": {"keys": [["user"]], "fold_method": method}}, "test")
    rows = _impressions().astype({"imp": "Int64"})
    rows.loc[3, "imp"] = None
    with pytest.raises(ValueError, match=rf"fold_method='{method}': the group column\(s\) \['imp'\] hold missing ids"):
        FeatureBuilder(cfg, ["click"], layout).fit_transform(dd.from_pandas(rows, npartitions=2, sort=False)).compute()
    with pytest.raises(ValueError, match=rf"fold_method='{method}' needs the group columns \['imp'\]"):
        assign_folds(rows.drop(columns=["imp"]), ["imp"], 5, method, what="group")


def test_hash_folds_without_a_row_key_are_a_clear_error():
    """row_key=() with hash folds failed in hashing.combine with 'IndexError: list index out of range'."""
    with pytest.raises(ValueError, match=r"fold_method='hash' hashes the row key: row_key=\(\) leaves nothing to hash"):
        TargetEncoder("lang", row_key=()).fit(make_frame(30, 3, 23), "like")


def test_a_grouped_builder_s_encoders_fold_by_the_group():
    """A FeatureBuilder's target encoders carry the fold key it folds by (their row_key: the group of a grouped
    layout), so their params, saved state and a clone refit alone fold as the builder did."""
    from rapids_engage.config import FeaturesConfig, section_from_dict
    from rapids_engage.features import FeatureBuilder
    from rapids_engage.layout import Layout, Target

    cfg = section_from_dict(FeaturesConfig, {"target_encoding": {"keys": [["user"]]}}, "test")
    for group, want in (("imp", ["imp"]), (None, ["row_id"])):
        layout = Layout("table", ("row_id",), "t", (Target("click", "click", "binary"),), user="user", item="item", group=group)
        (enc,) = FeatureBuilder(cfg, ["click"], layout).target_encoders
        assert list(enc.get_params()["row_key"]) == want == layout.fold_key()


@pytest.mark.parametrize("key, labels", [("_n", "like"), ("like__sum", "like"), ("lang", "_fold")])
def test_keys_and_labels_named_like_the_statistics_columns_are_refused(key, labels):
    """A key ``_n`` or ``<label>__sum``, labels ``_fold``: pandas failed ('cannot insert _n, already exists',
    'Grouper for ... not 1-dimensional', a KeyError) without naming the column."""
    df = make_frame(60, 5, 21).rename(columns={"lang": key})
    y = df["like"].rename(labels)
    with pytest.raises(ValueError, match=f"TargetEncoder\\({key}\\): the column name '{key if key != 'lang' else labels}' is reserved"):
        TargetEncoder(key).fit(df.drop(columns="like"), y)
    assert "_n__sum" in TargetEncoder("lang").fit(df.rename(columns={key: "lang"}), y.rename("_n")).stats_.columns  # a label `_n`: no clash


def test_labels_by_position_with_a_dask_frame_are_a_one_line_error_naming_the_encoder():
    df = make_frame(40, 4, 22)
    X = dd.from_pandas(df, npartitions=2)
    for y in (df["like"], X["like"], df["like"].to_numpy()):
        with pytest.raises(ValueError, match=r"TargetEncoder\(lang\): with a dask frame pass y as column name\(s\) of X"):
            TargetEncoder("lang").fit(X, y)
    assert TargetEncoder("lang").fit(X, "like").targets_ == ["like"]
