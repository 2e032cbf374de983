"""End to end: the CLI on a small synthetic set, the report.json contract, the store cache, errors."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from rapids_engage.data import DataError
from rapids_engage.pipeline import main
from rapids_engage.report import validate
from rapids_engage.store import FeatureStore

pytestmark = pytest.mark.slow

TARGETS = ["like", "retweet", "reply", "quote"]


def _args(tmp, out, *extra):
    return [
        "--gpus", "0", "--rows", "60000", "--out", str(out), "--quiet",
        "--set", f"data.cache_dir={tmp / 'cache'}", "--set", "synthetic.days=7",
        "--set", "train.num_boost_round=60", "--set", "cluster.n_workers=2",
        "--set", "cluster.threads_per_worker=1", "--set", "features.history.keys=[[engaging_user_id]]", *extra,
    ]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipeline")
    out = tmp / "run"
    assert main(_args(tmp, out, "--plots")) == 0  # the test suite draws no plots unless told
    return tmp, out, json.loads((out / "report.json").read_text())


def test_report_contract(demo):
    _, out, report = demo
    validate(report)
    # where the feature stage's work went: worker seconds per kind of task, at most what 2 workers x 1 thread had
    spent = report["task_seconds"]["features"]
    assert 0 < len(spent) <= 13 and all(v > 0 for v in spent.values()) and any("parquet" in k for k in spent)
    assert sum(spent.values()) <= 2 * report["timings_s"]["features"] + 1.0
    assert "| features | " in (out / "report.md").read_text().split("task seconds")[1]
    assert report["backend"] == "cpu" and report["n_workers"] == 2
    # label_time auto, resolved on RecSys data: what the run used is what it records, and what its store version holds
    assert report["config"]["features"]["history"]["label_time"] == "engagement"
    assert "label_time: engagement" in (out / "config.yaml").read_text()
    manifest = json.loads((out / "store" / report["store"]["version"] / "manifest.json").read_text())
    assert manifest["definition"]["features"]["history"]["label_time"] == "engagement"
    assert report["rows"]["train"] > 0 and report["rows"]["valid"] > 0
    assert set(report["targets"]) == set(TARGETS)
    for t in TARGETS:
        m = report["targets"][t]
        for key in ("ap", "rce", "auc", "positive_rate"):
            assert isinstance(m[key], float)
        assert m["oracle_rce"] is not None and m["oracle_rce"] > 0
    assert list(report["timings_s"]) == ["data", "cluster", "split", "features", "train", "evaluate", "plots", "other"]
    for stage in ("data", "cluster", "split", "features", "train", "evaluate", "plots"):
        assert report["timings_s"][stage] >= 0
        assert report["memory"]["host_rss_peak_bytes"][stage] > 50 * 2**20  # at least the driver's interpreter
    # the workers are counted: a training step holds the driver and both workers
    assert report["memory"]["host_rss_peak_bytes"]["train"] > report["memory"]["host_rss_peak_bytes"]["data"]
    assert "gpu_used_peak_bytes" not in report["memory"]
    assert "peak host RSS GiB" in (out / "report.md").read_text()
    assert (out / "models" / "like.json").is_file()
    assert set(report["plots"]) == {"pr_curves", "calibration", "feature_importance", "learning_curves"}
    assert all((out / rel).is_file() and f"]({rel})" in (out / "report.md").read_text() for rel in report["plots"].values())


def test_models_learn_the_planted_signal(demo):
    report = demo[2]
    for t in ("like", "retweet"):  # the frequent targets are learnable even from 60k rows
        m = report["targets"][t]
        assert m["rce"] > 0, t
        assert m["ap"] > m["positive_rate"], t
        base = m["baselines"]
        assert abs(base["constant"]["rce"]) < 1.0 and base["te_logreg"]["rce"] > 0
    # leakage-free features computed alike for training and validation rows: no train/validation skew
    assert {t: m["skew"] for t, m in report["targets"].items()} == {t: [] for t in report["targets"]}


def test_second_run_is_a_store_cache_hit(demo):
    """`features` (the store stages of a run, no training) finds the version the demo run built."""
    tmp, out, first = demo
    assert first["store"]["cache_hit"] is False
    run2 = tmp / "run2"
    assert main(["features", *_args(tmp, run2, "--set", f"features.store={out / 'store'}")]) == 0
    second = json.loads((run2 / "features.json").read_text())
    assert second["store"]["cache_hit"] is True
    assert second["store"]["version"] == first["store"]["version"]
    assert second["features"] == first["features"] and second["rows"] == first["rows"]
    assert second["timings_s"]["features"] < first["timings_s"]["features"]
    assert set(second["memory"]["host_rss_peak_bytes"]) == {"data", "cluster", "split", "features"}
    # report.json's keys less targets, models, the workers training ran on and plots (README): the cluster's facts too
    assert set(first) - set(second) == {"targets", "models", "n_workers_train", "plots"}, set(first) ^ set(second)
    assert first["n_workers_train"] == first["n_workers"] == 2
    assert second["workers_lost"] == 0 and second["spilled_bytes"] == 0
    assert not (run2 / "report.json").exists() and not (run2 / "models").exists()
    assert not [p for p in (out / "store").iterdir() if p.name.startswith(".tmp-")]


def _store_split(report: dict, split: str) -> pd.DataFrame:
    frame = pd.read_parquet(Path(report["store"]["path"]) / report["store"]["version"] / split)
    return frame.sort_values(["tweet_id", "engaging_user_id"]).reset_index(drop=True)


#: How far one worker's metrics may be from two workers' on the demo: xgboost.dask merges per-worker quantile
#: sketches into its histogram cuts and subsamples rows on each worker (README "Data flow"). Measured here: like and
#: retweet AUC within 0.002, RCE within 0.4; reply and quote (~260 and ~60 validation positives, early stopping after
#: a handful of rounds) AUC within 0.031, RCE within 2.6. A lost or misaligned partition moves them far more.
WORKER_COUNT_TOL = {"like": {"auc": 0.01, "rce": 1.0}, "retweet": {"auc": 0.01, "rce": 1.0},
                    "reply": {"auc": 0.06}, "quote": {"auc": 0.06}}


def test_one_worker_builds_the_two_workers_features_and_close_metrics(demo, tmp_path):
    """The multi-worker parity of a whole run (CLI, store and training): the demo's input on one worker instead
    of two, its store rebuilt, gives the same store version with identical values, and metrics within
    :data:`WORKER_COUNT_TOL` (not identical: XGBoost's distributed sketch and row sampling)."""
    tmp, _, two = demo
    out = tmp_path / "one"
    assert main(_args(tmp, out, "--set", "cluster.n_workers=1", "--set", f"features.store={tmp_path / 'store'}")) == 0
    one = json.loads((out / "report.json").read_text())
    assert one["n_workers"] == 1 and two["n_workers"] == 2 and one["store"]["cache_hit"] is False
    assert one["store"]["version"] == two["store"]["version"] and one["rows"] == two["rows"]
    for split in ("train", "valid"):
        pd.testing.assert_frame_equal(_store_split(one, split), _store_split(two, split))
    gaps = {t: {k: abs(one["targets"][t][k] - two["targets"][t][k]) for k in ("auc", "rce")} for t in TARGETS}
    for t, tol in WORKER_COUNT_TOL.items():
        assert all(gaps[t][k] <= v for k, v in tol.items()), (t, gaps)


def _readme_block(heading: str) -> str:
    """The first python block under ``heading`` in the README."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text[text.index(heading):]
    return section[section.index("```python\n") + len("```python\n"):section.index("\n```", section.index("```python"))]


def test_readme_library_api_runs_as_written(demo):
    """The README's Library API block, on the demo run: its values are the store's."""

    _, out, report = demo
    scope: dict = {}
    exec(_readme_block("### Library API").replace('run = "runs/demo"', f"run = {str(out)!r}"), scope)
    oof, served, features, names = scope["oof"].compute(), scope["served"].compute(), scope["features"].compute(), scope["names"]
    assert names == report["features"] and set(names) <= set(features.columns)
    assert len(features) == len(scope["new_rows"])
    assert {"te_engaging_user_id__language_like", "te_engaging_user_id__language_reply"} <= set(oof.columns)
    assert served["te_engaging_user_id__language_like"].notna().all()
    # the whole validation window (per-day counts and history see the batch): the stored validation features
    stored = scope["store"].training_frame(split="valid").compute().set_index(["tweet_id", "engaging_user_id"])
    got = scope["store"].transform(scope["later"]).compute().set_index(["tweet_id", "engaging_user_id"])
    assert len(got) == len(stored)
    pd.testing.assert_frame_equal(got[names], stored.loc[got.index, names], check_exact=False, rtol=1e-9)


def test_external_memory_training_learns_what_in_memory_training_does(demo):
    """train.external_memory: one booster per target from the store's files (XGBoost external memory)."""
    tmp, out, first = demo
    run = tmp / "run-extmem"
    # like and retweet (compared with the demo's) and quote (balanced): reply is left out, a quarter of the training
    # (a subset of the store's targets is a cache hit: test_store_target_subset)
    extra = ["--set", f"features.store={out / 'store'}", "--set", "train.external_memory=true",
             "--set", "train.per_target.quote.scale_pos_weight=balanced", "--set", "train.targets=[like,retweet,quote]",
             "--no-plots"]
    assert main(_args(tmp, run, *extra)) == 0
    report = json.loads((run / "report.json").read_text())
    validate(report)
    assert report["plots"] == {} and not (run / "plots").exists() and "## Plots" not in (run / "report.md").read_text()
    assert report["store"]["cache_hit"] is True  # the same features; only the training differs
    for t in ("like", "retweet"):
        ours, theirs = report["targets"][t], first["targets"][t]
        assert ours["rce"] > 0 and abs(ours["rce"] - theirs["rce"]) < 1.5, (t, ours["rce"], theirs["rce"])
    assert (run / "models" / "quote.json").is_file()
    # balanced: negatives / positives of the training rows, recorded as the number the model used
    labels = pd.read_parquet(out / "store" / report["store"]["version"] / "train", columns=["quote"])["quote"]
    meta = json.loads((run / "models" / "quote.meta.json").read_text())
    assert meta["params"]["scale_pos_weight"] == pytest.approx((labels == 0).sum() / labels.sum())


@pytest.fixture(scope="module")
def small_cache(tmp_path_factory):
    """One data cache for the error runs: the 2,000 synthetic rows are generated once, not per case."""
    return tmp_path_factory.mktemp("small-cache")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--gpus", "lots"], "--gpus must be"),
        (["--set", "train.max_dept=3"], "train.max_dept"),
        (["--set", "split.valid_hours=100000"], "valid_hours"),
        (["--set", "split.valid_hours=0.0001"], "split.valid_hours: expected a number of hours > 0, at least one second"),
    ],
)
def test_errors_are_one_line(small_cache, tmp_path, argv, message):
    cmd = [sys.executable, "-m", "rapids_engage.pipeline", "--gpus", "0", "--rows", "2000", "--out", str(tmp_path / "o"),
           "--set", f"data.cache_dir={small_cache}", "--quiet", *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("error:")


@pytest.mark.parametrize(("setting", "message"), [
    ("split.valid_hours=100000", "split.valid_hours=100000.0 covers the whole data"),
    ("split.gap_hours=1000", "split.gap_hours=1000 purges every training row"),
])
def test_a_split_window_beyond_the_data_is_refused_before_the_cluster_starts(small_cache, tmp_path, monkeypatch, capsys,
                                                                           setting, message):
    """A validation window (or gap) covering the whole data was refused by the split, after the cluster's start and a
    pass over the data (45 s of test_errors_are_one_line under load); the input footers' statistics tell it first."""
    from rapids_engage import pipeline

    monkeypatch.setattr(pipeline, "start_cluster", lambda *a, **k: pytest.fail("the cluster started"))
    argv = ["--gpus", "0", "--rows", "2000", "--out", str(tmp_path / "o"), "--quiet", "--set", f"data.cache_dir={small_cache}"]
    assert main([*argv, "--set", setting]) == 2
    assert message in capsys.readouterr().err


def test_help():
    proc = subprocess.run([sys.executable, "-m", "rapids_engage.pipeline", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for flag in ("--config", "--gpus", "--scheduler-address", "--out", "--rows", "--set", "--no-plots"):
        assert flag in proc.stdout


def test_predict_reproduces_validation_metrics(demo, tmp_path):

    _, out, report = demo
    split = report["split"]
    events = pd.read_parquet(split["data_dir"])
    valid = events[events["tweet_timestamp"] > split["cutoff"]].drop(columns=["day"], errors="ignore")
    valid.to_parquet(tmp_path / "new.parquet", index=False)
    code = main(["predict", "--model-dir", str(out), "--input", str(tmp_path / "new.parquet"),
                 "--out", str(tmp_path / "pred"), "--gpus", "0", "--quiet", "--set", "cluster.n_workers=1"])
    assert code == 0
    result = json.loads((tmp_path / "pred" / "predict.json").read_text())
    assert result["rows"] == report["rows"]["valid"] and result["history_gap"] is None
    assert set(result["timings_s"]) == {"load", "score", "metrics"} and result["rows_per_s"] > 0
    assert set(result["memory"]["host_rss_peak_bytes"]) == {"load", "score", "metrics"}
    preds = pd.read_parquet(tmp_path / "pred" / "predictions")
    assert len(preds) == len(valid) and {"pred_like", "pred_quote"} <= set(preds.columns)
    for t in TARGETS:
        for key in ("ap", "rce", "auc"):
            assert result["metrics"][t][key] == pytest.approx(report["targets"][t][key], abs=1e-9), (t, key)
        assert result["metrics"][t]["objective"] == report["targets"][t]["objective"]  # tells rank:* scores' AP / AUC
    # in process (rapids_engage.serve), the whole window as one batch: the same predictions
    from rapids_engage.serve import Scorer

    served = Scorer(out).predict(valid)
    assert list(served.columns) == ["tweet_id", "engaging_user_id", *(f"pred_{t}" for t in sorted(TARGETS))]
    both = preds.merge(served, on=["tweet_id", "engaging_user_id"], suffixes=("", "_served"))
    assert len(both) == len(valid)
    for t in TARGETS:
        np.testing.assert_allclose(both[f"pred_{t}_served"], both[f"pred_{t}"], rtol=0, atol=1e-6)
    # rows as a database hands them over: a null list is an empty one; a null time or profile value is named
    scorer, rows = Scorer(out), valid.head(20).reset_index(drop=True)
    want = scorer.predict(rows.assign(hashtags=rows["hashtags"].where(rows.index != 3, "")))
    pd.testing.assert_frame_equal(scorer.predict(rows.assign(hashtags=rows["hashtags"].where(rows.index != 3, None))), want)
    for column in ("tweet_timestamp", "engaging_user_account_creation", "engagee_follows_engager"):
        broken = rows.astype({column: "Int64" if column != "engagee_follows_engager" else "boolean"})
        broken.loc[5, column] = None
        with pytest.raises(DataError, match=f"column '{column}' has 1 null value\\(s\\), the first at index 5"):
            scorer.predict(broken)
    import dask.dataframe as dd

    with pytest.raises(TypeError, match="Scorer scores in-memory rows"):
        scorer.predict(dd.from_pandas(rows, npartitions=2))


def test_predict_says_when_the_rows_start_days_after_the_serving_state(demo, tmp_path):
    from rapids_engage.backend import CPU
    from rapids_engage.predict import earliest_time, history_gap, load_builder, load_models

    _, out, report = demo
    builder = load_builder(load_models(out)[1], CPU, out)
    cutoff = report["split"]["cutoff"]
    later = pd.read_parquet(report["split"]["data_dir"], filters=[("tweet_timestamp", ">", cutoff)])
    later.assign(tweet_timestamp=later["tweet_timestamp"] + 3 * 86_400).to_parquet(tmp_path / "later.parquet", row_group_size=5_000)
    start = earliest_time([tmp_path / "later.parquet"], "tweet_timestamp")
    assert start == later["tweet_timestamp"].min() + 3 * 86_400
    assert "3.0 days after the serving state ends" in history_gap(builder, start)
    assert history_gap(builder, cutoff + 3_600) is None


def test_earliest_time_is_the_smallest_of_every_row_group_of_every_file(tmp_path):
    """Rows not in time order (row groups of 2) over two files: the smallest time, not the first group's."""
    from rapids_engage.predict import earliest_time

    pd.DataFrame({"t": [50, 40, 30, 20, 10, 60]}).to_parquet(tmp_path / "a.parquet", row_group_size=2)
    pd.DataFrame({"t": [45, 5]}).to_parquet(tmp_path / "b.parquet")
    assert earliest_time([tmp_path / "a.parquet"], "t") == 10
    assert earliest_time([tmp_path / "a.parquet", tmp_path / "b.parquet"], "t") == 5
    assert earliest_time([tmp_path / "a.parquet"], "other") is None


def test_earliest_time_of_a_timestamp_column_is_unknown(tmp_path):
    """A time column stored as parquet timestamps (not epoch seconds): no start from the footers (it raised
    TypeError on their datetime statistics), so predict reaches its own message for such a column."""
    from rapids_engage.predict import earliest_time

    pd.DataFrame({"t": pd.to_datetime([50, 10], unit="s")}).to_parquet(tmp_path / "a.parquet")
    pd.DataFrame({"t": [5]}).to_parquet(tmp_path / "b.parquet")
    assert earliest_time([tmp_path / "b.parquet", tmp_path / "a.parquet"], "t") is None


def test_scorer_counts_are_never_negative():
    """A count target's booster predicts log1p(count); a negative prediction is a count of 0 (as `predict` writes),
    not expm1 of it (a negative count)."""
    from types import SimpleNamespace

    from rapids_engage.serve import Scorer

    class Booster:
        def inplace_predict(self, matrix):
            return np.array([-0.5, 0.0, np.log1p(3.0)], np.float32)[: len(matrix)]

    scorer = object.__new__(Scorer)
    scorer.boosters = {"points": Booster(), "click": Booster()}
    scorer.metas = {"points": {"features": ["f"], "objective": "reg:squarederror"},
                    "click": {"features": ["f"], "objective": "binary:logistic"}}
    scorer.layout = SimpleNamespace(target=lambda t: SimpleNamespace(is_regression=t == "points"))
    out = scorer.scores(pd.DataFrame({"f": [1.0, 2.0, 3.0]}))
    np.testing.assert_allclose(out["points"], [0.0, 0.0, 3.0], rtol=1e-6)
    np.testing.assert_allclose(out["click"], [-0.5, 0.0, np.log1p(3.0)], rtol=1e-6)  # not a count: as predicted
    from rapids_engage.predict import _expm1  # what `predict` writes

    np.testing.assert_allclose(_expm1(pd.Series([-0.5, 0.0, np.log1p(3.0)])), [0.0, 0.0, 3.0], rtol=1e-9)


def test_rows_after_the_validation_window_are_served_with_its_events_as_history(demo, tmp_path, capsys, tcp_cluster):
    """The day after the data: --history validation folds the validation window's labelled events into
    the serving state, so the next day's rows see them (no gap), as a state fitted on both would."""
    from rapids_engage.backend import CPU
    from rapids_engage.predict import history_events
    from rapids_engage.serve import Scorer

    _, out, report = demo
    cutoff, end = report["split"]["cutoff"], report["split"]["max_time"]
    valid = pd.read_parquet(report["split"]["data_dir"], filters=[("tweet_timestamp", ">", cutoff)]).drop(columns=["day"])
    next_day = valid.sample(n=2_000, random_state=0).assign(tweet_timestamp=lambda f: f["tweet_timestamp"] + 86_400)
    next_day.drop(columns=[c for c in next_day.columns if c.endswith("_timestamp") and c != "tweet_timestamp"]).to_parquet(
        tmp_path / "next.parquet")
    argv = ["predict", "--model-dir", str(out), "--input", str(tmp_path / "next.parquet"), "--gpus", "0",
            "--scheduler-address", tcp_cluster.scheduler_address]  # in process: two cluster starts less
    assert main([*argv, "--out", str(tmp_path / "gap")]) == 0
    assert "pass the labelled events in between with --history" in " ".join(capsys.readouterr().err.split())
    assert main([*argv, "--out", str(tmp_path / "hist"), "--history", "validation"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert f"history: {len(valid):,} labelled events folded into the serving state" in err and "--history (" not in err
    result = json.loads((tmp_path / "hist" / "predict.json").read_text())
    assert result["history"] == {"source": "validation", "rows": len(valid), "end": end} and result["history_gap"] is None
    # in process: more history, never fewer events; the validation window's events now counted
    plain, extended = Scorer(out), Scorer(out).extend_history(history_events("validation", out, CPU, "tweet_timestamp"))
    rows = next_day.reset_index(drop=True)
    n = "hist_engaging_user_id_n_168h"
    before, after = plain.features(rows)[n], extended.features(rows)[n]
    assert (after >= before).all() and (after > before).mean() > 0.5
    scored = pd.read_parquet(tmp_path / "hist" / "predictions").sort_values(["tweet_id", "engaging_user_id"], ignore_index=True)
    mine = extended.predict(rows).sort_values(["tweet_id", "engaging_user_id"], ignore_index=True)
    np.testing.assert_allclose(mine["pred_like"], scored["pred_like"], rtol=0, atol=1e-6)
    with pytest.raises(DataError, match="history events hold no engagement at all"):
        Scorer(out).extend_history(next_day.assign(**{c: pd.NA for c in ("like_timestamp", "reply_timestamp",
                                                                          "retweet_timestamp", "retweet_with_comment_timestamp")}))


def test_predict_json_names_the_store_it_served_from_by_absolute_paths(demo, tmp_path, monkeypatch, tcp_cluster):
    """predict.json's store is the one the serving state was read from (here --store; it named where the models
    were trained), and its paths are absolute, as report.json's (--out runs/x gave 'runs/x/predictions', which a
    tool reading predict.json from another directory could not find)."""
    import shutil

    _, out, report = demo
    cutoff = report["split"]["cutoff"]
    valid = pd.read_parquet(report["split"]["data_dir"], filters=[("tweet_timestamp", ">", cutoff)]).drop(columns=["day"])
    valid.to_parquet(tmp_path / "events.parquet")  # labelled events after the training window: --history
    next_day = valid.head(500).assign(tweet_timestamp=lambda f: f["tweet_timestamp"] + 86_400)
    next_day.drop(columns=[c for c in next_day.columns if c.endswith("_timestamp") and c != "tweet_timestamp"]).to_parquet(
        tmp_path / "next.parquet")
    shutil.copytree(out / "models", tmp_path / "copy" / "models")
    shutil.copytree(out / "store", tmp_path / "elsewhere")
    monkeypatch.chdir(tmp_path)
    assert main(["predict", "--model-dir", "copy", "--input", "next.parquet", "--out", "scored", "--store", "elsewhere",
                 "--history", "events.parquet", "--gpus", "0", "--quiet", "--scheduler-address", tcp_cluster.scheduler_address]) == 0
    result = json.loads((tmp_path / "scored" / "predict.json").read_text())
    here = Path.cwd()  # tmp_path as the process sees it
    assert result["predictions"] == str(here / "scored" / "predictions")
    assert result["store"] == {"path": str(here / "elsewhere"), "version": report["store"]["version"]}
    assert result["history"]["source"] == str(here / "events.parquet") and result["history"]["rows"] == len(valid)


def test_predict_refuses_rows_earlier_than_the_serving_state_before_the_cluster_starts(demo, tmp_path, capsys, monkeypatch):
    """Rows earlier than the training end were refused by the history features only once the cluster had
    started (seconds, on GPUs minutes); the footers tell it first: the same message, every early row counted."""
    from rapids_engage import cluster
    from rapids_engage.schema import utc

    _, out, report = demo
    events = pd.read_parquet(report["split"]["data_dir"]).drop(columns=["day"], errors="ignore")
    rows = pd.concat([events[events["tweet_timestamp"] <= report["split"]["cutoff"]].tail(700),
                      events[events["tweet_timestamp"] > report["split"]["cutoff"]].head(300)]).sample(frac=1, random_state=0)
    rows.iloc[:400].sort_values("tweet_timestamp").to_parquet(tmp_path / "a.parquet", index=False, row_group_size=50)
    rows.iloc[400:].to_parquet(tmp_path / "b.parquet", index=False, row_group_size=100)
    end = int(events.loc[events["tweet_timestamp"] <= report["split"]["cutoff"], "tweet_timestamp"].max())  # training's
    early = int((rows["tweet_timestamp"] < end).sum())
    assert 0 < early < 700
    started = []
    monkeypatch.setattr(cluster, "start_cluster", lambda *a, **k: started.append(a) or pytest.fail("the cluster started"))
    argv = ["predict", "--model-dir", str(out), "--input", str(tmp_path), "--out", str(tmp_path / "p"), "--gpus", "0"]
    assert main(argv) == 2 and not started
    first = utc(int(rows["tweet_timestamp"].min()))
    assert re.search(rf"history features \(engaging_user_id\) serve rows at or after the end of the training window "
                     rf"\({utc(end)}\): {early:,} of 1,000 rows are earlier \(the earliest at {first}\); score rows from after it",
                     capsys.readouterr().err)


def test_one_scorer_scores_from_several_threads_as_serially(demo):
    """A service scores from a thread pool with one Scorer (README): every batch's predictions, its first call's
    (which builds the history lookup index) among them, equal a serial Scorer's."""
    from concurrent.futures import ThreadPoolExecutor

    from rapids_engage.serve import Scorer

    _, out, report = demo
    events = pd.read_parquet(report["split"]["data_dir"]).drop(columns=["day"], errors="ignore")
    valid = events[events["tweet_timestamp"] > report["split"]["cutoff"]].reset_index(drop=True)
    batches = [valid.iloc[i::5] for i in range(5)] + [valid.head(1), valid.sample(frac=1.0, random_state=1)]
    serial = [Scorer(out).predict(b) for b in batches]
    shared = Scorer(out)
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(shared.predict, batches * 2))
    for got, want in zip(threaded, serial * 2):
        pd.testing.assert_frame_equal(got, want)


@pytest.mark.parametrize("files", [1, 3])
def test_predict_names_a_recsys_list_column_of_numbers(demo, tmp_path, capsys, monkeypatch, files):
    """A RecSys list column (``hashtags``) holding numbers ended in a worker traceback (``Can only use .str
    accessor``): only a table's text, url and list columns were checked. It is a one-line error naming the
    column (and the file, among many) before the cluster starts."""
    from rapids_engage import cluster

    _, out, report = demo
    events = pd.read_parquet(report["split"]["data_dir"]).drop(columns=["day"], errors="ignore").tail(300)
    parts = [events.iloc[i::files].copy() for i in range(files)]
    parts[-1]["hashtags"] = range(len(parts[-1]))
    for i, part in enumerate(parts):
        part.to_parquet(tmp_path / f"p{i}.parquet", index=False)
    monkeypatch.setattr(cluster, "start_cluster", lambda *a, **k: pytest.fail("the cluster started"))
    argv = ["predict", "--model-dir", str(out), "--input", str(tmp_path), "--out", str(tmp_path / "p"), "--gpus", "0"]
    assert main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "column 'hashtags' is int64 here but the layout reads it as text" in err, err
    assert files == 1 or f"p{files - 1}.parquet" in err, err


def test_predict_takes_cluster_settings_only(demo, tmp_path, capsys):
    _, out, _ = demo
    argv = ["predict", "--model-dir", str(out), "--input", str(tmp_path), "--out", str(tmp_path / "p"), "--gpus", "0"]
    assert main([*argv, "--set", "train.max_depth=3"]) == 2
    assert "cluster.<key>=<value> settings only, got 'train.max_depth'" in capsys.readouterr().err
    assert main([*argv, "--set", "cluster.n_wrokers=3"]) == 2
    assert "n_wrokers" in capsys.readouterr().err


def test_predict_says_the_cluster_settings_it_does_not_apply_and_its_stalls(demo, tmp_path, capsys, monkeypatch):
    """predict takes cluster settings as a run does, but said neither the settings it did not apply
    (cluster.rmm_pool_size on CPU) nor workers paused for memory for good: it waited for ever in silence."""
    from rapids_engage import cluster

    _, out, report = demo
    valid = pd.read_parquet(report["split"]["data_dir"], filters=[("tweet_timestamp", ">", report["split"]["cutoff"])])
    valid.head(500).drop(columns=["day"], errors="ignore").to_parquet(tmp_path / "new.parquet")
    logs = []
    start = cluster.start_cluster
    monkeypatch.setattr(cluster, "start_cluster", lambda backend, cfg, log=None: logs.append(log) or start(backend, cfg, log))
    argv = ["predict", "--model-dir", str(out), "--input", str(tmp_path / "new.parquet"), "--out", str(tmp_path / "p"),
            "--gpus", "0", "--set", "cluster.n_workers=1", "--set", "cluster.rmm_pool_size=0.8"]
    assert main(argv) == 0
    assert "cluster.rmm_pool_size: GPU workers only, not applied to this CPU run" in capsys.readouterr().err
    assert len(logs) == 1 and logs[0] is not None


def test_predict_refuses_a_missing_store_version(demo, tmp_path):
    import shutil

    from rapids_engage.backend import CPU
    from rapids_engage.predict import ModelError, load_builder, load_models

    _, out, _ = demo
    run = tmp_path / "run"
    shutil.copytree(out / "models", run / "models")
    for meta in (run / "models").glob("*.meta.json"):
        m = json.loads(meta.read_text())
        m["store"]["version"] = "0000000000000000"
        meta.write_text(json.dumps(m))
    _, store = load_models(run)
    with pytest.raises(ModelError, match="0000000000000000"):
        load_builder(store, CPU)
    with pytest.raises(ModelError, match="no models"):
        load_models(tmp_path)
    with pytest.raises(ModelError, match="does not exist"):
        load_models(tmp_path / "nowhere")
    like = json.loads((run / "models" / "like.meta.json").read_text())
    like["store"]["version"] = "1111111111111111"
    (run / "models" / "like.meta.json").write_text(json.dumps(like))
    with pytest.raises(ModelError, match=r"different or unknown feature-store versions \(like: 1111111111111111; quote: 0000"):
        load_models(run)
    # a damaged or missing model file: one line naming it, before a cluster starts (not XGBoost's stack trace)
    (run / "models" / "like.meta.json").write_text(json.dumps(like | {"store": {**like["store"], "version": "0000000000000000"}}))
    (run / "models" / "like.json").unlink()
    with pytest.raises(ModelError, match=r"models/like.json is missing \(its like.meta.json is there\)"):
        load_models(run)
    (run / "models" / "like.meta.json").write_text("{")
    with pytest.raises(ModelError, match=r"models/like.meta.json is damaged \(Expecting property name"):
        load_models(run)


def test_predict_names_the_damaged_file_of_a_store_version(demo, tmp_path):
    """A store version that is there but not whole (a serving-state file changed): the refusal names the
    file, not only "deleted, damaged, or rebuilt"; the library API's error too."""
    import shutil

    from rapids_engage.backend import CPU
    from rapids_engage.predict import ModelError, load_builder, load_models
    from rapids_engage.store import FeatureStore, MissingVersion

    _, out, _ = demo
    _, store = load_models(out)
    copy = tmp_path / "store"
    shutil.copytree(out / "store", copy)
    state = copy / store["version"] / "state"
    victim = sorted(state.glob("*.json"))[0]
    victim.write_text(victim.read_text() + " ")
    name = f"state/{victim.name}"
    with pytest.raises(ModelError, match=rf"damaged: .*{store['version']}: file {name} has \d+ bytes, the manifest says"):
        load_builder(store, CPU, store=copy)
    with pytest.raises(MissingVersion, match=rf"no intact version {store['version']} \(file {name} has"):
        FeatureStore(copy).training_frame(store["version"])


def test_predict_refuses_a_store_built_with_another_feature_set(demo, monkeypatch):
    """Models and a store from a release with other features: one line naming the difference."""
    from rapids_engage.backend import CPU
    from rapids_engage.features import content
    from rapids_engage.predict import ModelError, load_builder, load_models

    _, out, _ = demo
    _, store = load_models(out)
    monkeypatch.setattr(content, "TOKEN_COUNTS", {})  # this "release" no longer computes n_mentions
    with pytest.raises(ModelError, match=r"another feature set .*\(gone: n_mentions\): rerun the pipeline"):
        load_builder(store, CPU)


def test_audit_passes_on_leakage_free_features(demo, tmp_path, tcp_cluster):
    import shutil

    # the demo's config and input (its data cache): the audit's run with the real labels finds the demo's
    # features in a copy of its store (a cache hit, which this test alters below); the shuffled-label run
    # builds its own store. On an existing cluster (an in-process worker, conftest's tcp_cluster): the audit's
    # three runs started three clusters of two worker processes (~10 s of this test's 19 s), and what is checked here
    # is the audit's verdicts, not the cluster start (every other run here starts one)
    tmp, demo_out, _ = demo
    store = tmp_path / "store"
    shutil.copytree(demo_out / "store", store)
    out = tmp_path / "audit"
    # fewer boosting rounds than the demo's: its store still (training settings are not the store's)
    # the like model alone (the checks below read its and the history features'): a subset of the store's targets,
    # still a cache hit (test_store_target_subset); the shuffled-label run builds and trains the like target only
    args = _args(tmp, out, "--set", f"features.store={store}", "--set", "train.num_boost_round=20", "--set", "train.targets=[like]",
                 "--set", f"cluster.scheduler_address={tcp_cluster.scheduler_address}")
    code = main(["audit", *args])
    result = json.loads((out / "audit.json").read_text())
    assert code == 0, result
    names = [c["check"] for c in result["checks"]]
    assert any("shuffled labels: like" in n for n in names) and "train/valid overlap" in names
    assert any(n.startswith("time travel: hist_engaging_user_id") for n in names)
    assert all(c["passed"] for c in result["checks"])

    # the time-travel check fails when a stored history feature saw the future

    from rapids_engage.audit import time_travel_checks
    from rapids_engage.pipeline import build_parser, config_from_args

    real = json.loads((out / "report.json").read_text())
    assert real["store"]["cache_hit"] is True and Path(real["store"]["path"]) == store
    train_dir = Path(real["store"]["path"]) / real["store"]["version"] / "train"
    part = sorted(train_dir.glob("*.parquet"))[0]
    frame = pd.read_parquet(part)
    frame["hist_engaging_user_id_n"] += 1  # as if one later event had been counted
    frame.to_parquet(part, index=False)
    cfg = config_from_args(build_parser().parse_args(args))
    (check,) = time_travel_checks(cfg, real)
    assert not check["passed"] and "differ" in check["detail"]


def test_shuffled_label_check_is_inconclusive_without_real_skill():
    from rapids_engage.audit import shuffled_check

    sound = shuffled_check("like", {"rce": 0.1}, {"rce": 17.9})
    assert sound["passed"] and "inconclusive" not in sound
    weak = shuffled_check("quote", {"rce": -0.2}, {"rce": -0.29})
    assert weak["passed"] and weak["inconclusive"] and "inconclusive" in weak["detail"]
    # a validation window with 1 positive: the shuffled model's RCE 22.9 is noise, not a leak (it was FAIL, exit 1)
    noisy = shuffled_check("quote", {"rce": 22.9}, {"rce": -21.8, "n": 717, "positive_rate": 1 / 717})
    assert noisy["passed"] and noisy["inconclusive"]
    assert "(real labels: -21.80) on 717 validation rows (1 positive); inconclusive" in noisy["detail"]
    assert not shuffled_check("like", {"rce": 3.0}, {"rce": 17.9})["passed"]  # skill without labels: leakage


def test_shuffle_labels_permutes_within_each_day():
    """The audit's control run permutes the training labels "within each day" (README); it permuted them within
    each partition, which merges many days (30k rows: two partitions of two weeks each), moving positives
    across days."""
    import dask.dataframe as dd

    from rapids_engage.audit import MAX_SHUFFLED_RCE
    from rapids_engage.split import shuffle_labels

    day = 86_400
    t = 1_600_000_000 - 1_600_000_000 % day + np.arange(100) * (day // 20)  # 20 rows a day, 5 days
    like = (np.arange(100) % 20 < 4 * (np.arange(100) // 20)).astype("int8")  # day d: 4 d positives
    pdf = pd.DataFrame({"t": t, "like": like, "x": range(100)}).sample(frac=1, random_state=0)  # rows out of time order
    frame = dd.from_pandas(pdf, npartitions=2, sort=False)
    shuffled = shuffle_labels(frame, ["like"], seed=1, time_column="t").compute()
    assert (shuffled["x"].to_numpy() == pdf["x"].to_numpy()).all()  # rows in place, labels moved
    assert (shuffled["like"].to_numpy() != pdf["like"].to_numpy()).any()
    positives = shuffled.groupby(shuffled["t"] // day)["like"].sum()
    assert positives.tolist() == [0, 4, 8, 12, 16]  # each day keeps its positives
    assert MAX_SHUFFLED_RCE == 0.5


@pytest.mark.parametrize("exc", [
    MemoryError("std::bad_alloc: out_of_memory: CUDA error at: rmm/mr/device/cuda_memory_resource.hpp"),
    RuntimeError("CUDA error: out of memory"),
])
def test_out_of_memory_is_one_line_with_the_options_that_help(exc, capsys):
    import argparse

    from rapids_engage.commands import _guarded
    from rich.console import Console

    def fail():
        raise exc

    assert _guarded(fail, argparse.Namespace(debug=False), Console(stderr=True)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: out of memory") and "cluster.rmm_pool_size" in err and "cluster.memory_limit" in err
    assert "Traceback" not in err


def test_unknown_failures_keep_their_traceback():
    import argparse

    from rapids_engage.commands import _guarded
    from rich.console import Console

    def fail():
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        _guarded(fail, argparse.Namespace(debug=False), Console(stderr=True))


def test_disk_full_is_one_line_naming_where(capsys):
    import argparse
    import errno

    from rapids_engage.commands import _guarded
    from rich.console import Console

    def fail():
        raise OSError(errno.ENOSPC, "No space left on device", "/data/store/.tmp-1/train/part.0.parquet")

    assert _guarded(fail, argparse.Namespace(debug=False), Console(stderr=True)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: disk full writing /data/store/.tmp-1/train/part.0.parquet") and "local_directory" in err


def undocumented_report_keys(report: dict, readme: str) -> list[str]:
    """Keys of a report.json that README.md's "report.json" section does not name (as `key` or "key"): the
    top level, `store`, `split`, `input`, `run`, `memory`, `timings_s` and each target's (the sections whose keys it lists)."""
    section = readme.split("\n## report.json", 1)[1].split("\n## ", 1)[0]
    keys = [*report, *(f"{part}.{k}" for part in ("store", "split", "input", "run", "memory", "timings_s") for k in report.get(part) or {}),
            *(f"targets.{t}.{k}" for t, m in report["targets"].items() for k in m)]
    return sorted({k for k in keys if f"`{k.rsplit('.', 1)[-1]}`" not in section and f'"{k.rsplit(".", 1)[-1]}"' not in section})


def test_every_report_key_is_documented(demo):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert undocumented_report_keys(demo[2], readme) == []


@pytest.mark.parametrize("meta, why", [
    ([1, 2], r"it is an array, not an object"),
    ({"features": ["f"], "store": {"path": "s", "version": "v"}}, r"key target is missing"),
    ({"target": "like", "store": {"path": "s", "version": "v"}}, r"key features is missing"),
    ({"target": "like", "features": ["f"], "store": "v"}, r"key store is a string, not an object or null"),
    ({"target": "like", "features": ["f"], "store": {"path": "s"}}, r"key store.version is missing"),
])
def test_a_model_meta_of_another_shape_is_refused_naming_it(tmp_path, meta, why):
    """A models/<target>.meta.json holding valid JSON of another shape (an array, a key missing or of another
    type) ended `predict` in a TypeError / KeyError / AttributeError traceback, or later, at scoring, in
    KeyError 'features'. (Found by the damaged-files sweep.)"""
    from rapids_engage.predict import ModelError, load_models
    from rapids_engage.store_admin import models_using
    from rapids_engage.store import FeatureStore

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "like.meta.json").write_text(json.dumps(meta))
    (tmp_path / "models" / "like.json").write_text("{}")
    with pytest.raises(ModelError, match=re.escape(str(tmp_path / "models" / "like.meta.json")) + rf" is damaged \({why}\): "
                       "copy the run's models/ whole, or rerun"):
        load_models(tmp_path)
    models_using(FeatureStore(tmp_path / "store"))  # `store --keep` looks at it without a traceback (AttributeError)


def test_a_model_without_its_meta_is_refused_not_left_out(tmp_path):
    """A models/<target>.json whose <target>.meta.json was lost (a partial copy) was skipped: `predict` scored the
    other targets only, without a word."""
    from rapids_engage.predict import ModelError, load_models

    models = tmp_path / "models"
    models.mkdir()
    meta = {"target": "like", "features": ["f"], "store": {"path": "s", "version": "v"}}
    (models / "like.meta.json").write_text(json.dumps(meta))
    (models / "like.json").write_text("{}")
    assert list(load_models(tmp_path)[0]) == ["like"]
    (models / "report.json").write_text("{}")  # not a model: a run's own JSON files may lie beside (--model-dir RUN)
    assert list(load_models(tmp_path)[0]) == ["like"]
    (models / "quote.json").write_text('{"learner":{}}')
    with pytest.raises(ModelError, match=re.escape(str(models / "quote.json")) + " has no quote.meta.json beside it"):
        load_models(tmp_path)


def _like_argv(small_cache, out, cluster=None) -> list[str]:
    """A 2,000-row run of the like model alone on one worker: the runs that a stopped or failed publication follows.
    ``cluster``: an existing one to run on (conftest's in-process ``tcp_cluster``), for the runs whose test is about what
    they publish, not the cluster they start (a cluster of a worker process was ~3 s of each such run)."""
    on = ["--set", f"cluster.scheduler_address={cluster.scheduler_address}"] if cluster is not None else []
    return ["--gpus", "0", "--rows", "2000", "--out", str(out), "--quiet", "--no-plots", "--set", f"data.cache_dir={small_cache}",
            "--set", "train.targets=[like]", "--set", "cluster.n_workers=1", "--set", "train.num_boost_round=5", *on]


@dataclass(frozen=True)
class LikeRun:
    """:func:`_like_argv`'s run: where it ran from (``cwd``) and its ``out``, as ``../run`` from there; its wall time."""

    cwd: Path
    out: Path
    wall: float


@pytest.fixture(scope="module")
def timed_like_run(small_cache, tmp_path_factory) -> LikeRun:
    """:func:`_like_argv`'s run, made once, with its plots (the last run's plots are what a stopped run must put back
    or remove), from a directory beside its --out with relative paths (``--out ../run`` and a relative
    data.cache_dir, whose report paths :func:`test_report_paths_are_normalised_as_the_config_s` reads), timed around
    ``main`` (:func:`test_timings_account_for_the_whole_run`)."""
    import os
    import time

    cwd = tmp_path_factory.mktemp("like-run") / "sub"
    cwd.mkdir()
    before = os.getcwd()
    os.chdir(cwd)
    try:
        start = time.time()
        code = main(_plotted(_like_argv(os.path.relpath(small_cache), Path("../run"))))
        wall = time.time() - start
    finally:
        os.chdir(before)
    out = cwd.parent / "run"
    assert code == 0 and (out / "plots" / "pr_curves.png").is_file()
    return LikeRun(cwd, out, wall)


@pytest.fixture(scope="module")
def like_run(timed_like_run) -> Path:
    """:func:`timed_like_run`'s output directory: each test that publishes over it gets a copy (:func:`_copy_of_like_run`)."""
    return timed_like_run.out


def _plotted(argv: list[str]) -> list[str]:
    """``argv`` drawing its plots (``--plots`` for ``--no-plots``)."""
    return ["--plots" if a == "--no-plots" else a for a in argv]


def _copy_of_like_run(like_run: Path, tmp_path: Path) -> Path:
    import shutil

    out = tmp_path / "run"
    shutil.copytree(like_run, out)
    return out


def test_a_gap_reaches_the_report_and_builds_another_store_version_and_no_gap_changes_nothing(small_cache, like_run,
                                                                                              tmp_path, tcp_cluster):
    """split.gap_hours=24 (--set): report.json's split says it and counts the purged rows (those of the 24 h before the
    cut-off, from the data), the training split ends 24 h before the cut-off, validation is unchanged, and the store
    version is another (not a cache hit of the run without a gap). Gap 0 is the definition, and version, before gaps
    (``like_run``'s: split.gap_hours 0 as configs/default.yaml sets it; the gap run builds into a copy of its store)."""
    store = tmp_path / "store"
    shutil.copytree(like_run / "store", store)
    runs = {"plain": like_run, "gap": tmp_path / "gap"}
    shared = ["--set", f"features.store={store}"]
    assert main([*_like_argv(small_cache, runs["gap"], tcp_cluster), *shared, "--set", "split.gap_hours=24"]) == 0
    plain = json.loads((runs["plain"] / "report.json").read_text())
    gap = json.loads((runs["gap"] / "report.json").read_text())
    cutoff = plain["split"]["cutoff"]
    times = pd.read_parquet(plain["split"]["data_dir"], columns=["tweet_timestamp"])["tweet_timestamp"]
    purged = int(((times > cutoff - 86_400) & (times <= cutoff)).sum())
    assert purged > 0 and gap["split"] == plain["split"] | {"gap_hours": 24.0, "purged_rows": purged}
    assert (plain["split"]["gap_hours"], plain["split"]["purged_rows"]) == (0.0, 0)
    assert gap["rows"] == {"train": plain["rows"]["train"] - purged, "valid": plain["rows"]["valid"]}
    assert gap["store"]["version"] != plain["store"]["version"] and gap["store"]["cache_hit"] is False
    versions = {r["store"]["version"]: FeatureStore(store).check(r["store"]["version"])[0] for r in (plain, gap)}
    # gap 0: the split definition, hence the store version, of the runs before gaps
    assert versions[plain["store"]["version"]]["definition"]["split"] == {"valid_hours": 24.0, "cutoff": cutoff}
    assert versions[gap["store"]["version"]]["definition"]["split"] == {"valid_hours": 24.0, "cutoff": cutoff, "gap_hours": 24.0}
    stored = pd.read_parquet(store / gap["store"]["version"] / "train", columns=["tweet_timestamp"])["tweet_timestamp"]
    assert stored.max() <= cutoff - 86_400 and len(stored) == gap["rows"]["train"]
    assert f"{purged:,} rows purged (`split.gap_hours`" in (runs["gap"] / "report.md").read_text()
    assert gap["config"]["split"] == {"valid_hours": 24.0, "gap_hours": 24.0}


def test_a_run_stopped_after_publishing_its_models_leaves_no_old_report_beside_them(small_cache, like_run, tmp_path,
                                                                                    tcp_cluster, monkeypatch):
    """Ctrl-C between the rename that publishes models/ and the writes of report.json and config.yaml left the
    last run's report and config beside this run's models (predict --history validation then read the old
    run's split). They are removed before the models are replaced: the report is missing, and says so."""
    from rapids_engage import pipeline
    from rapids_engage.backend import CPU
    from rapids_engage.predict import history_events

    out = _copy_of_like_run(like_run, tmp_path)
    argv = _like_argv(small_cache, out, tcp_cluster)
    before = {p.name: p.read_bytes() for p in (out / "models").iterdir()}
    publish = pipeline.replace_dir

    def stopped_after(tmp, final):
        publish(tmp, final)
        if Path(final).name == "models":
            raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "replace_dir", stopped_after)
    assert main([*argv, "--set", "train.max_depth=2"]) == 130
    assert {p.name: p.read_bytes() for p in (out / "models").iterdir()} != before  # the new models, published
    assert not [name for name in ("report.json", "report.md", "config.yaml") if (out / name).exists()]
    with pytest.raises(DataError, match=re.escape(f"reads the run's split from {out / 'report.json'}, which is missing")):
        history_events("validation", out / "models", CPU, "event_time")
    monkeypatch.undo()
    assert main([*argv, "--set", "train.max_depth=2"]) == 0 and (out / "report.json").is_file()


def test_models_that_fail_to_publish_keep_the_last_run_s_report_beside_them(small_cache, like_run, tmp_path,
                                                                            tcp_cluster, monkeypatch):
    """The last run's report.json, report.md and config.yaml are removed before new models are published; when the
    publication itself fails (an OSError renaming models/), the last run's models stay, and so do the files that
    describe them (they were deleted: predict --history validation and `features --out`'s check lost the run's)."""
    from rapids_engage import pipeline

    out = _copy_of_like_run(like_run, tmp_path)
    argv = _like_argv(small_cache, out, tcp_cluster)
    names = ("report.json", "report.md", "config.yaml")
    before = {p.relative_to(out): p.read_bytes() for p in [*(out / "models").iterdir(), *(out / n for n in names)]}
    publish = pipeline.replace_dir

    def refused(tmp, final):
        if Path(final).name == "models":
            raise PermissionError(13, "Permission denied", str(final))
        publish(tmp, final)

    monkeypatch.setattr(pipeline, "replace_dir", refused)
    assert main([*argv, "--set", "train.max_depth=2"]) != 0
    after = {p.relative_to(out): p.read_bytes() for p in [*(out / "models").iterdir(), *(out / n for n in names if (out / n).exists())]}
    assert after == before


def test_a_run_stopped_after_plotting_leaves_no_new_plots_beside_the_old_models(small_cache, like_run, tmp_path,
                                                                                tcp_cluster, monkeypatch):
    """plots/ was published in its own stage, before the models: a run stopped after it (Ctrl-C, a kill) left its
    plots beside the last run's models and report. The plots are published with the models now, the last run's
    removed with its report: stopped between the models and the plots, a run leaves no plots; stopped before the
    models were replaced, the last run's plots and report are put back beside them."""
    from rapids_engage import pipeline

    out = _copy_of_like_run(like_run, tmp_path)  # the last run, its plots drawn
    argv = _plotted(_like_argv(small_cache, out, tcp_cluster))
    assert (out / "plots" / "pr_curves.png").is_file()
    before = {p.name: p.read_bytes() for p in (out / "models").iterdir()}
    publish = pipeline.replace_dir

    def stopped(at: str):
        def replace(tmp, final):
            if Path(final).name == "models" and at == "before":
                raise KeyboardInterrupt
            publish(tmp, final)
            if Path(final).name == "models" and at == "after":
                raise KeyboardInterrupt
        return replace

    for at in ("before", "after"):
        monkeypatch.setattr(pipeline, "replace_dir", stopped(at))
        assert main([*argv, "--set", "train.max_depth=2"]) == 130
        kept = at == "before"
        assert ({p.name: p.read_bytes() for p in (out / "models").iterdir()} == before) == kept
        assert (out / "plots" / "pr_curves.png").is_file() == kept and (out / "report.md").is_file() == kept, at
    monkeypatch.undo()
    assert main([*argv, "--set", "train.max_depth=2"]) == 0 and (out / "plots" / "pr_curves.png").is_file()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".tmp-")]  # nothing staged left


@pytest.mark.parametrize("report, why", [
    ('{"split": {"cutoff": 1', r"Expecting .*: not JSON, cut short or another format"),
    ("{}", "key split is missing"),
    ('{"split": {"data_dir": "d"}}', "key split.cutoff is missing"),
])
def test_history_validation_names_a_damaged_report(tmp_path, report, why):
    """`predict --history validation` with the run's report.json cut short said 'error: Expecting value: line 270
    column 3' (no file named); without its split, a KeyError traceback. (Found by the damaged-files sweep.)"""
    from rapids_engage.backend import CPU
    from rapids_engage.predict import history_events

    (tmp_path / "models").mkdir()
    (tmp_path / "report.json").write_text(report)
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "report.json")) + rf" is damaged \({why}\): rerun"):
        history_events("validation", tmp_path / "models", CPU, "t")


def test_history_validation_folds_the_gap_before_the_validation_window(tmp_path):
    """With split.gap_hours the serving state ends at the training rows' end, the gap before the cut-off: `--history
    validation` folds the gap's rows too (from the cut-off, the state would skip them)."""
    from rapids_engage.backend import CPU
    from rapids_engage.predict import history_events

    (tmp_path / "models").mkdir()
    (tmp_path / "data").mkdir()
    pd.DataFrame({"t": np.arange(1_600_000_000, 1_600_000_010)}).to_parquet(tmp_path / "data" / "part.0.parquet")
    for gap, first in ((None, 1_600_000_008), (0, 1_600_000_008), (3 / 3600, 1_600_000_005)):
        split = {"data_dir": str(tmp_path / "data"), "cutoff": 1_600_000_007} | ({} if gap is None else {"gap_hours": gap})
        (tmp_path / "report.json").write_text(json.dumps({"split": split}))
        assert history_events("validation", tmp_path / "models", CPU, "t")["t"].tolist() == list(range(first, 1_600_000_010))


@pytest.mark.parametrize("text", ['{"learner": {"attributes": {}, ', "", "[1]"])
def test_a_damaged_model_file_is_refused_naming_it(tmp_path, text):
    """A models/<target>.json cut short ended `predict` and Scorer in XGBoost's error: several lines with a C++
    stack trace, and for a file cut short not its name. (Found by the damaged-files sweep.)"""
    from rapids_engage.backend import CPU
    from rapids_engage.predict import ModelError, load_booster

    (tmp_path / "like.json").write_text(text)
    with pytest.raises(ModelError, match=re.escape(str(tmp_path / "like.json")) + r" is damaged \(XGBoost cannot load it: "
                       r"[^\n]*\): copy the run's models/ whole, or rerun$"):
        load_booster({"model_file": str(tmp_path / "like.json")}, CPU)


def test_timings_account_for_the_whole_run(timed_like_run):
    """report.json's timings_s left out starting and closing the cluster and drawing the plots: at 30k rows the
    stages added up to 25.9 s of a 43.7 s run (the plots ~15 s of the gap), so a reader looking for what is slow
    could not find it. They now sum to the run's wall time (``run``'s start to end), in report.md's table too
    (on :func:`timed_like_run`: a plotted 2,000-row run of the like model, timed around ``main``)."""
    import datetime

    out, wall = timed_like_run.out, timed_like_run.wall
    report = json.loads((out / "report.json").read_text())
    timings = report["timings_s"]
    assert list(timings) == ["data", "cluster", "split", "features", "train", "evaluate", "plots", "other"]
    assert timings["cluster"] > 0 and timings["plots"] > 0 and timings["other"] >= 0
    run = report["run"]
    span = (datetime.datetime.fromisoformat(run["finished_utc"]) - datetime.datetime.fromisoformat(run["started_utc"])).total_seconds()
    assert sum(timings.values()) == pytest.approx(span, abs=1.01)  # report.json gives whole seconds
    assert span <= wall + 1.01 and sum(timings.values()) > 0.9 * wall  # the whole run, less loading the config
    assert undocumented_report_keys(report, (Path(__file__).resolve().parents[1] / "README.md").read_text()) == []
    md = (out / "report.md").read_text()
    assert f"| **total** | **{sum(timings.values()):.2f}** |" in md and "| plots |" in md and "| cluster |" in md


def test_report_paths_are_normalised_as_the_config_s(small_cache, timed_like_run):
    """With ``--out ../x`` report.json's models and store.path (and split.data_dir, of a relative data.cache_dir) were
    ``/cwd/sub/../x/models``, while its config's paths are normalised (``/cwd/x``). (Left by an earlier hunt.) On
    :func:`timed_like_run`, run from ``<tmp>/sub`` with ``--out ../run`` and a relative data.cache_dir."""
    import os

    tmp_path = timed_like_run.cwd.parent
    assert timed_like_run.out == tmp_path / "run"
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["config"]["out"] == str(tmp_path / "run")
    assert report["models"] == str(tmp_path / "run" / "models")
    assert report["store"]["path"] == str(tmp_path / "run" / "store")
    assert report["split"]["data_dir"].startswith(str(small_cache) + os.sep) and ".." not in report["split"]["data_dir"]


def test_features_into_a_run_of_another_config_is_refused_and_leaves_its_config(small_cache, tmp_path, capsys, tcp_cluster):
    """``features --out RUN`` into the directory of a full run replaced the run's config.yaml with its own, so the
    run's report and models no longer matched the config beside them (``--config RUN/config.yaml`` reran another
    run; ``predict`` of a table run reads its data.table there). It is refused before any work, naming a setting
    that differs; the run's own options (the same config) build or find its store version as before."""
    out = tmp_path / "run"
    argv = ["--gpus", "0", "--rows", "2000", "--out", str(out), "--quiet", "--no-plots", "--set", f"data.cache_dir={small_cache}",
            "--set", "train.targets=[like]", "--set", "train.num_boost_round=5", "--set", "cluster.n_workers=1",
            "--set", f"cluster.scheduler_address={tcp_cluster.scheduler_address}"]  # in process: 3 cluster starts less
    assert main(argv) == 0
    config = (out / "config.yaml").read_text()
    capsys.readouterr()
    features = ["features", *(a for a in argv if a != "--no-plots")]
    assert main([*features, "--set", "train.max_depth=3"]) == 2
    err = capsys.readouterr().err.replace("\n", "")
    assert (f"out: {out} holds a run (report.json) of another config (train.max_depth: 3 here, 6 there), whose "
            "config.yaml features would replace: choose another --out") in err, err
    assert (out / "config.yaml").read_text() == config and not (out / "features.json").exists()
    assert main(features) == 0
    assert (out / "config.yaml").read_text() == config and (out / "features.json").is_file()
    # a run into a directory holding an earlier `features` run's features.json (here of another store version) left it
    # beside the new report, recording another config and version; report.json holds its keys: it goes (left by an
    # earlier hunt)
    summary = json.loads((out / "features.json").read_text())
    assert main([*argv, "--set", "features.history.keys=[]"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["store"]["version"] != summary["store"]["version"] and not (out / "features.json").exists()
    assert set(summary) <= set(report)


def test_scorer_gives_each_target_the_matrix_of_its_own_features():
    """Targets whose boosters were trained on other feature lists each get a matrix of their own list
    (the matrix is shared only between targets of the same list)."""
    from types import SimpleNamespace

    from rapids_engage.serve import Scorer

    class FirstColumn:
        def inplace_predict(self, matrix):
            return matrix[:, 0]

    scorer = object.__new__(Scorer)
    scorer.boosters = {"a": FirstColumn(), "b": FirstColumn(), "c": FirstColumn()}
    scorer.metas = {t: {"features": f, "objective": "binary:logistic"} for t, f in (("a", ["f"]), ("b", ["g", "f"]), ("c", ["f"]))}
    scorer.layout = SimpleNamespace(target=lambda t: SimpleNamespace(is_regression=False))
    out = scorer.scores(pd.DataFrame({"f": [0.25, 0.5], "g": [0.75, np.nan]}))
    np.testing.assert_allclose(out["a"], [0.25, 0.5])
    np.testing.assert_allclose(out["b"], [0.75, np.nan])  # its own list, nulls as NaN
    np.testing.assert_allclose(out["c"], [0.25, 0.5])


def test_history_gap_is_said_only_beyond_a_day():
    from types import SimpleNamespace

    from rapids_engage.predict import HISTORY_GAP_S, history_gap

    end = 1_600_000_000
    builder = SimpleNamespace(history_end=lambda: end)
    assert history_gap(builder, end + HISTORY_GAP_S) is None  # exactly a day: no gap said
    assert "1.0 days after the serving state ends" in history_gap(builder, end + HISTORY_GAP_S + 1)
    assert history_gap(builder, None) is None and history_gap(SimpleNamespace(history_end=lambda: None), end + 10**6) is None


def test_a_run_stopped_while_training_removes_its_staged_models(small_cache, like_run, tmp_path, tcp_cluster, monkeypatch):
    """Ctrl-C during training left an empty `.tmp-models-<pid>` in --out (deleted only by the next run); the
    stopped run removes its own staging directory now, and the last run's published models stay."""
    from rapids_engage import pipeline

    out = _copy_of_like_run(like_run, tmp_path)
    argv = _like_argv(small_cache, out, tcp_cluster)
    before = {p.name: p.read_bytes() for p in (out / "models").iterdir()}

    def stopped(*args, **kwargs):
        assert list(out.glob(".tmp-models-*"))  # staged before training, as the models are saved into it
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "train_stage", stopped)
    assert main([*argv, "--set", "train.max_depth=2"]) == 130
    assert not list(out.glob(".tmp-*"))
    assert {p.name: p.read_bytes() for p in (out / "models").iterdir()} == before


@pytest.mark.parametrize("change", ["join", "retire"])
def test_the_report_counts_the_workers_training_ran_on(small_cache, tmp_path, monkeypatch, change):
    """report.json's n_workers counts the workers at the start; a worker that joined after (an adaptive cluster behind
    --scheduler-address) or was retired before training left report.json and report.md saying 2 workers of a run whose
    models were trained on 3 (nothing else said so) or 1. `n_workers_train` counts the workers training ran on."""
    from rapids_engage import pipeline

    real = pipeline.train_stage

    def changed_first(cfg, backend, prog, client, *args, **kwargs):
        if change == "join":
            client.cluster.scale(3)
            client.wait_for_workers(3, timeout=60)
        else:
            client.retire_workers([sorted(client.nthreads())[0]])
        return real(cfg, backend, prog, client, *args, **kwargs)

    monkeypatch.setattr(pipeline, "train_stage", changed_first)
    out = tmp_path / "run"
    assert main(["--gpus", "0", "--rows", "2000", "--out", str(out), "--quiet", "--no-plots", "--set", f"data.cache_dir={small_cache}",
                 "--set", "train.targets=[like]", "--set", "cluster.n_workers=2", "--set", "cluster.threads_per_worker=1",
                 "--set", "train.num_boost_round=5"]) == 0
    report = json.loads((out / "report.json").read_text())
    trained = 3 if change == "join" else 1
    assert (report["n_workers"], report["n_workers_train"], report["workers_lost"]) == (2, trained, int(change == "retire"))
    assert f"| workers | 2 at the start, {trained} in training |" in (out / "report.md").read_text()


@pytest.mark.parametrize("cached", [False, True], ids=["built", "cache-hit"])
def test_store_keep_during_the_store_stage_spares_the_version_the_run_trains_from(small_cache, like_run, tmp_path, monkeypatch,
                                                                                  cached, tcp_cluster):
    """A run marked its store version in use only after the store stage returned: `store --keep 0` run in between
    (a housekeeping job) deleted the version the run was about to train from. The mark is taken as soon as the
    version is known, inside the store stage; a `--keep` run at its end spares the version, built or found."""
    from rapids_engage import run_stages

    store = tmp_path / "shared" / "store"
    argv = ["--gpus", "0", "--rows", "2000", "--quiet", "--no-plots", "--set", f"data.cache_dir={small_cache}",
            "--set", f"features.store={store}", "--set", "train.targets=[like]", "--set", "cluster.n_workers=1",
            "--set", "train.num_boost_round=5", "--set", f"cluster.scheduler_address={tcp_cluster.scheduler_address}"]
    if cached:  # like_run's store holds this version (the same data and features): a copy, without models to keep it
        shutil.copytree(like_run / "store", store)
    spilled = run_stages.spilled_bytes

    def housekeeping(client):  # called by the store stage once the version is built or found
        assert main(["store", str(store), "--keep", "0", "--quiet"]) == 0
        return spilled(client)

    monkeypatch.setattr(run_stages, "spilled_bytes", housekeeping)
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["store"]["cache_hit"] is cached
    assert FeatureStore(store).versions() == [report["store"]["version"]]
    assert not (store / ".in-use").exists()  # released once the models are published
