"""Train/validation skew: features a model leans on whose signal in training is gone in validation.

A feature can predict a target in the training rows and not in the validation rows when it is
computed differently for them: history engagements of the last hours are known for training rows
but not yet for rows being scored (``features.history.label_delay``), counts over the training
window include a training row's own future, an item new in the validation window gets the
target-encoding prior. The model learns the training relation and fails on the rows it scores.

For each binary target this compares every feature's ROC AUC against the label in a sample of the
training rows and in the validation rows, and reports the features that (a) carry signal in
training (``|AUC - 0.5| >= min_signal``), (b) lose at least half of it or flip its sign in
validation, by more than ``z`` standard errors of the difference (Hanley & McNeil), and (c) hold
at least ``min_gain`` of the model's total gain. A feature whose values drift while keeping their
relation to the label (one that grows with time) keeps its AUC: it is not reported.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import metrics
from .backend import to_host

MIN_SIGNAL = 0.05
MIN_GAIN = 0.01
Z = 4.0


def auc_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of a ROC AUC (Hanley & McNeil 1982)."""
    if not n_pos or not n_neg or math.isnan(auc):
        return float("nan")
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    return math.sqrt(max(var, 0.0))


def _auc_of(y: np.ndarray, x: np.ndarray) -> float:
    """AUC of feature values ``x`` (NaN as the lowest value) against 0/1 labels ``y``."""
    x = np.asarray(x, dtype=np.float64)
    missing = ~np.isfinite(x)
    if missing.any():
        x = np.where(missing, (np.nanmin(np.where(missing, np.nan, x)) if (~missing).any() else 0.0) - 1.0, x)
    return metrics.roc_auc(y, x)


def gain_shares(booster: Any) -> dict[str, float]:
    """Feature -> share of the booster's total gain."""
    gains = booster.get_score(importance_type="total_gain")
    total = sum(gains.values())
    return {f: g / total for f, g in gains.items()} if total > 0 else {}


def shifted_features(
    train: Any, valid: Any, target: str, features: list[str], gains: dict[str, float],
    min_signal: float = MIN_SIGNAL, min_gain: float = MIN_GAIN, z: float = Z,
) -> list[dict[str, Any]]:
    """The features of ``target``'s model whose signal is lost in validation (module doc), largest
    loss first: ``{"feature", "auc_train", "auc_valid", "gain_share"}``. ``train`` / ``valid``:
    pandas or cudf frames with the features and the 0/1 label."""
    y_train, y_valid = (np.asarray(to_host(f[target]), dtype=np.float64) for f in (train, valid))
    counts = [(int(y.sum()), int(len(y) - y.sum())) for y in (y_train, y_valid)]
    if min(min(c) for c in counts) == 0:
        return []  # one class: no AUC
    found = []
    for f in features:
        share = gains.get(f, 0.0)
        if share < min_gain:
            continue
        a_train, a_valid = _auc_of(y_train, to_host(train[f])), _auc_of(y_valid, to_host(valid[f]))
        s_train, s_valid = a_train - 0.5, a_valid - 0.5
        if abs(s_train) < min_signal or (s_train * s_valid > 0 and abs(s_valid) > abs(s_train) / 2):
            continue
        se = math.hypot(auc_se(a_train, *counts[0]), auc_se(a_valid, *counts[1]))
        if abs(a_train - a_valid) > z * se:
            found.append({"feature": f, "auc_train": a_train, "auc_valid": a_valid, "gain_share": share})
    return sorted(found, key=lambda d: -abs(d["auc_train"] - d["auc_valid"]))


def _sample(frame: Any, columns: list[str], max_rows: int, seed: int) -> Any:
    """A lazy sample of at most about ``max_rows`` rows of dask ``frame[columns]``."""
    n = int(frame.map_partitions(len).sum().compute())
    frac = min(1.0, max_rows / max(n, 1))
    part = frame[columns]
    return part.sample(frac=frac, random_state=seed) if frac < 1.0 else part


def skew_report(
    train: Any, valid: Any, targets: list[str], features: list[str], boosters: dict[str, Any],
    max_rows: int = 100_000, seed: int = 0,
) -> dict[str, list[dict[str, Any]]]:
    """Binary target -> :func:`shifted_features` of its model, on samples of at most ``max_rows``
    rows of the dask training and validation frames."""
    import dask

    if not targets:
        return {}
    columns = [*features, *targets]
    train_s, valid_s = dask.compute(_sample(train, columns, max_rows, seed), _sample(valid, columns, max_rows, seed))
    return {t: shifted_features(train_s, valid_s, t, features, gain_shares(boosters[t])) for t in targets}


def describe(found: list[dict[str, Any]], limit: int = 3) -> str:
    """``cnt_news_id (AUC 0.60 → 0.46, 1% of the gain), ...`` for the first ``limit`` features."""
    shown = [f"{d['feature']} (AUC {d['auc_train']:.2f} → {d['auc_valid']:.2f}, {d['gain_share']:.0%} of the gain)"
             for d in found[:limit]]
    more = f" and {len(found) - limit} more" if len(found) > limit else ""
    return ", ".join(shown) + more


__all__ = ["MIN_GAIN", "MIN_SIGNAL", "Z", "auc_se", "describe", "gain_shares", "shifted_features", "skew_report"]
