"""Evaluation metrics on numpy (CPU) or cupy (GPU) arrays — RecSys Challenge 2021 and more.

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

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from .backend import argsort_stable, bincount, float_values, to_host

ArrayLike = Any  # numpy / cupy array, pandas / cudf Series, or a sequence
Metric = Callable[[ArrayLike, ArrayLike], float]


# --------------------------------------------------------------------------- arrays


def _on_gpu(a: Any) -> bool:
    return type(a).__module__.split(".")[0] in ("cupy", "cudf")


def _xp(*arrays: Any) -> ModuleType:
    """numpy, or cupy when any of ``arrays`` lives on the GPU (cupy imported lazily)."""
    if any(_on_gpu(a) for a in arrays):
        import cupy

        return cupy
    return np


def _raw(a: Any) -> Any:
    """The array behind a Series (cudf -> cupy, pandas -> numpy); arrays pass through."""
    if type(a).__module__.split(".")[0] == "cudf":
        return a.values
    if hasattr(a, "to_numpy"):
        return a.to_numpy()
    return a


def _one_column(a: Any, name: str) -> None:
    """``a`` must hold one value a row (1-d, or a single row or column): the two columns of ``predict_proba``
    made twice the rows, and a (n, 2) ``y`` and ``p`` were pooled into one 2n-row metric."""
    shape = tuple(getattr(a, "shape", ()))
    if sum(d > 1 for d in shape) > 1:
        raise ValueError(f"{name} has shape {shape}: one value a row expected (a 1-d array, a column or a Series; "
                         "of predict_proba's (n, 2), the positive class is [:, 1])")


#: What pandas' ``infer_dtype`` says of an object column of numbers, booleans and missing values.
_NUMBER_OBJECTS = frozenset({"integer", "floating", "mixed-integer-float", "boolean", "decimal", "empty"})


def _text_row(a: Any) -> int | None:
    """The first row of ``a`` (an array or Series) that holds text (str / bytes), None when none does."""
    dtype = a.dtype
    dtype = getattr(getattr(dtype, "categories", None), "dtype", dtype)  # a categorical: its categories'
    if dtype.kind not in "OUS":
        return None
    if dtype.kind == "O" and not _on_gpu(a):  # (a cudf object column is text)
        import pandas as pd

        if pd.api.types.infer_dtype(a, skipna=True) in _NUMBER_OBJECTS:
            return None
    cells = np.asarray(to_host(a), dtype=object).ravel()
    return next((i for i, v in enumerate(cells) if isinstance(v, (str, bytes))), None)


def _f64(a: Any, xp: ModuleType, name: str) -> Any:
    """``a`` as a 1-d float64 array of module ``xp`` (nulls as NaN); text is an error (:func:`_text_row`):
    scikit-learn refuses text scores and reads text labels as class names ("10" < "9"), and float("1.0")
    would take " 1", "1.0" and "nan" as well."""
    if not hasattr(a, "dtype"):  # a list / tuple / scalar / DataFrame
        cells = np.asarray(a)
        a = cells if cells.dtype.kind not in "US" else np.asarray(a, dtype=object)  # numpy makes [0, "1"] all text
    _one_column(a, name)
    row = _text_row(a)
    if row is not None:
        value = np.asarray(to_host(a), dtype=object).ravel()[row]
        raise RowError(f"{name} holds text ({value!r} at row {{row}}): labels, scores and keys must be numbers or booleans "
                       "(convert them first, e.g. with pandas.to_numeric)", row)
    if hasattr(a, "to_numpy"):  # a pandas / cudf Series (also pandas nullable dtypes)
        a = float_values(a)
    return xp.asarray(_raw(a), dtype=xp.float64).ravel()


def _arrays(*arrays: Any, others: tuple = (), names: tuple[str, ...] = ("y", "p", "key")) -> tuple[ModuleType, list[Any]]:
    """(module, float64 arrays of equal length); ``others`` only take part in picking the module."""
    xp = _xp(*arrays, *others)
    out = [_f64(a, xp, name) for a, name in zip(arrays, names)]
    if len({len(a) for a in out}) > 1:
        raise ValueError(f"arrays of different lengths: {[len(a) for a in out]}")
    return xp, out


class RowError(ValueError):
    """Bad input at one row: the message names ``row``; :meth:`at` names another (the caller's row of a
    group's row, when a metric runs on a subset such as :func:`grouped_by_quantile`'s groups)."""

    def __init__(self, template: str, row: int) -> None:
        self.template, self.row = template, row
        super().__init__(template.format(row=row))

    def at(self, row: int, context: str = "") -> RowError:
        """The same error at the caller's ``row``, ``context`` appended to the message."""
        return RowError(self.template + context.replace("{", "{{").replace("}", "}}"), row)


