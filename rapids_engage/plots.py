"""PNG plots of a run: PR curves, reliability diagrams, feature importance, learning curves,
predicted against true counts for count (regression) targets, and NDCG@k / MAP@k against k for
targets ranked within groups.

Every function draws one figure with one panel per target and writes it to
``path`` atomically (temporary file, then rename). Figures are plain
:class:`matplotlib.figure.Figure` objects rendered by the Agg canvas chosen
inside each function: pyplot is never imported, so no global figure registry
or interactive backend is touched and nothing leaks between calls. matplotlib
itself is imported lazily, on the first plot.

Axes are fitted to the data: rare targets get a precision axis and reliability
diagram zoomed on their range (log-log when predictions span orders of
magnitude), count axes are labelled in counts. A figure of one panel has one
title (the figure's and the panel's merged).

Labels and predictions may be numpy or cupy arrays, pandas or cudf Series: they
are copied to the host (:func:`rapids_engage.backend.to_host_f64`) as float64 numpy
before plotting. Degenerate inputs are drawn, not raised: a target without
positive labels gets an annotated panel, a model without splits an empty
importance panel, a target without history an empty learning-curve panel.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics
from .atomic import write_file
from .backend import to_host_f64
from .train import RAW_COUNT_OBJECTIVES

PLOT_FILES = {
    "pr_curves": "plots/pr_curves.png",
    "calibration": "plots/calibration.png",
    "feature_importance": "plots/feature_importance.png",
    "learning_curves": "plots/learning_curves.png",
    "count_predictions": "plots/count_predictions.png",
    "ranking": "plots/ranking.png",
}

_MAX_COLS = 4
_DPI = 110
#: Reliability diagrams: bins of equal row counts; bins with fewer rows (ties, small data) are greyed out.
CALIBRATION_BINS = 15
MIN_BIN_ROWS = 20
#: Log-log reliability axes when the bins' mean predictions span this factor or more (and crowd at the low end).
LOG_SPAN = 10.0
#: The precision axis of a PR panel tops at this factor times the best precision at recall >= PR_MIN_RECALL.
PR_HEADROOM, PR_MIN_RECALL = 1.2, 0.05
#: Count-axis ticks per decade, coarsest first (the first giving 3+ well-spaced ticks is used).
COUNT_STEPS = ((1, 3), (1, 2, 5), (1, 1.5, 2, 3, 4, 5, 7))


# --------------------------------------------------------------------------- helpers


def _figure(n_panels: int, panel_w: float = 4.2, panel_h: float = 3.6) -> tuple[Any, list[Any]]:
    """A standalone Agg figure with ``n_panels`` axes on a grid (at most 4 a row); unused
    grid cells are hidden. At least one panel, for the "nothing to plot" message."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = max(n_panels, 1)
    cols = min(n, _MAX_COLS)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(panel_w * cols, panel_h * rows), layout="constrained")
    FigureCanvasAgg(fig)  # the non-interactive backend, for this figure only
    grid = fig.subplots(rows, cols, squeeze=False)
    axes = [ax for row in grid for ax in row]
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _title(fig: Any, axes: Sequence[Any], text: str) -> None:
    """The figure's title above the panels; with a single panel, that panel's title goes into
    the figure's (one title, not two misaligned ones; the figure's, as a long title may be wider
    than the panel)."""
    if len(axes) == 1 and axes[0].get_title():
        text = f"{text}\n{axes[0].get_title()}"
        axes[0].set_title("")
    fig.suptitle(text)


def _legend_below(ax: Any, ncols: int = 1) -> None:
    """The panel's legend under its axes, where it cannot hide data (constrained layout makes room)."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize="small", ncols=ncols, frameon=False)


def _message(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def _save(fig: Any, path: str | os.PathLike) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically and release it."""
    try:
        return write_file(path, lambda tmp: fig.savefig(tmp, format="png", dpi=_DPI))
    finally:
        fig.clear()


