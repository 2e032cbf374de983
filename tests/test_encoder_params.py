"""The encoders keep scikit-learn's parameter conventions: the constructor stores each parameter as given
(``get_params``, ``clone``, ``set_params`` see it unchanged) and the encoder normalizes it where it uses it."""

from __future__ import annotations

import json
import warnings

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from sklearn.utils import estimator_checks

from rapids_engage.features import CountEncoder, HistoryEncoder, TargetEncoder
from rapids_engage.features.sessions import SessionEncoder

ENCODERS = [TargetEncoder("k"), CountEncoder("k"), HistoryEncoder("k"), SessionEncoder("k")]
CHECKS = ["check_no_attributes_set_in_init", "check_get_params_invariance", "check_set_params",
          "check_parameters_default_constructible"]


def _rows(n: int = 40) -> pd.DataFrame:
    i = np.arange(n)
    return pd.DataFrame({"tweet_id": i, "engaging_user_id": i % 7, "a": i % 3, "b": i % 5, "like": (i % 4 == 0).astype(int),
                         "tweet_timestamp": 1_600_000_000 + i * 60})


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("encoder", ENCODERS, ids=lambda e: type(e).__name__)
def test_scikit_learns_parameter_checks_pass(encoder, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # check_set_params warns of the values the constructor refuses
        getattr(estimator_checks, check)(type(encoder).__name__, encoder)


@pytest.mark.parametrize("encoder", ENCODERS, ids=lambda e: type(e).__name__)
def test_every_encoder_accepts_any_parameter_when_made(encoder):
    """scikit-learn's rule: ``__init__`` and ``set_params`` only store; ``fit`` checks (the history and session
    encoders refused bad spans and gaps when made, so ``set_params(gap=-1)`` raised where sklearn's check expects none)."""
    estimator_checks.check_do_not_raise_errors_in_init_or_set_params(type(encoder).__name__, encoder)


@pytest.mark.parametrize("encoder, bad, message", [
    (HistoryEncoder("engaging_user_id", ["like"]), {"windows": (60, 60)},
     r"^HistoryEncoder windows must be distinct and > 0 seconds, got \[60, 60\]$"),
    (HistoryEncoder("engaging_user_id", ["like"]), {"days": (0,)}, r"^HistoryEncoder days must be distinct whole UTC days >= 1"),
    (HistoryEncoder("engaging_user_id", ["like"]), {"label_delay": -1}, r"^HistoryEncoder label_delay must be >= 0 seconds, got -1$"),
    (HistoryEncoder("engaging_user_id", ["like"]), {"windows": (2**62,)}, r"^HistoryEncoder windows, days and label_delay must "
                                                                             r"reach back under 2\*\*62 seconds"),
    (SessionEncoder("engaging_user_id"), {"gap": -5}, r"^SessionEncoder gap must be >= 0 seconds, got -5$"),
    (SessionEncoder("engaging_user_id"), {"gap": "x"}, r"^SessionEncoder: parameter gap='x': invalid literal"),
], ids=["windows", "days", "label_delay", "reach", "gap", "gap_text"])
def test_history_and_session_parameters_set_later_are_refused_by_fit_in_their_words(encoder, bad, message):
    """``set_params`` and ``clone`` keep a bad value as given; ``fit`` (in memory or the dask form) refuses it with the
    message the constructor gave, and an encoder fitted before is left fitted as it was."""
    from sklearn.base import clone

    from rapids_engage.features.history import history_features
    from rapids_engage.features.sessions import session_features

    rows = _rows()
    fitted = clone(encoder).fit(rows)
    before = fitted.transform(rows.assign(tweet_timestamp=rows["tweet_timestamp"].max()))
    fitted.set_params(**bad)
    assert clone(fitted).get_params() == {**encoder.get_params(), **bad}
    for fit in (fitted.fit, lambda X: (history_features if isinstance(encoder, HistoryEncoder) else session_features)(
            dd.from_pandas(X, npartitions=2), clone(fitted))):
        with pytest.raises(ValueError, match=message):
            fit(rows)
    fitted.set_params(**encoder.get_params())
    pd.testing.assert_frame_equal(fitted.transform(rows.assign(tweet_timestamp=rows["tweet_timestamp"].max())), before)


def test_smooth_is_kept_as_given_and_saved_as_before(tmp_path):
    enc = TargetEncoder("a", smooth=3)
    assert type(enc.get_params()["smooth"]) is int and enc.get_params()["row_key"] == ("tweet_id", "engaging_user_id")
    rows = _rows()
    enc.fit(rows, "like").save(tmp_path)
    params = json.loads((tmp_path / "te_a.json").read_text())["params"]
    assert params["smooth"] == 3.0 and type(params["smooth"]) is float and params["columns"] == ["a"]
    assert params["row_key"] == ["tweet_id", "engaging_user_id"]
    loaded = TargetEncoder.load(tmp_path, "te_a")
    assert loaded.get_params() == {**enc.get_params(), "columns": ["a"], "smooth": 3.0}
    pd.testing.assert_frame_equal(loaded.transform(rows), TargetEncoder("a", smooth=3.0).fit(rows, "like").transform(rows))


def test_a_key_set_as_an_attribute_is_used_by_the_next_fit():
    rows = _rows()
    enc = TargetEncoder("a")
    enc.columns = "b"
    pd.testing.assert_frame_equal(enc.fit_transform(rows, "like"), TargetEncoder("b").fit_transform(rows, "like"))
    counts = CountEncoder("a", per_day=False)
    counts.columns = "b"
    assert counts.fit(rows).output_names() == ["cnt_b"] and counts.get_params()["columns"] == "b"


def test_count_encoder_fit_refuses_a_frame_without_its_time_column():
    rows = _rows().drop(columns=["tweet_timestamp"])
    enc = CountEncoder("a")
    with pytest.raises(ValueError, match=r"CountEncoder\(a\): columns \['tweet_timestamp'\] are not in the frame \(the "
                                         r"time column of the per-day counts: name yours with time_column=\.\.\., or "
                                         r"per_day=False\)"):
        enc.fit(rows)
    assert not hasattr(enc, "counts_")
    assert CountEncoder("a", per_day=False).fit(rows).counts_["cnt_a"].sum() == len(rows)


@pytest.mark.parametrize("make, columns", [
    (lambda **kw: TargetEncoder("a", **kw), ["a", "tweet_id", "engaging_user_id"]),
    (lambda **kw: CountEncoder("a", **kw), ["a", "tweet_timestamp"]),
    (lambda **kw: HistoryEncoder("a", ["like"], (600,), **kw), ["a", "tweet_timestamp", "like"]),
    (lambda **kw: SessionEncoder("a", 300, **kw), ["a", "tweet_timestamp"]),
], ids=["target", "count", "history", "session"])
def test_every_encoder_sits_in_a_column_transformer_with_pandas_output(make, columns, tmp_path):
    """The count, history and session encoders had no get_feature_names_out nor keep_input (TargetEncoder's): a
    ColumnTransformer with set_output(transform="pandas") refused them. Now all four alike: the features alone with
    keep_input=False, X's columns then the features by default, the same names from a saved and loaded encoder."""
    from sklearn.compose import ColumnTransformer

    rows = _rows()
    train, later = rows.iloc[:30], rows.iloc[30:]
    alone = make().fit(train[columns], train["like"])
    names = [n for n in alone.get_feature_names_out() if n not in columns]
    assert list(alone.get_feature_names_out()) == [*columns, *names] == list(alone.transform(later[columns]).columns)
    ct = ColumnTransformer([("enc", make(keep_input=False), columns)]).set_output(transform="pandas")
    fitted = ct.fit_transform(train, train["like"])
    served = ct.transform(later)
    assert list(fitted.columns) == list(served.columns) == [f"enc__{n}" for n in names]
    assert list(ct.get_feature_names_out()) == list(served.columns) and ct.named_transformers_["enc"].n_features_in_ == len(columns)
    np.testing.assert_array_equal(served.to_numpy(), alone.transform(later[columns])[names].to_numpy())
    if not isinstance(alone, TargetEncoder):  # (out-of-fold values differ between fits of other folds)
        np.testing.assert_array_equal(fitted.to_numpy(), make().fit_transform(train[columns], train["like"])[names].to_numpy())
    alone.save(tmp_path)
    if isinstance(alone, (HistoryEncoder, SessionEncoder)):  # the dask form keeps the rows' columns (to join them back)
        from rapids_engage.features.history import history_features
        from rapids_engage.features.sessions import session_features

        dask_form = history_features if isinstance(alone, HistoryEncoder) else session_features
        out = dask_form(dd.from_pandas(later[columns], npartitions=2), ct.named_transformers_["enc"], fit=False).compute()
        assert list(out.columns) == [*columns, *names]
    stem = {TargetEncoder: "te_a", CountEncoder: "cnt_a", HistoryEncoder: "hist_a", SessionEncoder: "sess"}[type(alone)]
    loaded = type(alone).load(tmp_path, stem)
    assert list(loaded.get_feature_names_out()) == list(alone.get_feature_names_out())
