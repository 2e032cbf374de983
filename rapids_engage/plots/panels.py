"""The figure and its panels, shared by every plot: a standalone Agg figure of one panel per target
(:func:`_figure`, :func:`_panels`), its title (:func:`_title`), legends under the panels, messages in
empty panels, number formatting, bins of equal row counts, and the atomic PNG write (:func:`_save`).
matplotlib is imported lazily, on the first figure; pyplot never."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import write_file
from ..backend import to_host_f64

_MAX_COLS = 4
_DPI = 110
#: Bins of equal row counts with fewer rows (ties, small data) are greyed out (reliability diagrams) or left out (count medians).
MIN_BIN_ROWS = 20


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
