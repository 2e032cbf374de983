"""Regression metrics on counts: RMSE / MAE (on log1p too) and Spearman."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from ..backend import argsort_stable
from .arrays import ArrayLike, _block_starts, _checked, _mean

# ---------------------------------------------------------------- regression


def _log1p_pair(y: ArrayLike, pred: ArrayLike) -> tuple[Any, Any]:
    """log1p of both; counts, so negatives are clipped to 0 first."""
    xp, y, pred = _checked(y, pred, binary=False)
    return _log1p_both(y, pred, xp)


def _log1p_both(y: Any, pred: Any, xp: ModuleType) -> tuple[Any, Any]:
    return xp.log1p(xp.clip(y, 0, None)), xp.log1p(xp.clip(pred, 0, None))


def _rmse(y: Any, pred: Any) -> float:
    return _mean((y - pred) ** 2) ** 0.5


def _mae(y: Any, pred: Any) -> float:
    return _mean(abs(y - pred))


def rmse(y: ArrayLike, pred: ArrayLike) -> float:
    """Root mean squared error."""
    _, y, pred = _checked(y, pred, binary=False)
    return _rmse(y, pred)


def mae(y: ArrayLike, pred: ArrayLike) -> float:
    """Mean absolute error."""
    _, y, pred = _checked(y, pred, binary=False)
    return _mae(y, pred)


def rmse_log1p(y: ArrayLike, pred: ArrayLike) -> float:
    """RMSE on log1p of counts (negatives clipped to 0)."""
    ly, lp = _log1p_pair(y, pred)
    return _rmse(ly, lp)


def mae_log1p(y: ArrayLike, pred: ArrayLike) -> float:
    """MAE on log1p of counts (negatives clipped to 0)."""
    ly, lp = _log1p_pair(y, pred)
    return _mae(ly, lp)


def _rankdata(x: Any, xp: ModuleType) -> Any:
    """1-based ranks, ties get the average rank (scipy.stats.rankdata 'average')."""
    order = argsort_stable(x)
    new = _block_starts(x[order], xp)
    block = xp.cumsum(new) - 1
    starts = xp.nonzero(new)[0]
    ends = xp.concatenate([starts[1:], xp.asarray([len(x)], dtype=starts.dtype)])
    ranks = xp.empty(len(x), dtype=xp.float64)
    ranks[order] = ((starts + ends + 1) / 2.0)[block]
    return ranks


def spearman(y: ArrayLike, pred: ArrayLike) -> float:
    """Spearman rank correlation (average ranks for ties), as scipy.stats.spearmanr; nan if constant."""
    xp, y, pred = _checked(y, pred, binary=False)
    return _spearman(y, pred, xp)


def _spearman(y: Any, pred: Any, xp: ModuleType) -> float:
    """Spearman of checked arrays."""
    if len(y) < 2:
        return float("nan")
    a = _rankdata(y, xp)
    b = _rankdata(pred, xp)
    a, b = a - a.mean(), b - b.mean()
    denom = float(xp.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / denom if denom > 0 else float("nan")




def regression_report(y: ArrayLike, pred: ArrayLike) -> dict[str, Any]:
    """{"rmse_log1p", "mae_log1p", "rmse", "mae", "spearman", "n"}."""
    xp, y, pred = _checked(y, pred, binary=False)  # once: the metrics below take the checked arrays
    ly, lp = _log1p_both(y, pred, xp)
    return {
        "rmse_log1p": _rmse(ly, lp),
        "mae_log1p": _mae(ly, lp),
        "rmse": _rmse(y, pred),
        "mae": _mae(y, pred),
        "spearman": _spearman(y, pred, xp),
        "n": int(len(y)),
    }
