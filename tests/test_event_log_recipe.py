"""README "Event logs": ``data.table.events`` labels each view of a view / addtocart / transaction log by the same
visitor's later cart / purchase of the item within the horizon, as the README's pandas reshape does (run as written:
the oracle), also when a pair's events are spread over files, days and partitions; the config beside it is valid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from rapids_engage.config import load_config
from rapids_engage.data import expected_layout
from rapids_engage.features.key_checks import check_keys
from rapids_engage.ingest import ingest_table

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
SECTION = README[README.index("#### Event logs"):]
H = 3600 * 1000  # an hour in ms
T0 = 1_433_116_800_000  # 2015-06-01 UTC, in ms
COLUMNS = ["timestamp", "visitorid", "event", "itemid", "transactionid"]
TIMES = ["cart_time", "buy_time"]  # each label's event time


def block(lang: str) -> str:
    """The first ``lang`` block of the README's event-log section."""
    start = SECTION.index(f"```{lang}\n") + len(f"```{lang}\n")
    return SECTION[start:SECTION.index("\n```", start)]


def readme_config(tmp_path: Path, path: str) -> object:
    """The README's config, reading ``path`` (a glob), its item properties in ``tmp_path``."""
    config = yaml.safe_load(block("yaml"))
    config["data"] |= {"cache_dir": str(tmp_path / "cache"), "path": path}
    (tmp_path / "item_properties.csv").write_text("timestamp,itemid,property,value\n" + "".join(
        f"{T0 + h * H},{item},{prop},{value}\n" for h, item, prop, value in [
            (-1, 10, "categoryid", 1), (-1, 10, "available", 1), (-1, 10, 888, "n552.000 639502"),
            (3, 10, "available", 0), (0, 11, "available", 1), (6, 13, "available", 1)]))  # 13: at its view's instant
    (tmp_path / "shop.yaml").write_text(yaml.safe_dump(config))
    return load_config(tmp_path / "shop.yaml")


def oracle(tmp_path: Path, log: pd.DataFrame) -> pd.DataFrame:
    """The README's pandas reshape of ``log``, run as written: views.csv's rows."""
    (tmp_path / "events.csv").write_text(log.to_csv(index=False))
    exec(block("python"), {})
    return pd.read_csv(tmp_path / "views.csv", dtype={"view_id": str, "visitorid": str, "itemid": str})


def labelled(tmp_path: Path, cfg: object, out: str = "ingested") -> tuple[object, pd.DataFrame]:
    result = ingest_table(cfg.data.path, tmp_path / out, cfg.data.table)
    return result, pd.read_parquet(tmp_path / out / "data")


