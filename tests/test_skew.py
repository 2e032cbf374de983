"""Train/validation skew: features whose signal in training is gone in validation are reported,
drifting but faithful features, unused features and noise are not."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from rapids_engage.skew import auc_se, describe, shifted_features, skew_report, spearman_se


def _rows(n: int, seed: int, leaky: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(signal - 2)))).astype(float)
    # 'recent_clicks' knows the label in training (labels of the last hour) and is 0 in validation
    recent = (y * rng.poisson(2.0, n)) if leaky else np.zeros(n)
    return pd.DataFrame({
        "steady": signal + rng.normal(size=n),            # the same relation in both
        "drifting": signal + rng.normal(size=n) + (0 if leaky else 50.0),  # shifted values, same relation
        "recent_clicks": recent,
        "unused_leak": y * rng.random(n) if leaky else rng.random(n),  # skewed, but the model does not use it
        "with_nan": np.where(rng.random(n) < 0.3, np.nan, signal),
        "y": y,
    })


GAINS = {"steady": 0.4, "drifting": 0.2, "recent_clicks": 0.3, "with_nan": 0.1}
FEATURES = ["steady", "drifting", "recent_clicks", "unused_leak", "with_nan"]


def test_the_feature_whose_signal_is_gone_in_validation_is_the_one_reported():
    train, valid = _rows(20_000, 0, leaky=True), _rows(5_000, 1, leaky=False)
    found = shifted_features(train, valid, "y", FEATURES, GAINS)
    assert [d["feature"] for d in found] == ["recent_clicks"]
    assert found[0]["measure"] == "AUC" and found[0]["train"] > 0.6 and found[0]["valid"] == pytest.approx(0.5)
    assert found[0]["gain_share"] == 0.3
    assert describe(found).startswith("recent_clicks (AUC 0.")
    assert shifted_features(train, valid, "y", FEATURES, GAINS | {"recent_clicks": 0.005}) == []  # too little gain


def test_noise_is_not_reported():
    # the same relation on both sides, small samples: differences are noise
    for seed in range(5):
        train, valid = _rows(3_000, seed, leaky=False), _rows(600, seed + 100, leaky=False)
        train["recent_clicks"] = train["steady"]
        valid["recent_clicks"] = valid["steady"]
        assert shifted_features(train, valid, "y", FEATURES, GAINS) == []


def test_one_class_reports_nothing():
    train, valid = _rows(2_000, 0, leaky=True), _rows(500, 1, leaky=False)
    assert shifted_features(train, valid.assign(y=0.0), "y", FEATURES, GAINS) == []


def test_auc_standard_error_matches_the_mann_whitney_null():
    for n in (50, 1_000):
        assert auc_se(0.5, n, n) == pytest.approx(math.sqrt((2 * n + 1) / (12 * n * n)), rel=0.02)
    assert auc_se(0.9, 100, 100) < auc_se(0.6, 100, 100)
    assert math.isnan(auc_se(0.7, 0, 10)) and math.isnan(auc_se(0.7, 10, 0))  # no positives or no negatives


def test_auc_standard_error_of_a_negated_feature_is_the_same():
    """A feature's negation has AUC 1 - AUC and the same spread; Hanley & McNeil's formula taken at an AUC below 0.5
    gave it another standard error (rare positives: 0.050 for 0.30, 0.066 for 0.70, 0.058 simulated), so a feature
    whose low values predict the label (cnt_user_id on MIND, AUC 0.32) was flagged on smaller differences."""
    for n_pos, n_neg in ((20, 2_000), (2_000, 20), (300, 300)):
        for auc in (0.3, 0.45, 0.1):
            assert auc_se(auc, n_pos, n_neg) == pytest.approx(auc_se(1 - auc, n_pos, n_neg))


def test_skew_report_samples_dask_frames():
    import dask.dataframe as dd

    class Booster:
        def get_score(self, importance_type):
            assert importance_type == "total_gain"
            return {k: v * 10 for k, v in GAINS.items()}

    train, valid = _rows(20_000, 0, leaky=True), _rows(5_000, 1, leaky=False)
    got = skew_report(dd.from_pandas(train, npartitions=3), dd.from_pandas(valid, npartitions=2), {"y": "binary"}, FEATURES,
                      {"y": Booster()}, max_rows=8_000)
    assert [d["feature"] for d in got["y"]] == ["recent_clicks"]
    assert skew_report(None, None, {}, FEATURES, {}) == {}


def _counts(n: int, seed: int, leaky: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    y = np.log1p(rng.poisson(np.exp(0.5 + 0.6 * signal)))  # log1p counts, as the store keeps them
    recent = (y * rng.random(n)) if leaky else np.zeros(n)  # constant in validation: Spearman nan
    return pd.DataFrame({"steady": signal + rng.normal(size=n), "drifting": signal + (0 if leaky else 9.0),
                         "recent_clicks": recent, "unused_leak": rng.random(n), "with_nan": signal, "y": y})


def test_count_targets_are_measured_by_spearman():
    train, valid = _counts(20_000, 0, leaky=True), _counts(5_000, 1, leaky=False)
    found = shifted_features(train, valid, "y", FEATURES, GAINS, kind="count")
    assert [(d["feature"], d["measure"], d["valid"]) for d in found] == [("recent_clicks", "Spearman", 0.0)]
    assert found[0]["train"] > 0.5
    assert describe(found).startswith("recent_clicks (Spearman 0.")
    for seed in range(3):  # the same relation on both sides: nothing
        a, b = _counts(3_000, seed, leaky=False), _counts(600, seed + 50, leaky=False)
        assert shifted_features(a, b, "y", FEATURES, GAINS, kind="count") == []


def test_spearman_standard_error_matches_its_spread():
    rng = np.random.default_rng(0)
    n, rhos = 400, []
    for _ in range(300):
        x = rng.normal(size=n)
        rhos.append(pd.Series(x).corr(pd.Series(0.6 * x + rng.normal(size=n)), method="spearman"))
    assert spearman_se(float(np.mean(rhos)), n) == pytest.approx(float(np.std(rhos)), rel=0.15)
    assert math.isnan(spearman_se(0.3, 3))
