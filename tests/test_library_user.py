"""What a notebook user of the Python API runs into: one-line errors where a deep traceback was, found by
writing the scripts README's "Library API" section suggests."""

from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from rapids_engage import metrics


@pytest.mark.parametrize("metric", [metrics.rce, metrics.average_precision, metrics.roc_auc, metrics.log_loss])
def test_a_dask_column_given_to_a_metric_is_a_one_line_error(metric):
    """``metrics.rce(valid["like"], p)`` with ``valid = store.training_frame(split="valid")`` (a dask frame) failed
    inside dask ("Trying to convert <dask_expr.expr.Scalar ...> to a boolean value")."""
    y = dd.from_pandas(pd.Series([0, 1, 1, 0]), npartitions=2)
    with pytest.raises(TypeError, match=r"y is a dask Series: the metrics take in-memory arrays; pass y.compute\(\)"):
        metric(y, [0.2, 0.7, 0.6, 0.1])
    assert metric(y.compute(), [0.2, 0.7, 0.6, 0.1]) == metric([0, 1, 1, 0], [0.2, 0.7, 0.6, 0.1])


def test_a_dask_group_given_to_a_ranking_metric_is_a_one_line_error():
    group = dd.from_pandas(pd.Series([1, 1, 2, 2]), npartitions=2)
    with pytest.raises(TypeError, match="group is a dask Series"):
        metrics.map_at_k([0, 1, 1, 0], np.array([0.1, 0.9, 0.4, 0.3]), group, k=10)
