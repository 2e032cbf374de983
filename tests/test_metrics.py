"""Property tests of rapids_engage.metrics against scikit-learn / scipy / brute force."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr
from sklearn import metrics as skm

from rapids_engage import metrics as m

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def binary_data(draw, min_n: int = 2, max_n: int = 300, both_classes: bool = True):
    """(y, p): imbalanced labels; p from a few discrete levels (ties) or continuous."""
    n = draw(st.integers(min_n, max_n))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rate = draw(st.sampled_from([0.01, 0.05, 0.2, 0.5, 0.9]))
    y = (rng.random(n) < rate).astype(np.float64)
    if both_classes:
        y[0], y[-1] = 1.0, 0.0
    levels = draw(st.sampled_from([2, 3, 5, 0]))  # 0 -> continuous
    if levels:
        p = rng.choice(np.linspace(0.02, 0.98, levels), size=n)
    else:
        p = rng.uniform(0.001, 0.999, size=n)
    return y, p


@st.composite
def ranking_data(draw, tie_free: bool = False):
    """(y, p, group) with unsorted group ids, groups of varying size."""
    n = draw(st.integers(1, 200))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_groups = draw(st.integers(1, 30))
    group = rng.integers(0, n_groups, size=n) * 7 + 3
    rate = draw(st.sampled_from([0.05, 0.2, 0.5]))
    y = (rng.random(n) < rate).astype(np.float64)
    p = rng.permutation(n).astype(np.float64) / n if tie_free else rng.choice([0.1, 0.5, 0.9], size=n)
    return y, p, group


def _reversed_index(a):
    """A Series on a descending index: read by position, as sklearn does (no alignment on the index)."""
    return pd.Series(a, index=np.arange(len(a))[::-1])


#: What a notebook passes as 0/1 labels (float 0.0/1.0 arrays are binary_data's own).
LABEL_FORMS = {
    "float": lambda y: y,
    "bool": lambda y: y.astype(bool),
    "int8": lambda y: y.astype(np.int8),
    "list": lambda y: y.astype(int).tolist(),
    "Int64": lambda y: pd.Series(y.astype(int), dtype="Int64"),
    "boolean": lambda y: pd.Series(y.astype(bool), dtype="boolean"),
    "reversed index": _reversed_index,
}
#: ... and as scores.
SCORE_FORMS = {
    "float": lambda p: p,
    "list": lambda p: p.tolist(),
    "Float64": lambda p: pd.Series(p, dtype="Float64"),
    "series": lambda p: pd.Series(p, index=np.arange(len(p)) + 1000),
}
forms = st.tuples(st.sampled_from(sorted(LABEL_FORMS)), st.sampled_from(sorted(SCORE_FORMS)))


def _as(form, y, p):
    return LABEL_FORMS[form[0]](y), SCORE_FORMS[form[1]](p)


# ----------------------------------------------------------------- binary ---
@SETTINGS
@given(binary_data(), forms)
def test_average_precision_matches_sklearn(d, form):
    y, p = d
    assert m.average_precision(*_as(form, y, p)) == pytest.approx(skm.average_precision_score(y, p), abs=1e-12)


@SETTINGS
@given(binary_data(), forms)
def test_roc_auc_matches_sklearn(d, form):
    y, p = d
    assert m.roc_auc(*_as(form, y, p)) == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)


@SETTINGS
@given(binary_data(min_n=1, both_classes=False), forms)
def test_log_loss_matches_sklearn(d, form):
    y, p = d
    assert m.log_loss(*_as(form, y, p)) == pytest.approx(skm.log_loss(y, p, labels=[0, 1]), rel=1e-10)


def test_log_loss_clips_like_sklearn_at_zero_and_one():
    y = np.array([1.0, 0.0, 1.0, 0.0, 1.0])
    p = np.array([0.0, 1.0, 1.0, 0.0, 0.5])
    eps = np.finfo(np.float64).eps  # sklearn's clipping
    assert m.log_loss(y, p, eps=eps) == pytest.approx(skm.log_loss(y, p), rel=1e-12)
    assert math.isfinite(m.log_loss(y, p))


def _organizers_rce(gt, pred):
    cross_entropy = skm.log_loss(gt, pred)
    data_ctr = float(np.mean(gt))
    strawman_cross_entropy = skm.log_loss(gt, [data_ctr] * len(gt))
    return (1.0 - cross_entropy / strawman_cross_entropy) * 100.0


@SETTINGS
@given(binary_data())
def test_rce_matches_organizers_formula(d):
    y, p = d
    assert m.rce(y, p) == pytest.approx(_organizers_rce(y, p), rel=1e-9, abs=1e-9)


def test_rce_degenerate_and_constant():
    assert math.isnan(m.rce(np.zeros(10), np.full(10, 0.3)))
    assert math.isnan(m.rce(np.ones(10), np.full(10, 0.3)))
    y = (np.random.default_rng(1).random(1000) < 0.13).astype(float)
    assert m.rce(y, np.full(y.size, y.mean())) == pytest.approx(0.0, abs=1e-9)


def test_perfect_predictor():
    y = (np.random.default_rng(2).random(500) < 0.1).astype(float)
    p = np.where(y > 0, 0.9, 0.1)
    assert m.average_precision(y, p) == 1.0
    assert m.roc_auc(y, p) == 1.0
    assert math.isnan(m.roc_auc(np.ones(5), np.arange(5.0)))
    assert math.isnan(m.average_precision(np.zeros(5), np.arange(5.0)))


@SETTINGS
@given(binary_data(min_n=1, both_classes=False), st.sampled_from([1, 5, 10, 15]))
def test_ece_brute_force(d, n_bins):
    y, p = d
    p = p.copy()
    p[0] = 1.0  # edge: p == 1 falls in the last bin
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        sel = [i for i in range(len(p)) if (lo <= p[i] < hi) or (b == n_bins - 1 and p[i] == 1.0)]
        if sel:
            total += len(sel) / len(p) * abs(np.mean(p[sel]) - np.mean(y[sel]))
    assert m.expected_calibration_error(y, p, n_bins) == pytest.approx(total, abs=1e-12)
    cc = m.calibration_curve(y, p, n_bins)
    assert sum(cc["count"]) == len(p)
    assert len(cc["mean_pred"]) == len(cc["frac_pos"]) == len(cc["count"])
    for mp, fp, c in zip(cc["mean_pred"], cc["frac_pos"], cc["count"]):
        b = min(int(np.searchsorted(np.linspace(0, 1, n_bins + 1), mp, side="right")) - 1, n_bins - 1)
        lo, hi = np.linspace(0, 1, n_bins + 1)[b : b + 2]
        sel = (p >= lo) & ((p < hi) | (b == n_bins - 1))
        assert c == sel.sum() and mp == pytest.approx(p[sel].mean()) and fp == pytest.approx(y[sel].mean())


def test_calibration_curve_matches_sklearn_on_continuous_scores():
    from sklearn.calibration import calibration_curve as sk_curve

    rng = np.random.default_rng(7)
    p = rng.random(3000)
    y = (rng.random(3000) < p**2).astype(float)
    frac_pos, mean_pred = sk_curve(y, p, n_bins=10)
    cc = m.calibration_curve(y, p, n_bins=10)
    np.testing.assert_allclose(cc["mean_pred"], mean_pred, rtol=1e-12)
    np.testing.assert_allclose(cc["frac_pos"], frac_pos, rtol=1e-12)


def test_a_score_on_a_bin_edge_falls_in_the_upper_bin():
    """Bins are [lo, hi): 0.5 is in [0.5, 0.6), not [0.4, 0.5), and 1.0 in the last (closed) bin."""
    y, p = np.array([0.0, 1.0, 1.0, 0.0, 1.0]), np.array([0.45, 0.5, 0.55, 0.0, 1.0])
    # bins: {0.0}: |0 - 0|, {0.45}: |0.45 - 0|, {0.5, 0.55}: |1.05 - 2|, {1.0}: |1 - 1|
    assert m.expected_calibration_error(y, p) == pytest.approx((0.45 + 0.95) / 5, abs=1e-12)
    cc = m.calibration_curve(y, p)
    assert cc["count"] == [1, 1, 2, 1]
    np.testing.assert_allclose(cc["mean_pred"], [0.0, 0.45, 0.525, 1.0], rtol=1e-12)
    np.testing.assert_allclose(cc["frac_pos"], [0.0, 0.0, 1.0, 1.0], rtol=1e-12)


def test_pr_curve_downsampled():
    rng = np.random.default_rng(3)
    y = (rng.random(5000) < 0.2).astype(float)
    p = rng.random(5000)
    c = m.pr_curve(y, p, max_points=50)
    assert 2 <= len(c["precision"]) == len(c["recall"]) <= 50
    assert c["recall"][-1] == 1.0 and c["recall"] == sorted(c["recall"])
    assert m.pr_curve(np.zeros(3), np.ones(3)) == {"precision": [], "recall": []}


def test_pr_curve_starts_at_recall_0_precision_1_and_ends_at_the_positive_rate():
    y = np.array([0.0, 1.0, 0.0, 1.0, 0.0])
    p = np.array([0.9, 0.8, 0.3, 0.2, 0.1])
    c = m.pr_curve(y, p)
    assert (c["recall"][0], c["precision"][0]) == (0.0, 1.0)
    assert c["precision"][1:] == pytest.approx([0.0, 0.5, 1 / 3, 0.5, 0.4])
    assert (c["recall"][-1], c["precision"][-1]) == (1.0, pytest.approx(y.mean()))


def test_log_loss_clips_at_1e_15_by_default_as_the_reports_do():
    y = np.array([1.0, 0.0, 1.0, 0.0])
    p = np.array([0.0, 1.0, 0.7, 0.2])
    expected = (-math.log(1e-15) - math.log(1.0 - (1.0 - 1e-15)) - math.log(0.7) - math.log(0.8)) / 4  # 1 - 1e-15 rounds
    assert m.log_loss(y, p) == pytest.approx(expected, rel=1e-12)
    assert m.binary_report(y, p)["log_loss"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "y, p",
    [
        ([1, 1, 1, 1], [0.1, 0.2, 0.2, 0.9]),  # all positive
        ([0, 0, 0, 0], [0.1, 0.2, 0.2, 0.9]),  # all negative
        ([1, 0, 1, 0, 0, 1], [0.5] * 6),  # every score tied
        ([1, 0, 1, 0, 0, 1], [0.5, 0.5, 0.2, 0.2, 0.9, 0.9]),  # tie blocks mixing the classes
        ([1], [0.3]),  # one row
    ],
)
def test_edge_inputs_agree_with_sklearn_or_are_the_documented_nan(y, p):
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    both = 0 < y.sum() < len(y)
    assert m.log_loss(y, p) == pytest.approx(skm.log_loss(y, p, labels=[0, 1]), rel=1e-12)
    if y.sum() > 0:
        assert m.average_precision(y, p) == pytest.approx(skm.average_precision_score(y, p), abs=1e-12)
    else:  # sklearn gives 0.0 (and warns): no positive to rank
        assert math.isnan(m.average_precision(y, p))
    if both:
        assert m.roc_auc(y, p) == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
        assert m.rce(y, p) == pytest.approx(_organizers_rce(y, p), rel=1e-9, abs=1e-9)
    else:  # sklearn raises (AUC) or divides by a zero strawman (RCE)
        assert math.isnan(m.roc_auc(y, p)) and math.isnan(m.rce(y, p))
    report = m.binary_report(y, p, key=np.arange(len(y), dtype=float))
    assert report["ap"] == pytest.approx(m.average_precision(y, p), nan_ok=True)
    assert report["auc"] == pytest.approx(m.roc_auc(y, p), nan_ok=True)


def _brute_grouped(metric, y, p, key, n_groups):
    edges = np.quantile(key, np.linspace(0, 1, n_groups + 1))
    vals = []
    for g in range(n_groups):
        lo, hi = edges[g], edges[g + 1]
        last = g == n_groups - 1
        idx = [i for i in range(len(key)) if lo <= key[i] < hi or (last and lo <= key[i] <= hi)]
        if idx:
            vals.append(metric(y[idx], p[idx]))
    finite = [v for v in vals if not math.isnan(v)]
    return (sum(finite) / len(finite) if finite else float("nan")), vals


@SETTINGS
@given(binary_data(min_n=1, both_classes=False), st.integers(0, 2**32 - 1), st.sampled_from([1, 3, 5]))
def test_grouped_by_quantile_brute_force(d, seed, n_groups):
    y, p = d
    rng = np.random.default_rng(seed)
    key = rng.integers(0, 6, size=len(y)) * 100  # heavy ties -> duplicate edges
    for metric in (m.average_precision, m.rce):
        res = m.grouped_by_quantile(metric, y, p, key, n_groups=n_groups)
        mean, vals = _brute_grouped(metric, y, p, key, n_groups)
        np.testing.assert_allclose(res["groups"], vals, rtol=1e-12, equal_nan=True)
        if math.isnan(mean):
            assert math.isnan(res["mean"])
        else:
            assert res["mean"] == pytest.approx(mean, rel=1e-12)
        assert len(res["edges"]) == n_groups + 1


@SETTINGS
@given(binary_data(min_n=1, both_classes=False), st.integers(0, 2**32 - 1))
def test_binary_report_grouped_equals_grouped_by_quantile(d, seed):
    y, p = d
    key = np.random.default_rng(seed).integers(0, 8, size=len(y)).astype(float)
    key[::7] = np.nan
    r = m.binary_report(y, p, key=key)
    for name, metric in (("ap_grouped", m.average_precision), ("rce_grouped", m.rce)):
        expected = m.grouped_by_quantile(metric, y, p, key)["mean"]
        assert r[name] == pytest.approx(expected, rel=1e-12, nan_ok=True)


@pytest.mark.parametrize("rows, positives, spread", [(2143, 13, 0.5), (2143, 55, 0.4), (20_000, 800, 0.6)])
def test_rce_chance_is_the_mean_and_spread_of_rce_with_the_labels_permuted(rows, positives, spread):
    """binary_report's rce_chance / rce_chance_se (the audit's bound on few positives) are the exact mean and standard
    error of RCE over permutations of the labels among the rows: 2,000 permutations agree within 5 % of the error."""
    rng = np.random.default_rng(rows + positives)
    y = np.zeros(rows)
    y[:positives] = 1
    p = np.clip(positives / rows * np.exp(rng.normal(0, spread, rows)), 1e-6, 0.99)
    r = m.binary_report(y, p)
    sims = np.array([m.rce(rng.permutation(y), p) for _ in range(2000)])
    assert r["rce_chance"] == pytest.approx(sims.mean(), abs=0.1 * r["rce_chance_se"])
    assert r["rce_chance_se"] == pytest.approx(sims.std(), rel=0.05)
    assert r["rce_chance"] < 0  # no scorer without skill beats the constant on average
    from rapids_engage.metrics.binary import _rce_chance

    assert all(math.isnan(v) for v in _rce_chance(np.full(4, 0.5), 1.0, np))  # one class


def test_binary_report_and_series_input():
    rng = np.random.default_rng(4)
    y = (rng.random(2000) < 0.3).astype(float)
    p = np.clip(0.3 + 0.3 * (y - 0.3) + rng.normal(0, 0.2, 2000), 0.01, 0.99)
    key = rng.lognormal(5, 2, 2000)
    r = m.binary_report(pd.Series(y), pd.Series(p), key=pd.Series(key))
    assert set(r) == {"ap", "rce", "auc", "log_loss", "ece", "positive_rate", "n", "ap_grouped", "rce_grouped", "rce_chance",
                      "rce_chance_se"}
    assert r["n"] == 2000 and isinstance(r["n"], int)
    assert all(isinstance(v, float) for k, v in r.items() if k != "n")
    assert r["ap"] == pytest.approx(skm.average_precision_score(y, p))
    assert r["auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert r["rce"] == pytest.approx(_organizers_rce(y, p))
    assert set(m.binary_report(y, p)) == {"ap", "rce", "auc", "log_loss", "ece", "positive_rate", "n", "rce_chance", "rce_chance_se"}


# ---------------------------------------------------------------- ranking ---
def _brute_ranking(y, p, group, k):
    aps, rrs = [], []
    for g in dict.fromkeys(group.tolist()):
        idx = [i for i in range(len(y)) if group[i] == g]
        idx.sort(key=lambda i: (-p[i], y[i] > 0))  # ties: non-relevant rows first (pessimistic)
        rel = [y[i] > 0 for i in idx]
        n_pos = sum(rel)
        if n_pos == 0:
            continue
        hits, ap = 0, 0.0
        for r, is_rel in enumerate(rel[:k], start=1):
            if is_rel:
                hits += 1
                ap += hits / r
        aps.append(ap / min(k, n_pos))
        rrs.append(1.0 / (rel.index(True) + 1))
    nan = float("nan")
    return (np.mean(aps) if aps else nan), (np.mean(rrs) if rrs else nan)


@SETTINGS
@given(ranking_data(), st.sampled_from([1, 3, 10]))
def test_map_and_mrr_brute_force(d, k):
    y, p, group = d
    exp_map, exp_mrr = _brute_ranking(y, p, group, k)
    got_map, got_mrr = m.map_at_k(y, p, group, k=k), m.mrr(y, p, group)
    if math.isnan(exp_map):
        assert math.isnan(got_map) and math.isnan(got_mrr)
    else:
        assert got_map == pytest.approx(exp_map, abs=1e-12)
        assert got_mrr == pytest.approx(exp_mrr, abs=1e-12)


@SETTINGS
@given(ranking_data(tie_free=True), st.sampled_from([1, 3, 10]))
def test_ndcg_matches_sklearn_per_group(d, k):
    y, p, group = d
    vals = []
    for g in np.unique(group):
        sel = group == g
        if y[sel].sum() == 0:
            continue
        if sel.sum() == 1:
            vals.append(1.0)
        else:
            vals.append(skm.ndcg_score(y[sel][None, :], p[sel][None, :], k=k))
    got = m.ndcg_at_k(y, p, group, k=k)
    if not vals:
        assert math.isnan(got)
    else:
        assert got == pytest.approx(np.mean(vals), abs=1e-12)


def test_ndcg_of_a_k_beyond_every_group():
    """The ideal DCG table was k long: k=10**8 on 4 rows took 13 s and 1.5 GB, k=10**12 a MemoryError."""
    y, p, group = np.array([0, 1, 1, 0, 1.0]), np.array([0.9, 0.8, 0.4, 0.3, 0.2]), np.array([1, 1, 2, 2, 2])
    want = (1 / math.log2(3) + (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))) / 2
    for k in (3, 10**12):
        assert m.ndcg_at_k(y, p, group, k=k) == pytest.approx(want, abs=1e-12)
        assert m.ranking_report(y, p, group, k=k)[f"ndcg@{k}"] == pytest.approx(want, abs=1e-12)
    assert math.isnan(m.ndcg_at_k(np.zeros(3), p[:3], group[:3], k=10**12))


def _brute_every_k(y, p, group, k_max, tiebreak=None):
    """MAP@k and NDCG@k for k = 1 .. k_max, group by group in plain Python (ties by ``tiebreak``, else non-relevant first)."""
    maps, ndcgs = [[] for _ in range(k_max)], [[] for _ in range(k_max)]
    for g in dict.fromkeys(group.tolist()):
        idx = [i for i in range(len(y)) if group[i] == g]
        idx.sort(key=lambda i: (-p[i], tiebreak[i] if tiebreak is not None else y[i] > 0))
        rel = [float(y[i] > 0) for i in idx]
        n_pos = int(sum(rel))
        if n_pos == 0:
            continue
        for k in range(1, k_max + 1):
            top = rel[:k]
            maps[k - 1].append(sum(r * sum(top[:i + 1]) / (i + 1) for i, r in enumerate(top)) / min(k, n_pos))
            ideal = sum(1 / math.log2(i + 2) for i in range(min(k, n_pos)))
            ndcgs[k - 1].append(sum(r / math.log2(i + 2) for i, r in enumerate(top)) / ideal)
    nan = float("nan")
    return [np.mean(v) if v else nan for v in maps], [np.mean(v) if v else nan for v in ndcgs]


@SETTINGS
@given(ranking_data(), st.sampled_from([1, 4, 12]), st.booleans())
def test_ranking_at_every_k_is_each_k_s_map_and_ndcg(d, k_max, hashed):
    """One sort for the ranking plot's curves: at each k the report's map@k / ndcg@k (ties by the same hash) and a brute force."""
    y, p, group = d
    ties = np.random.default_rng(len(y)).permutation(len(y)) if hashed else None
    got = m.ranking_at_every_k(y, p, group, k_max, tiebreak=ties)
    maps, ndcgs = _brute_every_k(y, p, group, k_max, ties)
    assert got["k"] == list(range(1, k_max + 1))
    assert got["map"] == pytest.approx(maps, abs=1e-12, nan_ok=True) and got["ndcg"] == pytest.approx(ndcgs, abs=1e-12, nan_ok=True)
    for k in (1, k_max):
        report = m.ranking_report(y, p, group, k=k, tiebreak=ties)
        assert got["n_groups"] == report["n_groups"]
        assert got["map"][k - 1] == pytest.approx(report[f"map@{k}"], abs=1e-12, nan_ok=True)
        assert got["ndcg"][k - 1] == pytest.approx(report[f"ndcg@{k}"], abs=1e-12, nan_ok=True)
    with_pos = [g for g in set(group.tolist()) if y[group == g].sum() > 0]
    assert got["largest_group"] == max(((group == g).sum() for g in with_pos), default=0)


def test_ranking_band_is_a_bootstrap_over_the_groups_with_a_positive():
    """The band of ranking_at_every_k: per resample of the groups with a positive (drawn with replacement, in the
    order of their ids), MAP@k / NDCG@k of the rows of the drawn groups (a group drawn twice counted twice) by the
    brute force; the band is the 2.5 and 97.5 percentiles of those means at each k."""
    from rapids_engage.metrics.ranking import _bootstrap_draws

    rng = np.random.default_rng(8)
    group = rng.choice(np.array([30, 10, 20, 50, 40, 60]), 40)  # ids out of order; some groups without a positive
    y = (rng.random(40) < 0.3).astype(float)
    y[group == 60] = 0.0
    p = np.round(rng.random(40), 1)  # ties: ordered by the tie-break
    ties = rng.permutation(40)
    got = m.ranking_at_every_k(y, p, group, 4, tiebreak=ties, resamples=30, seed=3)
    with_pos = sorted(g for g in set(group.tolist()) if y[group == g].sum() > 0)
    assert got["n_groups"] == len(with_pos) >= 4
    means = []
    for idx in np.concatenate(list(_bootstrap_draws(len(with_pos), 30, 3))):
        rows = [np.flatnonzero(group == with_pos[i]) for i in idx]
        relabelled = np.concatenate([np.full(len(r), j) for j, r in enumerate(rows)])  # each draw its own group
        rows = np.concatenate(rows)
        means.append(np.concatenate(_brute_every_k(y[rows], p[rows], relabelled, 4, ties[rows])))
    low, high = np.quantile(np.array(means), [0.025, 0.975], axis=0)
    assert got["map_band"][0] == pytest.approx(low[:4], abs=1e-12) and got["map_band"][1] == pytest.approx(high[:4], abs=1e-12)
    assert got["ndcg_band"][0] == pytest.approx(low[4:], abs=1e-12) and got["ndcg_band"][1] == pytest.approx(high[4:], abs=1e-12)
    assert all(lo <= v <= hi for key in ("map", "ndcg") for v, lo, hi in zip(got[key], *got[f"{key}_band"]))
    assert low[0] < high[0]  # resampling moved the means
    assert "map_band" not in m.ranking_at_every_k(y, p, group, 4, tiebreak=ties)
    assert m.ranking_at_every_k(np.zeros(3), p[:3], group[:3], 4, resamples=5)["map_band"] is None
    with pytest.raises(ValueError, match="resamples must be a whole number"):
        m.ranking_at_every_k(y, p, group, 4, resamples=-1)


def test_ranking_report_keys_and_string_groups():
    rng = np.random.default_rng(5)
    y = (rng.random(300) < 0.3).astype(float)
    p = rng.random(300)
    group = np.array([f"u{i}" for i in rng.integers(0, 20, 300)])
    r = m.ranking_report(y, p, group, k=5)
    assert set(r) == {"map@5", "ndcg@5", "mrr", "auc", "group_auc", "group_auc_se", "n_groups", "tied@5"}
    assert r["n_groups"] == len({g for g, t in zip(group, y) if t > 0})
    exp_map, exp_mrr = _brute_ranking(y, p, group, 5)
    assert r["map@5"] == pytest.approx(exp_map) and r["mrr"] == pytest.approx(exp_mrr)
    perfect = m.ranking_report(y, y + 0.1 * p, group)
    assert perfect["map@10"] == perfect["ndcg@10"] == perfect["mrr"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "group",
    [
        np.array([1, 1, np.nan, np.nan, 2, 2]),
        [1, 1, None, float("nan"), 2, 2],
        np.array(["a", "a", None, None, "b", "b"], dtype=object),
        pd.Series([1, 1, None, None, 2, 2], dtype="Int64"),
        pd.Series(["a", "a", None, None, "b", "b"]),
    ],
)
def test_missing_group_ids_are_an_error(group):
    """Rows without a group: NaN ids each made a perfectly ranked group of one (MAP@10 0.875 instead of the two real
    groups' 0.75, n_groups 4), None ids a TypeError from the sort."""
    y, p = np.array([0, 1, 1, 1, 1, 0.0]), np.array([0.9, 0.1, 0.8, 0.7, 0.5, 0.2])
    for f in (m.map_at_k, m.ndcg_at_k, m.mrr, m.ranking_report):
        with pytest.raises(ValueError, match=r"group has 2 missing id\(s\) \(None, NaN or null\), the first at row 2"):
            f(y, p, group)


def _brute_tied(y, p, group, k, tiebreak):
    """Share of top-k rows (by score, ties by tiebreak) of groups with a positive that share their score in the group."""
    shown = []
    for g in dict.fromkeys(group.tolist()):
        idx = [i for i in range(len(y)) if group[i] == g]
        if not any(y[i] > 0 for i in idx):
            continue
        idx.sort(key=lambda i: (-p[i], tiebreak[i]))
        shown += [sum(p[j] == p[i] for j in idx) > 1 for i in idx[:k]]
    return float(np.mean(shown)) if shown else float("nan")


def test_ranking_report_of_graded_labels_is_that_of_binary_relevance():
    """Labels above 1 are relevant (y > 0) for every metric of the report, AUC included."""
    y = np.array([2.0, 0.0, 3.0, 1.0, 0.0, 0.0])
    p = np.array([0.9, 0.1, 0.4, 0.6, 0.5, 0.2])
    group = np.array([1, 1, 2, 2, 2, 3])
    graded, binary = m.ranking_report(y, p, group), m.ranking_report((y > 0).astype(float), p, group)
    assert graded == pytest.approx(binary, nan_ok=True)
    assert graded["auc"] == pytest.approx(skm.roc_auc_score(y > 0, p))
    assert m.ranking_report(np.array([2.0, 0.0]), np.array([0.9, 0.1]), np.array([1, 1]))["auc"] == 1.0


def _brute_group_auc(y, p, group):
    """sklearn's AUC of each group that holds a relevant and a non-relevant row, averaged (nan when none does)."""
    values = [skm.roc_auc_score(y[group == g] > 0, p[group == g]) for g in np.unique(group)
              if 0 < (y[group == g] > 0).sum() < (group == g).sum()]
    return float(np.mean(values)) if values else float("nan")


@SETTINGS
@given(ranking_data(), st.booleans(), st.booleans())
def test_group_auc_brute_force(d, graded, one_group):
    """Ties (scores of 3 values), groups of one class skipped, unsorted group ids, graded labels, a single group."""
    y, p, group = d
    if graded:
        y = y * np.random.default_rng(len(y)).integers(1, 4, len(y))
    if one_group:
        group = np.full(len(y), 11)
    want = _brute_group_auc(y, p, group)
    tiebreak = np.random.default_rng(len(y) + 1).permutation(len(y))
    for got in (m.group_auc(y, p, group), m.ranking_report(y, p, group, tiebreak=tiebreak)["group_auc"]):
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-12)


