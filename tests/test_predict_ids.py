"""Predictions of a table carry the user's own row ids (``raw_<row_id column>``) and join back to the input.

A tiny Hacker-News-like CSV (``id`` is both the row id and the item key, as in ``configs/hn.yaml``)
is trained on, then new posts are ingested ``--unlabelled`` and scored with ``predict`` and with
``serve.Scorer``; the raw ids are never features.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rapids_engage.config import TableConfig, TargetSpec
from rapids_engage.ingest import IngestError, ingest_table
from rapids_engage.layout import Layout, table_layout
from rapids_engage.pipeline import main
from rapids_engage.serve import Scorer

pytestmark = pytest.mark.slow

START = 1_600_000_000
DAYS = 6


def _posts(n: int, seed: int, start: int, days: float) -> pd.DataFrame:
    """Posts with ids the user knows: text with leading zeros, as a CSV holds them."""
    rng = np.random.default_rng(seed)
    authors = np.array([f"user{i}" for i in range(40)])
    skill = np.linspace(-1, 1, len(authors))
    a = rng.integers(0, len(authors), n)
    show = rng.random(n) < 0.3
    return pd.DataFrame({
        "id": [f"{seed:02d}{i:06d}" for i in range(n)],
        "author": authors[a],
        "title": np.where(show, "Show HN: a thing", "Some news"),
        "created": np.sort(rng.integers(start, start + int(days * 86400), n)),
        "points": rng.poisson(np.exp(0.5 + skill[a] + 0.5 * show)),
    })


def _config(tmp: Path, csv: Path) -> Path:
    cfg = f"""
out: {tmp / 'run'}
data:
  source: table
  path: {csv}
  cache_dir: {tmp / 'cache'}
  table:
    format: csv
    time: created
    time_format: unix
    row_id: [id]
    item: id
    creator: author
    targets:
      points: {{column: points, kind: count}}
    text: [title]
cluster: {{gpus: 0, n_workers: 1, threads_per_worker: 2}}
split: {{valid_hours: 24}}
features:
  target_encoding: {{keys: [[author], [title_first_word]]}}
  counts: [[author]]
  history: {{keys: [[author]], windows: [86400]}}