def _checked(y: ArrayLike, p: ArrayLike, binary: bool, others: tuple = (), probabilities: bool = False) -> tuple[ModuleType, Any, Any]:
    """(module, y, p) as :func:`_arrays`, refusing NaN or infinite values (they would be ranked or
    averaged into a plausible number), when ``binary`` labels other than 0/1 and, when ``probabilities``,
    scores outside [0, 1] (a model's margins: log loss clipped them into a number that looked like one)."""
    xp, (y, p) = _arrays(y, p, others=others)
    for name, a in (("y", y), ("p", p)):
        bad = ~xp.isfinite(a)
        if bool(bad.any()):
            raise RowError(f"{name} has {int(bad.sum())} NaN or infinite value(s), the first at row {{row}}", int(xp.argmax(bad)))
    if probabilities:
        bad = (p < 0) | (p > 1)
        if bool(bad.any()):
            row = int(xp.argmax(bad))
            raise RowError(f"p must hold probabilities in [0, 1]; row {{row}} holds {float(p[row]):g} (scores of another "
                           "scale: average_precision, roc_auc and the ranking metrics take them)", row)
    if binary:
        bad = (y != 0) & (y != 1)
        if bool(bad.any()):
            row = int(xp.argmax(bad))
            raise RowError(f"y must hold 0/1 labels; row {{row}} holds {float(y[row]):g}", row)
    return xp, y, p


def _concat0(a: Any, xp: ModuleType) -> Any:
    """``a`` with a leading 0."""
    return xp.concatenate([xp.zeros(1, dtype=a.dtype), a])


def _block_starts(sorted_values: Any, xp: ModuleType) -> Any:
    """True where a run of equal values starts in a sorted array."""
    new = xp.ones(len(sorted_values), dtype=bool)
    new[1:] = sorted_values[1:] != sorted_values[:-1]
    return new


def _mean(a: Any) -> float:
    """Mean as a Python float; nan for no rows."""
    return float(a.mean()) if len(a) else float("nan")


def _mean_defined(values: list[float]) -> float:
    """Mean of the non-nan values (nan when there are none)."""
    v = np.asarray(values, dtype=np.float64)
    return _mean(v[~np.isnan(v)])


# ----------------------------------------------------------------- probabilistic


def _row_entropy(y: Any, p: Any, xp: ModuleType, eps: float = 1e-15) -> Any:
    """Per-row binary cross-entropy, ``p`` clipped to [eps, 1 - eps]."""
    p = xp.clip(p, eps, 1.0 - eps)
    return -(y * xp.log(p) + (1.0 - y) * xp.log(1.0 - p))


def log_loss(y: ArrayLike, p: ArrayLike, eps: float = 1e-15) -> float:
    """Mean binary cross-entropy, ``p`` clipped to [eps, 1 - eps]."""
    xp, y, p = _checked(y, p, binary=True, probabilities=True)
    return _mean(_row_entropy(y, p, xp, eps))


def _rce(cross_entropy: float, ctr: float, eps: float = 1e-15) -> float:
    """RCE from the model's cross-entropy and the positive rate of the labels."""
    if not 0.0 < ctr < 1.0:
        return float("nan")
    c = min(max(ctr, eps), 1.0 - eps)
    strawman = -(ctr * np.log(c) + (1.0 - ctr) * np.log(1.0 - c))  # CE of the constant `ctr`
    return float((1.0 - cross_entropy / strawman) * 100.0)