def test_group_auc_null_se_is_the_spread_of_scorers_without_skill():
    """ranking_report's group_auc_se (the audit's bound) is the Mann-Whitney standard error of the mean within-group
    AUC for scores independent of the labels: the spread of 600 random scorers' group_auc on MIND-like groups
    (~40 rows, ~1.5 positives) is within 10 % of it; groups of one class do not count."""
    rng = np.random.default_rng(0)
    sizes = rng.integers(5, 80, 300)
    group = np.repeat(np.arange(300), sizes)
    y = (rng.random(len(group)) < 0.04).astype(int)
    se = m.ranking_report(y, rng.random(len(y)), group)["group_auc_se"]
    spread = np.std([m.group_auc(y, rng.random(len(y)), group) for _ in range(600)])
    assert se == pytest.approx(spread, rel=0.1)
    n1 = np.bincount(group, weights=y)
    n0 = sizes - n1
    both = (n1 > 0) & (n0 > 0)
    assert se == pytest.approx(np.sqrt(((n0 + n1 + 1) / (12 * n0 * n1))[both].sum()) / both.sum(), rel=1e-12)
    assert math.isnan(m.ranking_report(np.array([1, 1, 0]), np.array([0.2, 0.4, 0.1]), np.array([1, 1, 2]))["group_auc_se"])


