"""Evaluate the per-target models on the validation window (RecSys 2021 metrics and more).

Predictions and labels of the validation rows are gathered once (two numbers
per row and target); the metrics run on numpy or cupy arrays. For synthetic
data the true probabilities give the oracle RCE, the best any model can reach.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from . import metrics
from .backend import to_host
from .schema import CREATOR, TRUE_PROB_PREFIX

POPULARITY = "engaged_with_user_follower_count"


def gather(
    client: Any, valid: Any, predictions: dict[str, Any], targets: list[str], extra: list[str] = ()
) -> tuple[Any, dict[str, Any]]:
    """(validation labels, ids and ``extra`` columns as a frame, target -> predicted probabilities), computed together."""
    import dask

    columns = list(dict.fromkeys(["tweet_id", CREATOR, POPULARITY, *targets, *extra]))
    frame, *preds = dask.compute(valid[columns], *(predictions[t] for t in targets))
    return frame, dict(zip(targets, preds))


def oracle_probabilities(truth_dir: Path | None, tweet_ids: Any, cutoff: int, targets: list[str]) -> Any | None:
    """The synthetic truth for the validation rows (pandas, aligned with ``tweet_ids``), or None."""
    if truth_dir is None or not truth_dir.is_dir():
        return None
    import pandas as pd

    first_day = dt.datetime.fromtimestamp(cutoff, dt.timezone.utc).strftime("%Y-%m-%d")
    files = [f for d in sorted(truth_dir.glob("day=*")) if d.name[4:] >= first_day for f in sorted(d.glob("*.parquet"))]
    if not files:
        return None
    cols = ["tweet_id", *(TRUE_PROB_PREFIX + t for t in targets)]
    truth = pd.concat([pd.read_parquet(f, columns=cols) for f in files], ignore_index=True)
    ids = pd.DataFrame({"tweet_id": to_host(tweet_ids)})
    aligned = ids.merge(truth, on="tweet_id", how="left")
    if aligned[cols[1:]].isna().any().any():
        return None  # truth does not cover these rows: no oracle
    return aligned


def evaluate_targets(frame: Any, preds: dict[str, Any], targets: list[str], truth: Any | None) -> dict[str, dict]:
    """Per target: the report.json metrics (ap, rce, auc, positive_rate, oracle_rce, ...)."""
    results: dict[str, dict] = {}
    popularity = frame[POPULARITY]
    for t in targets:
        y = frame[t]
        report = metrics.binary_report(y, preds[t], key=popularity)
        report["oracle_rce"] = None
        report["oracle_ap"] = None
        if truth is not None:
            p_true = truth[TRUE_PROB_PREFIX + t].to_numpy()
            y_host = to_host(y).to_numpy() if hasattr(to_host(y), "to_numpy") else to_host(y)
            report["oracle_rce"] = metrics.rce(y_host, p_true)
            report["oracle_ap"] = metrics.average_precision(y_host, p_true)
        results[t] = report
    return results
