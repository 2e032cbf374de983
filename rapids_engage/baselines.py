"""Baselines reported beside every model, on the same validation rows.

* ``constant``: the training positive rate for every row (RCE 0 up to the
  train/validation rate difference; AP = the positive rate).
* ``te_logreg``: logistic regression on the logits of the target's own
  out-of-fold target encodings (cuML on GPU, scikit-learn on CPU), fitted on a
  sample of at most ``max_rows`` training rows: what the encodings alone give.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import metrics
from .backend import Backend, to_host

EPS = 1e-6


def _logit(x: Any, xp: Any) -> Any:
    x = xp.clip(x, EPS, 1 - EPS)
    return xp.log(x / (1 - x))


def _scores(y: Any, p: Any) -> dict[str, float]:
    return {"ap": metrics.average_precision(y, p), "rce": metrics.rce(y, p), "auc": metrics.roc_auc(y, p)}


def te_columns(features: list[str], target: str) -> list[str]:
    """The target-encoding features of ``target`` (``te_<key>_<target>``)."""
    return [f for f in features if f.startswith("te_") and f.endswith(f"_{target}")]


def baselines(
    backend: Backend, train: Any, valid: Any, targets: list[str], features: list[str], max_rows: int = 100_000, seed: int = 0
) -> dict[str, dict[str, dict[str, float]]]:
    """target -> baseline name -> {ap, rce, auc}; ``train`` is the dask training frame, ``valid`` gathered rows."""
    import dask

    n_train = int(train.map_partitions(len).sum().compute())
    frac = min(1.0, max_rows / max(n_train, 1))
    te_all = sorted({c for t in targets for c in te_columns(features, t)})
    sample = train[[*te_all, *targets]]
    sample = sample.sample(frac=frac, random_state=seed) if frac < 1.0 else sample
    sample, rates = dask.compute(sample, train[targets].mean())
    xp = backend.xp
    out: dict[str, dict[str, dict[str, float]]] = {}
    for t in targets:
        y_valid = np.asarray(to_host(valid[t]), dtype=np.float64)
        rate = float(to_host(rates)[t])
        result = {"constant": _scores(y_valid, np.full(len(y_valid), rate))}
        cols = te_columns(features, t)
        if cols and float(to_host(sample[t]).sum()) > 0:
            model = backend.logistic_regression(max_iter=200)
            model.fit(_logit(xp.asarray(sample[cols].values, dtype=xp.float64), xp), xp.asarray(sample[t].values))
            p = to_host(model.predict_proba(_logit(xp.asarray(valid[cols].values, dtype=xp.float64), xp))[:, 1])
            result["te_logreg"] = _scores(y_valid, np.asarray(p, dtype=np.float64))
        out[t] = result
    return out