def test_group_auc_of_a_constant_is_one_half_and_of_pooled_skill_none():
    """A constant score is 0.5 exactly; a score that only tells the groups apart has pooled skill and none within
    a group (0.5); scores that rank each group perfectly on scales no group shares have group AUC 1."""
    y, group = np.array([1, 0, 0, 0, 1, 0, 0, 1, 1]), np.array([5, 5, 5, 2, 2, 2, 9, 9, 9])
    assert m.group_auc(y, np.full(9, 0.3), group) == 0.5
    by_group = np.where(group == 9, 3.0, np.where(group == 5, 2.0, 1.0))
    assert m.group_auc(y, by_group, group) == 0.5 and m.roc_auc(y, by_group) > 0.6
    ranked = y + 10.0 * np.where(group == 5, 0, np.where(group == 2, -5, 7))  # each group's own scale
    assert m.group_auc(y, ranked, group) == 1.0 and m.roc_auc(y, ranked) < 1.0
    assert m.group_auc(y, -ranked, group) == 0.0
    assert math.isnan(m.group_auc(np.array([1, 1, 0]), np.array([0.2, 0.4, 0.1]), np.array([1, 1, 2])))  # no group has both


@SETTINGS
@given(ranking_data(), st.sampled_from([1, 3, 10]))
def test_tied_at_k_brute_force(d, k):
    y, p, group = d
    tiebreak = np.random.default_rng(len(y)).permutation(len(y))
    got, want = m.ranking_report(y, p, group, k=k, tiebreak=tiebreak)[f"tied@{k}"], _brute_tied(y, p, group, k, tiebreak)
    assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-12)