def _fmt(value: float | None, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if value is not None and math.isfinite(value) else "n/a"


def _panels(
    labels: Mapping[str, Any], preds: Mapping[str, Any], panel_h: float = 3.6
) -> tuple[Any, list[Any], list[tuple[Any, str, np.ndarray, np.ndarray]]]:
    """(figure, its axes, [(axes, target, labels, predictions) per target]) with one panel per
    target (a single annotated panel when there is none)."""
    targets = _targets(labels, preds)
    fig, axes = _figure(len(targets), panel_h=panel_h)
    if not targets:
        _message(axes[0], "no targets")
    return fig, axes, [(ax, t, to_host_f64(labels[t]), to_host_f64(preds[t])) for ax, t in zip(axes, targets)]


def positives_title(target: str, y: np.ndarray) -> str:
    """``target`` with its positives and rows: a curve of a dozen positives is mostly noise."""
    positives = int(round(float(y.sum()))) if len(y) else 0
    return f"{target} ({positives:,} positive{'' if positives == 1 else 's'} in {len(y):,} rows)"


def _targets(labels: Mapping[str, Any], preds: Mapping[str, Any]) -> list[str]:
    """The targets with both labels and predictions, in the order of ``labels``."""
    return [t for t in labels if t in preds]


def equal_count_bins(key: np.ndarray, n_bins: int) -> np.ndarray:
    """The bin (0 .. ``n_bins`` - 1) of each row: bins of equal row counts by rank of ``key``
    (quantile bins), tied values in one bin (so a bin of heavy ties is larger, the next smaller)."""
    ranks = np.searchsorted(np.sort(key), key, side="left")
    return ranks * n_bins // max(len(key), 1)


def _spaced(ticks: list[float], min_gap: float) -> list[float]:
    """The ascending ``ticks`` (log1p positions) less those within ``min_gap`` of the previous one kept."""
    kept: list[float] = []
    for t in ticks:
        if not kept or t - kept[-1] >= min_gap:
            kept.append(t)
    return kept


def count_ticks(lo: float, hi: float) -> list[float]:
    """Tick values, in counts, for a log1p(count) axis spanning [``lo``, ``hi``]: 0, 1, 3, 10, 30, ...
    (0.1, 0.3 too on an axis starting between 0 and 1) when that gives 3 or more well-spaced ticks,
    else the first of the finer :data:`COUNT_STEPS` that does."""
    if not hi > lo:
        return []
    top = math.ceil(math.log10(max(math.expm1(hi), 1.0))) + 1
    # fractions of a count on an axis below 3, or one starting under 1 (else predictions of 0.3 .. 1 sat below the lowest tick)
    first = -1 if math.expm1(hi) < 3 or 0 < math.expm1(lo) < 1 else 0
    best: list[float] = []
    for steps in COUNT_STEPS:
        values = sorted({0.0, *(s * 10.0**e for e in range(first, top) for s in steps)})
        inside = [math.log1p(v) for v in values if lo <= math.log1p(v) <= hi]
        best = _spaced(inside, (hi - lo) / 10)
        if len(best) >= 3:
            break
    return [float(f"{math.expm1(t):.6g}") for t in best]


def _count_axis(axis: Any, lo: float, hi: float) -> None:
    """Ticks of a log1p(count) axis labelled in counts (:func:`count_ticks`); with fewer than two,
    matplotlib's ticks with their count as the label."""
    from matplotlib.ticker import FuncFormatter

    ticks = count_ticks(lo, hi)
    if len(ticks) >= 2:
        axis.set_ticks([math.log1p(t) for t in ticks], labels=[_count_label(t) for t in ticks])
    else:
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{math.expm1(v):.3g}"))


def _count_label(count: float) -> str:
    """1, 300, 3000, 30k, 3M: short enough for a small panel's axis."""
    if count >= 1e6:
        return f"{count / 1e6:g}M"
    return f"{count / 1e3:g}k" if count >= 1e4 else f"{count:g}"


def _data_range(values: np.ndarray, pad: float = 0.03) -> tuple[float, float]:
    """(min, max) of ``values`` widened by ``pad`` of their span (by 0.5 when constant)."""
    lo, hi = float(values.min()), float(values.max())
    margin = (hi - lo) * pad if hi > lo else 0.5
    return lo - margin, hi + margin


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


# --------------------------------------------------------------------------- counts


def count_predictions(labels: Mapping[str, Any], preds: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Per count target: predicted against true log1p(count), a hexbin of row density with its
    colorbar, the diagonal and the median prediction per bin of true counts; axes fitted to the data
    and labelled in counts; Spearman and RMSE (log1p) in the title. ``labels`` and ``preds`` are on
    the log1p scale."""
    fig, axes, panels = _panels(labels, preds, panel_h=4.0)
    for ax, target, y, p in panels:
        if not len(y):
            ax.set_title(target)
            _message(ax, "no rows")
            continue
        _count_panel(fig, ax, y, p)
        rmse = metrics.rmse(y, np.maximum(p, 0.0))  # as report.json's rmse_log1p (predicted counts clipped at 0)
        ax.set_title(f"{target} (Spearman {_fmt(metrics.spearman(y, p), 3)}, RMSE log1p {_fmt(rmse, 3)})", fontsize="medium")
    _title(fig, axes, "Count targets: predicted vs true (validation)")
    return _save(fig, path)


def _count_panel(fig: Any, ax: Any, y: np.ndarray, p: np.ndarray) -> None:
    (x0, x1), (y0, y1) = _data_range(y), _data_range(p)
    cells = ax.hexbin(y, p, gridsize=(40, 25), bins="log", mincnt=1, extent=(x0, x1, y0, y1), cmap="viridis")
    fig.colorbar(cells, ax=ax, label="rows", pad=0.01)
    lo, hi = max(x0, y0), min(x1, y1)
    if hi > lo:
        ax.plot([lo, hi], [lo, hi], ls="--", lw=1.0, color="0.3", label="diagonal")
    mx, my = binned_medians(y, p)
    if len(mx):
        ax.plot(mx, my, "o-", lw=1.6, ms=3, color="C3", label="median prediction")
    ax.set(xlabel="true count", ylabel="predicted count", xlim=(x0, x1), ylim=(y0, y1))
    _count_axis(ax.xaxis, x0, x1)
    _count_axis(ax.yaxis, y0, y1)
    _legend_below(ax, ncols=2)


def binned_medians(y: np.ndarray, p: np.ndarray, n_bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """(median of ``y``, median of ``p``) per bin of equal row counts of ``y`` (fewer bins when
    there are under :data:`MIN_BIN_ROWS` rows a bin) with at least that many rows, by increasing ``y``."""
    bins = equal_count_bins(y, max(min(n_bins, len(y) // MIN_BIN_ROWS), 1))
    kept = [b for b in np.unique(bins) if (bins == b).sum() >= MIN_BIN_ROWS]
    return np.array([np.median(y[bins == b]) for b in kept]), np.array([np.median(p[bins == b]) for b in kept])


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


# --------------------------------------------------------------------------- models


#: Feature importance labels: at most this many characters (the middle elided), the panel widened to fit them.
MAX_LABEL_CHARS, LABEL_IN_PER_CHAR = 60, 0.065


def short_name(name: str, limit: int = MAX_LABEL_CHARS) -> str:
    """``name`` with its middle elided to ``limit`` characters (its start and end, e.g. the target suffix, kept)."""
    if len(name) <= limit:
        return name
    head = (limit - 1) // 2
    return f"{name[:head]}…{name[len(name) - (limit - 1 - head):]}"


def feature_importance(boosters: Mapping[str, Any], path: str | os.PathLike, top: int = 20) -> Path:
    """Horizontal bars of the ``top`` features by total gain (the loss reduction of all the splits
    on a feature: mean gain per split would rank rarely used features too high) per target's
    XGBoost booster, largest on top."""
    targets = list(boosters)
    ranked = {t: sorted(boosters[t].get_score(importance_type="total_gain").items(), key=lambda kv: kv[1], reverse=True)[:top]
              for t in targets}
    longest = max((len(short_name(f)) for r in ranked.values() for f, _ in r), default=0)
    fig, axes = _figure(len(targets), panel_w=max(5.0, 2.4 + LABEL_IN_PER_CHAR * longest), panel_h=1.2 + 0.26 * top)
    if not targets:
        _message(axes[0], "no models")
    for ax, target in zip(axes, targets):
        ax.set_title(target)
        if not ranked[target]:
            _message(ax, "no splits")
            ax.set(xticks=[], yticks=[])
            continue
        names, gains = zip(*reversed(ranked[target]))
        ax.barh(range(len(names)), gains)
        ax.set_yticks(range(len(names)), labels=[short_name(n) for n in names], fontsize="small")
        ax.set(xlabel="total gain", ylim=(-0.6, len(names) - 0.4))
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
        ax.grid(axis="x", alpha=0.3)
    _title(fig, axes, f"Feature importance (top {top} by total gain)")
    return _save(fig, path)


def metric_label(metric: str, log1p: bool = False) -> tuple[str, str | None]:
    """(axis label, key of the same metric in report.json's metrics) of XGBoost eval metric
    ``metric``; ``log1p``: a count model's metric, on log1p(count). The key is None where the
    report has no comparable value (e.g. XGBoost's ndcg scores groups without positives as 1)."""
    if metric in ("rmse", "mae"):
        return (f"{metric.upper()} (log1p)", f"{metric}_log1p") if log1p else (metric.upper(), metric)
    return metric, {"logloss": "log_loss", "auc": "auc"}.get(metric)


def learning_curves(
    histories: Mapping[str, Mapping[str, Sequence[float]]],
    best: Mapping[str, int],
    path: str | os.PathLike,
    baselines: Mapping[str, Mapping[str, Any]] | None = None,
    log1p: Collection[str] = (),
    train: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
) -> Path:
    """Validation metric(s) per boosting round for each target (``train``: the same on the
    training rows, dashed: the gap is the overfit), the best iteration marked by a vertical line
    and a point on each validation curve, and the constant baseline's value of the metric
    (``baselines[target]``: its report.json metrics) as a dotted line where known; the legend under
    each panel, off the curves and the baseline. ``log1p``: the
    count targets whose model regresses log1p(count) (their RMSE is on log1p)."""
    targets = list(histories)
    fig, axes = _figure(len(targets), panel_h=4.4)
    if not targets:
        _message(axes[0], "no training history")
    for ax, target in zip(axes, targets):
        history = {m: np.asarray(v, dtype=np.float64) for m, v in (histories[target] or {}).items() if len(v)}
        ax.set(title=target, xlabel="boosting round")
        if not history:
            _message(ax, "no history")
            continue
        fitted = {m: np.asarray(v, dtype=np.float64) for m, v in ((train or {}).get(target) or {}).items() if len(v)}
        _history_panel(ax, history, fitted, best.get(target), (baselines or {}).get(target) or {}, target in log1p)
    _title(fig, axes, "Learning curves (validation solid, training dashed)" if train else "Learning curves (validation)")
    return _save(fig, path)


def _history_panel(
    ax: Any, history: Mapping[str, np.ndarray], train: Mapping[str, np.ndarray], b: int | None, baseline: Mapping[str, Any], log1p: bool
) -> None:
    from matplotlib.ticker import MaxNLocator

    for metric, values in history.items():
        label, key = metric_label(metric, log1p)
        (line,) = ax.plot(np.arange(len(values)), values, lw=1.5, label=f"valid {label}")
        if metric in train:
            ax.plot(np.arange(len(train[metric])), train[metric], "--", lw=1.2, color=line.get_color(), label=f"train {label}")
        if b is not None and 0 <= b < len(values):
            ax.plot([b], [values[b]], "o", color=line.get_color(), zorder=3)
        value = baseline.get(key) if key else None
        if isinstance(value, (int, float)) and math.isfinite(value):
            ax.axhline(value, ls=":", lw=1.2, color=line.get_color(), label=f"constant baseline {_fmt(value)}")
    if b is not None:
        ax.axvline(b, ls="--", lw=1.0, color="0.4", label=f"best iteration {b}")
    if len(history) == 1:
        ax.set_ylabel(metric_label(next(iter(history)), log1p)[0])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    _legend_below(ax, ncols=2)  # inside, it hid the flat baseline line and the late rounds of the curves


def log1p_targets(counts: Collection[str], boosters: Mapping[str, Any] | None) -> set[str]:
    """The count targets whose model regresses log1p(count): all but those of a raw-count
    objective (:data:`rapids_engage.train.RAW_COUNT_OBJECTIVES`, read from the booster's config)."""
    return {t for t in counts if _objective((boosters or {}).get(t)) not in RAW_COUNT_OBJECTIVES}


def _objective(booster: Any) -> str | None:
    try:
        return json.loads(booster.save_config())["learner"]["objective"]["name"]
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- ranking


#: The ranking plot's k: 1 .. RANKING_K (up to the largest group with a positive, when smaller), as the report's @10.
RANKING_K = 10
#: How a scorer is named in the ranking plot's legend (others by their report.json name).
SCORER_LABELS = {"constant": "constant (random order)"}


def ranking_curves(ranked: Mapping[str, Any], path: str | os.PathLike, k_max: int = RANKING_K) -> Path:
    """Per target ranked within groups: NDCG@k (solid) and MAP@k (dashed) against k = 1 .. ``k_max`` (fewer when
    the largest group with a positive is smaller) of the model and of each baseline, averaged over the groups with
    a positive (their number in the title) as the report's MAP@10 / NDCG@10 (:func:`rapids_engage.metrics.ranking_at_every_k`,
    ties ordered by the same hash); the values at the largest k in the legend, under the panel. ``ranked``: target ->
    :class:`rapids_engage.evaluate.RankedRows` (labels, groups, tie-break keys, scores by scorer, the model's first)."""
    targets = list(ranked)
    fig, axes = _figure(len(targets), panel_w=4.8, panel_h=4.0)
    if not targets:
        _message(axes[0], "no ranking targets")
    for ax, target in zip(axes, targets):
        rows = ranked[target]
        curves = {name: metrics.ranking_at_every_k(rows.labels, s, rows.groups, k_max, tiebreak=rows.ties)
                  for name, s in rows.scores.items()}
        _ranking_panel(ax, target, curves)
    _title(fig, axes, "Ranking within groups: NDCG@k and MAP@k (validation)")
    return _save(fig, path)


def _ranking_panel(ax: Any, target: str, curves: Mapping[str, Mapping[str, Any]]) -> None:
    from matplotlib.ticker import MaxNLocator

    first = next(iter(curves.values()), {"n_groups": 0, "largest_group": 0, "k": []})
    groups = first["n_groups"]
    ax.set_title(f"{target} ({groups:,} group{'' if groups == 1 else 's'} with a positive)", fontsize="medium")
    ax.set(xlabel="k (top rows of each group)", ylabel="mean over groups")
    if not groups:
        _message(ax, "no group with a positive")
        return
    top = min(len(first["k"]), first["largest_group"])
    for i, (name, c) in enumerate(curves.items()):
        style = {"color": f"C{i}", "lw": 2.0 if name == "model" else 1.3, "ms": 4 if name == "model" else 3}
        label = f"{SCORER_LABELS.get(name, name)}: NDCG@{top} {_fmt(c['ndcg'][top - 1])}, MAP@{top} {_fmt(c['map'][top - 1])}"
        ax.plot(c["k"][:top], c["ndcg"][:top], "o-", label=label, **style)
        ax.plot(c["k"][:top], c["map"][:top], "s--", **style)
    ax.plot([], [], "-", color="0.3", label="solid: NDCG@k")
    ax.plot([], [], "--", color="0.3", label="dashed: MAP@k")
    ax.set_xlim(0.7, top + 0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    _legend_below(ax)


# --------------------------------------------------------------------------- all


def write_all(
    out_dir: str | os.PathLike,
    labels: Mapping[str, Any],
    preds: Mapping[str, Any],
    boosters: Mapping[str, Any] | None = None,
    histories: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
    best: Mapping[str, int] | None = None,
    counts: tuple[Mapping[str, Any], Mapping[str, Any]] | None = None,
    *,
    baselines: Mapping[str, Mapping[str, Any]] | None = None,
    oracle: Mapping[str, Any] | None = None,
    train_histories: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
    ranked: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Write the plots under ``out_dir/plots/`` and return {name: path relative to ``out_dir``}
    (names: the keys of :data:`PLOT_FILES`).

    ``labels`` / ``preds``: the probability targets; ``counts``: (labels, predictions) of the
    count targets, on log1p. ``baselines``: per target, the constant baseline's report.json
    metrics (report["targets"][t]["baselines"]["constant"]), drawn on the learning curves;
    ``oracle``: per binary target, the true probabilities of the validation rows (aligned with
    ``labels``; synthetic data), drawn on the PR curves; ``train_histories``: the metric(s)
    per round on the training rows, drawn beside ``histories``; ``ranked``: per target ranked within groups (binary
    and ``rank:*`` objectives alike), its :class:`rapids_engage.evaluate.RankedRows`, drawn as NDCG@k / MAP@k
    against k (:func:`ranking_curves`). The model plots are skipped (left out
    of the result) when ``boosters`` / ``histories`` are None or empty.
    """
    out = Path(out_dir)
    written: dict[str, str] = {}

    def emit(name: str, draw: Any, *args: Any, **kwargs: Any) -> None:
        draw(*args, out / PLOT_FILES[name], **kwargs)
        written[name] = PLOT_FILES[name]

    if labels:
        emit("pr_curves", pr_curves, labels, preds, oracle=oracle)
        emit("calibration", calibration_curves, labels, preds)
    if counts and counts[0]:
        emit("count_predictions", count_predictions, *counts)
    if boosters:
        emit("feature_importance", feature_importance, boosters)
    if histories:
        log1p = log1p_targets(counts[0] if counts else (), boosters)
        emit("learning_curves", learning_curves, histories, best or {}, baselines=baselines, log1p=log1p, train=train_histories)
    if ranked:
        emit("ranking", ranking_curves, ranked)
    return written