def _rce_chance(p: Any, ctr: float, xp: ModuleType, eps: float = 1e-15) -> tuple[float, float]:
    """(mean, standard error) of RCE over the permutations of the labels among the rows: these predictions without
    skill, the same positives. The cross-entropy is mean(-log(1 - p)) minus the mean of ``y * logit(p)``, whose sum
    over P of N rows drawn without replacement has mean P * mean(logit) and variance P (N - P) / (N - 1) times the
    logits' variance. The mean is at most 0 (each row's cross-entropy against the positive rate is at least the
    constant's). (nan, nan) with a single class."""
    n = len(p)
    if not 0.0 < ctr < 1.0 or n < 2:
        return float("nan"), float("nan")
    q = xp.clip(p, eps, 1.0 - eps)
    logits = xp.log(q) - xp.log(1.0 - q)
    positives = ctr * n
    mean_ce = float((-xp.log(1.0 - q)).mean()) - ctr * float(logits.mean())
    sd_ce = float(np.sqrt(positives * (n - positives) / (n - 1) * float(logits.var()))) / n
    c = min(max(ctr, eps), 1.0 - eps)
    strawman = -(ctr * np.log(c) + (1.0 - ctr) * np.log(1.0 - c))
    return float((1.0 - mean_ce / strawman) * 100.0), float(100.0 * sd_ce / strawman)


def rce(y: ArrayLike, p: ArrayLike) -> float:
    """RecSys 2021 relative cross entropy: ``(1 - CE(p) / CE(positive rate)) * 100``.

    nan when ``y`` has a single class.
    """
    xp, y, p = _checked(y, p, binary=True, probabilities=True)
    return _rce(_mean(_row_entropy(y, p, xp)), _mean(y))


# -------------------------------------------------------------------- curves


def _order_desc(p: Any, xp: ModuleType) -> Any:
    """Row order by descending score, ties in row order."""
    return argsort_stable(-p)


def _sorted_curve(ys: Any, ps: Any, xp: ModuleType) -> tuple[Any, Any]:
    """(true positives, false positives) at each distinct threshold, for rows already
    sorted by descending score ``ps``."""
    if len(ps) == 0:
        return xp.zeros(1), xp.zeros(1)  # no rows: every metric of the curve is nan
    tps = xp.cumsum(ys)
    last = xp.nonzero(ps[1:] != ps[:-1])[0]  # last row of each tie block but the final one
    idx = xp.concatenate([last, xp.asarray([len(ps) - 1], dtype=last.dtype)])
    tps = tps[idx]
    return tps, (idx + 1) - tps


def _binary_curve(y: Any, p: Any, xp: ModuleType) -> tuple[Any, Any]:
    """(true positives, false positives) at each distinct threshold, scores descending."""
    order = _order_desc(p, xp)
    return _sorted_curve(y[order], p[order], xp)


def _ap(tps: Any, fps: Any, xp: ModuleType) -> float:
    """Step-wise average precision (sklearn): sum of (R_i - R_{i-1}) * P_i."""
    n_pos = float(tps[-1])
    if n_pos == 0:
        return float("nan")
    precision = tps / (tps + fps)
    return float((xp.diff(_concat0(tps, xp)) * precision).sum() / n_pos)


def _auc(tps: Any, fps: Any, xp: ModuleType) -> float:
    """Trapezoidal ROC AUC over distinct thresholds (= Mann-Whitney with midranks)."""
    n_pos, n_neg = float(tps[-1]), float(fps[-1])
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    t0 = _concat0(tps, xp)
    area2 = (xp.diff(_concat0(fps, xp)) * (t0[1:] + t0[:-1])).sum()
    return float(area2 / (2.0 * n_pos * n_neg))


def average_precision(y: ArrayLike, p: ArrayLike) -> float:
    """Average precision as sklearn's ``average_precision_score`` (nan without positives)."""
    xp, y, p = _checked(y, p, binary=True)
    return _ap(*_binary_curve(y, p, xp), xp)


def roc_auc(y: ArrayLike, p: ArrayLike) -> float:
    """ROC AUC as sklearn's ``roc_auc_score`` (ties averaged); nan with one class."""
    xp, y, p = _checked(y, p, binary=True)
    return _auc(*_binary_curve(y, p, xp), xp)


def _downsample(n: int, max_points: int, xp: ModuleType) -> Any:
    """At most ``max_points`` evenly spaced indices into ``range(n)``, ends included."""
    if n <= max_points:
        return xp.arange(n)
    return xp.unique(xp.rint(xp.linspace(0, n - 1, max(max_points, 2))).astype(xp.int64))


