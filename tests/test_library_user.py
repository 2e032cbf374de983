"""What a notebook user of the Python API runs into: one-line errors where a deep traceback was, found by
writing the scripts README's "Library API" section suggests."""

from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from rapids_engage import metrics


@pytest.mark.parametrize("metric", [metrics.rce, metrics.average_precision, metrics.roc_auc, metrics.log_loss])
def test_a_dask_column_given_to_a_metric_is_a_one_line_error(metric):
    """``metrics.rce(valid["like"], p)`` with ``valid = store.training_frame(split="valid")`` (a dask frame) failed
    inside dask ("Trying to convert <dask_expr.expr.Scalar ...> to a boolean value")."""
    y = dd.from_pandas(pd.Series([0, 1, 1, 0]), npartitions=2)
    with pytest.raises(TypeError, match=r"y is a dask Series: the metrics take in-memory arrays; pass y.compute\(\)"):
        metric(y, [0.2, 0.7, 0.6, 0.1])
    assert metric(y.compute(), [0.2, 0.7, 0.6, 0.1]) == metric([0, 1, 1, 0], [0.2, 0.7, 0.6, 0.1])


def test_a_dask_group_given_to_a_ranking_metric_is_a_one_line_error():
    group = dd.from_pandas(pd.Series([1, 1, 2, 2]), npartitions=2)
    with pytest.raises(TypeError, match="group is a dask Series"):
        metrics.map_at_k([0, 1, 1, 0], np.array([0.1, 0.9, 0.4, 0.3]), group, k=10)


def _events(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"tweet_id": np.arange(n), "engaging_user_id": rng.integers(0, 5, n),
                         "tweet_timestamp": 1_600_000_000 + np.arange(n) * 3600, "like": rng.integers(0, 2, n)})


@pytest.mark.parametrize("encoder", ["count", "history"])
@pytest.mark.parametrize("times", ["datetime", "text"])
def test_a_time_column_of_datetimes_or_text_is_a_one_line_error(encoder, times):
    """A pandas datetime column (what ``pd.read_csv(parse_dates=...)`` gives) failed deep inside pandas:
    ``cannot perform __floordiv__ with this index type: DatetimeArray`` (CountEncoder) or ``int() argument must be
    ... not 'Timestamp'`` (HistoryEncoder)."""
    from rapids_engage.features import CountEncoder, HistoryEncoder

    rows = _events()
    stamps = pd.to_datetime(rows["tweet_timestamp"], unit="s")
    rows["tweet_timestamp"] = stamps if times == "datetime" else stamps.astype(str)
    enc = CountEncoder("engaging_user_id") if encoder == "count" else HistoryEncoder("engaging_user_id", targets=["like"])
    with pytest.raises(TypeError, match=r"the time column 'tweet_timestamp' holds .*; it must hold seconds since 1970"):
        enc.fit(rows).transform(rows)


def test_the_conversion_the_time_column_error_suggests_gives_the_counts_of_integer_seconds():
    from rapids_engage.features import CountEncoder

    rows = _events()
    dated = rows.assign(tweet_timestamp=pd.to_datetime(rows["tweet_timestamp"], unit="s"))
    converted = dated.assign(tweet_timestamp=dated["tweet_timestamp"].astype("datetime64[s]").astype("int64"))
    pd.testing.assert_frame_equal(CountEncoder("engaging_user_id").fit_transform(converted),
                                  CountEncoder("engaging_user_id").fit_transform(rows))


def test_a_count_encoder_without_the_time_column_says_how_to_do_without():
    from rapids_engage.features import CountEncoder

    rows = _events().drop(columns=["tweet_timestamp"])
    with pytest.raises(ValueError, match=r"columns \['tweet_timestamp'\] are not in the frame \(the time column of the "
                                         r"per-day counts: name yours with time_column=\.\.\., or per_day=False\)"):
        CountEncoder("engaging_user_id").fit_transform(rows)
    counts = CountEncoder("engaging_user_id", per_day=False).fit_transform(rows)["cnt_engaging_user_id"]
    assert counts.sum() == (rows.groupby("engaging_user_id").size() ** 2).sum()


def test_a_saved_target_encoder_loads_by_the_name_readme_gives(tmp_path):
    from rapids_engage.features import TargetEncoder

    rows = _events().assign(language=lambda f: np.where(f["tweet_id"] % 3 == 0, None, "en"))
    enc = TargetEncoder(["engaging_user_id", "language"]).fit(rows, "like")
    enc.save(tmp_path)
    loaded = TargetEncoder.load(tmp_path, "te_engaging_user_id__language")
    pd.testing.assert_frame_equal(loaded.transform(rows), enc.transform(rows))
    assert loaded.get_params() == enc.get_params()


def test_log_loss_of_certain_wrong_probabilities_and_scikit_learns_clipping():
    """``log_loss`` clips to 1e-15 (what the RecSys 2021 RCE code got from scikit-learn then); scikit-learn now clips
    to float64's eps: the docstring says so and how to get its value."""
    from sklearn.metrics import log_loss as sk_log_loss

    y, p = [0, 1, 1], [1.0, 0.0, 0.7]
    q = np.clip(np.asarray(p), 1e-15, 1 - 1e-15)
    assert metrics.log_loss(y, p) == pytest.approx(-np.mean(np.log(np.where(np.asarray(y) == 1, q, 1 - q))))
    assert metrics.log_loss(y, p) < sk_log_loss(y, p) - 0.5  # the clipping differs by ~1.5 per certain wrong row
    assert metrics.log_loss(y, p, eps=np.finfo(float).eps) == pytest.approx(sk_log_loss(y, p))


