"""Plots of binary targets: precision-recall curves (the precision axis cut to the data, the oracle's curve
on synthetic data) and reliability diagrams on bins of equal rows with each bin's 95% interval (log-log
when the predictions span orders of magnitude)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import metrics
from ..backend import to_host_f64
from .panels import MIN_BIN_ROWS, _fmt, _legend_below, _message, _panels, _save, _title, equal_count_bins, positives_title

#: Reliability diagrams: bins of equal row counts; bins with fewer rows (ties, small data) are greyed out.
CALIBRATION_BINS = 15
#: Log-log reliability axes when the bins' mean predictions span this factor or more (and crowd at the low end).
LOG_SPAN = 10.0
#: The precision axis of a PR panel tops at this factor times the best precision at recall >= PR_MIN_RECALL.
PR_HEADROOM, PR_MIN_RECALL = 1.2, 0.05


# --------------------------------------------------------------------------- PR curves


def pr_top(curves: Sequence[Mapping[str, Sequence[float]]], rate: float) -> float:
    """Top of a PR panel's precision axis: :data:`PR_HEADROOM` x the highest precision at recall
    >= :data:`PR_MIN_RECALL` of any curve, at least twice the positive rate, at most 1.02."""
    best = max((p for c in curves for r, p in zip(c["recall"], c["precision"]) if r >= PR_MIN_RECALL), default=0.0)
    top = max(PR_HEADROOM * best, 2 * rate if math.isfinite(rate) else 0.0)
    return min(top, 1.02) if top > 0 else 1.02


def pr_curves(
    labels: Mapping[str, Any], preds: Mapping[str, Any], path: str | os.PathLike, oracle: Mapping[str, Any] | None = None
) -> Path:
    """Precision-recall curve per target (its positives in the title), AP in the legend, with the positive rate (the precision of
    a random ranking) as a dashed line and, where ``oracle`` has the target's true probabilities
    (synthetic data, aligned with the labels), the oracle's curve. The precision axis is cut at
    :func:`pr_top`, so rare targets are not squashed at the bottom of [0, 1]."""
    fig, axes, panels = _panels(labels, preds)
    for ax, target, y, p in panels:
        rate = float(y.mean()) if len(y) else float("nan")
        scores = {"model": p}
        truth = to_host_f64(oracle[target]) if oracle and target in oracle else None
        if truth is not None and len(truth) == len(y) and np.isfinite(truth).all():
            scores["oracle"] = truth
        curves = [_pr_line(ax, name, y, s) for name, s in scores.items()]
        if not any(c["recall"] for c in curves):
            _message(ax, "no positive labels")
        if math.isfinite(rate):
            ax.axhline(rate, ls="--", lw=1.0, color="0.5", label=f"positive rate {_fmt(rate)}")
        ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, pr_top(curves, rate)))
        ax.set_title(positives_title(target, y), fontsize="medium")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize="small")
    _title(fig, axes, "Precision-recall (validation)")
    return _save(fig, path)


def _pr_line(ax: Any, name: str, y: np.ndarray, scores: np.ndarray) -> dict[str, list[float]]:
    """Draw the PR curve of ``scores`` (the oracle's dotted) and return it (empty without positives).
    Steps "pre": the precision of a threshold holds over the recall it adds, as in AP (the area
    under the drawn steps) and sklearn's PrecisionRecallDisplay."""
    curve = metrics.pr_curve(y, scores, max_points=400)
    if curve["recall"]:
        ap = metrics.average_precision(y, scores)
        style = {"lw": 1.6} if name == "model" else {"lw": 1.2, "ls": ":", "color": "C2"}
        ax.step(curve["recall"], curve["precision"], where="pre", label=f"{name} (AP {_fmt(ap)})", **style)
    return curve


# --------------------------------------------------------------------------- calibration


def _n_bins(rows: int, n_bins: int) -> int:
    """The bins of a reliability curve of ``rows`` rows: ``n_bins``, fewer when a bin would hold under :data:`MIN_BIN_ROWS`."""
    return max(min(n_bins, rows // MIN_BIN_ROWS), 1)


def quantile_calibration(y: np.ndarray, p: np.ndarray, n_bins: int = CALIBRATION_BINS) -> dict[str, np.ndarray]:
    """Reliability curve on bins of equal row counts of ``p`` (:func:`equal_count_bins`; fewer bins
    when there are under :data:`MIN_BIN_ROWS` rows a bin): {"mean_pred", "frac_pos", "count"} of
    the non-empty bins by increasing prediction. The counts add up to the rows."""
    n_bins = _n_bins(len(p), n_bins)
    bins = equal_count_bins(p, n_bins)
    count = np.bincount(bins, minlength=n_bins).astype(np.float64)
    nz = count > 0
    return {
        "mean_pred": np.bincount(bins, weights=p, minlength=n_bins)[nz] / count[nz],
        "frac_pos": np.bincount(bins, weights=y, minlength=n_bins)[nz] / count[nz],
        "count": count[nz].astype(np.int64),
    }


def wilson_interval(frac_pos: np.ndarray, count: np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of the 95% Wilson score interval of each bin's positive rate: how far the rate of a
    bin of ``count`` rows may stray by chance (a bin of 150 rows and 1 positive: 0.001 .. 0.037)."""
    n = np.maximum(count.astype(np.float64), 1.0)
    centre = (frac_pos + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(frac_pos * (1 - frac_pos) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def log_scale(mean_pred: np.ndarray) -> bool:
    """Whether a reliability panel is log-log: its bins' mean predictions span :data:`LOG_SPAN`
    or more and most crowd at the low end of a linear axis (the median bin in its lowest quarter)."""
    lo, hi = float(mean_pred.min()), float(mean_pred.max())
    return lo > 0 and hi >= LOG_SPAN * lo and float(np.median(mean_pred)) - lo < 0.25 * (hi - lo)


def calibration_limits(mean_pred: np.ndarray, frac_pos: np.ndarray) -> tuple[float, float, bool]:
    """(low, high, log) of a reliability panel's axes (the same on both): the bins' range, padded;
    log-log per :func:`log_scale` (then bins without positives do not count)."""
    log = log_scale(mean_pred)
    values = np.concatenate([mean_pred, frac_pos[frac_pos > 0] if log else frac_pos])
    lo, hi = float(values.min()), float(values.max())
    if log:
        return lo / 1.5, hi * 1.5, True
    pad = 0.06 * (hi - lo) if hi > lo else 0.01
    return max(lo - pad, -0.02), min(hi + pad, 1.02), False


def calibration_curves(
    labels: Mapping[str, Any], preds: Mapping[str, Any], path: str | os.PathLike, n_bins: int = CALIBRATION_BINS
) -> Path:
    """Reliability diagram per target: observed positive rate against mean prediction on ``n_bins``
    bins of equal row counts (:func:`quantile_calibration`) with each rate's 95% interval
    (:func:`wilson_interval`: with few positives a bin's rate strays far from the diagonal by chance),
    the target's positives in its title, bins under :data:`MIN_BIN_ROWS` rows
    grey, axes fitted to the bins (:func:`calibration_limits`), the diagonal of perfect calibration;
    the ECE (report.json's, on its own equal-width bins) and the mean prediction against the positive rate in the legend."""
    fig, axes, panels = _panels(labels, preds, panel_h=4.6)
    for ax, target, y, p in panels:
        ax.set(xlabel="mean prediction (bin)", ylabel="positive rate (bin)")
        ax.set_title(positives_title(target, y), fontsize="medium")
        if not len(y):
            _message(ax, "no rows")
            continue
        _calibration_panel(ax, y, p, n_bins)
        ax.grid(alpha=0.3)
        _legend_below(ax)
    used = {_n_bins(len(p), n_bins) for _, _, _, p in panels if len(p)} or {n_bins}
    bins = f"{used.pop()} bins" if len(used) == 1 else f"up to {n_bins} bins"  # what the panels show, not what was asked
    _title(fig, axes, f"Calibration ({bins} of equal rows, validation)")
    return _save(fig, path)


def _calibration_panel(ax: Any, y: np.ndarray, p: np.ndarray, n_bins: int) -> None:
    curve = quantile_calibration(y, p, n_bins)
    x, rate, few = curve["mean_pred"], curve["frac_pos"], curve["count"] < MIN_BIN_ROWS
    lo, hi, log = calibration_limits(x, rate)
    ax.plot([lo, hi], [lo, hi], ls="--", lw=1.0, color="0.5", label="perfectly calibrated")
    shown = np.where(rate > 0, rate, lo) if log else rate  # log axes: bins without a positive at the bottom edge
    ece = metrics.expected_calibration_error(y, p, metrics.ECE_BINS)
    (line,) = ax.plot(x[~few], shown[~few], "o-", lw=1.4, ms=4, label=f"model (ECE {_fmt(ece)}, {metrics.ECE_BINS} equal-width bins)")
    low, high = wilson_interval(rate[~few], curve["count"][~few])
    if log:  # an interval from 0 runs to the bottom edge
        low = np.maximum(low, lo)
    ax.errorbar(x[~few], shown[~few], yerr=[np.maximum(shown[~few] - low, 0), np.maximum(high - shown[~few], 0)], fmt="none",
                ecolor=line.get_color(), alpha=0.45, lw=1.0, capsize=2, label="95% interval of the bin's rate")
    if few.any():
        ax.plot(x[few], shown[few], "o", ms=4, color="0.7", label=f"bin < {MIN_BIN_ROWS} rows")
    if log and (rate == 0).any():
        ax.plot(x[rate == 0], shown[rate == 0], "v", ms=7, color="C3", label="bin without positives")
    ax.plot([], [], " ", label=f"mean prediction {_fmt(float(p.mean()))}\nvs positive rate {_fmt(float(y.mean()))}")
    if log:
        ax.set(xscale="log", yscale="log")
        _log_axis(ax.xaxis, lo, hi)
        _log_axis(ax.yaxis, lo, hi)
    ax.set(xlim=(lo, hi), ylim=(lo, hi), aspect="equal")


def _log_axis(axis: Any, lo: float, hi: float) -> None:
    """Plain-number ticks (0.001, 0.002, 0.005, ...) on a log axis: 1-2-5 a decade over less than two
    decades, else decades only; minor ticks unlabelled (they overlap on a small panel)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if hi < 100 * lo else (1.0,)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())