def test_tied_at_k_of_constant_and_distinct_scores():
    y, group = np.array([1, 0, 0, 0, 1, 0]), np.array([1, 1, 1, 2, 2, 2])
    assert m.ranking_report(y, np.zeros(6), group)["tied@10"] == 1.0
    assert m.ranking_report(y, np.arange(6.0), group)["tied@10"] == 0.0
    assert m.ranking_report(y, np.array([0.9, 0.5, 0.5, 0.3, 0.2, 0.1]), group, k=2)["tied@2"] == pytest.approx(0.25)  # 1 of 2 + 0 of 2
    # a score shared across groups is no tie
    assert m.ranking_report(y, np.array([0.9, 0.5, 0.1, 0.9, 0.5, 0.1]), group)["tied@10"] == 0.0


# ------------------------------------------------------------- regression ---
@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")
@SETTINGS
@given(st.integers(2, 300), st.integers(0, 2**32 - 1), st.booleans())
def test_spearman_matches_scipy(n, seed, ties):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n).astype(float) if ties else rng.normal(size=n)
    pred = rng.integers(0, 3, n).astype(float) if ties else y + rng.normal(size=n)
    exp = spearmanr(y, pred).statistic
    got = m.spearman(y, pred)
    if np.isnan(exp):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(exp, abs=1e-12)


