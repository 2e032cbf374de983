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


def test_a_split_whose_span_the_footers_give_reads_the_data_once(tmp_path, monkeypatch):
    """A cache-hit re-run on 2,000 daily files spent 16.3 s in the split, two passes over every file (the first for
    the span, which the input footers' statistics already hold): now one pass, 8.6 s, the same split."""
    import dask
    import dask.dataframe as dd

    from rapids_engage.footers import null_free_int_range, read_footer
    from rapids_engage.split import time_split

    days = [pd.DataFrame({"t": [END + d * DAY + h * 3_600 for h in range(0, 24, 6)], "y": [0, 1, 0, d % 2]}) for d in range(6)]
    for d, day in enumerate(days):
        day.to_parquet(tmp_path / f"day{d}.parquet", index=False)
    footers = [read_footer(tmp_path / f"day{d}.parquet") for d in range(6)]
    span = null_free_int_range(footers, "t")
    rows = pd.concat(days, ignore_index=True)
    assert span == (int(rows.t.min()), int(rows.t.max()))
    frame = dd.from_pandas(rows, npartitions=3)
    computes = []
    real = dask.compute
    monkeypatch.setattr(dask, "compute", lambda *a, **k: computes.append(1) or real(*a, **k))
    *_, with_span = time_split(frame, 30, "t", ["y"], span=span)
    assert len(computes) == 1
    *_, without = time_split(frame, 30, "t", ["y"])
    assert with_span == without and len(computes) == 3


def test_footers_that_cannot_rule_out_a_null_time_give_no_span(tmp_path):
    """A null time must still be refused by the split's pass over the data, so such footers give no span."""
    from rapids_engage.footers import null_free_int_range, read_footer

    pd.DataFrame({"t": [END, None, END + DAY]}, dtype="Int64").to_parquet(tmp_path / "a.parquet", index=False)
    pd.DataFrame({"u": [END]}).to_parquet(tmp_path / "b.parquet", index=False)
    assert null_free_int_range([read_footer(tmp_path / "a.parquet")], "t") is None
    assert null_free_int_range([read_footer(tmp_path / "b.parquet")], "t") is None


def test_a_second_run_into_the_same_out_is_refused_naming_the_first(tmp_path):
    """Today's run started while yesterday's still ran in one --out: both published there, the later to end over
    the other's models and report (yesterday's models could win). Now the second is refused at its start."""
    import multiprocessing
    import os

    import pytest

    from rapids_engage.config import Config
    from rapids_engage.pipeline import run
    from rapids_engage.run_lock import OutInUse, out_lock

    cfg = Config()
    cfg.out = str(tmp_path / "run")
    cfg.data.source, cfg.data.path, cfg.data.cache_dir = "parquet", str(tmp_path / "no-data"), str(tmp_path / "cache")
    ctx = multiprocessing.get_context("spawn")
    held, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_out_lock, args=(cfg.out, held, release))
    holder.start()
    try:
        assert held.wait(60)
        with pytest.raises(OutInUse, match=rf"run: another run is writing there \(run, process {holder.pid} on .*wait for it"):
            run(cfg, quiet=True)
        assert not (tmp_path / "run" / "models").exists()
    finally:
        release.set()
        holder.join(60)
    with out_lock(tmp_path / "run"):  # released when its holder ended
        assert os.path.exists(tmp_path / "run" / ".run.lock")


def _hold_out_lock(out, held, release):
    from rapids_engage.run_lock import out_lock

    with out_lock(out):
        held.set()
        release.wait(60)
