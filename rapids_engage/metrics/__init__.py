"""Evaluation metrics on numpy (CPU) or cupy (GPU) arrays — RecSys Challenge 2021 and more (``arrays``: input
handling; ``binary``, ``ranking``, ``regression``: the metrics by kind of target).

Every function takes numpy or cupy arrays, pandas / cudf Series or lists, computes in
float64 on the device that holds the data (cupy as soon as one input lives on
the GPU) and returns plain Python numbers. Series are read by position, as
scikit-learn reads them: their index is not aligned (``y`` on a filtered frame's
index and ``pd.Series(model.predict(X))`` pair row i with row i). Everything is vectorized: curves come
from one sort plus cumulative sums, per-group ranking metrics from one stable
sort by (group, -score) plus segment sums (``bincount``), so tens of millions of
rows are fine. cupy is imported only when a GPU input is seen.

Conventions:

* Labels, scores and keys are numbers or booleans: text ("0"/"1" read from a CSV) is
  an error, as scikit-learn refuses text scores (and reads text labels as class names).
* Binary labels are 0/1 (bool or any numeric dtype; other values are an error);
  log loss, RCE, ECE, calibration curves and ``binary_report`` take probabilities
  (a score outside [0, 1] is an error), AP, AUC and the ranking metrics any scores.
  NaN or infinite labels or scores are an error naming the first row (they would
  otherwise be ranked or averaged into a plausible number). Such errors are
  :class:`RowError` (a ``ValueError``) and name the row of the caller's input, in
  grouped metrics too.
* Undefined values are ``nan``: AP without positives (sklearn returns 0.0), AUC /
  RCE with a single class in ``y`` (sklearn raises for AUC), Spearman of a
  constant input, a ranking mean with no group that has a positive.
* Ranking metrics (MAP@k, NDCG@k, MRR) are per group (e.g. per impression; a
  missing group id is an error), binary relevance ``y > 0``, tied scores ordered
  against the model (non-relevant rows first) or by ``ranking_report``'s
  ``tiebreak``, so the row order never matters, and averaged over the groups that
  have at least one positive (groups without positives are excluded from the mean); the within-group AUC
  (``group_auc``) over the groups with a positive and a non-relevant row, ties counted 1/2.
* Bins and groups are half-open ``[lo, hi)`` with the last one closed: ECE /
  calibration on equal-width bins of [0, 1], popularity groups on quantiles of
  the key; a grouped mean averages the groups whose value is defined.
* ``binary_report`` / ``ranking_report`` sort once and share the order.
"""

from __future__ import annotations

from .arrays import ArrayLike, Metric, RowError
from .binary import (ECE_BINS, average_precision, binary_report, calibration_curve, expected_calibration_error,
                     grouped_by_quantile, log_loss, pr_curve, rce, roc_auc)
from .ranking import group_auc, map_at_k, mrr, ndcg_at_k, ranking_at_every_k, ranking_report
from .regression import mae, mae_log1p, regression_report, rmse, rmse_log1p, spearman

__all__ = [
    "ArrayLike", "ECE_BINS", "Metric", "RowError", "average_precision", "binary_report", "calibration_curve",
    "expected_calibration_error", "group_auc", "grouped_by_quantile", "log_loss", "mae", "mae_log1p", "map_at_k", "mrr",
    "ndcg_at_k", "pr_curve", "ranking_at_every_k", "ranking_report", "rce", "regression_report", "rmse", "rmse_log1p",
    "roc_auc", "spearman",
]
