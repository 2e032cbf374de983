"""Binary metrics: log loss, RCE (and its chance level), AP, ROC-AUC, PR and calibration curves, ECE, quantile groups."""

from __future__ import annotations

from collections.abc import Callable

from types import ModuleType
from typing import Any

import numpy as np

from ..backend import argsort_stable, bincount
from .arrays import ArrayLike, Metric, RowError, _arrays, _check_whole, _checked, _concat0, _f64, _mean, _mean_defined

# ----------------------------------------------------------------- probabilistic


def _row_entropy(y: Any, p: Any, xp: ModuleType, eps: float = 1e-15) -> Any:
    """Per-row binary cross-entropy, ``p`` clipped to [eps, 1 - eps]."""
    p = xp.clip(p, eps, 1.0 - eps)
    return -(y * xp.log(p) + (1.0 - y) * xp.log(1.0 - p))


def log_loss(y: ArrayLike, p: ArrayLike, eps: float = 1e-15) -> float:
    """Mean binary cross-entropy, ``p`` clipped to [eps, 1 - eps] (1e-15: scikit-learn's default when the RecSys 2021
    organizers' RCE code called its log_loss; scikit-learn >= 1.5 clips to float64's eps, so a probability of exactly
    0 or 1 on the wrong label costs ~34.5 here and 36.0 there: ``eps=np.finfo(float).eps`` gives its value)."""
    xp, y, p = _checked(y, p, binary=True, probabilities=True)
    return _mean(_row_entropy(y, p, xp, eps))


def _constant_entropy(ctr: float, eps: float = 1e-15) -> float:
    """The cross-entropy of the constant prediction ``ctr`` on labels of positive rate ``ctr`` (RCE's strawman)."""
    c = min(max(ctr, eps), 1.0 - eps)
    return float(-(ctr * np.log(c) + (1.0 - ctr) * np.log(1.0 - c)))


def _rce(cross_entropy: float, ctr: float, eps: float = 1e-15) -> float:
    """RCE from the model's cross-entropy and the positive rate of the labels."""
    if not 0.0 < ctr < 1.0:
        return float("nan")
    return float((1.0 - cross_entropy / _constant_entropy(ctr, eps)) * 100.0)


def _rce_chance(p: Any, ctr: float, xp: ModuleType, eps: float = 1e-15) -> tuple[float, float]:
    """(mean, standard error) of RCE over the permutations of the labels among the rows: these predictions without
    skill, the same positives. The cross-entropy is mean(-log(1 - p)) minus the mean of ``y * logit(p)``, whose sum
    over P of N rows drawn without replacement has mean P * mean(logit) and variance P (N - P) / (N - 1) times the
    logits' variance. The mean is at most 0 (each row's cross-entropy against the positive rate is at least the
    constant's). (nan, nan) with a single class."""
    n = len(p)
    if not 0.0 < ctr < 1.0 or n < 2:
        return float("nan"), float("nan")
    q = xp.clip(p, eps, 1.0 - eps)
    logits = xp.log(q) - xp.log(1.0 - q)
    positives = ctr * n
    mean_ce = float((-xp.log(1.0 - q)).mean()) - ctr * float(logits.mean())
    sd_ce = float(np.sqrt(positives * (n - positives) / (n - 1) * float(logits.var()))) / n
    return _rce(mean_ce, ctr, eps), float(100.0 * sd_ce / _constant_entropy(ctr, eps))


def rce(y: ArrayLike, p: ArrayLike) -> float:
    """RecSys 2021 relative cross entropy: ``(1 - CE(p) / CE(positive rate)) * 100``.

    nan when ``y`` has a single class.
    """
    xp, y, p = _checked(y, p, binary=True, probabilities=True)
    return _rce(_mean(_row_entropy(y, p, xp)), _mean(y))


# -------------------------------------------------------------------- curves


def _order_desc(p: Any, xp: ModuleType) -> Any:
    """Row order by descending score, ties in row order."""
    return argsort_stable(-p)


def _sorted_curve(ys: Any, ps: Any, xp: ModuleType) -> tuple[Any, Any]:
    """(true positives, false positives) at each distinct threshold, for rows already
    sorted by descending score ``ps``."""
    if len(ps) == 0:
        return xp.zeros(1), xp.zeros(1)  # no rows: every metric of the curve is nan
    tps = xp.cumsum(ys)
    last = xp.nonzero(ps[1:] != ps[:-1])[0]  # last row of each tie block but the final one
    idx = xp.concatenate([last, xp.asarray([len(ps) - 1], dtype=last.dtype)])
    tps = tps[idx]
    return tps, (idx + 1) - tps


def _binary_curve(y: Any, p: Any, xp: ModuleType) -> tuple[Any, Any]:
    """(true positives, false positives) at each distinct threshold, scores descending."""
    order = _order_desc(p, xp)
    return _sorted_curve(y[order], p[order], xp)


