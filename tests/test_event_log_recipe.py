"""README "Event logs": the reshape of a view / addtocart / transaction log runs as written and labels each view by
the same visitor's later cart / purchase of the item within the horizon; the config beside it is valid and ingests it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from rapids_engage.config import load_config
from rapids_engage.data import expected_layout
from rapids_engage.features.build import check_keys
from rapids_engage.ingest import ingest_table

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
SECTION = README[README.index("#### Event logs"):]
H = 3600 * 1000  # an hour in ms
T0 = 1_433_116_800_000  # 2015-06-01 UTC, in ms


def block(lang: str) -> str:
    """The first ``lang`` block of the README's event-log section."""
    start = SECTION.index(f"```{lang}\n") + len(f"```{lang}\n")
    return SECTION[start:SECTION.index("\n```", start)]


def test_the_event_log_reshape_labels_each_view_by_a_later_event_within_the_horizon(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [  # timestamp, visitorid, event, itemid, transactionid
        (T0, 1, "view", 10, ""), (T0 + H // 12, 1, "addtocart", 10, ""), (T0 + H // 6, 1, "transaction", 10, "t1"),
        (T0 + 2 * H, 1, "view", 11, ""), (T0 + 27 * H, 1, "addtocart", 11, ""),  # 25 h later: outside the horizon
        (T0 + 3 * H, 2, "addtocart", 12, ""), (T0 + 3 * H, 2, "view", 12, ""),    # the same ms: not after the view
        (T0 + 4 * H, 3, "view", 10, ""), (T0 + 5 * H, 4, "addtocart", 10, ""),    # another visitor's cart
        (T0 + 6 * H, 5, "view", 13, ""), (T0 + 6 * H, 5, "view", 13, ""),         # a line exported twice
        (T0 + 7 * H, 6, "view", None, ""),                                          # a blank itemid
        (T0 + 40 * H, 7, "view", 10, ""),                                           # within the horizon of the end
        (T0 + 48 * H, 8, "view", 14, ""),
    ]
    text = pd.DataFrame(rows, columns=["timestamp", "visitorid", "event", "itemid", "transactionid"]).astype(
        {"itemid": "Int64"}).to_csv(index=False)
    (tmp_path / "events.csv").write_text(text + "\n")  # a trailing blank line
    exec(block("python"), {})
    views = pd.read_csv(tmp_path / "views.csv", dtype={"view_id": str})
    assert views.values.tolist() == [
        [f"1:10:{T0}", T0, 1, 10, 1, 1], [f"1:11:{T0 + 2 * H}", T0 + 2 * H, 1, 11, 0, 0],
        [f"2:12:{T0 + 3 * H}", T0 + 3 * H, 2, 12, 0, 0], [f"3:10:{T0 + 4 * H}", T0 + 4 * H, 3, 10, 0, 0],
        [f"5:13:{T0 + 6 * H}", T0 + 6 * H, 5, 13, 0, 0],
    ]

    config = yaml.safe_load(block("yaml"))
    config["data"]["cache_dir"] = str(tmp_path / "cache")
    (tmp_path / "items.csv").write_text("itemid,categoryid,price,available\n10,1,9.5,1\n11,2,120,0\n13,1,3,1\n")
    (tmp_path / "shop.yaml").write_text(yaml.safe_dump(config))
    cfg = load_config(tmp_path / "shop.yaml")
    check_keys(cfg.features, expected_layout(cfg))  # the keys name columns the data will have
    result = ingest_table(cfg.data.path, tmp_path / "ingested", cfg.data.table)
    assert (result.ingested_rows, result.quarantined_rows) == (5, 0)
    data = pd.read_parquet(tmp_path / "ingested" / "data").sort_values("event_time")
    assert data["event_time"].tolist() == [(T0 + h * H) // 1000 for h in (0, 2, 3, 4, 6)]  # ms read as seconds
    assert data["cart"].tolist() == [1, 0, 0, 0, 0] and data["buy"].tolist() == [1, 0, 0, 0, 0]
    assert data["price"].tolist()[:2] == [9.5, 120.0] and pd.isna(data["price"].iloc[2])  # item 12: not in items.csv
