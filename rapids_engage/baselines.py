"""Baselines reported beside every model, on the same validation rows and with the same metrics.

* ``constant``: the training mean of the label for every row (binary: the
  positive rate, so RCE 0 up to the train/validation rate difference; count:
  the mean of log1p(count)).
* ``te_logreg`` (binary) / ``te_linreg`` (count): a linear model on the
  target's own out-of-fold target encodings, fitted on a sample of at most
  ``max_rows`` training rows (cuML on GPU, scikit-learn on CPU): logistic
  regression on their logits, or least squares on the encoded log1p means.
  What the encodings alone give.
* ``creator_mean`` (count targets, data with a creator/author): the author's
  mean log1p(count) over the training rows (the overall mean for new authors).

For a count target whose model fits the raw counts (``raw_counts``: ``count:poisson``, ``reg:tweedie``,
``reg:gamma``, which predict the mean count), ``constant`` and ``creator_mean`` predict the mean *count*
(log1p of it on the label's scale): the mean of log1p is the typical count, below the mean of a skewed
count, and its RMSE on counts is no baseline for a model of the mean.
* ``popularity`` (binary targets ranked within groups, data with an item): the
  item's positives in the training rows (0 for new items; ties ordered by the hash of the row key, as in every
  ranking metric: see :func:`~rapids_engage.evaluate.tiebreak`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from .backend import CPU, Backend, to_host
from .evaluate import score, tiebreak
from .features.frames import sample_rows
from .layout import Layout

EPS = 1e-6


def _logit(x: Any, xp: Any) -> Any:
    x = xp.clip(x, EPS, 1 - EPS)
    return xp.log(x / (1 - x))


def te_columns(features: list[str], target: str) -> list[str]:
    """The target-encoding features of ``target`` (``te_<key>_<target>``)."""
    return [f for f in features if f.startswith("te_") and f.endswith(f"_{target}")]


def _te_linear(backend: Backend, sample: Any, valid: Any, cols: list[str], target: str, regression: bool) -> np.ndarray:
    """Predictions of a linear model on the TE columns (see the module docstring)."""
    try:
        model = backend.linear_regression() if regression else backend.logistic_regression(max_iter=200)
        xp = backend.xp
    except (ImportError, OSError):  # a GPU run without a working cuML: the baseline is fitted on the host
        model = CPU.linear_regression() if regression else CPU.logistic_regression(max_iter=200)
        xp = np

    def array(data: Any, dtype: Any = None) -> Any:
        return xp.asarray((data if xp is not np else to_host(data)).values, dtype=dtype)

    def design(frame: Any) -> Any:
        x = array(frame[cols], xp.float64)
        return x if regression else _logit(x, xp)

    # a few columns: a host fit's many small matrix-vector products are slower in several BLAS threads (their
    # hand-offs), and far slower when the cores are busy (20 ms a product instead of 1 on 2 shared cores)
    with threadpool_limits(1, user_api="blas"):
        if regression:
            model.fit(design(sample), array(sample[target], xp.float64))
            return np.asarray(to_host(model.predict(design(valid))), dtype=np.float64)
        model.fit(design(sample), array(sample[target]))
        return np.asarray(to_host(model.predict_proba(design(valid))[:, 1]), dtype=np.float64)


def _key_statistic(train: Any, valid: Any, key: str, target: str, how: str, default: float) -> np.ndarray:
    """Per validation row: ``how`` (mean / sum) of ``target`` over the training rows with its ``key`` value."""
    import pandas as pd

    table = to_host(train[[key, target]].groupby(key)[target].agg(how).compute())
    keys = pd.Series(np.asarray(to_host(valid[key])))
    return keys.map(table).fillna(default).to_numpy(dtype=np.float64)


def _as_counts(train: Any, targets: list[str]) -> Any:
    """``train`` with the log1p labels of ``targets`` turned back into counts."""
    return train.assign(**{t: np.expm1(train[t]) for t in targets})


@dataclass(frozen=True)
class Scores:
    """A baseline's predictions for the validation rows (host float64): probabilities, or scores that only rank."""

    values: np.ndarray
    probabilities: bool = True


def baseline_scores(
    backend: Backend, train: Any, valid: Any, targets: list[str], features: list[str], layout: Layout,
    max_rows: int = 100_000, seed: int = 0, raw_counts: frozenset[str] = frozenset(),
) -> dict[str, dict[str, Scores]]:
    """target -> baseline name -> its :class:`Scores` of the validation rows ``valid`` (gathered); ``train`` is the
    dask training frame; ``raw_counts``: count targets whose models predict the mean count (their ``constant`` and
    ``creator_mean`` do too)."""
    import dask

    raw = [t for t in targets if t in raw_counts]
    counts = _as_counts(train, raw) if raw else train
    te_all = sorted({c for t in targets for c in te_columns(features, t)})
    # per column, as split's label checks (a frame's reduction of int8 columns fails on dask-cudf's empty meta)
    sample, *per_target = dask.compute(sample_rows(train, [*te_all, *targets], max_rows, seed), *(counts[t].mean() for t in targets))
    means = dict(zip(targets, per_target))
    out: dict[str, dict[str, Scores]] = {}
    for t in targets:
        regression = layout.target(t).is_regression
        mean = float(means[t])
        on_scale = np.log1p if t in raw else (lambda x: x)  # a mean count, back on the label's log1p scale
        result = {"constant": Scores(np.full(len(valid), on_scale(mean)))}
        cols = te_columns(features, t)
        if cols and (regression or float(to_host(sample[t]).sum()) > 0):
            result["te_linreg" if regression else "te_logreg"] = Scores(_te_linear(backend, sample, valid, cols, t, regression))
        if regression and layout.creator:
            per_creator = _key_statistic(counts, valid, layout.creator, t, "mean", mean)
            result["creator_mean"] = Scores(on_scale(per_creator))
        if not regression and layout.group and layout.item:
            clicks = _key_statistic(train, valid, layout.item, t, "sum", 0.0)
            result["popularity"] = Scores(clicks, probabilities=False)  # a count: rank metrics only
        out[t] = result
    return out


def scored(valid: Any, layout: Layout, scores: Mapping[str, Mapping[str, Scores]]) -> dict[str, dict[str, dict[str, Any]]]:
    """target -> baseline name -> the metrics (:func:`~rapids_engage.evaluate.score`) of ``scores`` on ``valid``."""
    ties = tiebreak(valid, layout)
    return {t: {name: score(valid, layout, t, s.values, probabilities=s.probabilities, ties=ties) for name, s in by_name.items()}
            for t, by_name in scores.items()}


def baselines(
    backend: Backend, train: Any, valid: Any, targets: list[str], features: list[str], layout: Layout,
    max_rows: int = 100_000, seed: int = 0, raw_counts: frozenset[str] = frozenset(),
) -> dict[str, dict[str, dict[str, Any]]]:
    """target -> baseline name -> metrics (as :func:`~rapids_engage.evaluate.score`) of :func:`baseline_scores`."""
    return scored(valid, layout, baseline_scores(backend, train, valid, targets, features, layout, max_rows, seed, raw_counts))