def pr_curve(y: ArrayLike, p: ArrayLike, max_points: int = 200) -> dict[str, list[float]]:
    """Precision / recall by increasing recall, from (recall 0, precision 1), downsampled for
    plotting; empty lists when ``y`` has no positive."""
    xp, y, p = _checked(y, p, binary=True)
    n_pos = float(y.sum()) if len(y) else 0.0
    if n_pos == 0:
        return {"precision": [], "recall": []}
    tps, fps = _binary_curve(y, p, xp)
    recall = _concat0(tps / n_pos, xp)
    precision = xp.concatenate([xp.ones(1), tps / (tps + fps)])
    keep = _downsample(len(recall), max_points, xp)
    return {"precision": precision[keep].tolist(), "recall": recall[keep].tolist()}


# --------------------------------------------------------------- calibration


def _calibration_bins(y: Any, p: Any, xp: ModuleType, n_bins: int) -> tuple[Any, Any, Any]:
    """(count, sum of p, sum of y) per equal-width bin [e_i, e_{i+1}) on [0, 1], last bin closed."""
    edges = xp.linspace(0.0, 1.0, n_bins + 1)
    bins = xp.clip(xp.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)

    def per_bin(w: Any) -> Any:
        return bincount(bins, weights=w, minlength=n_bins)

    return per_bin(None), per_bin(p), per_bin(y)


#: Equal-width probability bins of the ECE in report.json (and the calibration plots' legends).
ECE_BINS = 10


def expected_calibration_error(y: ArrayLike, p: ArrayLike, n_bins: int = ECE_BINS) -> float:
    """ECE: count-weighted mean of |mean(p) - mean(y)| over equal-width bins on [0, 1]."""
    _check_whole("n_bins", n_bins)
    xp, y, p = _checked(y, p, binary=True, probabilities=True)
    return _ece(y, p, xp, n_bins)


def _ece(y: Any, p: Any, xp: ModuleType, n_bins: int) -> float:
    """ECE of checked arrays."""
    if len(y) == 0:
        return float("nan")
    _, sum_p, sum_y = _calibration_bins(y, p, xp, n_bins)
    return float(xp.abs(sum_p - sum_y).sum() / len(y))


def calibration_curve(y: ArrayLike, p: ArrayLike, n_bins: int = 10) -> dict[str, list]:
    """Reliability diagram: {"mean_pred", "frac_pos", "count"} for the non-empty bins (host lists)."""
    _check_whole("n_bins", n_bins)
    xp, y, p = _checked(y, p, binary=True, probabilities=True)
    count, sum_p, sum_y = _calibration_bins(y, p, xp, n_bins)
    nz = count > 0
    return {
        "mean_pred": (sum_p[nz] / count[nz]).tolist(),
        "frac_pos": (sum_y[nz] / count[nz]).tolist(),
        "count": [int(c) for c in count[nz].tolist()],
    }


# ------------------------------------------------------------------- grouped


def _quantile_groups(key: Any, xp: ModuleType, n_groups: int) -> tuple[list[float], Any]:
    """(edges, group of each row): groups [e_i, e_{i+1}) on quantiles of ``key``, the last
    closed; rows with a nan key get group -1. An infinite key is an error: its quantile edges were nan."""
    infinite = xp.isinf(key)
    if bool(infinite.any()):
        raise RowError(f"key has {int(infinite.sum())} infinite value(s), the first at row {{row}} (a NaN key leaves its row out)",
                       int(xp.argmax(infinite)))
    valid = ~xp.isnan(key)
    if not bool(valid.any()):
        return [], xp.full(len(key), -1)
    edges = xp.quantile(key if bool(valid.all()) else key[valid], xp.linspace(0.0, 1.0, n_groups + 1))
    groups = xp.clip(xp.searchsorted(edges, key, side="right") - 1, 0, n_groups - 1)
    return edges.tolist(), xp.where(valid, groups, -1)


def _per_group(
    fn: Callable[[Any], float], groups: Any, n_groups: int, xp: ModuleType
) -> tuple[list[float], list[int]]:
    """(``fn(groups == g)``, size) for each non-empty group g."""
    counts = bincount(groups + 1, minlength=n_groups + 1)[1:].tolist()
    values = [float(fn(groups == g)) for g, c in enumerate(counts) if c]
    return values, [int(c) for c in counts if c]