def _ap(tps: Any, fps: Any, xp: ModuleType) -> float:
    """Step-wise average precision (sklearn): sum of (R_i - R_{i-1}) * P_i."""
    n_pos = float(tps[-1])
    if n_pos == 0:
        return float("nan")
    precision = tps / (tps + fps)
    return float((xp.diff(_concat0(tps, xp)) * precision).sum() / n_pos)


def _auc(tps: Any, fps: Any, xp: ModuleType) -> float:
    """Trapezoidal ROC AUC over distinct thresholds (= Mann-Whitney with midranks)."""
    n_pos, n_neg = float(tps[-1]), float(fps[-1])
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    t0 = _concat0(tps, xp)
    area2 = (xp.diff(_concat0(fps, xp)) * (t0[1:] + t0[:-1])).sum()
    return float(area2 / (2.0 * n_pos * n_neg))


def average_precision(y: ArrayLike, p: ArrayLike) -> float:
    """Average precision as sklearn's ``average_precision_score`` (nan without positives)."""
    xp, y, p = _checked(y, p, binary=True)
    return _ap(*_binary_curve(y, p, xp), xp)


def roc_auc(y: ArrayLike, p: ArrayLike) -> float:
    """ROC AUC as sklearn's ``roc_auc_score`` (ties averaged); nan with one class."""
    xp, y, p = _checked(y, p, binary=True)
    return _auc(*_binary_curve(y, p, xp), xp)


def _downsample(n: int, max_points: int, xp: ModuleType) -> Any:
    """At most ``max_points`` evenly spaced indices into ``range(n)``, ends included."""
    if n <= max_points:
        return xp.arange(n)
    return xp.unique(xp.rint(xp.linspace(0, n - 1, max(max_points, 2))).astype(xp.int64))


def pr_curve(y: ArrayLike, p: ArrayLike, max_points: int = 200) -> dict[str, list[float]]:
    """Precision / recall by increasing recall, from (recall 0, precision 1), downsampled for
    plotting; empty lists when ``y`` has no positive."""
    xp, y, p = _checked(y, p, binary=True)
    n_pos = float(y.sum()) if len(y) else 0.0
    if n_pos == 0:
        return {"precision": [], "recall": []}
    tps, fps = _binary_curve(y, p, xp)
    recall = _concat0(tps / n_pos, xp)
    precision = xp.concatenate([xp.ones(1), tps / (tps + fps)])
    keep = _downsample(len(recall), max_points, xp)
    return {"precision": precision[keep].tolist(), "recall": recall[keep].tolist()}


# --------------------------------------------------------------- calibration


def _calibration_bins(y: Any, p: Any, xp: ModuleType, n_bins: int) -> tuple[Any, Any, Any]:
    """(count, sum of p, sum of y) per equal-width bin [e_i, e_{i+1}) on [0, 1], last bin closed."""
    edges = xp.linspace(0.0, 1.0, n_bins + 1)
    bins = xp.clip(xp.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)

    def per_bin(w: Any) -> Any:
        return bincount(bins, weights=w, minlength=n_bins)

    return per_bin(None), per_bin(p), per_bin(y)


#: Equal-width probability bins of the ECE in report.json (and the calibration plots' legends).
ECE_BINS = 10


def expected_calibration_error(y: ArrayLike, p: ArrayLike, n_bins: int = ECE_BINS) -> float:
    """ECE: count-weighted mean of |mean(p) - mean(y)| over equal-width bins on [0, 1]."""
    _check_whole("n_bins", n_bins)
    xp, y, p = _checked(y, p, binary=True, probabilities=True)
    return _ece(y, p, xp, n_bins)


def _ece(y: Any, p: Any, xp: ModuleType, n_bins: int) -> float:
    """ECE of checked arrays."""
    if len(y) == 0:
        return float("nan")
    _, sum_p, sum_y = _calibration_bins(y, p, xp, n_bins)
    return float(xp.abs(sum_p - sum_y).sum() / len(y))


def calibration_curve(y: ArrayLike, p: ArrayLike, n_bins: int = 10) -> dict[str, list]:
    """Reliability diagram: {"mean_pred", "frac_pos", "count"} for the non-empty bins (host lists)."""
    _check_whole("n_bins", n_bins)
    xp, y, p = _checked(y, p, binary=True, probabilities=True)
    count, sum_p, sum_y = _calibration_bins(y, p, xp, n_bins)
    nz = count > 0
    return {
        "mean_pred": (sum_p[nz] / count[nz]).tolist(),
        "frac_pos": (sum_y[nz] / count[nz]).tolist(),
        "count": [int(c) for c in count[nz].tolist()],
    }


# ------------------------------------------------------------------- grouped


