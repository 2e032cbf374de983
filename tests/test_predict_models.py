"""predict's pieces that need no trained run: the models' store record, the rows' earliest time and
the early rows counted from the parquet footers, and the history gap."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rapids_engage.backend import CPU
from rapids_engage.predict import (HISTORY_GAP_S, ModelError, _rows_before, earliest_time, history_events, history_gap,
                                     load_models)


def _models(tmp_path, stores: dict[str, dict | None]):
    models = tmp_path / "models"
    models.mkdir(parents=True)
    for target, store in stores.items():
        (models / f"{target}.meta.json").write_text(json.dumps({"target": target, "features": ["f"], "store": store}))
        (models / f"{target}.json").write_text('{"learner":{}}')
    return tmp_path


def test_models_that_recorded_no_store_version_are_refused(tmp_path):
    """Without a store record there is no serving state to compute their features: said, not a KeyError later."""
    with pytest.raises(ModelError, match=r"different or unknown feature-store versions \(like: unknown; quote: unknown\)"):
        load_models(_models(tmp_path, {"like": None, "quote": None}))
    assert load_models(_models(tmp_path / "ok", {"like": {"path": "s", "version": "v"}}))[1] == {"path": "s", "version": "v"}


def test_the_earliest_time_skips_empty_row_groups(tmp_path):
    """A row group of no rows has no statistics: it holds no time, and the others' smallest is the rows' earliest."""
    empty = pa.table({"t": pa.array([], pa.int64())})
    with pq.ParquetWriter(tmp_path / "a.parquet", empty.schema) as writer:
        writer.write_table(empty)
        writer.write_table(pa.table({"t": pa.array([50, 60], pa.int64())}))
    pd.DataFrame({"t": [70, 55]}).to_parquet(tmp_path / "b.parquet")
    assert earliest_time([tmp_path / "a.parquet", tmp_path / "b.parquet"], "t") == 50
    assert _rows_before([tmp_path / "a.parquet", tmp_path / "b.parquet"], "t", 56) == (2, 4)


class _State:
    """What history_gap reads of a fitted builder: where its serving state ends."""

    def __init__(self, end: int | None) -> None:
        self.end = end

    def history_end(self) -> int | None:
        return self.end


def test_the_history_gap_is_said_beyond_a_day_only():
    end = 1_600_000_000
    assert history_gap(_State(end), end + HISTORY_GAP_S) is None
    assert history_gap(_State(end), end + 3_600) is None
    assert "1.0 days after the serving state ends" in history_gap(_State(end), end + HISTORY_GAP_S + 1)
    assert history_gap(_State(None), end + 10 * HISTORY_GAP_S) is None  # no history features
    assert history_gap(_State(end), (end + 10 * HISTORY_GAP_S) * 1000) is None  # milliseconds: refused when read


def test_history_validation_is_the_run_s_events_after_its_cutoff(tmp_path):
    """An event at the cut-off is a training event, already in the serving state: not folded in twice."""
    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame({"t": [90, 100, 101, 150], "like": [1, 0, 1, 0]}).to_parquet(data / "part.parquet")
    (tmp_path / "models").mkdir()
    (tmp_path / "report.json").write_text(json.dumps({"split": {"data_dir": str(data), "cutoff": 100}}))
    events = history_events("validation", tmp_path / "models", CPU, "t")
    assert events["t"].tolist() == [101, 150]


def test_the_history_gap_names_the_state_s_own_windows():
    """MIND (windows 1h, 6h, 24h and prev1d) scored a day after its state: the line said "their recent windows
    (24h, 168h, prev1d)", the demo's windows, which MIND's state does not have."""
    from types import SimpleNamespace

    end = 1_573_689_013
    mind = SimpleNamespace(history_end=lambda: end, history_encoders=[
        SimpleNamespace(windows=[3600, 21600, 86400], days=[1]), SimpleNamespace(windows=[3600, 21600, 86400], days=[1])])
    line = history_gap(mind, end + 2 * HISTORY_GAP_S)
    assert "their recent windows (1h, 6h, 24h, prev1d) read lower" in line and "168h" not in line
    assert "(rolling and previous-day spans)" in history_gap(_State(end), end + 2 * HISTORY_GAP_S)


def test_the_scorer_matrix_of_integer_and_bool_features_with_nulls():
    """Scorer's booster input: integer and bool feature columns with nulls (a numeric input column passed through) as
    float32 with NaN, in the names' order; cudf refused them when filled before the cast (gpu test beside)."""
    import numpy as np

    from rapids_engage.serve import _matrix

    features = pd.DataFrame({"n": pd.array([3, None, 2**40], dtype="Int64"), "flag": pd.array([True, None, False], dtype="boolean"),
                             "x": [0.5, float("nan"), 1.0], "carried": ["a", "b", "c"]})
    got = _matrix(features, ["x", "flag", "n"])
    assert got.dtype == np.float32 and got.shape == (3, 3)
    np.testing.assert_array_equal(got, np.array([[0.5, 1, 3], [np.nan] * 3, [1, 0, 2**40]], dtype=np.float32))