def grouped_by_quantile(
    metric: Metric, y: ArrayLike, p: ArrayLike, key: ArrayLike, n_groups: int = 5
) -> dict[str, Any]:
    """``metric`` per quantile group of ``key`` (RecSys 2021 popularity groups) and their mean.

    Returns {"mean", "groups", "edges", "counts"}: one value and row count per
    non-empty group (empty groups, from repeated edges, are skipped), the
    ``n_groups + 1`` edges; ``mean`` averages the groups whose value is not nan.
    Rows with a nan ``key`` are left out. An input error ``metric`` raises (:class:`RowError`: NaN, a label
    other than 0/1, ...) names the row of ``y`` / ``p``, not its place in the group.
    """
    _check_whole("n_groups", n_groups)
    xp, (y, p, key) = _arrays(y, p, key)
    edges, groups = _quantile_groups(key, xp, n_groups)

    def of_group(mask: Any) -> float:
        try:
            return metric(y[mask], p[mask])
        except RowError as error:
            g = int(groups[mask][0])
            close = "]" if g == n_groups - 1 else ")"
            where = f" (among the {int(mask.sum())} rows of key quantile group {g + 1} of {n_groups}: [{edges[g]:g}, {edges[g + 1]:g}{close})"
            raise error.at(int(xp.nonzero(mask)[0][error.row]), where) from None

    values, counts = _per_group(of_group, groups, n_groups, xp)
    return {"mean": _mean_defined(values), "groups": values, "edges": edges, "counts": counts}


# ------------------------------------------------------------------- ranking


@dataclass(frozen=True)
class _Ranked:
    """Rows sorted by (group, -score, label); per-row and per-group arrays."""

    xp: ModuleType
    seg: Any  # group index of each sorted row (0 .. n_groups - 1)
    rank: Any  # 0-based position inside its group
    rel: Any  # relevance (1.0 where y > 0)
    hits: Any  # relevant rows up to and including this one, inside its group
    n_pos: Any  # relevant rows per group
    order: Any = None  # the input row of each sorted row

    def per_group(self, weights: Any) -> Any:
        """Sum of ``weights`` (aligned with the sorted rows) per group."""
        return bincount(self.seg, weights=weights, minlength=len(self.n_pos))

    def mean(self, values: Any) -> float:
        """Mean over the groups with at least one positive (nan if none)."""
        has_pos = self.n_pos > 0
        return _mean(values[has_pos])


def _missing_ids(group: ArrayLike, xp: ModuleType) -> Any:
    """True where a group id is missing: None, NaN, NaT or a pandas / cudf null."""
    if hasattr(group, "isna"):  # a pandas / cudf Series
        return xp.asarray(_raw(group.isna())).ravel()
    if _on_gpu(group):  # a cupy array: only floats can be missing
        return xp.isnan(group).ravel() if group.dtype.kind == "f" else xp.zeros(group.size, dtype=bool)
    import pandas as pd

    return xp.asarray(pd.isna(np.asarray(group))).ravel()


def _ranking_inputs(y: ArrayLike, p: ArrayLike, group: ArrayLike) -> tuple[ModuleType, Any, Any, Any]:
    """(module, y, p, group ids) with the group ids kept in their own dtype. A missing id is an error: NaN ids
    each made a group of one (NaN != NaN), a perfectly ranked one when its row was relevant."""
    xp, y, p = _checked(y, p, binary=False, others=(group,))
    _one_column(group, "group")
    missing = _missing_ids(group, xp)
    if len(missing) != len(y):
        raise ValueError(f"group has {len(missing)} rows, y has {len(y)}")
    if bool(missing.any()):
        raise RowError(f"group has {int(missing.sum())} missing id(s) (None, NaN or null), the first at row {{row}}: "
                       "every row must belong to a group", int(xp.argmax(missing)))
    return xp, y, p, xp.asarray(_raw(group)).ravel()


def _segments(y: Any, g: Any, order_desc: Any, xp: ModuleType) -> _Ranked:
    """Rows by group then descending score (a stable re-sort of ``order_desc`` by group);
    per-group positions and hit counts via cumsum."""
    order = order_desc[argsort_stable(g[order_desc])]
    gs, rel = g[order], (y[order] > 0).astype(xp.float64)
    new = _block_starts(gs, xp)
    seg = xp.cumsum(new) - 1
    starts = xp.nonzero(new)[0]
    rank = xp.arange(len(rel)) - starts[seg]
    cum = xp.cumsum(rel)
    before = _concat0(cum, xp)[starts]  # relevant rows before each group
    hits = cum - before[seg]
    n_pos = xp.diff(xp.concatenate([before, cum[-1:]]))
    return _Ranked(xp, seg, rank, rel, hits, n_pos, order)


