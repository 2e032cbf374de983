"""Learning to rank through xgboost.dask: the rows reach XGBoost sorted by group and row key,
whatever the partitioning, so XGBoost does not re-sort a worker's data and the model does not
depend on how the frame was split."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest


def _impressions(n_groups: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    size = rng.integers(3, 12, n_groups)
    group = np.repeat(rng.integers(-(2**62), 2**62, n_groups), size)  # hashed keys, as in the store
    n = len(group)
    x = rng.normal(size=(n, 3))
    click = (rng.random(n) < 1 / (1 + np.exp(-(2 * x[:, 0] - 2)))).astype("int8")
    return pd.DataFrame({"row_id": rng.permutation(n).astype("int64"), "page": group,
                         "a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "click": click})


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as c:
        yield c


def _train(client, train: pd.DataFrame, valid: pd.DataFrame, parts: int):
    import dask.dataframe as dd

    from rapids_engage.backend import CPU
    from rapids_engage.config import TrainConfig
    from rapids_engage.train_shared_matrix import train_targets

    cfg = TrainConfig(targets=["click"], max_depth=3, num_boost_round=20, early_stopping_rounds=5, subsample=1.0,
                      colsample_bytree=1.0, per_target={"click": {"objective": "rank:ndcg"}})
    frames = [dd.from_pandas(f, npartitions=parts, sort=False) for f in (train, valid)]
    model = train_targets(client, CPU, cfg, {"click": "binary"}, *frames, ["a", "b", "c"], group="page", row_key=("row_id",))["click"]
    assert model.ranks
    return model


def test_rank_model_is_the_same_for_any_partitioning_and_xgboost_sorts_nothing(client, capfd):
    import xgboost as xgb

    train, valid = _impressions(seed=0), _impressions(seed=1)
    one = _train(client, train, valid, parts=1)
    shuffled = train.sample(frac=1.0, random_state=3)  # another row order, split four ways
    four = _train(client, shuffled, valid.sample(frac=1.0, random_state=4), parts=4)
    time.sleep(0.2)
    assert "Sorting data" not in "".join(capfd.readouterr())  # XGBoost's warning when it re-sorts a worker's parts
    x = xgb.DMatrix(valid[["a", "b", "c"]])
    np.testing.assert_array_equal(one.booster.predict(x), four.booster.predict(x))
    assert one.best_iteration == four.best_iteration
