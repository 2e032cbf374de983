"""Review of the daily-run merges (out lock, footer span, --history events gap): defects found, each pinned."""
from types import SimpleNamespace

import pandas as pd
import pytest

from rapids_engage.predict import history_events_gap

END = 1_474_243_140  # 2016-09-18 23:59 UTC: the serving state's end


@pytest.mark.parametrize("times", [
    pd.Series(["2016-09-21", "2016-09-22"]),  # text: check_rows says 'must hold integer epoch seconds, got object'
    pd.Series(pd.to_datetime(["2016-09-21", "2016-09-22"])),
    pd.Series([None, None], dtype="Int64"),  # null times: check_rows' null-time error
    pd.Series([float("nan")] * 2),
], ids=["text", "datetime", "all-null-Int64", "nan-float"])
def test_history_events_gap_leaves_bad_times_to_the_events_checks(times):
    """history_events_gap ran before extend_history's checks and took int() of the times' minimum: --history events
    with a text, datetime or all-null time column ended predict in 'invalid literal for int()' or a TypeError
    traceback instead of the checks' message naming the column."""
    builder = SimpleNamespace(history_end=lambda: END, layout=SimpleNamespace(time="created_at"), history_encoders=[])
    assert history_events_gap(builder, pd.DataFrame({"created_at": times})) is None

