"""PNG plots of a run: PR curves, reliability diagrams, feature importance, learning curves,
and predicted against true counts for count (regression) targets.

Every function draws one figure with one panel per target and writes it to
``path`` atomically (temporary file, then rename). Figures are plain
:class:`matplotlib.figure.Figure` objects rendered by the Agg canvas chosen
inside each function: pyplot is never imported, so no global figure registry
or interactive backend is touched and nothing leaks between calls. matplotlib
itself is imported lazily, on the first plot.

Labels and predictions may be numpy or cupy arrays, pandas or cudf Series: they
are copied to the host (:func:`rapids_engage.backend.to_host_f64`) as float64 numpy
before plotting. Degenerate inputs are drawn, not raised: a target without
positive labels gets an annotated panel, a model without splits an empty
importance panel, a target without history an empty learning-curve panel.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics
from .backend import to_host_f64

PLOT_FILES = {
    "pr_curves": "plots/pr_curves.png",
    "calibration": "plots/calibration.png",
    "feature_importance": "plots/feature_importance.png",
    "learning_curves": "plots/learning_curves.png",
    "count_predictions": "plots/count_predictions.png",
}

_MAX_COLS = 4
_DPI = 110


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


def _message(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def _save(fig: Any, path: str | os.PathLike) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically and release it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    try:
        fig.savefig(tmp, format="png", dpi=_DPI)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        fig.clear()
    return path


def _fmt(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if value is not None and math.isfinite(value) else "n/a"


def _panels(labels: Mapping[str, Any], preds: Mapping[str, Any]) -> tuple[Any, list[tuple[Any, str, np.ndarray, np.ndarray]]]:
    """(figure, [(axes, target, labels, predictions) per target]) with one panel per target
    (a single annotated panel when there is none)."""
    targets = _targets(labels, preds)
    fig, axes = _figure(len(targets))
    if not targets:
        _message(axes[0], "no targets")
    return fig, [(ax, t, to_host_f64(labels[t]), to_host_f64(preds[t])) for ax, t in zip(axes, targets)]


def _targets(labels: Mapping[str, Any], preds: Mapping[str, Any]) -> list[str]:
    """The targets with both labels and predictions, in the order of ``labels``."""
    return [t for t in labels if t in preds]


# --------------------------------------------------------------------------- plots


def pr_curves(labels: Mapping[str, Any], preds: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Precision-recall curve per target; AP and the positive rate (the precision of a
    random ranking, drawn as a dashed line) in the legend."""
    fig, panels = _panels(labels, preds)
    for ax, target, y, p in panels:
        rate = float(y.mean()) if len(y) else float("nan")
        curve = metrics.pr_curve(y, p, max_points=400)
        if curve["recall"]:
            ap = metrics.average_precision(y, p)
            ax.step(curve["recall"], curve["precision"], where="post", lw=1.6, label=f"model (AP {_fmt(ap)})")
        else:
            _message(ax, "no positive labels")
        if math.isfinite(rate):
            ax.axhline(rate, ls="--", lw=1.0, color="0.5", label=f"positive rate {_fmt(rate)}")
        ax.set(title=target, xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right", fontsize="small")
    fig.suptitle("Precision-recall (validation)")
    return _save(fig, path)


def count_predictions(labels: Mapping[str, Any], preds: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Per count target: predicted against true log1p(count) (density of rows), with the diagonal;
    ``labels`` and ``preds`` are on the log1p scale."""
    fig, panels = _panels(labels, preds)
    for ax, target, y, p in panels:
        if not len(y):
            _message(ax, "no rows")
            continue
        hi = float(max(y.max(), p.max(), 1.0))
        ax.hexbin(y, p, gridsize=40, bins="log", mincnt=1, extent=(0, hi, 0, hi), cmap="viridis")
        ax.plot([0, hi], [0, hi], ls="--", lw=1.0, color="0.3")
        ax.set(title=f"{target} (Spearman {_fmt(metrics.spearman(y, p), 3)})", xlabel="true log1p(count)",
               ylabel="predicted log1p(count)", xlim=(0, hi), ylim=(0, hi))
    fig.suptitle("Count targets: predicted vs true (validation)")
    return _save(fig, path)


def calibration_curves(
    labels: Mapping[str, Any], preds: Mapping[str, Any], path: str | os.PathLike, n_bins: int = 10
) -> Path:
    """Reliability diagram per target: observed positive rate against mean prediction on
    ``n_bins`` equal-width bins of [0, 1] (marker area ~ rows in the bin), the diagonal of
    perfect calibration, and the ECE in the legend."""
    fig, panels = _panels(labels, preds)
    for ax, target, y, p in panels:
        ax.plot([0, 1], [0, 1], ls="--", lw=1.0, color="0.5", label="perfectly calibrated")
        if len(y):
            curve = metrics.calibration_curve(y, p, n_bins=n_bins)
            ece = metrics.expected_calibration_error(y, p, n_bins=n_bins)
            counts = np.asarray(curve["count"], dtype=np.float64)
            sizes = 12 + 80 * np.sqrt(counts / counts.max()) if len(counts) else 12
            ax.plot(curve["mean_pred"], curve["frac_pos"], lw=1.4, label=f"model (ECE {_fmt(ece)})")
            ax.scatter(curve["mean_pred"], curve["frac_pos"], s=sizes, zorder=3)
        else:
            _message(ax, "no rows")
        ax.set(title=target, xlabel="mean prediction", ylabel="fraction positive", xlim=(0, 1), ylim=(0, 1))
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize="small")
    fig.suptitle(f"Calibration ({n_bins} bins, marker area ~ rows)")
    return _save(fig, path)


def feature_importance(boosters: Mapping[str, Any], path: str | os.PathLike, top: int = 20) -> Path:
    """Horizontal bars of the ``top`` features by gain (mean loss reduction per split) per
    target's XGBoost booster, largest on top."""
    targets = list(boosters)
    fig, axes = _figure(len(targets), panel_w=5.0, panel_h=1.2 + 0.26 * top)
    if not targets:
        _message(axes[0], "no models")
    for ax, target in zip(axes, targets):
        scores = boosters[target].get_score(importance_type="gain")
        ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)[:top]
        ax.set_title(target)
        if not ranked:
            _message(ax, "no splits")
            ax.set(xticks=[], yticks=[])
            continue
        names, gains = zip(*reversed(ranked))
        ax.barh(range(len(names)), gains)
        ax.set_yticks(range(len(names)), labels=names, fontsize="small")
        ax.set_xlabel("gain")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"Feature importance (top {top} by gain)")
    return _save(fig, path)