def test_regression_report():
    rng = np.random.default_rng(6)
    y = rng.poisson(3, 1000).astype(float)
    pred = y + rng.normal(0, 1, 1000)
    r = m.regression_report(pd.Series(y), pred)
    assert set(r) == {"rmse_log1p", "mae_log1p", "rmse", "mae", "spearman", "n"}
    ly, lp = np.log1p(y), np.log1p(np.clip(pred, 0, None))
    assert r["rmse_log1p"] == pytest.approx(np.sqrt(np.mean((ly - lp) ** 2)))
    assert r["mae_log1p"] == pytest.approx(np.mean(np.abs(ly - lp)))
    assert r["rmse"] == pytest.approx(np.sqrt(np.mean((y - pred) ** 2)))
    assert r["mae"] == pytest.approx(np.mean(np.abs(y - pred)))
    assert r["n"] == 1000


# ------------------------------------------------------------------ inputs ---
def test_series_lists_and_nullable_inputs():
    rng = np.random.default_rng(8)
    y = (rng.random(400) < 0.3).astype(int)
    p = rng.random(400)
    group = rng.integers(0, 40, 400)
    expected = m.ranking_report(y.astype(float), p, group)
    got = m.ranking_report(pd.Series(y, dtype="Int64"), pd.Series(p), pd.Series(group), k=10)
    assert got == pytest.approx(expected)
    assert m.average_precision(y.tolist(), p.tolist()) == pytest.approx(skm.average_precision_score(y, p))
    assert m.roc_auc(y.astype(bool), p) == pytest.approx(skm.roc_auc_score(y, p))
    with pytest.raises(ValueError, match="lengths"):
        m.log_loss(y, p[:-1])