train: {{targets: [points], num_boost_round: 30, early_stopping_rounds: 10, max_depth: 3}}
"""
    path = tmp / "posts.yaml"
    path.write_text(cfg)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ids")
    csv = tmp / "posts.csv"
    _posts(3000, 1, START, DAYS).to_csv(csv, index=False)
    config = _config(tmp, csv)
    assert main(["--config", str(config), "--quiet"]) == 0
    return tmp, config, json.loads((tmp / "run" / "report.json").read_text())


def test_predictions_join_back_to_every_input_row_once(trained, tmp_path, tcp_cluster):
    tmp, config, _ = trained
    new = _posts(400, 2, START + DAYS * 86400, 1).drop(columns=["points"])
    new = new.sample(frac=1, random_state=0)  # any order: the join does not rely on it
    new.to_csv(tmp_path / "new.csv", index=False)
    ingested, out = tmp_path / "ingested", tmp_path / "scored"
    assert main(["ingest", "--config", str(config), "--input", str(tmp_path / "new.csv"), "--out", str(ingested),
                 "--unlabelled"]) == 0
    assert main(["predict", "--model-dir", str(tmp / "run"), "--input", str(ingested), "--out", str(out),
                 "--gpus", "0", "--quiet", "--scheduler-address", tcp_cluster.scheduler_address]) == 0  # in process
    preds = pd.read_parquet(out / "predictions")
    assert list(preds.columns) == ["row_id", "raw_id", "pred_points"]
    # the README's join: the input's id column read as text, on the raw id
    inputs = pd.read_csv(tmp_path / "new.csv", dtype={"id": str})
    joined = inputs.merge(preds, left_on="id", right_on="raw_id", how="outer", validate="one_to_one", indicator=True)
    assert len(joined) == len(inputs) == len(preds) and (joined["_merge"] == "both").all()
    assert joined["pred_points"].notna().all() and joined["id"].str.startswith("02").all()  # leading zeros kept
    # in process: the same ids and scores, in the rows' order
    rows = pd.read_parquet(ingested / "data").drop(columns=["day"], errors="ignore")
    served = Scorer(tmp / "run").predict(rows)
    assert list(served.columns) == list(preds.columns) and served["raw_id"].tolist() == rows["raw_id"].tolist()
    both = preds.merge(served, on=["row_id", "raw_id"], suffixes=("", "_served"), validate="one_to_one")
    assert len(both) == len(preds)
    np.testing.assert_allclose(both["pred_points_served"], both["pred_points"], rtol=1e-6, atol=1e-6)
    # rows without the raw ids (ingested before they were kept) are still scored, on the row key alone
    old = Scorer(tmp / "run").predict(rows.drop(columns=["raw_id"]))
    assert list(old.columns) == ["row_id", "pred_points"]


def test_rows_the_state_cannot_serve_are_one_line_errors(trained):
    from rapids_engage.data import DataError
    from rapids_engage.predict import history_gap

    tmp, _, report = trained
    scorer = Scorer(tmp / "run")
    split = report["split"]
    rows = pd.read_parquet(split["data_dir"], filters=[("event_time", ">", split["cutoff"])]).drop(columns=["day"])
    # a text column of numbers, rather than a traceback from the text features
    with pytest.raises(DataError, match="column 'title' is int64 here but the layout reads it as text"):
        scorer.features(rows.assign(title=1))
    with pytest.raises(TypeError, match=r"rows must be a data frame .*, got list \(raw records, .*Scorer.predict_records\)"):
        scorer.predict(rows.to_dict("records"))  # records belong to predict_records
    # milliseconds are not a 'history gap' (a date out of range): the rows' check names them
    assert history_gap(scorer.builder, int(rows["event_time"].max()) * 1000) is None


def test_a_stale_record_drops_only_itself_when_frame_labels_repeat(trained):
    """predict_records of a DataFrame whose index repeats a label (batches concatenated without
    ignore_index): a record before the training end is rejected, and the good record sharing its
    label is still scored (it used to vanish: the stale rows were dropped by label, not position)."""
    tmp, _, _ = trained
    new = _posts(3, 2, START + DAYS * 86400, 1).drop(columns=["points"]).astype(str)
    old = _posts(1, 3, START, 1).drop(columns=["points"]).astype(str)  # the first day: before the training end
    batch = pd.concat([old, new.iloc[:2]]).set_axis(["a", "a", "b"])
    preds, rejected = Scorer(tmp / "run").predict_records(batch)
    assert preds.index.tolist() == ["a", "b"] and preds["raw_id"].tolist() == new["id"].iloc[:2].tolist()
    assert rejected[["record", "reason"]].values.tolist() == [["a", "before_training_end"]]
    alone, _ = Scorer(tmp / "run").predict_records(new.iloc[:2])
    np.testing.assert_allclose(preds["pred_points"].to_numpy(), alone["pred_points"].to_numpy())


def test_raw_ids_are_never_features(trained):
    tmp, _, report = trained
    models = tmp / "run" / "models"
    metas = [json.loads(p.read_text()) for p in models.glob("*.meta.json")]
    assert metas and all(not any(f.startswith("raw_") or f == "id" for f in m["features"]) for m in metas)
    assert not [f for f in report["features"] if f.startswith("raw_")]
    store = Path(report["store"]["path"]) / report["store"]["version"]
    spec = json.loads((store / "state" / "features.json").read_text())
    assert spec["layout"]["raw_ids"] == ["raw_id"] and not [f for f in spec["features"] if f.startswith("raw_")]
    for split in ("train", "valid"):  # nor carried in the store: only predict and the Scorer carry them
        stored = pd.read_parquet(store / split)
        assert "raw_id" not in stored.columns and len(stored)
    assert Layout.from_dict(spec["layout"]).raw_ids == ("raw_id",)


def test_the_collision_check_covers_every_row_wise_feature_and_key(tmp_path):
    """Each column the row-wise features add (:mod:`rapids_engage.features.table_content`) is refused as a
    ``raw_<row_id>`` name, so a raw id can never shadow a feature."""
    from rapids_engage.features.table_content import feature_names, key_names

    base = dict(format="csv", time="t", targets={"raw_y": TargetSpec("y", "binary")}, text=["raw_a"], url=["raw_b"],
                lists=["raw_c"], numeric=["raw_d"], categorical=["raw_e"])
    names = [*feature_names(table_layout(TableConfig(**base))), *key_names(table_layout(TableConfig(**base))), "raw_y"]
    csv = tmp_path / "t.csv"
    csv.write_text("t,y\n1600000000,1\n")
    for name in (n for n in names if n.startswith("raw_")):
        spec = TableConfig(**(base | {"row_id": [name[len("raw_"):]]}))
        with pytest.raises(IngestError, match=f"kept as '{name}', which is already"):
            ingest_table(csv, tmp_path / "o", spec)


def test_a_record_at_the_training_end_is_scored_one_a_second_earlier_rejected(trained):
    """predict_records rejects as stale only records before the end of the history state (as transform
    refuses only earlier rows): a record at that very second is scored."""
    tmp, _, _ = trained
    scorer = Scorer(tmp / "run")
    end = scorer.builder.history_end()
    records = _posts(2, 4, START, 1).drop(columns=["points"]).assign(created=[end, end - 1]).astype(str)
    preds, rejected = scorer.predict_records(records)
    assert preds.index.tolist() == [0] and preds["pred_points"].notna().all()
    assert rejected[["record", "reason"]].values.tolist() == [[1, "before_training_end"]]


def test_a_damaged_model_file_is_refused_before_the_cluster_starts(trained, tmp_path, monkeypatch):
    """`predict` with a models/<target>.json cut short started the dask cluster and built the features of the
    input (seconds) before XGBoost read the model and the run ended in the one-line error; the models are read
    with their metas and the store version now, before the cluster. (Left by an earlier hunt.)"""
    import shutil

    from rapids_engage import cluster
    from rapids_engage.backend import CPU
    from rapids_engage.config import ClusterConfig
    from rapids_engage.predict import ModelError, run_predict

    tmp, _, report = trained
    run = tmp_path / "run"
    shutil.copytree(tmp / "run" / "models", run / "models")
    model = run / "models" / "points.json"
    model.write_bytes(model.read_bytes()[:300])

    def no_cluster(*args, **kwargs):
        raise AssertionError("the cluster was started before the models were checked")

    monkeypatch.setattr(cluster, "start_cluster", no_cluster)
    with pytest.raises(ModelError, match=re.escape(str(model)) + r" is damaged \(XGBoost cannot load it: "):
        run_predict(run, Path(report["split"]["data_dir"]), tmp_path / "scored", CPU, ClusterConfig(gpus=0),
                    store=tmp / "run" / "store")


def test_predict_reads_the_models_once(trained, tmp_path, monkeypatch, tcp_cluster):
    """run_predict read models/ (every meta) before the cluster started, loaded the boosters from those, then
    predict() read the metas again: two reads of a models/ a rerun may replace in between, the boosters of one
    run then paired with the feature lists of the other. The metas read first are passed along now."""
    from rapids_engage import predict as predict_mod

    tmp, config, _ = trained
    _posts(50, 4, START + DAYS * 86400, 1).drop(columns=["points"]).to_csv(tmp_path / "new.csv", index=False)
    assert main(["ingest", "--config", str(config), "--input", str(tmp_path / "new.csv"), "--out",
                 str(tmp_path / "ingested"), "--unlabelled", "--quiet"]) == 0
    read, read_meta = [], predict_mod._read_meta
    monkeypatch.setattr(predict_mod, "_read_meta", lambda path: read.append(path.name) or read_meta(path))
    assert main(["predict", "--model-dir", str(tmp / "run"), "--input", str(tmp_path / "ingested"), "--out",
                 str(tmp_path / "scored"), "--gpus", "0", "--quiet", "--scheduler-address", tcp_cluster.scheduler_address]) == 0
    assert read == ["points.meta.json"]
    assert len(pd.read_parquet(tmp_path / "scored" / "predictions")) == 50


def test_predict_reads_each_input_footer_once(trained, tmp_path, monkeypatch, count_footer_reads):
    """predict read each input file's parquet footer three or four times before the cluster started (rows, columns,
    partition sizes, earliest time; once more to count rows it refuses): seconds of latency for thousands of files
    on a network filesystem. Each footer is read once now and passed to every check."""
    from rapids_engage import cluster
    from rapids_engage.backend import CPU
    from rapids_engage.config import ClusterConfig
    from rapids_engage.data import DataError
    from rapids_engage.predict import run_predict

    class Started(Exception):
        pass

    def started(*args, **kwargs):
        raise Started

    tmp, _, report = trained
    time, cutoff = report["layout"]["time"], report["split"]["cutoff"]
    events = pd.read_parquet(report["split"]["data_dir"]).sort_values(time)
    later, earlier = events[events[time] > cutoff], events[events[time] <= cutoff].tail(30)
    early = int((earlier[time] < earlier[time].max()).sum())  # the serving state ends at the last training time
    for name, rows in {"later": later, "mixed": pd.concat([earlier, later.head(30)])}.items():
        (tmp_path / name).mkdir()
        for i in range(3):
            rows.iloc[i * len(rows) // 3:(i + 1) * len(rows) // 3].to_parquet(tmp_path / name / f"part-{i}.parquet", index=False, row_group_size=10)
    monkeypatch.setattr(cluster, "start_cluster", started)
    reads = count_footer_reads()
    with pytest.raises(Started):
        run_predict(tmp / "run", tmp_path / "later", tmp_path / "scored", CPU, ClusterConfig(gpus=0))
    assert reads == {f"part-{i}.parquet": 1 for i in range(3)}
    reads.clear()
    with pytest.raises(DataError, match=rf": {early} of 60 rows are earlier"):  # row groups straddling the end read, not their footers
        run_predict(tmp / "run", tmp_path / "mixed", tmp_path / "scored", CPU, ClusterConfig(gpus=0))
    assert reads == {f"part-{i}.parquet": 1 for i in range(3)}


def test_library_predict_names_the_store_it_served_from(trained, tmp_path):
    """predict() (the library call) of a run moved whole served the store/ beside its models/ but reported the
    store the models were trained with, a path that no longer held the version; it names the one served from now,
    as predict.json does."""
    import shutil

    from distributed import Client, LocalCluster

    from rapids_engage.backend import CPU
    from rapids_engage.predict import input_files, predict, read_new_rows

    tmp, _, report = trained
    moved = tmp_path / "moved"
    for folder in ("models", "store"):
        shutil.copytree(tmp / "run" / folder, moved / folder)
    for meta in (moved / "models").glob("*.meta.json"):  # as if the run's old place was cleared
        meta.write_text(json.dumps(json.loads(meta.read_text()) | {"store": {"path": str(tmp_path / "gone"),
                                                                              "version": report["store"]["version"]}}))
    rows = read_new_rows(tmp_path, input_files(Path(report["split"]["data_dir"]))[-1:], Layout.from_dict(report["layout"]))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, Client(cluster) as client:
        result = predict(client, CPU, moved, rows, tmp_path / "scored")
    assert result["store"] == {"path": str((moved / "store").resolve()), "version": report["store"]["version"]}


@pytest.mark.parametrize("bad, message", [
    (lambda p: p.assign(event_time=pd.to_datetime(p["event_time"], unit="s")),
     r"part-1\.parquet: column 'event_time' must hold integer epoch seconds, got datetime64"),
    (lambda p: p.assign(author=p["author"].astype(str)),
     r"part-1\.parquet: key column 'author' is \w+ here but Int64 in the fitted tables"),
    (lambda p: p.assign(event_time=p["event_time"].astype("Int64").mask(p.index == 4)),
     r"part-1\.parquet: column 'event_time' has 1 null value\(s\), the first at index 4"),
    (lambda p: p.assign(event_time=p["event_time"] * 1000),
     r"part-1\.parquet: column 'event_time' holds \d+, not an epoch-seconds time .*milliseconds"),
    (lambda p: p.assign(points=p["points"].mask(p.index == 3, -2)),
     r"part-1\.parquet: target column 'points' holds -2(\.0)? at index 3, not a count \(>= 0\)"),
], ids=["datetime-time", "text-key", "null-time", "milliseconds", "negative-count-label"])
def test_an_input_file_the_state_cannot_serve_is_named_before_the_cluster_starts(trained, tmp_path, monkeypatch, bad, message):
    """dask read every file of an --input as the first one's types and checked the rows per partition: a later file
    with a timestamp time or text keys ended in a traceback from the workers (TypeError: '<=' not supported between
    'int' and 'Timestamp'; a P2P shuffle failure), and a null or millisecond time was told without its file (a
    partition's index). Each file is checked from its footer now, named, before the cluster starts."""
    from rapids_engage import cluster
    from rapids_engage.backend import CPU
    from rapids_engage.config import ClusterConfig
    from rapids_engage.data import DataError
    from rapids_engage.predict import run_predict

    tmp, _, report = trained
    split = report["split"]
    rows = pd.read_parquet(split["data_dir"], filters=[("event_time", ">", split["cutoff"])]).drop(columns=["day"])
    (tmp_path / "new").mkdir()
    for i in range(3):
        part = rows.iloc[i * 20:(i + 1) * 20].reset_index(drop=True)
        (bad(part) if i == 1 else part).to_parquet(tmp_path / "new" / f"part-{i}.parquet", index=False)
    monkeypatch.setattr(cluster, "start_cluster", lambda *a, **k: pytest.fail("the cluster started"))
    with pytest.raises(DataError, match=message):
        run_predict(tmp / "run", tmp_path / "new", tmp_path / "scored", CPU, ClusterConfig(gpus=0))


def test_labels_outside_their_target_s_range_are_named():
    """A negative count label was taken for a missing one (log1p gave NaN: the row left the metrics as unlabelled,
    with a numpy RuntimeWarning); a binary label of 2 failed in the metrics naming a row of the labelled subset.
    check_labels names the column, value and index label; missing labels pass (unlabelled rows)."""
    from rapids_engage.data import DataError
    from rapids_engage.features.labels import label_bounds
    from rapids_engage.features.value_checks import check_labels
    from rapids_engage.layout import Target

    layout = Layout(kind="table", row_key=("id",), time="t", targets=(Target("up", "votes", "count"), Target("hit", "clicked", "binary"),
                                                                     Target("seen", "seen_at", "present")))
    bounds = label_bounds(layout)
    assert bounds == {"votes": (0, None), "clicked": (0, 1)} and label_bounds(layout, ["clicked"]) == {"clicked": (0, 1)}
    good = pd.DataFrame({"votes": pd.array([0, None, 7], dtype="Int64"), "clicked": [0.0, np.nan, 1.0], "seen_at": [-5, 1, 2]},
                        index=["a", "b", "c"])
    assert check_labels(good, bounds) is good
    with pytest.raises(DataError, match=r"target column 'votes' holds -1 at index 'c', not a count \(>= 0\)"):
        check_labels(good.assign(votes=pd.array([0, None, -1], dtype="Int64")), bounds)
    with pytest.raises(DataError, match=r"target column 'clicked' holds 2\.0 at index 'b', not a 0/1 label"):
        check_labels(good.assign(clicked=[0.0, 2.0, 1.0]), bounds)


def test_predict_stopped_after_writing_predictions_leaves_no_older_predict_json_beside_them(trained, tmp_path, monkeypatch,
                                                                                              tcp_cluster):
    """predict replaced predictions/ in its score stage and wrote predict.json at the end: a predict into the same --out
    stopped in between (Ctrl-C in the metrics stage) left the last predict's predict.json (its rows, input, history)
    beside the new predictions. The old one now goes as the new predictions are published."""
    from rapids_engage import evaluate
    from rapids_engage.backend import CPU
    from rapids_engage.config import ClusterConfig
    from rapids_engage.predict import run_predict

    tmp, _, report = trained
    split = report["split"]
    rows = pd.read_parquet(split["data_dir"], filters=[("event_time", ">", split["cutoff"])]).drop(columns=["day"])
    rows.head(40).to_parquet(tmp_path / "first.parquet", index=False)
    rows.tail(20).to_parquet(tmp_path / "second.parquet", index=False)
    out, cfg = tmp_path / "scored", ClusterConfig(gpus=0, scheduler_address=tcp_cluster.scheduler_address)  # in process
    assert run_predict(tmp / "run", tmp_path / "first.parquet", out, CPU, cfg)["rows"] == 40

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate, "evaluate_targets", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_predict(tmp / "run", tmp_path / "second.parquet", out, CPU, cfg)
    assert len(pd.read_parquet(out / "predictions")) == 20  # the new predictions are out
    assert not (out / "predict.json").exists()  # and no record of the 40 rows before beside them
