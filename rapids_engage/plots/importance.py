"""Feature importance: the top features by total gain of each target's booster, long names elided in the middle."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .panels import _figure, _message, _save, _title

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