def _order_desc_tied(y: Any, p: Any, tiebreak: Any, xp: ModuleType) -> Any:
    """Row order by descending score; ties by ascending ``tiebreak`` (e.g. a hash of the row key: as
    good as random, yet independent of the input order) or, without one, against the model
    (non-relevant rows first). Either way the ranking metrics do not depend on the row order."""
    second = y if tiebreak is None else xp.asarray(_raw(tiebreak)).ravel()
    if len(second) != len(p):
        raise ValueError(f"tiebreak has {len(second)} rows, p has {len(p)}")
    first = argsort_stable(second)
    return first[argsort_stable(-p[first])]


def _ranked_segments(y: ArrayLike, p: ArrayLike, group: ArrayLike) -> _Ranked:
    """The shared sorted-segment view used by every ranking metric."""
    xp, y, p, g = _ranking_inputs(y, p, group)
    return _segments(y, g, _order_desc_tied(y, p, None, xp), xp)


def _check_whole(name: str, value: int) -> None:
    """``value`` (``k``, ``n_bins``) must be a whole number >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")


def _map_at_k(r: _Ranked, k: int) -> float:
    top = r.rank < k
    ap = r.per_group(r.rel * top * r.hits / (r.rank + 1)) / r.xp.minimum(r.n_pos, k).clip(1, None)
    return r.mean(ap)


def _tied_at_k(r: _Ranked, p: Any, k: int) -> float:
    """Share of the top-``k`` rows of the groups with a positive whose score another row of their
    group has too: the rows whose place the tie-break decides (nan if none)."""
    xp = r.xp
    ps, same_group = p[r.order], r.seg[1:] == r.seg[:-1]
    same = same_group & (ps[1:] == ps[:-1])  # rows sorted by score within a group: ties are neighbours
    tied = xp.zeros(len(ps), dtype=bool)
    tied[1:] |= same
    tied[:-1] |= same
    counted = (r.rank < k) & (r.n_pos[r.seg] > 0)
    return float(tied[counted].mean()) if bool(counted.any()) else float("nan")


def _ndcg_at_k(r: _Ranked, k: int) -> float:
    xp = r.xp
    dcg = r.per_group(r.rel * (r.rank < k) / xp.log2(r.rank + 2.0))
    top = min(k, int(r.n_pos.max()) if len(r.n_pos) else 0)  # not k: k=10**8 built 1.5 GB for 4 rows
    ideal = _concat0(xp.cumsum(1.0 / xp.log2(xp.arange(top) + 2.0)), xp)  # ideal[j]: j relevant on top
    idcg = ideal[xp.minimum(r.n_pos, top).astype(xp.int64)]
    return r.mean(dcg / xp.where(idcg > 0, idcg, 1.0))


def _mrr(r: _Ranked) -> float:
    first = r.rel * (r.hits == 1)  # the first relevant row of each group
    return r.mean(r.per_group(first / (r.rank + 1)))


def _group_auc(r: _Ranked, p: Any) -> float:
    """Mean over the groups with a relevant and a non-relevant row of their ROC AUC, ties 1/2. A tie block (one
    score in one group) is a run of the sorted rows: each relevant row in it beats the group's non-relevant rows
    below the block and half of those in it."""
    xp = r.xp
    ps, neg = p[r.order], 1.0 - r.rel
    new = _block_starts(ps, xp)
    new[1:] |= r.seg[1:] != r.seg[:-1]
    block = xp.cumsum(new) - 1
    starts = xp.nonzero(new)[0]
    pos_in, neg_in = bincount(block, weights=r.rel, minlength=len(starts)), bincount(block, weights=neg, minlength=len(starts))
    neg_above = (r.rank - (r.hits - r.rel))[starts]  # the group's non-relevant rows ranked above the block
    seg, n_neg = r.seg[starts], r.per_group(neg)
    wins = bincount(seg, weights=pos_in * (n_neg[seg] - neg_above - 0.5 * neg_in), minlength=len(r.n_pos))
    both = (r.n_pos > 0) & (n_neg > 0)
    return _mean(wins[both] / (r.n_pos[both] * n_neg[both]))


def _group_auc_null_se(r: _Ranked) -> float:
    """The standard error of :func:`_group_auc` for a scorer without skill (scores independent of the labels, no
    ties): a group of n1 relevant and n0 other rows has AUC variance (n0 + n1 + 1) / (12 n0 n1) (Mann-Whitney), and
    the mean over G groups sqrt(sum) / G; nan when no group holds both."""
    n_neg = r.per_group(1.0 - r.rel)
    both = (r.n_pos > 0) & (n_neg > 0)
    n1, n0 = r.n_pos[both], n_neg[both]
    return float(r.xp.sqrt(((n0 + n1 + 1) / (12 * n0 * n1)).sum())) / int(both.sum()) if bool(both.any()) else float("nan")


def map_at_k(y: ArrayLike, p: ArrayLike, group: ArrayLike, k: int = 10) -> float:
    """Mean over groups of AP@k = sum_{i<=k} precision@i * rel_i / min(k, positives in group)."""
    _check_whole("k", k)
    return _map_at_k(_ranked_segments(y, p, group), k)


def ndcg_at_k(y: ArrayLike, p: ArrayLike, group: ArrayLike, k: int = 10) -> float:
    """Mean over groups of NDCG@k: linear binary gains, log2(i + 1) discount, ideal DCG cut at k."""
    _check_whole("k", k)
    return _ndcg_at_k(_ranked_segments(y, p, group), k)


def mrr(y: ArrayLike, p: ArrayLike, group: ArrayLike) -> float:
    """Mean over groups of 1 / rank of the first positive."""
    return _mrr(_ranked_segments(y, p, group))


def group_auc(y: ArrayLike, p: ArrayLike, group: ArrayLike) -> float:
    """Within-group ROC AUC: the mean over the groups that hold a relevant (``y > 0``) and a non-relevant row of
    that group's AUC, ties counted 1/2 (a constant score gives 0.5, as does any scorer without skill in
    expectation); nan when no group holds both. Unlike the pooled AUC it compares rows of one group only,
    so a ranking model's scores, not comparable across groups, are read as they are meant."""
    xp, y, p, g = _ranking_inputs(y, p, group)
    return _group_auc(_segments(y, g, _order_desc_tied(y, p, None, xp), xp), p)


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