def test_nan_scores_labels_outside_0_1_and_bad_arguments_are_errors():
    """Not a plausible number: NaN scores would be ranked last and averaged, labels of 2 give an AP above 1."""
    y, p = np.array([0, 1, 0, 1]), np.array([0.1, np.nan, 0.3, 0.4])
    for f in (m.log_loss, m.rce, m.average_precision, m.roc_auc, m.expected_calibration_error, m.binary_report, m.pr_curve,
              m.calibration_curve, m.rmse, m.spearman, m.regression_report):
        with pytest.raises(ValueError, match="p has 1 NaN or infinite value"):
            f(y, p)
        with pytest.raises(ValueError, match="y has 1 NaN or infinite value"):
            f(np.array([0, np.nan, 0, 1]), np.full(4, 0.5))
    with pytest.raises(ValueError, match=r"p has 1 NaN .* the first at row 1"):
        m.map_at_k(y, p, [1, 1, 2, 2])
    for f in (m.average_precision, m.rce, m.roc_auc, m.binary_report):
        with pytest.raises(ValueError, match="y must hold 0/1 labels; row 1 holds 2"):
            f([0, 2, 0, 2], [0.1, 0.2, 0.3, 0.4])
        with pytest.raises(ValueError, match="row 0 holds -1"):
            f([-1, 1, -1, 1], [0.1, 0.2, 0.3, 0.4])
    assert m.rmse([0, 2, 5], [1, 2, 3]) == pytest.approx((5 / 3) ** 0.5)  # counts are not labels
    with pytest.raises(ValueError, match="tiebreak has 3 rows, p has 6"):
        m.ranking_report([1, 0, 1, 0, 1, 0], [0.5] * 6, [1, 1, 2, 2, 3, 3], tiebreak=np.arange(3))
    with pytest.raises(ValueError, match="k must be a whole number >= 1, got 2.5"):
        m.map_at_k([1, 0], [0.5, 0.4], [1, 1], k=2.5)
    with pytest.raises(ValueError, match="n_bins must be a whole number >= 1, got 0"):
        m.expected_calibration_error([1, 0], [0.5, 0.4], n_bins=0)


@pytest.mark.parametrize(
    "text, row",
    [
        (["0", "1", "1", "0"], 0),
        (np.array(["0", "1", "1", "0"]), 0),
        (np.array([b"0", b"1", b"1", b"0"]), 0),
        (pd.Series(["0", "1", "1", "0"]), 0),
        (pd.Series(["0", "1", "1", "0"], dtype="string"), 0),
        (pd.Series(["0", "1", "1", "0"]).astype("category"), 0),
        ([0, 1, "1", 0], 2),
        (pd.Series([0, None, "1", 0], dtype=object), 2),
    ],
)
def test_text_labels_scores_and_keys_are_refused(text, row):
    """Text ("0"/"1" read from a CSV) was parsed as floats. scikit-learn refuses text scores, refuses text labels in
    average_precision_score (pos_label=1) and reads them as class names in roc_auc_score ("9" above "10"): refused
    here, naming the argument and the first row of text."""
    y, p, key = np.array([0, 1, 1, 0]), np.array([0.1, 0.8, 0.4, 0.3]), np.array([5.0, 1.0, 2.0, 7.0])
    for f in (m.average_precision, m.roc_auc, m.log_loss, m.rce, m.binary_report, m.regression_report):
        with pytest.raises(ValueError, match=rf"y holds text \(.*'1' at row {row}\)|y holds text \(.*'0' at row {row}\)"):
            f(text, p)
    with pytest.raises(ValueError, match=rf"p holds text .* at row {row}\): labels, scores and keys must be numbers"):
        m.roc_auc(y, text)
    with pytest.raises(ValueError, match=rf"y holds text .* at row {row}"):
        m.map_at_k(text, p, [1, 1, 2, 2])
    for grouped in (lambda: m.grouped_by_quantile(m.average_precision, y, p, text), lambda: m.binary_report(y, p, key=text)):
        with pytest.raises(ValueError, match=rf"key holds text .* at row {row}"):
            grouped()
    assert m.grouped_by_quantile(m.average_precision, y, p, key.astype(int))["counts"] == [1, 1, 1, 1]  # numbers are no text
    assert m.roc_auc(pd.Series(y).astype("category"), p) == m.roc_auc(np.array([0, 1, True, 0.0], dtype=object), p) == 1.0


def test_inputs_of_several_columns_are_refused():
    """predict_proba's (n, 2) scores made 2n rows ('arrays of different lengths: [4, 8]'); a (n, 2) y and p were pooled
    into one metric of 2n rows, a (n/2, 2) group flattened beside n rows."""
    y, p = np.array([0, 1, 1, 0]), np.array([0.2, 0.7, 0.6, 0.4])
    proba = np.column_stack([1 - p, p])
    with pytest.raises(ValueError, match=r"p has shape \(4, 2\): one value a row expected .* the positive class is \[:, 1\]"):
        m.roc_auc(y, proba)
    with pytest.raises(ValueError, match=r"y has shape \(4, 2\)"):
        m.average_precision(np.column_stack([y, y]), proba)
    with pytest.raises(ValueError, match=r"p has shape \(4, 2\)"):
        m.log_loss(y, pd.DataFrame(proba))
    with pytest.raises(ValueError, match=r"group has shape \(2, 2\)"):
        m.map_at_k(y, p, np.array([[1, 1], [2, 2]]))
    assert m.roc_auc(y[:, None], proba[:, 1:]) == m.roc_auc(y, pd.DataFrame(proba[:, 1:])) == 1.0  # one column: fine


