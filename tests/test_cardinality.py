"""Distinct-count sketches that size key tables before they are reduced."""

from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd
from hypothesis import given, settings, strategies as st

from rapids_engage.features.cardinality import distinct_counts, estimate, merge, sketch


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 300), min_size=1, max_size=400), st.integers(1, 6))
def test_exact_below_the_sketch_size_for_any_partitioning(values, npartitions):
    frame = pd.DataFrame({"a": values, "b": [v % 7 for v in values]})
    got = distinct_counts(dd.from_pandas(frame, npartitions=npartitions, sort=False), [["a"], ["b"], ["a", "b"]])
    assert got == [frame["a"].nunique(), frame["b"].nunique(), len(frame.drop_duplicates())]


def test_estimate_within_a_few_percent_above_the_sketch_size():
    rng = np.random.default_rng(1)
    n = 400_000
    frame = pd.DataFrame({"u": rng.integers(0, 60_000, n), "c": rng.zipf(1.5, n) % 50_000,
                          "s": rng.choice(np.array(["en", "ja", None], dtype=object), n)})
    groups = [["u"], ["u", "c"], ["c", "s"]]
    got = distinct_counts(dd.from_pandas(frame, npartitions=9), groups)
    for cols, est in zip(groups, got):
        exact = len(frame[cols].drop_duplicates())
        assert abs(est / exact - 1) < 0.08, (cols, est, exact)


def test_nulls_and_strings_are_values():
    frame = pd.DataFrame({"s": ["a", None, "b", None, "a"], "x": [1.0, np.nan, np.nan, 2.0, 1.0]})
    assert distinct_counts(dd.from_pandas(frame, npartitions=2), [["s"], ["x"], ["s", "x"]]) == [3, 3, 4]


def test_merge_keeps_the_smallest_hashes():
    part = pd.DataFrame({"a": np.arange(100)})
    a, b = sketch(part.iloc[:60], [["a"]], k=16), sketch(part.iloc[40:], [["a"]], k=16)
    (merged,) = merge([a, b], k=16)
    (whole,) = sketch(part, [["a"]], k=16)
    np.testing.assert_array_equal(merged, whole)
    assert len(merged) == 16 and 50 < estimate(merged, k=16) < 200


def test_split_outs_boundaries_of_the_broadcast_limit():
    """FeatureBuilder._split_outs: a frame of exactly broadcast_limit rows broadcasts every table
    without estimating; above it, a table estimated at exactly limit / 1.1 rows is broadcast and
    one more distinct key keeps it partitioned (the estimate is exact below the sketch size)."""
    from rapids_engage.config import load_config
    from rapids_engage.features import FeatureBuilder

    cfg = load_config().features
    frame = pd.DataFrame({"a": np.arange(40), "b": np.arange(40) % 30, "c": np.arange(40) % 31})
    parts = dd.from_pandas(frame, npartitions=4, sort=False)
    builder = FeatureBuilder(cfg, ["like"])
    cfg.broadcast_limit = 40  # the frame is no longer than the limit: broadcast (a's 40 keys * 1.1 would not be)
    assert builder._split_outs(parts, [["a"], None]) == [1, 1]
    cfg.broadcast_limit = 33  # 30 keys * 1.1 == 33: broadcast; 31 keys: partitioned
    assert 30 * 1.1 == 33
    assert builder._split_outs(parts, [["b"], ["c"], None, ["a"]]) == [1, 4, 1, 4]