# ------------------------------------------------------------------- reports


def binary_report(y: ArrayLike, p: ArrayLike, key: ArrayLike | None = None) -> dict[str, Any]:
    """{"ap", "rce", "auc", "log_loss", "ece", "positive_rate", "n", "rce_chance", "rce_chance_se"}; with ``key``
    also "ap_grouped" / "rce_grouped", the means over 5 quantile groups of ``key``. ``rce_chance`` / ``rce_chance_se``:
    the mean and standard error of RCE for these predictions without skill (the labels permuted among the rows,
    :func:`_rce_chance`): what chance alone gives them."""
    xp, y, p = _checked(y, p, binary=True, others=(key,), probabilities=True)
    n = len(y)
    order = _order_desc(p, xp)  # the one sort, shared by AP, AUC and the grouped AP
    ys, ps = y[order], p[order]
    row_ce = _row_entropy(y, p, xp)
    positive_rate, ll = _mean(y), _mean(row_ce)
    tps, fps = _sorted_curve(ys, ps, xp)
    report: dict[str, Any] = {
        "ap": _ap(tps, fps, xp),
        "rce": _rce(ll, positive_rate),
        "auc": _auc(tps, fps, xp),
        "log_loss": ll,
        "ece": _ece(y, p, xp, ECE_BINS),
        "positive_rate": positive_rate,
        "n": int(n),
    }
    report["rce_chance"], report["rce_chance_se"] = _rce_chance(p, positive_rate, xp)
    if key is not None:  # same values as grouped_by_quantile(average_precision / rce, ...)
        key = _f64(key, xp, "key")
        if len(key) != n:
            raise ValueError(f"key has {len(key)} rows, y has {n}")
        _, groups = _quantile_groups(key, xp, 5)
        ap, _ = _per_group(lambda s: _ap(*_sorted_curve(ys[s], ps[s], xp), xp), groups[order], 5, xp)
        rce_, _ = _per_group(lambda s: _rce(_mean(row_ce[s]), _mean(y[s])), groups, 5, xp)
        report["ap_grouped"], report["rce_grouped"] = _mean_defined(ap), _mean_defined(rce_)
    return report


