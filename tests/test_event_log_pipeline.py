"""End to end on an event log (``data.table.events``): a run trains a model per event-type target on the labelled
views, and its config.yaml serves new views (``ingest --unlabelled``, ``predict_records``): only anchors are scored."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from rapids_engage.pipeline import main
from rapids_engage.serve import Scorer

pytestmark = pytest.mark.slow

T0 = 1_433_116_800_000  # 2015-06-01 UTC, in ms
H = 3600 * 1000


def _log(n: int = 6000, seed: int = 0) -> pd.DataFrame:
    """Views by 300 visitors of 60 items over 6 days; a keen visitor's view is followed by a cart within an hour."""
    rng = np.random.default_rng(seed)
    visitor, item = rng.integers(0, 300, n), rng.integers(0, 60, n)
    at = T0 + np.sort(rng.integers(0, 6 * 24 * H, n))
    carted = rng.random(n) < np.where(visitor % 3 == 0, 0.6, 0.05)
    views = pd.DataFrame({"timestamp": at, "visitorid": visitor, "event": "view", "itemid": item})
    carts = views[carted].assign(event="addtocart", timestamp=lambda d: d["timestamp"] + rng.integers(1, H, len(d)))
    return pd.concat([views, carts]).sort_values("timestamp").reset_index(drop=True)


def _config(tmp_path) -> dict:
    """The run's config: the log in ``tmp_path``, history by visitor."""
    return {
        "out": str(tmp_path / "run"),
        "data": {"source": "table", "path": str(tmp_path / "events.csv"), "cache_dir": str(tmp_path / "cache"), "table": {
            "format": "csv", "time": "timestamp", "time_format": "unix_ms", "row_id": ["visitorid", "itemid", "timestamp"],
            "user": "visitorid", "item": "itemid", "numeric": ["available"],
            "join": [{"path": str(tmp_path / "item_properties.csv"), "format": "csv", "header": True, "key": "itemid",
                      "time": "timestamp", "property": "property", "value": "value", "keep": ["available"]}],
            "events": {"column": "event", "anchor": "view", "horizon_hours": 2, "targets": {"cart": "addtocart"}}}},
        "cluster": {"gpus": 0, "n_workers": 1, "threads_per_worker": 2},
        "split": {"valid_hours": 24},
        "features": {"target_encoding": {"keys": [["visitorid"], ["itemid"]]}, "counts": [["visitorid"]],
                     "history": {"keys": [["visitorid"]], "windows": [], "days": [], "rates": False}},
        "train": {"targets": ["cart"], "num_boost_round": 50, "early_stopping_rounds": 10, "max_depth": 3},
    }


def test_a_run_on_an_event_log_and_its_serving(tmp_path, capsys):
    _log().to_csv(tmp_path / "events.csv", index=False)
    (tmp_path / "item_properties.csv").write_text("timestamp,itemid,property,value\n" + "".join(  # item 5 sold out on day 7
        f"{T0 + at},{item},available,{value}\n" for at, item, value in [(-H, 5, 1), (-H, 6, 1), (7 * 24 * H, 5, 0)]))
    config = _config(tmp_path)
    (tmp_path / "shop.yaml").write_text(yaml.safe_dump(config))
    assert main(["--config", str(tmp_path / "shop.yaml"), "--quiet"]) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    events = report["ingest"]["events"]
    assert list(report["targets"]) == ["cart"] and report["targets"]["cart"]["auc"] > 0.7  # the keen visitors
    assert events["anchors"] == 6000 and events["rows"] == sum(report["rows"].values()) == 6000 - events["anchors_in_last_horizon"]
    assert 0 < events["positives"]["cart"] < events["rows"] and "left out in the last 2 h of the log" in report["data"]
    _check_history_counts_carts_from_their_time(report, tmp_path / "run")

    served = tmp_path / "run" / "config.yaml"
    new = pd.DataFrame({"timestamp": [T0 + 7 * 24 * H, T0 + 7 * 24 * H + 5], "visitorid": [3, 4],
                        "event": ["view", "addtocart"], "itemid": [5, 6]})
    new.to_csv(tmp_path / "new.csv", index=False)
    assert main(["ingest", "--config", str(served), "--input", str(tmp_path / "new.csv"), "--out", str(tmp_path / "new"),
                 "--unlabelled", "--quiet"]) == 0
    summary = json.loads((tmp_path / "new" / "ingest.json").read_text())
    assert (summary["ingested_rows"], summary["quarantine_counts"]) == (1, {"not_anchor": 1})
    new.drop(columns="event").to_csv(tmp_path / "bare.csv", index=False)
    capsys.readouterr()
    assert main(["ingest", "--config", str(served), "--input", str(tmp_path / "bare.csv"), "--out", str(tmp_path / "bare"),
                 "--unlabelled", "--quiet"]) == 2
    assert "no column 'event'" in capsys.readouterr().err
    preds, rejected = Scorer(tmp_path / "run").predict_records(new.to_dict("records"))
    assert preds["raw_visitorid"].tolist() == ["3"] and preds["pred_cart"].between(0, 1).all()
    assert rejected[["record", "column", "reason"]].values.tolist() == [[1, "event", "not_anchor"]]
    # a request gets the side table's values as of its own time: not the value recorded at its instant
    views = [{"timestamp": T0 + 7 * 24 * H + dt, "visitorid": 3, "event": "view", "itemid": 5} for dt in (0, 1)]
    scorer = Scorer(tmp_path / "run")
    preds, rejected = scorer.predict_records(views)
    assert len(preds) == 2 and rejected.empty
    assert scorer._record_reader().read(views)[0]["available"].tolist() == [1.0, 0.0]


