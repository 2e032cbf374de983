"""``predict --out P`` holds P's run lock (:func:`rapids_engage.run_lock.out_lock`): two predicts into one P at once (a
retried cron job) interleaved their ``predictions/`` parts and ``predict.json``."""

from __future__ import annotations

import os
import re

import pytest

from rapids_engage.commands import main
from rapids_engage.run_lock import LOCK_NAME, OutInUse, out_lock


def _predict(tmp_path, out, capsys) -> tuple[int, str]:
    """(exit code, stderr) of a predict into ``out`` whose models and input are not there."""
    code = main(["predict", "--model-dir", str(tmp_path / "run"), "--input", str(tmp_path / "rows.parquet"),
                 "--out", str(out), "--quiet"])
    return code, capsys.readouterr().err


def test_a_second_predict_into_a_locked_out_is_refused_naming_the_holder(tmp_path, capsys, held_elsewhere):
    out = tmp_path / "scored"
    with held_elsewhere(lambda: out_lock(out, "predict")):  # another thread's lock is not this one's (a process alike)
        code, err = _predict(tmp_path, out, capsys)
        left = sorted(p.name for p in out.iterdir())
    assert code == 2
    assert err.count("\n") == 1, err  # one line
    assert re.match(rf"error: {re.escape(str(out))}: another command is writing there \(predict, process {os.getpid()} on "
                    r".*, since .*\); two predicts into one --out would interleave .*give this predict another --out$",
                    err.strip()), err
    assert left == [LOCK_NAME]  # the holder's: nothing of the refused predict

    code, err = _predict(tmp_path, out, capsys)  # released: on to its own checks
    assert code == 2 and "does not exist" in err and "writing there" not in err, err
    with out_lock(out, "run"):  # this thread holds it already (re-entrant, as an audit's own run): not refused
        code, err = _predict(tmp_path, out, capsys)
    assert code == 2 and "does not exist" in err and "writing there" not in err, err


def test_a_predict_and_a_run_refused_by_each_other_say_so_not_two_predicts_or_two_runs(tmp_path, capsys, held_elsewhere):
    """The refusal read 'two predicts into one --out would interleave ...' for a predict while a run wrote there, and
    'two runs ... would each replace the other's models' for a run while a predict did: it names both commands."""
    out = tmp_path / "scored"
    with held_elsewhere(lambda: out_lock(out, "run")):
        code, err = _predict(tmp_path, out, capsys)
    assert code == 2 and "(run, process" in err and "two predicts" not in err, err
    assert "one command at a time writes an --out" in err and err.strip().endswith("give this predict another --out")
    with held_elsewhere(lambda: out_lock(out, "predict")):
        with pytest.raises(OutInUse) as refused:
            with out_lock(out, "run"):
                pass
    message = str(refused.value)
    assert "(predict, process" in message and "two runs" not in message and "models and report" in message, message
    assert message.endswith("give this run another --out"), message


def test_a_thread_holding_an_out_holds_it_by_any_path_to_it(tmp_path):
    """Re-entrancy was keyed by the path as given: a thread holding ``real`` (a run) refused its own predict into
    ``link`` -> ``real`` ('another command is writing there', naming this very process); by the directory now."""
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with out_lock(tmp_path / "real", "run"):
        with out_lock(tmp_path / "link", "predict"), out_lock(tmp_path / "real" / ".." / "real", "predict"):
            pass