def test_empty_inputs_are_nan():
    e = np.array([], dtype=float)
    for f in (m.log_loss, m.rce, m.average_precision, m.roc_auc, m.expected_calibration_error, m.rmse, m.spearman):
        assert math.isnan(f(e, e)), f.__name__
    assert math.isnan(m.map_at_k(e, e, e)) and math.isnan(m.mrr(e, e, e))
    r = m.binary_report(e, e)
    assert r["n"] == 0 and math.isnan(r["ap"])


@pytest.mark.parametrize(
    "metric, bad, match",
    [
        (m.average_precision, {"p": np.nan}, r"p has 1 NaN or infinite value\(s\), the first at row 7 \(among the 4 rows of key quantile group 2 of 2: \[3.5, 7\]\)"),
        (m.roc_auc, {"y": 2.0}, r"y must hold 0/1 labels; row 7 holds 2 \(among the 4 rows of key quantile group 2 of 2: \[3.5, 7\]\)"),
        (m.rce, {"p": 1.5}, r"p must hold probabilities in \[0, 1\]; row 7 holds 1.5 .*\(among the 4 rows of key quantile group 2 of 2"),
    ],
)
def test_grouped_errors_name_the_callers_row(metric, bad, match):
    """A bad value in a quantile group is reported at its row of the caller's input (row 7), not at its place
    in the group (3: rows 3, 5, 6, 7) nor in the key order."""
    y = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    p = np.array([0.2, 0.7, 0.3, 0.6, 0.4, 0.5, 0.1, 0.9])
    key = np.array([0, 1, 2, 7, 3, 6, 4, 5])  # edges 0, 3.5, 7
    arrays = {"y": y.copy(), "p": p.copy()}
    for name, value in bad.items():
        arrays[name][7] = value
    with pytest.raises(ValueError, match=match) as raised:
        m.grouped_by_quantile(metric, arrays["y"], arrays["p"], key, n_groups=2)
    assert isinstance(raised.value, m.RowError) and raised.value.row == 7


def test_grouped_infinite_keys_and_bad_group_counts_are_errors():
    """An infinite key made nan quantile edges ([nan, 1.4, ..., nan]) and a group of whatever it was clipped into;
    n_groups 0 gave an empty result, 2.5 and -1 numpy's errors."""
    y, p = np.array([0, 1, 1, 0, 1, 0, 0, 1.0]), np.array([0.1, 0.8, 0.4, 0.3, 0.9, 0.2, 0.6, 0.5])
    key = np.array([-np.inf, 1, 2, 3, 4, 5, 6, np.inf])
    with pytest.raises(ValueError, match=r"key has 2 infinite value\(s\), the first at row 0"):
        m.grouped_by_quantile(m.average_precision, y, p, key)
    with pytest.raises(ValueError, match=r"key has 1 infinite value\(s\), the first at row 7"):
        m.binary_report(y, p, key=np.append(np.arange(7.0), np.inf))
    for n_groups in (0, 2.5, -1):
        with pytest.raises(ValueError, match=f"n_groups must be a whole number >= 1, got {n_groups}"):
            m.grouped_by_quantile(m.average_precision, y, p, np.arange(8.0), n_groups=n_groups)


def test_grouped_nan_keys_left_out():
    rng = np.random.default_rng(9)
    y = (rng.random(1000) < 0.3).astype(float)
    p = rng.random(1000)
    key = rng.random(1000)
    key_nan = key.copy()
    key_nan[:100] = np.nan
    res = m.grouped_by_quantile(m.roc_auc, y, p, key_nan)
    assert res == m.grouped_by_quantile(m.roc_auc, y[100:], p[100:], key[100:])
    assert sum(res["counts"]) == 900 and len(res["groups"]) == 5


def test_no_gpu_library_imported():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np; from rapids_engage import metrics as m; "
        "y = np.array([0., 1, 1, 0]); p = np.array([.1, .8, .4, .3]); "
        "m.binary_report(y, p, key=p); m.ranking_report(y, p, np.array([1, 1, 2, 2])); m.regression_report(y, p); "
        "assert not {'cupy', 'cudf'} & set(sys.modules), 'GPU library imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ranking_ties_do_not_depend_on_row_order():
    from rapids_engage.metrics import ranking_report

    rng = np.random.default_rng(0)
    n = 400
    y = (rng.random(n) < 0.2).astype(float)
    p = rng.integers(0, 3, n).astype(float)  # many ties
    group = rng.integers(0, 20, n)
    tiebreak = rng.integers(0, 2**62, n)
    perm = rng.permutation(n)
    for tb in (None, tiebreak):
        a = ranking_report(y, p, group, tiebreak=tb)
        b = ranking_report(y[perm], p[perm], group[perm], tiebreak=None if tb is None else tb[perm])
        assert a == b
    pessimistic, hashed = ranking_report(y, p, group), ranking_report(y, p, group, tiebreak=tiebreak)
    assert pessimistic["map@10"] <= hashed["map@10"]


def test_te_baseline_without_a_working_cuml_is_fitted_on_the_host():
    """A GPU backend whose cuML cannot load still reports the target-encoding baseline."""
    from rapids_engage.backend import CPU, Backend
    from rapids_engage.baselines import _te_linear

    class NoCuml(Backend):
        def logistic_regression(self, **params):
            raise OSError("libcuml.so: cannot open shared object file")

        def linear_regression(self):
            raise ImportError("No module named 'cuml'")

    rng = np.random.default_rng(0)
    p = rng.random(400)
    frame = pd.DataFrame({"te_u_like": p, "like": (rng.random(400) < p).astype("int8"), "n": rng.poisson(3, 400) * 1.0})
    for regression, target in ((False, "like"), (True, "n")):
        want = _te_linear(CPU, frame, frame, ["te_u_like"], target, regression)
        got = _te_linear(NoCuml("cpu", 0), frame, frame, ["te_u_like"], target, regression)
        np.testing.assert_allclose(got, want)
        assert np.isfinite(got).all()


