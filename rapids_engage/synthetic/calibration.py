"""The synthetic world's per-target intercepts (``World.base``): the positive rates hit TARGET_RATES."""

from __future__ import annotations

import numpy as np

from .chunk import Today, Yesterday, draw_rows, logits_without_history
from .spec import SyntheticSpec
from .world import RATES, World, sigmoid

CALIBRATION_ROWS = 200_000


def _bisect_base(z: np.ndarray) -> np.ndarray:
    """Per-target intercepts b with mean(sigmoid(z + b)) = TARGET_RATES (bisection)."""
    lo, hi = np.full(4, -15.0), np.full(4, 10.0)
    for _ in range(40):
        mid = (lo + hi) / 2
        low = sigmoid(z + mid).mean(axis=0) < RATES
        lo, hi = np.where(low, mid, lo), np.where(low, hi, mid)
    return (lo + hi) / 2


def calibrate(w: World, spec: SyntheticSpec) -> None:
    """Set ``w.base``: fit on a history-free sample, simulate one day, refit with its history."""
    rng = np.random.default_rng([spec.seed, 1])

    def logits(r: dict[str, np.ndarray], yesterday: Yesterday) -> np.ndarray:
        return logits_without_history(w, r, w.mood) + yesterday.term(r["u"])

    none = Yesterday.none(spec.users)
    w.base = _bisect_base(logits(draw_rows(w, rng, CALIBRATION_ROWS), none))
    day, today = draw_rows(w, rng, min(max(spec.rows // spec.days, 1), 1_000_000)), Today.empty(spec.users)
    today.add(day["u"], rng.random((len(day["u"]), 4)) < sigmoid(logits(day, none) + w.base))
    w.base = _bisect_base(logits(draw_rows(w, rng, CALIBRATION_ROWS), today.close()))
