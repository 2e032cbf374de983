"""Learning curves: the validation (and training) metric per boosting round, the best iteration and the
constant baseline's value; which count targets' models regress log1p(count)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..train import RAW_COUNT_OBJECTIVES
from .panels import _figure, _fmt, _legend_below, _message, _save, _title


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
