"""``data.table.events``: a bad block is a one-line error naming the key, before any file is read; a changed block
is another ingest cache entry, and a table without one keeps its entry."""

from __future__ import annotations

import pytest
import yaml

from rapids_engage.config import ConfigError, from_dict
from rapids_engage.data import _spec_key, expected_layout, table_cache
from rapids_engage.ingest import IngestError
from rapids_engage.pipeline import main

EVENTS = {"column": "event", "anchor": "view", "horizon_hours": 24, "targets": {"cart": "addtocart"}}


def config(events: object = None, **table: object) -> dict:
    spec = {"format": "csv", "time": "ts", "time_format": "unix_ms", "user": "visitor", "item": "item",
            "events": EVENTS if events is None else events} | table
    return {"data": {"source": "table", "path": "events.csv", "table": spec}, "train": {"targets": ["cart"]},
            "features": {"target_encoding": {"keys": [["visitor"]]}, "counts": [["item"]]}}


@pytest.mark.parametrize("events, message", [
    (EVENTS | {"horizon_hours": 0}, "data.table.events.horizon_hours: expected a number of hours > 0, at least a millisecond, got 0"),
    (EVENTS | {"horizon_hours": "a day"}, "data.table.events.horizon_hours: expected a number, got 'a day'"),
    (EVENTS | {"targets": {}}, "data.table.events.targets: expected a mapping of target names to event types"),
    (EVENTS | {"targets": {"cart": None}}, "data.table.events.targets.cart: expected a string, got null"),
    (EVENTS | {"targets": {"cart": {"event": "addtocart"}}}, "data.table.events.targets.cart: expected a string, got {'event'"),
    (EVENTS | {"targets": {"cart": " "}}, "data.table.events.targets: expected a mapping of target names to event types"),
    (EVENTS | {"anchor": ""}, "data.table.events.anchor: expected the event type of the rows to score"),
    (EVENTS | {"horizon": 24}, "unknown config key 'data.table.events.horizon': did you mean 'data.table.events.horizon_hours'?"),
    ({k: v for k, v in EVENTS.items() if k != "anchor"}, "data.table.events.anchor: missing, expected a string"),
])
def test_a_bad_events_value_is_refused_naming_the_key(events, message):
    with pytest.raises(ConfigError) as caught:
        from_dict(config(events), "shop.yaml")
    assert str(caught.value).startswith(f"shop.yaml: {message}") and "\n" not in str(caught.value)


@pytest.mark.parametrize("table, message", [
    ({"user": None}, "data.table.user: not set; data.table.events labels rows per user and item"),
    ({"item": None, "user": None}, "data.table.user: not set; data.table.events labels rows per user and item "
                                   "(data.table.user and data.table.item not set)"),
    ({"targets": {"cart": {"column": "cart"}}}, "data.table.targets: an event log's targets are its event types"),
    ({"categorical": ["event"]}, "data.table: column 'event' is both categorical and events.column"),
    ({"explode": {"column": "items", "item": "it"}}, "data.table.events: an event log is one event per row"),
    ({"numeric": ["cart"]}, "data.table.events.targets: the target name 'cart' is already a column"),
    ({"numeric": ["cart_time"]}, "data.table.events.targets: the label time column 'cart_time' of target 'cart' is "
                                 "already a column of the ingested table, of the feature build or of another target"),
    ({"events": EVENTS | {"targets": {"cart": "addtocart", "cart_time": "transaction"}}},
     "data.table.events.targets: the label time column 'cart_time' of target 'cart' is already a column"),
    ({"header": False, "columns": ["ts", "visitor", "item"]},
     "data.table.events.column: 'event' is not one of data.table.columns"),
])
def test_an_events_block_the_table_cannot_take_is_refused_before_any_file_is_read(table, message):
    cfg = from_dict(config(**table), "shop.yaml")
    with pytest.raises(IngestError, match="^" + message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        expected_layout(cfg)


def test_a_run_says_so_in_one_line_naming_the_file_and_the_override(tmp_path, capsys):
    path = tmp_path / "shop.yaml"
    path.write_text(yaml.safe_dump(config() | {"out": str(tmp_path / "run")}))
    assert main(["--config", str(path), "--gpus", "0", "--quiet", "--set", "data.table.user="]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "shop.yaml: data.table.user: not set; data.table.events labels rows per user and item" in err
    assert err.endswith("(from --set data.table.user=)")


def test_the_layout_has_a_binary_target_per_event_type():
    layout = expected_layout(from_dict(config(EVENTS | {"targets": {"cart": "addtocart", "buy": "transaction"}})))
    assert [(t.name, t.column, t.kind, t.time) for t in layout.targets] == [("cart", "cart", "binary", "cart_time"),
                                                                           ("buy", "buy", "binary", "buy_time")]


def test_the_events_block_is_part_of_the_ingest_cache_key(tmp_path):
    """A changed block is another ingest; a table without one keeps the key it had before the block existed."""
    (tmp_path / "events.csv").write_text("ts,visitor,item,event\n1433116800000,1,2,view\n")

    def entry(events: dict | None) -> str:
        data = config(events or EVENTS)
        data["data"] |= {"path": str(tmp_path / "events.csv"), "cache_dir": str(tmp_path / "cache")}
        if events is None:
            data["data"]["table"] = {k: v for k, v in data["data"]["table"].items() if k != "events"}
        return table_cache(from_dict(data))[1].name

    keys = [entry(EVENTS), entry(EVENTS | {"horizon_hours": 12}), entry(EVENTS | {"targets": {"cart": "transaction"}}),
            entry(EVENTS | {"anchor": "click"}), entry(None)]
    assert len(set(keys)) == len(keys) and entry(dict(EVENTS)) == keys[0]
    assert "events" not in _spec_key(from_dict({"data": {"table": {"time": "ts"}}}).data.table)