def test_te_baseline_is_fitted_with_one_blas_thread():
    """The baseline's host fit (a few columns) runs its BLAS single-threaded: several threads made each of its
    small matrix-vector products slower, and a 100,000-row fit 5-13x slower on 2 busy cores."""
    from threadpoolctl import threadpool_info

    from rapids_engage.backend import Backend
    from rapids_engage.baselines import _te_linear

    seen = []

    def blas_threads():
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    class Watched(Backend):
        def logistic_regression(self, **params):
            model = super().logistic_regression(**params)
            fit = model.fit
            model.fit = lambda *a, **k: (seen.append(blas_threads()), fit(*a, **k))[1]
            return model

    rng = np.random.default_rng(0)
    p = rng.random(400)
    frame = pd.DataFrame({"te_u_like": p, "like": (rng.random(400) < p).astype("int8")})
    _te_linear(Watched("cpu", 0), frame, frame, ["te_u_like"], "like", False)
    assert seen and seen[0] and all(n == 1 for n in seen[0]), seen


def test_evaluate_leaves_unlabelled_rows_out_and_counts_them():
    """New rows scored with some labels missing: each target's metrics over its labelled rows."""
    from rapids_engage.evaluate import evaluate_targets
    from rapids_engage.layout import Layout, Target

    layout = Layout("table", ("row_id",), "event_time", (Target("comments", "comments", "count"), Target("up", "up", "binary")))
    rng = np.random.default_rng(0)
    y = np.log1p(rng.integers(0, 20, 200)).astype(float)
    up = rng.integers(0, 2, 200).astype(float)
    frame = pd.DataFrame({"row_id": np.arange(200), "event_time": np.arange(200), "comments": y, "up": up})
    preds = {"comments": y + rng.normal(0, 0.3, 200), "up": np.clip(up * 0.6 + 0.2, 0, 1)}
    whole = evaluate_targets(frame, preds, ["comments", "up"], layout, None)
    gaps = frame.assign(comments=frame["comments"].mask(frame.index % 4 == 0))
    partial = evaluate_targets(gaps, preds, ["comments", "up"], layout, None)
    labelled = frame.index % 4 != 0
    alone = evaluate_targets(frame[labelled], {k: v[labelled] for k, v in preds.items()}, ["comments"], layout, None)
    assert partial["comments"]["unlabelled_rows"] == 50 and partial["comments"]["n"] == 150
    assert partial["comments"]["rmse_log1p"] == pytest.approx(alone["comments"]["rmse_log1p"])
    assert partial["up"] == whole["up"] and "unlabelled_rows" not in partial["up"]


def test_binary_labels_of_rows_to_score_keep_a_missing_label_missing(tmp_path):
    """predict's labels: a binary column with a null (parquet int8, read by pandas as floats) is a missing label,
    left out of the metrics; int8 labels made the cast fail (pandas) or invent a label (cudf casts NaN to an integer)."""
    import dask.dataframe as dd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rapids_engage.evaluate import evaluate_targets
    from rapids_engage.features import add_labels
    from rapids_engage.layout import Layout, Target

    layout = Layout("table", ("row_id",), "event_time", (Target("up", "up", "binary"),))
    up = [1, None, 0, 1, 0, None]
    pq.write_table(pa.table({"row_id": pa.array(range(6), pa.int64()), "event_time": pa.array(range(6), pa.int64()),
                             "up": pa.array(up, pa.int8())}), tmp_path / "rows.parquet")
    rows = add_labels(dd.read_parquet(str(tmp_path / "rows.parquet"), blocksize=None), ["up"], layout, missing=True).compute()
    np.testing.assert_array_equal(rows["up"].to_numpy(dtype=float, na_value=np.nan), np.array(up, dtype=float))
    pred = np.array([0.9, 0.5, 0.2, 0.8, 0.3, 0.1])
    report = evaluate_targets(rows, {"up": pred}, ["up"], layout, None)["up"]
    known = rows["up"].notna().to_numpy()
    assert report["unlabelled_rows"] == 2 and report["n"] == 4 and report["auc"] == m.roc_auc(np.array([1, 0, 1, 0]), pred[known])
    assert add_labels(pd.DataFrame({"up": [1, 0]}), ["up"], layout)["up"].dtype == np.int8  # training labels as they were


def test_rank_scores_keep_their_order_however_large():
    """A ranking model's scores or the popularity baseline's training clicks (counts in the hundreds) get
    the rank metrics of the scores themselves: a sigmoid squashed every score above ~37 to 1.0, a tie."""
    from rapids_engage.evaluate import score, tiebreak
    from rapids_engage.layout import Layout, Target

    layout = Layout("table", ("row_id",), "t", (Target("click", "click", "binary"),), item="item", group="imp")
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame({"row_id": np.arange(n), "t": 0, "item": rng.integers(0, 50, n), "imp": np.repeat(np.arange(30), 10),
                          "click": (rng.random(n) < 0.3).astype(float)})
    clicks = rng.integers(0, 1000, n).astype(float)
    clicks[::7] = 5.0  # some ties too
    got = score(frame, layout, "click", clicks, probabilities=False)
    want = m.ranking_report(frame["click"], clicks, frame["imp"], tiebreak=tiebreak(frame, layout))
    for k in ("map@10", "ndcg@10", "mrr", "tied@10"):
        assert got[k] == pytest.approx(want[k])
    assert got["auc"] == pytest.approx(skm.roc_auc_score(frame["click"], clicks))
    assert got["ap"] == pytest.approx(skm.average_precision_score(frame["click"], clicks))
    assert got["rce"] is None and got["log_loss"] is None
    with pytest.raises(ValueError, match="NaN"):
        score(frame, layout, "click", np.where(clicks == 5.0, np.nan, clicks), probabilities=False)  # still an error


def test_probability_metrics_refuse_scores_outside_0_1_and_rank_metrics_take_them():
    """A model's margins passed as p: log loss clipped them to 1e-15 / 1 - 1e-15 and gave an RCE of -1162
    (sklearn refuses them); AP and AUC read only the order, so they take any score."""
    y, margins = [0, 1, 1, 0], [-2.2, 1.8, -0.6, 0.3]
    for f in (m.log_loss, m.rce, m.expected_calibration_error, m.calibration_curve, m.binary_report):
        with pytest.raises(ValueError, match=r"p must hold probabilities in \[0, 1\]; row 0 holds -2.2"):
            f(y, margins)
        f(y, [0.0, 1.0, 0.5, 0.25])  # the ends are probabilities
    with pytest.raises(ValueError, match="row 1 holds 1.8"):  # the caller's row, not the row within its group
        m.grouped_by_quantile(m.rce, y, [0.1, 1.8, 0.5, 0.2], [1, 2, 3, 4])
    assert m.average_precision(y, margins) == pytest.approx(skm.average_precision_score(y, margins))
    assert m.roc_auc(y, margins) == pytest.approx(skm.roc_auc_score(y, margins))