def learning_curves(
    histories: Mapping[str, Mapping[str, Sequence[float]]],
    best: Mapping[str, int],
    path: str | os.PathLike,
) -> Path:
    """Validation metric(s) per boosting round for each target, the best iteration marked
    by a vertical line and a point on each curve."""
    targets = list(histories)
    fig, axes = _figure(len(targets))
    if not targets:
        _message(axes[0], "no training history")
    for ax, target in zip(axes, targets):
        history = {m: np.asarray(v, dtype=np.float64) for m, v in (histories[target] or {}).items() if len(v)}
        ax.set(title=target, xlabel="boosting round")
        if not history:
            _message(ax, "no history")
            continue
        b = best.get(target)
        for metric, values in history.items():
            (line,) = ax.plot(np.arange(len(values)), values, lw=1.5, label=f"valid {metric}")
            if b is not None and 0 <= b < len(values):
                ax.plot([b], [values[b]], "o", color=line.get_color(), zorder=3)
        if b is not None:
            ax.axvline(b, ls="--", lw=1.0, color="0.4", label=f"best iteration {b}")
        if len(history) == 1:
            ax.set_ylabel(next(iter(history)))
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize="small")
    fig.suptitle("Learning curves (validation)")
    return _save(fig, path)


# --------------------------------------------------------------------------- all


def write_all(
    out_dir: str | os.PathLike,
    labels: Mapping[str, Any],
    preds: Mapping[str, Any],
    boosters: Mapping[str, Any] | None = None,
    histories: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
    best: Mapping[str, int] | None = None,
    counts: tuple[Mapping[str, Any], Mapping[str, Any]] | None = None,
) -> dict[str, str]:
    """Write the four plots under ``out_dir/plots/`` and return {name: path relative to
    ``out_dir``} (names: pr_curves, calibration, feature_importance, learning_curves).

    The model plots are skipped (left out of the result) when ``boosters`` /
    ``histories`` are None or empty.
    """
    out = Path(out_dir)
    written: dict[str, str] = {}

    def emit(name: str, draw: Any, *args: Any) -> None:
        draw(*args, out / PLOT_FILES[name])
        written[name] = PLOT_FILES[name]

    if labels:
        emit("pr_curves", pr_curves, labels, preds)
        emit("calibration", calibration_curves, labels, preds)
    if counts and counts[0]:
        emit("count_predictions", count_predictions, *counts)
    if boosters:
        emit("feature_importance", feature_importance, boosters)
    if histories:
        emit("learning_curves", learning_curves, histories, best or {})
    return written
