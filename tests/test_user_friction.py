"""Rough edges a new user hit (following README.md only): each test fails without its fix."""

from __future__ import annotations

import pytest

from rapids_engage.config import ConfigError, load_config
from rapids_engage.report_md import render_markdown


def _report(**kw) -> dict:
    like = {"kind": "binary", "ap": 0.3, "rce": 10.0, "auc": 0.7, "positive_rate": 0.1, "n": 10_000, "best_iteration": 40,
            "baselines": {"constant": {"ap": 0.1, "rce": 0.0}}}
    return {"backend": "cpu", "n_workers": 2, "rows": {"train": 1_904, "valid": 346}, "targets": {"like": like},
            "timings_s": {}} | kw


def test_report_notes_the_quarantined_input_rows():
    """A CSV whose extra numeric column held text in a quarter of its rows lost those rows (bad_number); report.md's
    Notes, "what a reader must not miss", did not say so (only its data line did, in the Run table)."""
    ingest = {"files": 1, "input_rows": 3_000, "ingested_rows": 2_250, "quarantined_rows": 750,
              "quarantine_counts": {"bad_number": 749, "bad_time": 1}, "quarantine": "/c/table-x/quarantine.parquet"}
    text = render_markdown(_report(ingest=ingest))
    notes = text[text.index("## Notes"):text.index("## Reading the metrics")]
    assert ("750 of 3,000 input rows (25.0%) were quarantined (bad_number 749, bad_time 1) and left out of training "
            "and validation; `/c/table-x/quarantine.parquet` has each row's file, line, column and reason") in notes
    clean = render_markdown(_report(ingest=ingest | {"quarantined_rows": 0, "quarantine_counts": {}}))
    assert "## Notes" not in clean and "## Notes" not in render_markdown(_report())  # none quarantined; synthetic data


@pytest.mark.parametrize(("setting", "hint"), [
    ("train.targets=like", "got 'like' (a list of one: [like])"),  # README: "`row_id`, and `user` / ...", a name each
    ("features.counts=[engaging_user_id]", "got ['engaging_user_id'] (each key a list of columns: [[engaging_user_id]])"),
    ("features.target_encoding.keys=[language,media]", "(each key a list of columns: [[language], [media]])"),
])
def test_a_name_where_a_list_is_due_says_how_to_write_it(setting, hint):
    """``row_id: post_id`` (README lists row_id beside the one-column roles), ``text: title`` or ``targets: upvotes`` said
    only "expected a list of strings"; ``counts: [author]`` "expected a list of column lists", with RecSys columns."""
    with pytest.raises(ConfigError) as caught:
        load_config(None, [setting])
    assert hint in str(caught.value)
    with pytest.raises(ConfigError) as number:
        load_config(None, ["train.targets=3"])
    assert "(a list of one" not in str(number.value)  # not a name: no hint


def test_a_worker_without_validation_rows_prints_no_xgboost_warning():
    """A table of 2,250 rows on the default 2 workers: the validation window (the last day) lies in one partition, and
    every run, audit rerun included, printed XGBoost's ``UserWarning: [..] WARNING: /__w/xgboost/..error_msg.cc:56:
    Empty dataset at worker: 0`` with a native source path: a worker without those rows is by design."""
    import warnings

    from rapids_engage.worker_setup import _xgboost_line

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _xgboost_line(b"[11:10:31] WARNING: /__w/xgboost/xgboost/src/common/error_msg.cc:56: Empty dataset at worker: 0")
        _xgboost_line(b'[11:10:31] WARNING: /__w/xgboost/src/learner.cc:738: Parameters: { "max_dept" } are not used.')
    assert [str(w.message) for w in caught] == [
        '[11:10:31] WARNING: /__w/xgboost/src/learner.cc:738: Parameters: { "max_dept" } are not used.']  # others stay


def test_set_with_its_value_as_a_separate_word_says_how_to_write_it(capsys):
    """``--set train.max_depth 3`` (a space, as for every other flag) said only ``unrecognized arguments: 3``."""
    from rapids_engage.commands import main

    with pytest.raises(SystemExit):
        main(["--set", "train.max_depth", "3", "--gpus", "0"])
    assert "unrecognized arguments: 3 (--set takes KEY=VALUE as one word: --set train.max_depth=3)" in capsys.readouterr().err


def test_a_config_path_without_its_suffix_names_the_file_beside_it(tmp_path):
    """``--config configs/mind.yml`` or ``configs/hn`` (README: ``--config configs/hn.yaml``) said only "not found"."""
    (tmp_path / "mind.yaml").write_text("out: x\n")
    for given in ("mind.yml", "mind"):
        with pytest.raises(ConfigError, match=r"config file not found: .*mind\.yml? \(did you mean .*mind\.yaml\?\)$|"
                                              r"config file not found: .*mind \(did you mean .*mind\.yaml\?\)$"):
            load_config(tmp_path / given)
    with pytest.raises(ConfigError) as unlike:
        load_config(tmp_path / "bogus.yaml")
    assert "did you mean" not in str(unlike.value)


@pytest.mark.parametrize(("word", "stage"), [("evalute", "evaluate"), ("train", "train"), ("report", "report")])
def test_a_pipeline_stage_typed_as_a_subcommand_is_pointed_at_the_whole_pipeline(capsys, word, stage):
    """``python -m rapids_engage.pipeline evalute`` listed the subcommands but suggested none: no subcommand is like it,
    and the stage it names runs in the whole pipeline, which takes none."""
    from rapids_engage.commands import main

    with pytest.raises(SystemExit):
        main([word])
    err = capsys.readouterr().err
    assert (f"no subcommand {word!r}: the subcommands are features, audit, ingest, predict, store; without one, the command "
            f"runs the whole pipeline (did you mean that? {stage} is one of its stages: python -m rapids_engage.pipeline "
            "[options])") in " ".join(err.split())
    with pytest.raises(SystemExit):
        main(["bogus"])
    assert "did you mean" not in capsys.readouterr().err  # an unlike word: no hint


def test_the_parent_of_run_folders_as_model_dir_names_the_runs_in_it(tmp_path):
    """``predict --model-dir runs/`` (the parent of run folders) said only "no models (<target>.meta.json) in runs"."""
    from rapids_engage.predict import ModelError, load_models

    for run in ("demo", "hn", "mind", "zz"):
        (tmp_path / run / "models").mkdir(parents=True)
        (tmp_path / run / "models" / "like.meta.json").write_text("{}")
    (tmp_path / "aa" / "models").mkdir(parents=True)  # a run without models: not named
    with pytest.raises(ModelError) as caught:
        load_models(tmp_path)
    assert str(caught.value) == (f"no models (<target>.meta.json) in {tmp_path} (did you mean {tmp_path / 'demo'}, "
                                 f"{tmp_path / 'hn'} or {tmp_path / 'mind'}? they hold models)")
    with pytest.raises(ModelError) as bare:
        load_models(tmp_path / "aa")
    assert "did you mean" not in str(bare.value)