def _check_history_counts_carts_from_their_time(report: dict, run) -> None:
    """``label_time: auto`` is ``engagement`` on an event log: a view's ``hist_visitorid_cart`` counts the visitor's
    earlier training views whose cart came strictly before it (``cart_time``), not those viewed before it and carted
    after (counted by view time: a value from the future); ``cart_time`` is no feature nor a store column."""
    from rapids_engage.data import DataError
    from rapids_engage.store import FeatureStore

    assert report["config"]["features"]["history"]["label_time"] == "engagement"
    assert not any("cart_time" in name for name in report["features"])
    rows = pd.read_parquet(report["split"]["data_dir"])
    assert str(rows["cart_time"].dtype) == "Int64" and (rows["cart_time"].notna() == (rows["cart"] == 1)).all()
    store = FeatureStore(report["store"]["path"])
    frames = [store.training_frame(split=split).compute() for split in ("train", "valid")]
    assert all("cart_time" not in frame.columns for frame in frames)
    train = rows[rows["row_id"].isin(frames[0]["row_id"])]
    carts = train.dropna(subset=["cart_time"])

    def count(frame: pd.DataFrame, at: str) -> np.ndarray:  # per row: the training carts of its visitor before it
        return np.array([int(((carts["visitorid"] == v) & (carts[at] < t)).sum())
                         for v, t in zip(frame["visitorid"], frame["event_time"])])

    got = pd.concat(frames)
    assert (got["hist_visitorid_cart"].to_numpy() == count(got, "cart_time")).all()
    assert (count(got, "cart_time") != count(got, "event_time")).sum() > 20  # carted after a later view: a leak
    later = rows[rows["event_time"] > report["split"]["cutoff"]].drop(columns=["day"], errors="ignore")
    with pytest.raises(DataError, match=r"history events lack the engagement column\(s\) \['cart_time'\]"):
        Scorer(run).extend_history(later.drop(columns="cart_time"))
    Scorer(run).extend_history(later)  # labelled events with their cart times: folded in


def test_the_audits_shuffled_labels_move_with_their_times(tmp_path, monkeypatch):
    """The leakage audit's control run permutes each label with its ``cart_time`` (one permutation): a shuffled
    positive counts in history from a cart of its own, never from the real one of the row it landed on."""
    from rapids_engage import run_stages
    from rapids_engage.config import from_dict
    from rapids_engage.pipeline import run

    _log().to_csv(tmp_path / "events.csv", index=False)
    (tmp_path / "item_properties.csv").write_text(f"timestamp,itemid,property,value\n{T0 - H},5,available,1\n")
    seen = []

    def stop(cfg, store, data_dir, train, *args):
        seen.append(train.compute())
        raise KeyboardInterrupt  # enough: the training rows the store would be built from

    monkeypatch.setattr(run_stages, "materialize", stop)
    with pytest.raises(KeyboardInterrupt):
        run(from_dict(_config(tmp_path)), quiet=True, shuffle_seed=5)
    train = seen[0]
    assert 0 < train["cart"].sum() < len(train)
    assert (train["cart_time"].notna() == (train["cart"] == 1)).all()