def _quantile_groups(key: Any, xp: ModuleType, n_groups: int) -> tuple[list[float], Any]:
    """(edges, group of each row): groups [e_i, e_{i+1}) on quantiles of ``key``, the last
    closed; rows with a nan key get group -1. An infinite key is an error: its quantile edges were nan."""
    infinite = xp.isinf(key)
    if bool(infinite.any()):
        raise RowError(f"key has {int(infinite.sum())} infinite value(s), the first at row {{row}} (a NaN key leaves its row out)",
                       int(xp.argmax(infinite)))
    valid = ~xp.isnan(key)
    if not bool(valid.any()):
        return [], xp.full(len(key), -1)
    edges = xp.quantile(key if bool(valid.all()) else key[valid], xp.linspace(0.0, 1.0, n_groups + 1))
    groups = xp.clip(xp.searchsorted(edges, key, side="right") - 1, 0, n_groups - 1)
    return edges.tolist(), xp.where(valid, groups, -1)


def _per_group(
    fn: Callable[[Any], float], groups: Any, n_groups: int, xp: ModuleType
) -> tuple[list[float], list[int]]:
    """(``fn(groups == g)``, size) for each non-empty group g."""
    counts = bincount(groups + 1, minlength=n_groups + 1)[1:].tolist()
    values = [float(fn(groups == g)) for g, c in enumerate(counts) if c]
    return values, [int(c) for c in counts if c]


def grouped_by_quantile(
    metric: Metric, y: ArrayLike, p: ArrayLike, key: ArrayLike, n_groups: int = 5
) -> dict[str, Any]:
    """``metric`` per quantile group of ``key`` (RecSys 2021 popularity groups) and their mean.

    Returns {"mean", "groups", "edges", "counts"}: one value and row count per
    non-empty group (empty groups, from repeated edges, are skipped), the
    ``n_groups + 1`` edges; ``mean`` averages the groups whose value is not nan.
    Rows with a nan ``key`` are left out. An input error ``metric`` raises (:class:`RowError`: NaN, a label
    other than 0/1, ...) names the row of ``y`` / ``p``, not its place in the group.
    """
    _check_whole("n_groups", n_groups)
    xp, (y, p, key) = _arrays(y, p, key)
    edges, groups = _quantile_groups(key, xp, n_groups)

    def of_group(mask: Any) -> float:
        try:
            return metric(y[mask], p[mask])
        except RowError as error:
            g = int(groups[mask][0])
            close = "]" if g == n_groups - 1 else ")"
            where = f" (among the {int(mask.sum())} rows of key quantile group {g + 1} of {n_groups}: [{edges[g]:g}, {edges[g + 1]:g}{close})"
            raise error.at(int(xp.nonzero(mask)[0][error.row]), where) from None

    values, counts = _per_group(of_group, groups, n_groups, xp)
    return {"mean": _mean_defined(values), "groups": values, "edges": edges, "counts": counts}




def binary_report(y: ArrayLike, p: ArrayLike, key: ArrayLike | None = None) -> dict[str, Any]:
    """{"ap", "rce", "auc", "log_loss", "ece", "positive_rate", "n", "rce_chance", "rce_chance_se"}; with ``key``
    also "ap_grouped" / "rce_grouped", the means over 5 quantile groups of ``key``. ``rce_chance`` / ``rce_chance_se``:
    the mean and standard error of RCE for these predictions without skill (the labels permuted among the rows,
    :func:`_rce_chance`): what chance alone gives them."""
    xp, y, p = _checked(y, p, binary=True, others=(key,), probabilities=True)
    n = len(y)
    order = _order_desc(p, xp)  # the one sort, shared by AP, AUC and the grouped AP
    ys, ps = y[order], p[order]
    row_ce = _row_entropy(y, p, xp)
    positive_rate, ll = _mean(y), _mean(row_ce)
    tps, fps = _sorted_curve(ys, ps, xp)
    report: dict[str, Any] = {
        "ap": _ap(tps, fps, xp),
        "rce": _rce(ll, positive_rate),
        "auc": _auc(tps, fps, xp),
        "log_loss": ll,
        "ece": _ece(y, p, xp, ECE_BINS),
        "positive_rate": positive_rate,
        "n": int(n),
    }
    report["rce_chance"], report["rce_chance_se"] = _rce_chance(p, positive_rate, xp)
    if key is not None:  # same values as grouped_by_quantile(average_precision / rce, ...)
        key = _f64(key, xp, "key")
        if len(key) != n:
            raise ValueError(f"key has {len(key)} rows, y has {n}")
        _, groups = _quantile_groups(key, xp, 5)
        ap, _ = _per_group(lambda s: _ap(*_sorted_curve(ys[s], ps[s], xp), xp), groups[order], 5, xp)
        rce_, _ = _per_group(lambda s: _rce(_mean(row_ce[s]), _mean(y[s])), groups, 5, xp)
        report["ap_grouped"], report["rce_grouped"] = _mean_defined(ap), _mean_defined(rce_)
    return report
