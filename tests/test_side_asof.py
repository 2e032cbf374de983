"""Point-in-time side tables (``data.table.join`` with ``time``): each row gets, per key, the values of the latest
side row strictly earlier than its own time, from a wide or a long (key, time, property, value) side table."""

from __future__ import annotations

import re
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rapids_engage.config import ExplodeSpec, SideTableSpec, TableConfig, TargetSpec, from_dict, load_config
from rapids_engage.data import _spec_key, table_cache
from rapids_engage.ingest import IngestError, StrictModeError, ingest_table
from rapids_engage.ingest.records import RecordReader

T0 = 1_600_000_000_000  # 2020-09-13 UTC, in ms
ITEMS = ["i0", "i1", "i2", "i3", "i9", "nan", ""]  # i9: in no side table; nan (a float NaN's text) and "": no key
PROPS = ["categoryid", "available", "color"]  # color: not kept


def _iso(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").isoformat()


def _table(wide: str, long: str, **kw) -> TableConfig:
    """Views of items (an impression list exploded) joined to a wide price table (ISO times) and a long property
    table (the table's unix_ms)."""
    return TableConfig(**{
        "format": "csv", "time": "ts", "time_format": "unix_ms", "row_id": ["id", "item"], "item": "item",
        "explode": ExplodeSpec(column="items", item="item"), "targets": {"click": TargetSpec("click")},
        "categorical": ["categoryid", "stock"], "numeric": ["price", "available"],
        "join": [SideTableSpec(path=wide, key="item", time="at", time_format="iso", keep=["price", "stock"], format="csv",
                               header=True),
                 SideTableSpec(path=long, key="item", time="timestamp", property="property", value="value",
                               keep=["categoryid", "available"], format="csv", header=True)],
    } | kw)


def _csv(path: Path, header: str, rows: list[tuple]) -> Path:
    path.write_text("\n".join([header, *(",".join(map(str, r)) for r in rows)]) + "\n")
    return path


def _as_of(side: list[tuple], item: str, t: int, prop: str | None = None) -> str | None:
    """The brute-force oracle: of the side rows of ``item`` (and ``prop``) with a time strictly before ``t``, the last
    by time; of equal times, the later row of the file."""
    best = None
    for row in side:
        key, at, value = (row[0], row[1], row[-1]) if prop is None else (row[0], row[1], row[3])
        if key == item and key not in ("", "nan") and at < t and (prop is None or row[2] == prop) and (best is None or at >= best[0]):
            best = (at, value if prop is not None else row[2:])
    return None if best is None else best[1]


def _read(out: Path) -> pd.DataFrame:
    """The ingested rows, null texts as None and null numbers as NaN."""
    frame = pq.read_table(out / "data").to_pandas()
    return frame.astype(object).where(frame.notna(), None).assign(**{c: frame[c] for c in ("price", "available") if c in frame})


rows_st = st.lists(st.tuples(st.lists(st.integers(0, 5), min_size=1, max_size=3), st.integers(0, 6)), min_size=1, max_size=12)
side_keys = st.sampled_from([0, 1, 2, 3, 5, 6])
wide_st = st.lists(st.tuples(side_keys, st.integers(0, 6), st.sampled_from(["", "1", "2.5", "40"]),
                             st.sampled_from(["", "low", "high"])), max_size=12)
long_st = st.lists(st.tuples(side_keys, st.integers(0, 6), st.sampled_from(PROPS), st.sampled_from(["", "0", "1", "7"])),
                   max_size=16)


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows_st, wide_st, long_st)
def test_each_row_gets_the_latest_strictly_earlier_side_values(rows, wide, long):
    """Against the oracle on random rows over two files (chunks of 4 rows, lists exploded), side rows at the row's
    own time (never joined), before any side row, of unknown keys, blank latest values, and side rows and rows keyed
    ``nan`` or blank (no key: never joined)."""
    ms = [T0 + 1000 * k for k in range(7)]
    wide = [(ITEMS[i], ms[k], price, stock) for i, k, price, stock in wide]
    long = [(ITEMS[i], ms[k], prop, value) for i, k, prop, value in long]
    events = [(f"r{n}", ms[k], " ".join(ITEMS[i] for i in items), 1) for n, (items, k) in enumerate(rows)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        w = _csv(tmp / "prices.csv", "item,at,price,stock", [(i, _iso(t), p, s) for i, t, p, s in wide])
        lg = _csv(tmp / "props.csv", "timestamp,item,property,value", [(t, i, p, v) for i, t, p, v in long])
        half = len(events) // 2
        files = [_csv(tmp / "a.csv", "id,ts,items,click", events[:half]), _csv(tmp / "b.csv", "id,ts,items,click", events[half:])]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a kept property with no row: tested below
            result = ingest_table([str(f) for f in files if f.stat().st_size > 20], tmp / "out", _table(str(w), str(lg)),
                                  chunk_rows=4)
        got = _read(tmp / "out")
    assert result.quarantined_rows == 0
    expected = [(rid, item, t) for rid, t, items, _ in events for item in items.split()]
    assert list(zip(got.raw_id, got.raw_item)) == [(rid, item) for rid, item, _ in expected]  # the rows' order kept
    for (rid, item, t), row in zip(expected, got.itertuples()):
        price, stock = _as_of(wide, item, t) or ("", "")
        assert (row.price, row.stock) == (float(price) if price else pytest.approx(np.nan, nan_ok=True), stock or None), rid
        cat, available = _as_of(long, item, t, "categoryid"), _as_of(long, item, t, "available")
        assert row.categoryid == (cat or None), rid
        assert row.available == (float(available) if available else pytest.approx(np.nan, nan_ok=True)), rid


def _keyed(tmp_path: Path, fmt: str, side: dict, join: dict) -> pd.DataFrame:
    """The rows of ``data.parquet`` (``item`` keys: ids, then a time and a row id) joined to side table ``side`` (a
    parquet file of its columns), as ``join`` says; the rows' ``price`` by row id."""
    pq.write_table(pa.table(side), tmp_path / "side.parquet")
    n = len(side["item"]) if fmt == "same" else 0
    rows = {"id": [f"r{i}" for i in range(n)], "ts": [T0 + 10] * n, "item": side["item"]}
    pq.write_table(pa.table(rows), tmp_path / "data.parquet")
    spec = TableConfig(format="parquet", time="ts", time_format="unix_ms", row_id=["id"], item="item", numeric=["price"],
                       join=[SideTableSpec(**{"path": str(tmp_path / "side.parquet"), "key": "item", "keep": ["price"],
                                              "format": "parquet"} | join)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the side rows without a key
        ingest_table(tmp_path / "data.parquet", tmp_path / "out", spec)
    got = _read(tmp_path / "out")
    return dict(zip(got.raw_id, got.price))


@pytest.mark.parametrize("join", [{}, {"time": "at"}])
@pytest.mark.parametrize("keys", [["", " ", "nan", "NaN", "i0"], [np.nan, None, 1.0, 2.0, 3.0]])
def test_blank_null_and_nan_keys_never_match(tmp_path, join, keys):
    """A blank, null or NaN side key joined the rows with the same blank, null or NaN key (their texts "", " ",
    "nan" were equal): no key matches nothing, plain or point in time, text or float keys; the other keys join."""
    side = {"item": keys, "price": [float(k) for k in range(len(keys))], "at": [T0] * len(keys)}
    got = _keyed(tmp_path, "same", side, join)
    joined = {f"r{i}" for i, k in enumerate(keys) if k == "i0" or (isinstance(k, float) and k == k)}
    assert {r for r, price in got.items() if price == price} == joined
    assert all(got[r] == float(r[1:]) for r in joined)


def test_a_long_side_table_s_blank_and_nan_keys_never_match(tmp_path):
    lg = _csv(tmp_path / "props.csv", "timestamp,item,property,value",
              [(T0 - 9, "", "available", 1), (T0 - 9, "nan", "available", 1), (T0 - 9, "i0", "available", 0),
               (T0 - 9, "NaN", "categoryid", 3)])
    w = _csv(tmp_path / "prices.csv", "item,at,price,stock", [(" ", _iso(T0 - 9), 5, "low"), ("nan", _iso(T0 - 9), 6, "high")])
    events = _csv(tmp_path / "e.csv", "id,ts,items,click", [("r0", T0, "nan", 1), ("r1", T0, "i0 NaN", 0)])
    with pytest.warns(UserWarning) as caught:
        ingest_table(events, tmp_path / "out", _table(str(w), str(lg)))
    assert {str(c.message).split(": ", 1)[1][:30] for c in caught} == {
        "skipped 3 side-table row(s) wi", "skipped 2 side-table row(s) wi", "no row of property 'categoryid"}
    got = _read(tmp_path / "out")
    assert got.available.fillna(-1).tolist() == [-1.0, 0.0, -1.0] and got.categoryid.tolist() == [None] * 3
    assert got.price.isna().all() and got.stock.tolist() == [None] * 3


def test_a_kept_column_the_table_has_is_refused_naming_the_join_and_prefix_renames_it(tmp_path):
    """A side table's kept column named like a column of the table's files silently replaced that column; it is an
    error naming the join, the column and the file, and ``prefix`` names the kept columns apart."""
    side = _csv(tmp_path / "items.csv", "item,price", [("i0", 5)])
    events = _csv(tmp_path / "e.csv", "id,ts,items,click,price", [("r0", T0, "i0", 1, 7)])
    join = SideTableSpec(path=str(side), key="item", keep=["price"], format="csv", header=True)
    with pytest.raises(IngestError, match=re.escape(
            f"data.table.join {side}: kept column 'price' is also a column of {events}, which the join would replace; "
            "set prefix on this join (its kept columns are then named prefix + column, e.g. prefix: side_ gives "
            "'side_price') or keep another column")):
        ingest_table(events, tmp_path / "out", _table("", "", join=[join], categorical=[], numeric=["price"]))
    join.prefix = "side_"
    ingest_table(events, tmp_path / "out", _table("", "", join=[join], categorical=[], numeric=["price", "side_price"]))
    got = _read(tmp_path / "out")
    assert (got.price.tolist(), got.side_price.tolist()) == ([7.0], [5.0])


def test_a_kept_column_the_table_has_is_refused_before_the_side_table_is_read(tmp_path, monkeypatch):
    """The clash with the table's files' columns came after the side tables were read whole (40 s for a 20M-row
    one); it needs only headers, so it comes first, as do a side table's missing columns: none is read whole."""
    from rapids_engage.ingest import table

    def read_side(*args, **kw):
        raise AssertionError("the side table was read before the kept columns were checked")

    monkeypatch.setattr(table, "read_side", read_side)
    side = _csv(tmp_path / "items.csv", "item,price", [("i0", 5)])
    events = _csv(tmp_path / "e.csv", "id,ts,items,click,price", [("r0", T0, "i0", 1, 7)])
    join = SideTableSpec(path=str(side), key="item", keep=["price"], format="csv", header=True)
    with pytest.raises(IngestError, match=re.escape(f"kept column 'price' is also a column of {events}")):
        ingest_table(events, tmp_path / "out", _table("", "", join=[join], categorical=[], numeric=["price"]))
    join.prefix = "side_"  # a later side table lacking a column: said before the first is read, from its header
    bad = SideTableSpec(path=str(_csv(tmp_path / "b.csv", "item,Stock", [("i0", 1)])), key="item", keep=["stock"],
                        format="csv", header=True)
    with pytest.raises(IngestError, match=re.escape(f"side table {bad.path}: no column 'stock' (the header has 'Stock')")):
        ingest_table(events, tmp_path / "out", _table("", "", join=[join, bad], categorical=[], numeric=["price"]))


@pytest.mark.parametrize("table, joins, message", [
    ({}, [{"path": "a.csv", "keep": ["price"]}, {"path": "b.csv", "keep": ["price"]}],
     "data.table.join b.csv: kept column 'price' is also a kept column of data.table.join a.csv"),
    ({}, [{"path": "a.csv", "keep": ["price"]}, {"path": "b.csv", "keep": ["price"], "prefix": "b_"},
          {"path": "c.csv", "keep": ["price"], "prefix": "b_", "key": "id"}],
     "data.table.join c.csv: kept column 'b_price' is also a kept column of data.table.join b.csv"),
    ({"header": False, "columns": ["id", "ts", "items", "click", "price"]}, [{"path": "a.csv", "keep": ["price"]}],
     "data.table.join a.csv: kept column 'price' is also a column of the table (data.table.columns), which the join "
     "would replace; set prefix on this join"),
    ({}, [{"path": "b.csv", "key": "iprice", "keep": ["x"]}, {"path": "a.csv", "keep": ["price"], "prefix": "i"}],
     "data.table.join a.csv: kept column 'iprice' is also the key of data.table.join b.csv"),
])
def test_a_kept_column_named_like_another_is_refused_at_config_check(tmp_path, table, joins, message):
    joins = [SideTableSpec(**{"key": "item", "format": "csv", "header": True} | j) for j in joins]
    with pytest.raises(IngestError, match=re.escape(message)):
        ingest_table(tmp_path / "absent.csv", tmp_path / "out", _table("", "", join=joins, categorical=[], numeric=[], **table))


def test_a_side_value_at_the_row_s_own_instant_is_not_joined(tmp_path):
    """Strictly earlier, to the millisecond: a value recorded 1 ms before the row is joined, one at its instant is not;
    of two rows at one time the later in the file wins."""
    lg = _csv(tmp_path / "props.csv", "timestamp,item,property,value",
              [(T0 - 1, "i0", "available", 1), (T0, "i0", "available", 0), (T0 - 5, "i1", "available", 0),
               (T0 - 5, "i1", "available", 1), (T0 - 5, "i1", "categoryid", 12)])
    w = _csv(tmp_path / "prices.csv", "item,at,price,stock", [])
    events = _csv(tmp_path / "e.csv", "id,ts,items,click", [("r0", T0, "i0", 1), ("r1", T0, "i1", 0), ("r2", T0 + 1, "i0", 0),
                                                            ("r3", "soon", "i0", 1)])
    result = ingest_table(events, tmp_path / "out", _table(str(w), str(lg)))
    assert result.quarantine_counts == {"bad_time": 1}  # a row without a time is quarantined, whatever it joined
    got = _read(tmp_path / "out").set_index("raw_id")
    assert got.available.to_dict() == {"r0": 1.0, "r1": 1.0, "r2": 0.0}
    assert got.categoryid.to_dict() == {"r0": None, "r1": "12", "r2": None}


def test_without_time_a_side_table_joins_its_first_row_per_key_as_before(tmp_path):
    """The time-less join: first row of each key whatever its time column says, and the cache key of before (no
    point-in-time keys in it)."""
    side = _csv(tmp_path / "items.csv", "item,price,at", [("i0", 5, _iso(T0 + 9000)), ("i0", 6, _iso(T0 - 9000))])
    events = _csv(tmp_path / "e.csv", "id,ts,items,click", [("r0", T0, "i0", 1), ("r1", T0 + 99_000, "i1", 0)])
    join = SideTableSpec(path=str(side), key="item", keep=["price"], format="csv", header=True)
    spec = _table("", "", join=[join], categorical=[], numeric=["price"])
    with pytest.warns(UserWarning, match="repeat the item of an earlier row"):
        ingest_table(events, tmp_path / "out", spec)
    got = _read(tmp_path / "out")
    assert got.price.tolist()[0] == 5.0 and np.isnan(got.price.tolist()[1])
    assert list(_spec_key(spec)["join"][0]) == ["path", "key", "keep", "format", "header", "columns"]


def test_a_changed_side_time_is_another_ingest(tmp_path):
    (tmp_path / "e.csv").write_text("ts,item\n1600000000000,i0\n")

    def entry(**join) -> str:
        data = {"data": {"source": "table", "path": str(tmp_path / "e.csv"), "cache_dir": str(tmp_path / "cache"),
                         "table": {"time": "ts", "time_format": "unix_ms", "item": "item",
                                   "join": [{"path": "p.csv", "key": "item", "keep": ["price"]} | join]}}}
        return table_cache(from_dict(data))[1].name

    keys = [entry(), entry(time="at"), entry(time="at2"), entry(time="at", time_format="iso"),
            entry(time="at", property="p", value="v")]
    assert len(set(keys)) == len(keys)


def test_bad_side_rows_are_skipped_naming_file_line_and_column_or_stop_a_strict_ingest(tmp_path):
    lg = _csv(tmp_path / "props.csv", "timestamp,item,property,value",
              [(T0 - 9, "i0", "available", 1), ("soon", "i0", "available", 0), (T0 - 5, "", "available", 0),
               ("x", "i0", "color", "red"), (T0 - 4, "i0", "available")])
    w = _csv(tmp_path / "prices.csv", "item,at,price,stock", [])
    events = _csv(tmp_path / "e.csv", "id,ts,items,click", [("r0", T0, "i0", 1)])
    with pytest.warns(UserWarning) as caught:
        ingest_table(events, tmp_path / "out", _table(str(w), str(lg)))
    messages = [str(c.message) for c in caught]
    assert f"{lg}: skipped 1 malformed side-table rows" in messages  # line 6: one field short
    assert (f"{lg}: skipped 2 side-table row(s) with a bad time or key (the first: line 3, column 'timestamp': "
            "'soon' is not time_format unix_ms)") in messages  # the color row's bad time is not read
    assert any(re.search(r"no row of property 'categoryid' .*null in every row", m) for m in messages)
    assert _read(tmp_path / "out").available.tolist() == [1.0]
    with pytest.raises(StrictModeError, match=re.escape(f"{lg}:3:timestamp: bad_time ('soon' is not time_format unix_ms)")):
        ingest_table(events, tmp_path / "strict", _table(str(w), str(lg)), strict=True)  # line 3 before line 6


@pytest.mark.parametrize("join, message", [
    ({"time": "at", "time_format": "unix_sec"}, "data.table.join p.csv: time_format must be unix, unix_ms, iso or a strptime pattern, got 'unix_sec'; did you mean 'unix_ms'?"),
    ({"time_format": "iso"}, "data.table.join p.csv: time_format without time"),
    ({"time": "at", "property": "property"}, "data.table.join p.csv: property without value"),
    ({"time": "at", "value": "value"}, "data.table.join p.csv: value without property"),
    ({"property": "property", "value": "value"}, "data.table.join p.csv: a long side table (property, value) needs time"),
    ({"time": "item"}, "data.table.join p.csv: column 'item' is both key and time"),
    ({"time": "price"}, "data.table.join p.csv: column 'price' is both time and keep 'price'"),
    ({"time": "at", "property": "p", "value": "p"}, "data.table.join p.csv: column 'p' is both property and value"),
    ({"time": "at", "property": "p", "value": "v", "keep": ["item"]}, "kept column 'item' clashes with another column"),
    ({"time": "at", "property": "p", "value": "v", "keep": ["ts"]},  # was a KeyError traceback
     "data.table.join p.csv: kept column 'ts' is the table's time (data.table.time), which a point-in-time join "
     "looks up by; keep another column or property"),
])
def test_a_side_table_the_ingest_cannot_read_point_in_time_is_refused_naming_the_key(tmp_path, join, message):
    events = _csv(tmp_path / "e.csv", "id,ts,items,click", [("r0", T0, "i0", 1)])
    spec = _table("", "", join=[SideTableSpec(**{"path": "p.csv", "key": "item", "keep": ["price"], "format": "csv", "header": True} | join)],
                  categorical=[], numeric=["price"] if "keep" not in join else [])
    with pytest.raises(IngestError, match=re.escape(message)):
        ingest_table(events, tmp_path / "out", spec)


def test_a_served_record_gets_the_values_as_of_its_own_time(tmp_path):
    """``predict_records``' reader (a run's config.yaml): one record, the property's value of before its time."""
    lg = _csv(tmp_path / "props.csv", "timestamp,itemid,property,value",
              [(T0 - 3_600_000, "7", "available", 1), (T0, "7", "available", 0), (T0 - 5, "7", "categoryid", 12)])
    table = {"format": "csv", "time": "timestamp", "time_format": "unix_ms", "row_id": ["visitorid", "itemid", "timestamp"],
             "user": "visitorid", "item": "itemid", "categorical": ["categoryid"], "numeric": ["available"],
             "join": [{"path": str(lg), "format": "csv", "header": True, "key": "itemid", "time": "timestamp",
                       "property": "property", "value": "value", "keep": ["categoryid", "available"]}]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"data": {"source": "table", "path": "x.csv", "table": table}}))
    reader = RecordReader(load_config(tmp_path / "config.yaml").data.table)
    rows, rejected = reader.read([{"timestamp": T0, "visitorid": 3, "itemid": 7}, {"timestamp": T0 + 1, "visitorid": 3, "itemid": 7}])
    assert rejected.empty and rows.available.tolist() == [1.0, 0.0] and rows.categoryid.tolist() == ["12", "12"]


def test_an_edited_side_table_is_another_ingest(tmp_path):
    """The ingest cache was keyed by the input files' contents and the spec, not the side tables' contents: new item
    properties written to the same path reused the ingest joined to the old ones."""
    import os

    (tmp_path / "e.csv").write_text("ts,item\n1600000000000,i0\n")
    side = tmp_path / "p.csv"
    data = {"data": {"source": "table", "path": str(tmp_path / "e.csv"), "cache_dir": str(tmp_path / "cache"),
                     "table": {"time": "ts", "time_format": "unix_ms", "item": "item",
                               "join": [{"path": str(side), "key": "item", "keep": ["price"], "format": "csv",
                                         "header": True}]}}}
    missing = table_cache(from_dict(data))[1].name
    side.write_text("item,price\ni0,5\n")
    first = table_cache(from_dict(data))[1].name
    side.write_text("item,price\ni0,6\n")
    os.utime(side, ns=(side.stat().st_atime_ns, side.stat().st_mtime_ns + 10**9))  # a later edit, same size
    assert len({missing, first, table_cache(from_dict(data))[1].name}) == 3
    side.write_text("item,price\ni0,5\n")
    assert table_cache(from_dict(data))[1].name == first


@pytest.mark.parametrize("zone, fmt", [(None, ""), ("America/New_York", ""), (None, "iso"), ("UTC", "%Y-%m-%d %H:%M:%S%z")])
def test_a_parquet_side_table_s_timestamp_column_is_its_time(tmp_path, zone, fmt):
    """A parquet side table's time column of timestamps (naive: UTC) was read as arrow's text of them, which no
    time_format but iso reads: every side row skipped as bad_time, nothing joined. It is read as its instants, to the
    millisecond whatever the side's time_format (in iso or a pattern a timestamp's fraction of a second is dropped:
    the value of T0 + 400 ms would be joined to the row of T0 + 100 ms)."""
    at = pd.Series(pd.to_datetime([T0 - 5000, T0 + 400], unit="ms"))
    if zone:
        at = at.dt.tz_localize("UTC").dt.tz_convert(zone)
    pq.write_table(pa.table({"item": [7, 7], "at": pa.array(at), "price": [1.0, 2.0]}), tmp_path / "p.parquet")
    events = _csv(tmp_path / "e.csv", "id,ts,items,click", [("r0", T0 + 100, "7", 1), ("r1", T0 + 400, "7", 0),
                                                            ("r2", T0 + 401, "7", 0)])
    join = SideTableSpec(path=str(tmp_path / "p.parquet"), key="item", time="at", time_format=fmt, keep=["price"],
                         format="parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no side row skipped
        ingest_table(events, tmp_path / "out", _table("", "", join=[join], categorical=[], numeric=["price"]))
    assert _read(tmp_path / "out").price.tolist() == [1.0, 1.0, 2.0]


@pytest.mark.parametrize("block, check", [(None, None), (64, 2)])
def test_only_kept_property_rows_are_checked_in_any_read_blocks(tmp_path, monkeypatch, block, check):
    """A long side table's rows are checked (key, time) only for the kept properties, across read blocks and check
    batches alike (64-byte blocks, 2 rows a batch): another property's bad time or blank key is never reported, even
    strict, and the first bad kept row (line 4) is named before a later malformed one (line 8)."""
    from rapids_engage.ingest import side_tables

    if block:
        monkeypatch.setattr(side_tables, "SIDE_BLOCK_BYTES", block)
        monkeypatch.setattr(side_tables, "CHECK_ROWS", check)
    rows = [(T0 - 9, "i0", "available", 1), ("x", "i0", "color", "red"), ("soon", "i0", "available", 0),
            (T0 - 8, "", "color", "blue"), (T0 - 7, "i0", "categoryid", 12), (T0 - 6, "i1", "available", 0),
            (T0 - 5, "i1")] + [(T0 - 4 + k, "i9", "color", "green") for k in range(6)] + [(T0 - 3, "i1", "categoryid", 4)]
    w, events = _csv(tmp_path / "prices.csv", "item,at,price,stock", []), _csv(
        tmp_path / "e.csv", "id,ts,items,click", [("r0", T0, "i0", 1), ("r1", T0, "i1", 0)])
    lg = _csv(tmp_path / "props.csv", "timestamp,item,property,value", rows)
    with pytest.warns(UserWarning) as caught:
        ingest_table(events, tmp_path / "out", _table(str(w), str(lg)))
    assert sorted(str(c.message) for c in caught) == [
        f"{lg}: skipped 1 malformed side-table rows",  # line 8
        f"{lg}: skipped 1 side-table row(s) with a bad time or key (the first: line 4, column 'timestamp': "
        "'soon' is not time_format unix_ms)"]
    got = _read(tmp_path / "out")
    assert got.available.tolist() == [1.0, 0.0] and got.categoryid.tolist() == ["12", "4"]
    with pytest.raises(StrictModeError, match=re.escape(f"{lg}:4:timestamp: bad_time")):
        ingest_table(events, tmp_path / "strict", _table(str(w), str(lg)), strict=True)
    lg = _csv(tmp_path / "props.csv", "timestamp,item,property,value", [r for r in rows if len(r) == 4 and r[0] != "soon"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing skipped: the color rows' bad time and blank key are not read
        ingest_table(events, tmp_path / "strict2", _table(str(w), str(lg)), strict=True)
    assert _read(tmp_path / "strict2").categoryid.tolist() == ["12", "4"]