def test_the_events_block_labels_each_view_by_a_later_event_within_the_horizon(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [  # timestamp, visitorid, event, itemid, transactionid
        (T0, 1, "view", 10, ""), (T0 + H // 12, 1, "addtocart", 10, ""), (T0 + H // 6, 1, "transaction", 10, "t1"),
        (T0 + 2 * H, 1, "view", 11, ""), (T0 + 27 * H, 1, "addtocart", 11, ""),  # 25 h later: outside the horizon
        (T0 + 3 * H, 2, "addtocart", 12, ""), (T0 + 3 * H, 2, "view", 12, ""),    # the same ms: not after the view
        (T0 + 4 * H, 3, "view", 10, ""), (T0 + 5 * H, 4, "addtocart", 10, ""),    # another visitor's cart
        (T0 + 6 * H, 5, "view", 13, ""), (T0 + 6 * H + 400, 5, "addtocart", 13, ""),  # 400 ms later: in the same second
        (T0 + 7 * H, 6, "view", None, ""),                                          # a blank itemid
        (T0 + 40 * H, 7, "view", 10, ""),                                           # within the horizon of the end
        (T0 + 48 * H, 8, "view", 14, ""),
    ]
    log = pd.DataFrame(rows, columns=COLUMNS).astype({"itemid": "Int64"})
    views = oracle(tmp_path, log)
    assert views.drop(columns=TIMES).values.tolist() == [
        [f"1:10:{T0}", T0, "1", "10", 1, 1], [f"1:11:{T0 + 2 * H}", T0 + 2 * H, "1", "11", 0, 0],
        [f"2:12:{T0 + 3 * H}", T0 + 3 * H, "2", "12", 0, 0], [f"3:10:{T0 + 4 * H}", T0 + 4 * H, "3", "10", 0, 0],
        [f"5:13:{T0 + 6 * H}", T0 + 6 * H, "5", "13", 1, 0],
    ]
    # the labelling event's time in unix seconds (floored, as event_time), -1: none (label 0)
    label_times = [[(T0 + H // 12) // 1000, (T0 + H // 6) // 1000], [-1, -1], [-1, -1], [-1, -1], [(T0 + 6 * H) // 1000, -1]]
    assert views[TIMES].fillna(-1).astype("int64").values.tolist() == label_times
    cfg = readme_config(tmp_path, "events.csv")
    check_keys(cfg.features, expected_layout(cfg))  # the keys name columns the data will have
    result, data = labelled(tmp_path, cfg)
    assert (result.ingested_rows, result.quarantined_rows, result.quarantine_counts) == (13, 1, {"missing_key": 1})
    assert result.events == {"anchors": 7, "anchors_in_last_horizon": 2, "positives": {"cart": 2, "buy": 1},
                             "anchor": "view", "horizon_hours": 24.0}
    data = data.sort_values("event_time")
    assert data["event_time"].tolist() == [(T0 + h * H) // 1000 for h in (0, 2, 3, 4, 6)]  # ms read as seconds
    assert data["cart"].tolist() == [1, 0, 0, 0, 1] and data["buy"].tolist() == [1, 0, 0, 0, 0]
    assert all(str(data[c].dtype) == "Int64" for c in TIMES)  # nullable int64, as RecSys engagement timestamps
    assert data[TIMES].fillna(-1).values.tolist() == label_times
    assert data["raw_visitorid"].tolist() == ["1", "1", "2", "3", "5"]
    # each view's item properties as last recorded strictly before it: item 10 sold out between its views at 0 h and
    # 4 h, item 12 never recorded, item 13's record at its view's instant not joined
    assert data["available"].fillna(-1).tolist() == [1, 1, -1, 0, -1]
    assert data["categoryid"].fillna("-").tolist() == ["1", "-", "-", "1", "-"]
    assert "event" not in data.columns and "_event_ms" not in data.columns


def _random_log(seed: int, n: int = 400) -> pd.DataFrame:
    """Events of few visitors and items over 4 days: ties to the millisecond, events at the horizon's edge, a few
    blank ids and lines exported twice."""
    rng = np.random.default_rng(seed)
    base = rng.choice([0, H // 2, 24 * H, 24 * H + 1, 23 * H], n) + rng.integers(0, 3, n) * rng.integers(0, 4 * 24 * H, n) // 3
    log = pd.DataFrame({
        "timestamp": T0 + np.sort(base) // 7 * 7, "visitorid": rng.integers(0, 6, n).astype(str),
        "event": rng.choice(["view", "view", "addtocart", "transaction"], n), "itemid": rng.integers(0, 4, n).astype(str),
        "transactionid": "",
    }).astype({"visitorid": object, "itemid": object})
    log.loc[rng.random(n) < 0.02, "visitorid"] = None
    log.loc[rng.random(n) < 0.02, "itemid"] = None
    twice = log.sample(frac=0.05, random_state=seed)
    return pd.concat([log, twice]).sample(frac=1.0, random_state=seed + 1).reset_index(drop=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_ingest_labels_a_random_log_as_the_readme_reshape_does(tmp_path, monkeypatch, seed):
    """Split into 3 files of random rows (a pair's events in several files, days and dask partitions)."""
    monkeypatch.chdir(tmp_path)
    log = _random_log(seed)
    views = oracle(tmp_path, log)
    files = np.random.default_rng(seed).integers(0, 3, len(log))
    for i in range(3):
        (tmp_path / f"part{i}.csv").write_text(log[files == i].to_csv(index=False))
    result, data = labelled(tmp_path, readme_config(tmp_path, str(tmp_path / "part*.csv")))
    assert len(list((tmp_path / "ingested" / "data").glob("day=*"))) >= 3  # days: the typed rows were staged as a partition per day at least
    got = data.assign(timestamp=data["raw_timestamp"].astype("int64"))[["raw_visitorid", "raw_itemid", "timestamp", "cart", "buy", *TIMES]]
    want = views[["visitorid", "itemid", "timestamp", "cart", "buy", *TIMES]]
    got, want = (frame.fillna({c: -1 for c in TIMES}).astype({c: "int64" for c in TIMES}) for frame in (got, want))
    assert sorted(map(tuple, got.drop_duplicates().values.tolist())) == sorted(map(tuple, want.values.tolist()))
    blank = log["visitorid"].isna() | log["itemid"].isna()
    kept = log[~blank & (log["event"] == "view") & (log["timestamp"] <= log.loc[~blank, "timestamp"].max() - 24 * H)]
    assert len(data) == len(kept)  # a line exported twice is two rows
    assert result.events["anchors"] == int((~blank & (log["event"] == "view")).sum())
    assert result.events["anchors_in_last_horizon"] == result.events["anchors"] - len(kept)
    assert result.events["positives"] == {"cart": int(data["cart"].sum()), "buy": int(data["buy"].sum())}
    assert 0 < data["cart"].sum() < len(data)  # the logs label both ways


def test_a_log_whose_views_all_fall_in_its_last_horizon_says_so(tmp_path, monkeypatch):
    from dataclasses import asdict

    from rapids_engage.data import DataError, check_some_ingested

    monkeypatch.chdir(tmp_path)
    pd.DataFrame([(T0, 1, "view", 10, ""), (T0 + H, 1, "addtocart", 10, "")], columns=COLUMNS).to_csv("events.csv", index=False)
    result, data = labelled(tmp_path, readme_config(tmp_path, "events.csv"))
    assert data.empty and result.events["anchors_in_last_horizon"] == 1
    with pytest.raises(DataError, match=r"^x: no 'view' row to score of the 2 events ingested \(1 'view' rows, 1 of them within "
                                        r"the last 24 h of the log, left out"):
        check_some_ingested(asdict(result), "x", tmp_path)
