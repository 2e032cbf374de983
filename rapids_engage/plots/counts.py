"""Predicted against true counts for count (regression) targets: a hexbin of row density, the median
prediction per bin of true counts, log1p axes labelled in counts."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import metrics
from .panels import MIN_BIN_ROWS, _fmt, _legend_below, _message, _panels, _save, _title, equal_count_bins

#: Count-axis ticks per decade, coarsest first (the first giving 3+ well-spaced ticks is used).
COUNT_STEPS = ((1, 3), (1, 2, 5), (1, 1.5, 2, 3, 4, 5, 7))


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


# --------------------------------------------------------------------------- count axes


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