@pytest.mark.parametrize("times", ["datetime", "text"])
def test_a_session_time_column_of_datetimes_or_text_is_a_one_line_error(times):
    """As the count and history encoders' (above): a datetime column failed deep inside pandas (``int() argument must
    be ... not 'Timestamp'``) and a text column of digits was silently read as numbers."""
    from rapids_engage.features.sessions import SessionEncoder

    rows = _events()
    stamps = pd.to_datetime(rows["tweet_timestamp"], unit="s")
    rows["tweet_timestamp"] = stamps if times == "datetime" else rows["tweet_timestamp"].astype(str)
    with pytest.raises(TypeError, match=r"^SessionEncoder\(sess\): the time column 'tweet_timestamp' holds .*; it must "
                                        r"hold seconds since 1970"):
        SessionEncoder("engaging_user_id").fit(rows)


def test_history_labels_that_are_not_numbers_are_a_one_line_error():
    """"yes"/"no" labels failed deep in a comparison (``'>' not supported between instances of 'str' and 'int'``);
    refused in the target encoder's words, in fit, fit_transform, transform with labels and extend."""
    from rapids_engage.features import HistoryEncoder

    rows = _events()
    texts = rows.assign(like=rows["like"].map({0: "no", 1: "yes"}))
    message = (r"^HistoryEncoder\(engaging_user_id\): labels must be numbers \(0/1 for a binary target\), got 'like' of "
               r"dtype (object|str)")
    for use in (lambda: HistoryEncoder("engaging_user_id", ["like"]).fit(texts),
                lambda: HistoryEncoder("engaging_user_id", ["like"]).fit_transform(texts)):
        with pytest.raises(TypeError, match=message):
            use()
    fitted = HistoryEncoder("engaging_user_id", ["like"]).fit(rows.iloc[:30])
    for use in (lambda: fitted.transform(texts.iloc[30:], labels=True), lambda: fitted.extend(texts.iloc[30:])):
        with pytest.raises(TypeError, match=message):
            use()
    assert fitted.transform(texts.iloc[30:], labels=False)["hist_engaging_user_id_n"].sum() > 0  # labels not read


def test_a_y_given_to_a_history_encoder_that_finds_no_label_is_refused():
    """``HistoryEncoder("u").fit_transform(X, y)`` silently ignored y (labels are columns of X): the features came
    without any label's. A y beside labels found in X (a Pipeline passes one) is still fine."""
    from rapids_engage.features import HistoryEncoder

    rows = _events().rename(columns={"like": "clicked"})
    with pytest.raises(ValueError, match=r"^HistoryEncoder\(engaging_user_id\): y is not read; the labels are columns of "
                                         r"X named by targets, and targets=None found none of \[.*\] in X"):
        HistoryEncoder("engaging_user_id").fit_transform(rows.drop(columns="clicked"), rows["clicked"])
    named = HistoryEncoder("engaging_user_id", ["clicked"]).fit_transform(rows, rows["clicked"])
    assert "hist_engaging_user_id_clicked" in named.columns
    found = HistoryEncoder("engaging_user_id").fit_transform(rows.rename(columns={"clicked": "like"}), rows["clicked"])
    assert "hist_engaging_user_id_like" in found.columns
    assert HistoryEncoder("engaging_user_id").fit(rows.drop(columns="clicked")).targets_ == []  # no y: counts alone


def test_a_missing_history_label_is_refused_by_fit_as_by_extend():
    """``fit`` took a NaN label as a labelled negative (``fillna(0)``: counted in the rates' denominators) where ``extend``
    refused it; now every path that reads labels refuses it in extend's words (a run's labels are never missing:
    ingest refuses a missing target value and drops an event log's anchors whose label is not final)."""
    from rapids_engage.data import DataError
    from rapids_engage.features import HistoryEncoder
    from rapids_engage.features.history import history_features

    rows = _events().astype({"like": "float64"})
    gap = rows.assign(like=rows["like"].where(rows.index != 40))
    message = r"^history events \(engaging_user_id\) need every label: column\(s\) \['like'\] have missing values"
    fitted = HistoryEncoder("engaging_user_id", ["like"]).fit(rows.iloc[:30])
    for use in (lambda: HistoryEncoder("engaging_user_id", ["like"]).fit(gap),
                lambda: HistoryEncoder("engaging_user_id", ["like"]).fit_transform(gap),
                lambda: history_features(dd.from_pandas(gap, npartitions=2), HistoryEncoder("engaging_user_id", ["like"])).compute(),
                lambda: fitted.transform(gap.iloc[30:], labels=True), lambda: fitted.extend(gap.iloc[30:])):
        with pytest.raises(DataError, match=message):
            use()
    with pytest.raises(DataError, match=r"have missing values \(rows to score without labels: transform\(X, labels=False\)\)$"):
        fitted.transform(gap.iloc[30:])  # labels=None reads them where X holds them
    assert fitted.transform(gap.iloc[30:], labels=False)["hist_engaging_user_id_n"].sum() > 0  # labels not read
