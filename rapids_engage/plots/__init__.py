"""PNG plots of a run: PR curves, reliability diagrams, feature importance, learning curves,
predicted against true counts for count (regression) targets, and NDCG@k / MAP@k against k for
targets ranked within groups.

One module a job: :mod:`.panels` (the figure, its panels and the shared helpers), :mod:`.classification`
(PR curves, reliability diagrams), :mod:`.counts`, :mod:`.importance`, :mod:`.learning`, :mod:`.ranking`;
this package re-exports their public names and draws them all (:func:`write_all`).

Every function draws one figure with one panel per target and writes it to
``path`` atomically (temporary file, then rename). Figures are plain
:class:`matplotlib.figure.Figure` objects rendered by the Agg canvas chosen
inside each function: pyplot is never imported, so no global figure registry
or interactive backend is touched and nothing leaks between calls. matplotlib
itself is imported lazily, on the first plot.

Axes are fitted to the data: rare targets get a precision axis and reliability
diagram zoomed on their range (log-log when predictions span orders of
magnitude), count axes are labelled in counts. A figure of one panel has one
title (the figure's and the panel's merged).

Labels and predictions may be numpy or cupy arrays, pandas or cudf Series: they
are copied to the host (:func:`rapids_engage.backend.to_host_f64`) as float64 numpy
before plotting. Degenerate inputs are drawn, not raised: a target without
positive labels gets an annotated panel, a model without splits an empty
importance panel, a target without history an empty learning-curve panel.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .panels import MIN_BIN_ROWS, equal_count_bins, positives_title
from .classification import (
    CALIBRATION_BINS, LOG_SPAN, PR_HEADROOM, PR_MIN_RECALL, calibration_curves,
    calibration_limits, log_scale, pr_curves, pr_top, quantile_calibration, wilson_interval,
)
from .counts import COUNT_STEPS, binned_medians, count_predictions, count_ticks
from .importance import LABEL_IN_PER_CHAR, MAX_LABEL_CHARS, feature_importance, short_name
from .learning import learning_curves, log1p_targets, metric_label
from .ranking import BAND_RESAMPLES, BAND_SEED, RANKING_K, SCORER_LABELS, ranking_curves

__all__ = [
    "BAND_RESAMPLES",
    "BAND_SEED",
    "CALIBRATION_BINS",
    "COUNT_STEPS",
    "LABEL_IN_PER_CHAR",
    "LOG_SPAN",
    "MAX_LABEL_CHARS",
    "MIN_BIN_ROWS",
    "PLOT_FILES",
    "PR_HEADROOM",
    "PR_MIN_RECALL",
    "RANKING_K",
    "SCORER_LABELS",
    "binned_medians",
    "calibration_curves",
    "calibration_limits",
    "count_predictions",
    "count_ticks",
    "equal_count_bins",
    "feature_importance",
    "learning_curves",
    "log1p_targets",
    "log_scale",
    "metric_label",
    "positives_title",
    "pr_curves",
    "pr_top",
    "quantile_calibration",
    "ranking_curves",
    "short_name",
    "wilson_interval",
    "write_all",
]

PLOT_FILES = {
    "pr_curves": "plots/pr_curves.png",
    "calibration": "plots/calibration.png",
    "feature_importance": "plots/feature_importance.png",
    "learning_curves": "plots/learning_curves.png",
    "count_predictions": "plots/count_predictions.png",
    "ranking": "plots/ranking.png",
}


def write_all(
    out_dir: str | os.PathLike,
    labels: Mapping[str, Any],
    preds: Mapping[str, Any],
    boosters: Mapping[str, Any] | None = None,
    histories: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
    best: Mapping[str, int] | None = None,
    counts: tuple[Mapping[str, Any], Mapping[str, Any]] | None = None,
    *,
    baselines: Mapping[str, Mapping[str, Any]] | None = None,
    oracle: Mapping[str, Any] | None = None,
    train_histories: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
    ranked: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Write the plots under ``out_dir/plots/`` and return {name: path relative to ``out_dir``}
    (names: the keys of :data:`PLOT_FILES`).

    ``labels`` / ``preds``: the probability targets; ``counts``: (labels, predictions) of the
    count targets, on log1p. ``baselines``: per target, the constant baseline's report.json
    metrics (report["targets"][t]["baselines"]["constant"]), drawn on the learning curves;
    ``oracle``: per binary target, the true probabilities of the validation rows (aligned with
    ``labels``; synthetic data), drawn on the PR curves; ``train_histories``: the metric(s)
    per round on the training rows, drawn beside ``histories``; ``ranked``: per target ranked within groups (binary
    and ``rank:*`` objectives alike), its :class:`rapids_engage.evaluate.RankedRows`, drawn as NDCG@k / MAP@k
    against k (:func:`ranking_curves`). The model plots are skipped (left out
    of the result) when ``boosters`` / ``histories`` are None or empty.
    """
    out = Path(out_dir)
    written: dict[str, str] = {}

    def emit(name: str, draw: Any, *args: Any, **kwargs: Any) -> None:
        draw(*args, out / PLOT_FILES[name], **kwargs)
        written[name] = PLOT_FILES[name]

    if labels:
        emit("pr_curves", pr_curves, labels, preds, oracle=oracle)
        emit("calibration", calibration_curves, labels, preds)
    if counts and counts[0]:
        emit("count_predictions", count_predictions, *counts)
    if boosters:
        emit("feature_importance", feature_importance, boosters)
    if histories:
        log1p = log1p_targets(counts[0] if counts else (), boosters)
        emit("learning_curves", learning_curves, histories, best or {}, baselines=baselines, log1p=log1p, train=train_histories)
    if ranked:
        emit("ranking", ranking_curves, ranked)
    return written
