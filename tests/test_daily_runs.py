"""Daily retraining and serving: what a scheduled user meets day after day."""
from types import SimpleNamespace

import pandas as pd

from rapids_engage.predict import history_events_gap

DAY = 86_400
END = 1_474_243_140  # 2016-09-18 23:59 UTC: the serving state's end


def _builder(end=END):
    return SimpleNamespace(history_end=lambda: end, layout=SimpleNamespace(time="created_at"), history_encoders=[])


def test_history_events_starting_days_after_the_state_end_are_said():
    """predict --history with yesterday's events only, on a model whose state ended days before: the days between were
    left out of the history without a word (the folded events move the state's end, so the rows' own gap check
    is silent too)."""
    events = pd.DataFrame({"created_at": [END + 2 * DAY + 60, END + 3 * DAY]})
    line = history_events_gap(_builder(), events)
    assert line is not None and "--history events start 2016-09-21 00:00 UTC, 2.0 days after the serving state ends" in line
    assert "2016-09-18 23:59 UTC" in line


def test_history_events_following_the_state_end_are_not_said():
    events = pd.DataFrame({"created_at": [END + 60, END + 3 * DAY]})
    assert history_events_gap(_builder(), events) is None
    assert history_events_gap(_builder(None), events) is None  # no history features
    assert history_events_gap(_builder(), events.iloc[:0]) is None
