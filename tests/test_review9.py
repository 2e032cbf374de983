"""Review of the daily-run merges (out lock, footer span, --history events gap): defects found, each pinned."""
import contextlib
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


class _Stop(Exception):
    pass


def test_an_audit_holds_its_out_between_its_runs(monkeypatch, tmp_path):
    """run_audit took no lock of its own: each of its runs held --out's only while it ran, so a daily `run` into the
    audit's --out started during its shuffled-label runs or its checks went ahead and published other models beside
    the audit.json describing the first. Now the audit holds it throughout; its own runs into it are not refused."""
    import threading

    from rich.console import Console

    from rapids_engage import audit, existing_cluster, pipeline
    from rapids_engage.backend import CPU
    from rapids_engage.config import Config
    from rapids_engage.run_lock import OutInUse, out_lock

    out = tmp_path / "audit"
    seen = []

    def another_run_refused() -> bool:
        refused = []

        def probe():  # another thread: a lock this one holds is not its own
            try:
                with out_lock(out):
                    refused.append(False)
            except OutInUse as exc:
                refused.append("audit, process" in str(exc))
        thread = threading.Thread(target=probe)
        thread.start()
        thread.join(30)
        return refused == [True]

    def fake_run(cfg, **kwargs):
        seen.append(cfg.out)
        if cfg.out == str(out):  # the real-label run, into the audit's own --out: not refused
            return {"targets": {}}
        seen.append(another_run_refused())  # during a shuffled-label run
        raise _Stop

    monkeypatch.setattr(existing_cluster, "run_backend", lambda cfg: (CPU, None))
    monkeypatch.setattr(pipeline, "_run", fake_run)
    monkeypatch.setattr(audit, "real_version_held", lambda real, out, log=None: contextlib.nullcontext())  # no store here
    cfg = Config()
    cfg.out = str(out)
    with pytest.raises(_Stop):
        audit.run_audit(cfg, Console(record=True), quiet=True, shuffles=1)
    assert seen == [str(out), str(out / "shuffled-labels"), True]
    with out_lock(out):  # released at its end
        pass
