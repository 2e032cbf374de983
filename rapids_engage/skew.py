"""Train/validation skew: features a model leans on whose signal in training is gone in validation.

A feature can predict a target in the training rows and not in the validation rows when it is
computed differently for them: history engagements of the last hours are known for training rows
but not yet for rows being scored (``features.history.label_delay``), counts over the training
window include a training row's own future, an item new in the validation window gets the
target-encoding prior. The model learns the training relation and fails on the rows it scores.

For each target this measures every feature's relation to the label — ROC AUC for a binary target,
Spearman correlation for a count — in samples of the training rows and of the validation rows,
and reports the features that (a) carry signal in training (``|AUC - 0.5| >= 0.05``, ``|rho| >= 0.1``),
(b) keep less than half of it, or change its sign, in validation, by more than ``z`` standard errors
of the difference (Hanley & McNeil for AUC, Bonett & Wright for Spearman), and (c) hold at least
``min_gain`` of the model's total gain. A feature whose values drift while keeping their relation
to the label (one that grows with time) keeps its AUC: it is not reported.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from . import metrics
from .backend import to_host
from .features.frames import sample_rows

MIN_GAIN = 0.01
Z = 4.0


def auc_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of a ROC AUC (Hanley & McNeil 1982); an AUC below 0.5 has that of 1 - AUC, its feature's
    negation (Hanley & McNeil's formula assumes the positives score higher)."""
    if not n_pos or not n_neg or math.isnan(auc):
        return float("nan")
    auc = max(auc, 1 - auc)
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    return math.sqrt(max(var, 0.0))


def spearman_se(rho: float, n: int) -> float:
    """Standard error of a Spearman correlation: Bonett & Wright's (1 + rho^2 / 2) / (n - 3) variance of
    its Fisher z, taken back to rho (delta method)."""
    if n <= 3 or math.isnan(rho):
        return float("nan")
    return math.sqrt((1 + rho * rho / 2) / (n - 3)) * (1 - rho * rho)


def _lowest_nan(x: Any) -> np.ndarray:
    """Feature values as float64 with NaN (missing) below every value: a rank like any other."""
    x = np.asarray(to_host(x), dtype=np.float64)
    missing = ~np.isfinite(x)
    if missing.any():
        low = x[~missing].min() - 1.0 if (~missing).any() else 0.0
        x = np.where(missing, low, x)
    return x


#: Per target kind: (measure name, its value without signal, the least signal that counts, measure, standard error).
_MEASURES: dict[str, tuple[str, float, float, Callable[[np.ndarray, np.ndarray], float], Callable[[float, np.ndarray], float]]] = {
    "binary": ("AUC", 0.5, 0.05, metrics.roc_auc, lambda v, y: auc_se(v, int(y.sum()), int(len(y) - y.sum()))),
    "count": ("Spearman", 0.0, 0.1, metrics.spearman, lambda v, y: spearman_se(v, len(y))),
}


def gain_shares(booster: Any) -> dict[str, float]:
    """Feature -> share of the booster's total gain."""
    gains = booster.get_score(importance_type="total_gain")
    total = sum(gains.values())
    return {f: g / total for f, g in gains.items()} if total > 0 else {}


def shifted_features(
    train: Any, valid: Any, target: str, features: list[str], gains: dict[str, float], kind: str = "binary",
    min_gain: float = MIN_GAIN, z: float = Z,
) -> list[dict[str, Any]]:
    """The features of ``target``'s model whose signal is lost in validation (module doc), largest
    loss first: ``{"feature", "measure", "train", "valid", "gain_share"}``. ``train`` / ``valid``:
    pandas or cudf frames with the features and the label; ``kind``: the target's (count, or a 0/1 kind)."""
    name, none, least, measure, se = _MEASURES["count" if kind == "count" else "binary"]
    y_train, y_valid = (np.asarray(to_host(f[target]), dtype=np.float64) for f in (train, valid))
    if min(len(np.unique(y_train)), len(np.unique(y_valid))) < 2:
        return []  # a constant label: no signal to measure
    found = []
    for f in features:
        share = gains.get(f, 0.0)
        if share < min_gain:
            continue
        v_train, v_valid = (measure(y, _lowest_nan(frame[f])) for y, frame in ((y_train, train), (y_valid, valid)))
        if math.isnan(v_train):
            continue
        v_valid = none if math.isnan(v_valid) else v_valid  # a feature constant in validation (Spearman nan): no signal
        s_train, s_valid = v_train - none, v_valid - none
        if abs(s_train) < least or (s_train * s_valid > 0 and abs(s_valid) > abs(s_train) / 2):
            continue
        if abs(v_train - v_valid) > z * math.hypot(se(v_train, y_train), se(v_valid, y_valid)):
            found.append({"feature": f, "measure": name, "train": v_train, "valid": v_valid, "gain_share": share})
    return sorted(found, key=lambda d: -abs(d["train"] - d["valid"]))


def skew_report(
    train: Any, valid: Any, kinds: dict[str, str], features: list[str], boosters: dict[str, Any],
    max_rows: int = 100_000, seed: int = 0,
) -> dict[str, list[dict[str, Any]]]:
    """Target -> :func:`shifted_features` of its model, for the targets of ``kinds`` (target -> binary
    or count), on samples of at most ``max_rows`` rows of the dask training and validation frames."""
    import dask

    if not kinds:
        return {}
    columns = [*features, *kinds]
    train_s, valid_s = dask.compute(sample_rows(train, columns, max_rows, seed), sample_rows(valid, columns, max_rows, seed))
    return {t: shifted_features(train_s, valid_s, t, features, gain_shares(boosters[t]), kind) for t, kind in kinds.items()}


def describe(found: list[dict[str, Any]], limit: int = 3) -> str:
    """``cnt_news_id (AUC 0.60 → 0.46, 1% of the gain), ...`` for the first ``limit`` features."""
    shown = [f"{d['feature']} ({d['measure']} {d['train']:.2f} → {d['valid']:.2f}, {d['gain_share']:.0%} of the gain)"
             for d in found[:limit]]
    more = f" and {len(found) - limit} more" if len(found) > limit else ""
    return ", ".join(shown) + more


__all__ = ["MIN_GAIN", "Z", "auc_se", "spearman_se", "describe", "gain_shares", "shifted_features", "skew_report"]