def ranking_report(y: ArrayLike, p: ArrayLike, group: ArrayLike, k: int = 10, tiebreak: ArrayLike | None = None) -> dict[str, Any]:
    """{"map@k", "ndcg@k", "mrr", "auc", "group_auc", "group_auc_se", "n_groups", "tied@k"}, all of the relevance
    ``y > 0`` (graded labels too); ``auc`` pools every row, ``group_auc`` is :func:`group_auc`, ``group_auc_se`` its
    standard error for a scorer without skill (what chance moves it by on these groups); ``n_groups`` counts the groups averaged
    (those with a positive). One sort is shared by the ranking metrics. Tied scores are
    ordered by ``tiebreak`` (e.g. hashed row keys), else against the model; ``tied@k`` is the
    share of the top-k rows of those groups that tie with another row of their group (how much
    of the ranking the tie-break decides: 1 for a constant score)."""
    _check_whole("k", k)
    xp, y, p, g = _ranking_inputs(y, p, group)
    order = _order_desc_tied(y, p, tiebreak, xp)  # shared by AUC (tie blocks: order-free) and the segments
    r = _segments(y, g, order, xp)
    return {
        f"map@{k}": _map_at_k(r, k),
        f"ndcg@{k}": _ndcg_at_k(r, k),
        "mrr": _mrr(r),
        "auc": _auc(*_sorted_curve((y[order] > 0).astype(xp.float64), p[order], xp), xp),  # of the relevance y > 0
        "group_auc": _group_auc(r, p),
        "group_auc_se": _group_auc_null_se(r),
        "n_groups": int((r.n_pos > 0).sum()),
        f"tied@{k}": _tied_at_k(r, p, k),
    }


def _every_k(r: _Ranked, k_max: int) -> dict[str, Any]:
    """MAP@k and NDCG@k of the groups with a positive for k = 1 .. ``k_max`` (as :func:`_map_at_k` /
    :func:`_ndcg_at_k` at each k): each group's top-``k_max`` terms go into a (groups x k_max) table by
    position, whose cumulative sums along the positions are every k's sums at once."""
    xp = r.xp
    has_pos = r.n_pos > 0
    n = int(has_pos.sum())
    if n == 0:
        return {"k": list(range(1, k_max + 1)), "map": [float("nan")] * k_max, "ndcg": [float("nan")] * k_max, "n_groups": 0}
    row = xp.cumsum(has_pos) - 1  # each averaged group's row of the table
    kept = (r.rank < k_max) & has_pos[r.seg]
    cell = (row[r.seg] * k_max + r.rank)[kept].astype(xp.int64)
    rel, rank = r.rel[kept], r.rank[kept]

    def table(weights: Any) -> Any:
        return xp.cumsum(bincount(cell, weights=weights, minlength=n * k_max).reshape(n, k_max), axis=1)

    ks = xp.arange(1, k_max + 1)
    n_pos = r.n_pos[has_pos][:, None]
    precision = table(rel * r.hits[kept] / (rank + 1))
    gain = table(rel / xp.log2(rank + 2.0))
    ideal = _concat0(xp.cumsum(1.0 / xp.log2(xp.arange(k_max) + 2.0)), xp)  # ideal[j]: j relevant on top
    at_k = xp.minimum(n_pos, ks)
    return {"k": ks.tolist(), "map": (precision / at_k).mean(axis=0).tolist(),
            "ndcg": (gain / ideal[at_k.astype(xp.int64)]).mean(axis=0).tolist(), "n_groups": n}


def ranking_at_every_k(
    y: ArrayLike, p: ArrayLike, group: ArrayLike, k_max: int = 10, tiebreak: ArrayLike | None = None
) -> dict[str, Any]:
    """{"k", "map", "ndcg", "n_groups", "largest_group"}: MAP@k and NDCG@k (host lists) for every k = 1 .. ``k_max``
    from one sort, of the groups with a positive (``n_groups`` of them, the largest of ``largest_group`` rows);
    ties ordered as :func:`ranking_report` orders them, so the values at k equal its ``map@k`` / ``ndcg@k``."""
    _check_whole("k_max", k_max)
    xp, y, p, g = _ranking_inputs(y, p, group)
    r = _segments(y, g, _order_desc_tied(y, p, tiebreak, xp), xp)
    sizes = bincount(r.seg, minlength=len(r.n_pos))[r.n_pos > 0] if len(r.n_pos) else xp.zeros(0)
    return {**_every_k(r, k_max), "largest_group": int(sizes.max()) if len(sizes) else 0}


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
