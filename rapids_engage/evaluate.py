"""Evaluate the per-target models on the validation window (RecSys 2021 metrics and more).

Predictions and labels of the validation rows are gathered once (two numbers
per row and target); the metrics run on numpy or cupy arrays. For synthetic
data the true probabilities give the oracle RCE, the best any model can reach.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics
from .backend import to_host, to_host_f64, values
from .layout import Layout
from .metrics import RowError
from .schema import TRUE_PROB_PREFIX


def gather(
    client: Any, valid: Any, predictions: dict[str, Any], targets: list[str], layout: Layout, extra: list[str] = ()
) -> tuple[Any, dict[str, Any]]:
    """(validation labels, carried columns and ``extra`` as a frame, target -> predictions), computed together."""
    import dask

    columns = list(dict.fromkeys([*layout.carried(), *targets, *extra]))
    frame, *preds = dask.compute(valid[[c for c in columns if c in valid.columns]], *(predictions[t] for t in targets))
    return frame, dict(zip(targets, preds))


def oracle_probabilities(truth_dir: Path | None, ids: Any, cutoff: int, targets: list[str], id_column: str | None) -> Any | None:
    """The synthetic truth for the validation rows (pandas, aligned with ``ids``), or None."""
    if id_column is None or truth_dir is None or not truth_dir.is_dir():
        return None
    import pandas as pd

    first_day = dt.datetime.fromtimestamp(cutoff, dt.timezone.utc).strftime("%Y-%m-%d")
    files = [f for d in sorted(truth_dir.glob("day=*")) if d.name[4:] >= first_day for f in sorted(d.glob("*.parquet"))]
    if not files:
        return None
    cols = [id_column, *(TRUE_PROB_PREFIX + t for t in targets)]
    truth = pd.concat([pd.read_parquet(f, columns=cols) for f in files], ignore_index=True)
    aligned = pd.DataFrame({id_column: to_host(ids)}).merge(truth, on=id_column, how="left")
    if aligned[cols[1:]].isna().any().any():
        return None  # truth does not cover these rows: no oracle
    return aligned


#: Metrics that need probabilities: left out (None) for the scores of a ranking model.
CALIBRATION_METRICS = ("rce", "log_loss", "ece", "rce_grouped", "rce_chance", "rce_chance_se")


def tiebreak(frame: Any, layout: Layout) -> np.ndarray | None:
    """A hash of each row's key, the order of tied scores in ranking metrics (random-like,
    order-free); None without a ranking group. Computed once per frame, passed to :func:`score`."""
    from .hashing import combine

    return combine([np.asarray(to_host(frame[c])).astype(np.int64) for c in layout.row_key]) if layout.group else None


def _rank_scale(scores: Any) -> np.ndarray:
    """Scores (a ranking model's, counts) mapped into (0, 1) keeping their order and ties exactly, so the
    rank metrics are those of the scores (a sigmoid rounds every score above ~37 to 1.0: ties)."""
    scores = to_host_f64(scores)
    distinct, position = np.unique(scores, return_inverse=True)
    return np.where(np.isfinite(scores), (position.ravel() + 1.0) / (len(distinct) + 1.0), np.nan)  # NaN stays an error


def score(frame: Any, layout: Layout, target: str, pred: Any, probabilities: bool = True, ties: np.ndarray | None = None) -> dict[str, Any]:
    """The metrics of predictions ``pred`` for ``target`` on the gathered rows ``frame``.

    Binary targets: the RecSys 2021 metrics (AP, RCE, ...; grouped by the
    layout's popularity column when it has one) and, with a ranking group,
    MAP@10 / NDCG@10 / MRR per group. Count targets (labels and predictions are
    log1p counts): regression metrics on the counts and on log1p.
    ``probabilities=False`` (a ranking model's scores): rank metrics only.
    ``ties``: :func:`tiebreak` of ``frame`` (computed here when not given).
    """
    kind = layout.target(target).kind
    y = frame[target]
    if kind == "count":
        y, pred = np.expm1(to_host_f64(y)), np.expm1(np.maximum(to_host_f64(pred), 0.0))
        return {"kind": "count", **metrics.regression_report(y, pred), "mean": float(y.mean()) if len(y) else None,
                "mean_pred": float(pred.mean()) if len(pred) else None}
    key = frame[layout.popularity] if layout.popularity else None
    if not probabilities:
        pred = _rank_scale(pred)
    report = {"kind": "binary", **metrics.binary_report(y, pred, key=key)}
    if not probabilities:
        report.update({k: None for k in CALIBRATION_METRICS if k in report})
    if layout.group:
        ties = tiebreak(frame, layout) if ties is None else ties
        ranking = metrics.ranking_report(y, pred, frame[layout.group], k=10, tiebreak=ties)
        report.update({k: v for k, v in ranking.items() if k != "auc"})
    report["oracle_rce"] = None
    report["oracle_ap"] = None
    return report


def evaluate_targets(
    frame: Any, preds: dict[str, Any], targets: list[str], layout: Layout, truth: Any | None, scores: tuple[str, ...] = ()
) -> dict[str, dict]:
    """Per target: the report.json metrics of :func:`score`, plus the oracle's for synthetic data.

    ``scores``: targets whose predictions are ranking scores, not probabilities. Rows without a
    label for a target (new rows scored by ``predict``) are left out of its metrics, and counted
    (``unlabelled_rows``); an input error (:class:`~rapids_engage.metrics.RowError`) names the row of ``frame``.
    """
    results: dict[str, dict] = {}
    ties = tiebreak(frame, layout)
    for t in targets:
        known = values(frame[t].notna())
        if bool(known.all()):
            report = score(frame, layout, t, preds[t], probabilities=t not in scores, ties=ties)
        else:
            some = None if ties is None else ties[to_host(known)]
            try:
                report = score(frame[known], layout, t, preds[t][known], probabilities=t not in scores, ties=some)
            except RowError as error:  # its row is one of the labelled rows: name the caller's
                rows = np.flatnonzero(to_host(known))
                raise error.at(int(rows[error.row]), f" (target {t}: the row among the {len(known)} given, of which the "
                                                     f"{len(known) - len(rows)} without a label are left out of its metrics)") from None
            report["unlabelled_rows"] = int((~known).sum())
        if truth is not None and report["kind"] == "binary":
            labelled = to_host(known).astype(bool)  # the model's rows: the unlabelled ones are left out of both
            y_host = to_host_f64(frame[t])[labelled]
            p_true = truth[TRUE_PROB_PREFIX + t].to_numpy()[labelled]
            report["oracle_rce"] = metrics.rce(y_host, p_true)
            report["oracle_ap"] = metrics.average_precision(y_host, p_true)
        results[t] = report
    return results


@dataclass(frozen=True)
class RankedRows:
    """A binary target's validation rows ranked within their groups: labels, group ids, tie-break keys
    (:func:`tiebreak`) and the scores of the model and of each baseline, by name (the model's first)."""

    labels: Any
    groups: Any
    ties: np.ndarray | None
    scores: dict[str, Any]


def ranked_rows(frame: Any, layout: Layout, preds: Mapping[str, Any], baselines: Mapping[str, Mapping[str, Any]]) -> dict[str, RankedRows]:
    """Per binary target of a layout with a ranking group: its labelled rows of ``frame`` with the model's ``preds``
    and the ``baselines``' scores (name -> an object with ``values``, aligned with ``frame``); {} without a group."""
    if not layout.group:
        return {}
    ties = tiebreak(frame, layout)
    out = {}
    for t in preds:
        if layout.target(t).kind != "binary":
            continue
        scores = {"model": preds[t], **{name: b.values for name, b in (baselines.get(t) or {}).items()}}
        known = values(frame[t].notna())
        if bool(known.all()):
            out[t] = RankedRows(frame[t], frame[layout.group], ties, scores)
        else:  # rows without a label (never in a run's validation rows; as evaluate_targets)
            host = to_host(known).astype(bool)
            out[t] = RankedRows(frame[t][known], frame[layout.group][known], None if ties is None else ties[host],
                                {name: s[known] if name == "model" else np.asarray(s)[host] for name, s in scores.items()})
    return out
