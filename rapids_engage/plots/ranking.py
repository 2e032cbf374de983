"""The ranking plot: NDCG@k and MAP@k against k for targets ranked within groups, the model against its baselines."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import metrics
from .panels import _figure, _fmt, _legend_below, _message, _save, _title

#: The ranking plot's k: 1 .. RANKING_K (up to the largest group with a positive, when smaller), as the report's @10.
RANKING_K = 10
#: How a scorer is named in the ranking plot's legend (others by their report.json name).
SCORER_LABELS = {"constant": "constant (random order)"}
#: The model's 95% band: bootstrap resamples of the groups, from a generator of this seed (the same band run to run).
BAND_RESAMPLES, BAND_SEED = 200, 0


def ranking_curves(ranked: Mapping[str, Any], path: str | os.PathLike, k_max: int = RANKING_K) -> Path:
    """Per target ranked within groups: NDCG@k (solid) and MAP@k (dashed) against k = 1 .. ``k_max`` (fewer when
    the largest group with a positive is smaller) of the model and of each baseline, averaged over the groups with
    a positive (their number in the title) as the report's MAP@10 / NDCG@10 (:func:`rapids_engage.metrics.ranking_at_every_k`,
    ties ordered by the same hash); the values at the largest k in the legend, under the panel. ``ranked``: target ->
    :class:`rapids_engage.evaluate.RankedRows` (labels, groups, tie-break keys, scores by scorer, the model's first).
    The model's curves have a band: the 95% interval of the mean over groups from :data:`BAND_RESAMPLES` bootstrap
    resamples of the groups (seeded: :data:`BAND_SEED`): how far its mean moves with the sample of groups. The
    baselines, scored on the same groups, move with it: their gap to the model varies less than the band is wide."""
    targets = list(ranked)
    fig, axes = _figure(len(targets), panel_w=4.8, panel_h=4.0)
    if not targets:
        _message(axes[0], "no ranking targets")
    for ax, target in zip(axes, targets):
        rows = ranked[target]
        curves = {name: metrics.ranking_at_every_k(rows.labels, s, rows.groups, k_max, tiebreak=rows.ties,
                                                   resamples=BAND_RESAMPLES if name == "model" else 0, seed=BAND_SEED)
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
        for metric in ("ndcg", "map") if c.get("ndcg_band") else ():
            low, high = c[f"{metric}_band"]
            ax.fill_between(c["k"][:top], low[:top], high[:top], color=style["color"], alpha=0.18, lw=0,
                            label=f"{SCORER_LABELS.get(name, name)}: 95% band (bootstrap over groups)" if metric == "ndcg" else None)
    ax.plot([], [], "-", color="0.3", label="solid: NDCG@k")
    ax.plot([], [], "--", color="0.3", label="dashed: MAP@k")
    ax.set_xlim(0.7, top + 0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    _legend_below(ax)
