"""The features of a row do not depend on the partitioning or on the number of workers."""

from __future__ import annotations

import dask.dataframe as dd
import pandas as pd
import pytest
from distributed import Client, LocalCluster

from rapids_engage.config import load_config
from rapids_engage.data import read_events
from rapids_engage.features import FeatureBuilder, add_labels
from rapids_engage.schema import ROW_KEY
from rapids_engage.split import time_split
from rapids_engage.synthetic import SyntheticSpec, generate

TARGETS = ["like", "retweet", "reply", "quote"]


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    root = tmp_path_factory.mktemp("inv")
    generate(root, SyntheticSpec(rows=20_000, days=5, seed=7))
    frame = add_labels(read_events(root / "data"), list(TARGETS)).compute()
    return frame.reset_index(drop=True)


def _features(events: pd.DataFrame, npartitions: int, n_workers: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    cfg = load_config().features
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, Client(cluster):
        frame = dd.from_pandas(events, npartitions=npartitions, sort=False)
        train, valid, _ = time_split(frame, 24)
        builder = FeatureBuilder(cfg, TARGETS)
        names = builder.feature_names()
        tr = builder.fit_transform(train)[[*ROW_KEY, *names]].compute()
        va = builder.transform(valid)[[*ROW_KEY, *names]].compute()
    key = list(ROW_KEY)
    return tr.sort_values(key).reset_index(drop=True), va.sort_values(key).reset_index(drop=True)


@pytest.mark.slow
def test_features_identical_for_any_partitioning_and_worker_count(events):
    base_train, base_valid = _features(events, npartitions=1, n_workers=1)
    for npart, workers in [(7, 2)]:
        train, valid = _features(events, npartitions=npart, n_workers=workers)
        pd.testing.assert_frame_equal(train, base_train, check_exact=False, rtol=0, atol=1e-12)
        pd.testing.assert_frame_equal(valid, base_valid, check_exact=False, rtol=0, atol=1e-12)
