"""The labelling pass of ``data.table.events`` sizes its partitions by rows (a small log: one task, no shuffle), and
labels the same rows whatever their count: those of a shuffle of the wide rows into one partition per staged file
(the first release's pass); in the staged rows' order (file by file, each part read back in order: part.10 after
part.9), the same whatever the partition count."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rapids_engage.config import EventsSpec, TableConfig
from rapids_engage.ingest import event_labels, ingest_table
from rapids_engage.ingest.table_plan import plan_of
from rapids_engage.ingest.writer import DayWriter, conform
from rapids_engage.layout import TABLE_TIME

T0 = 1_433_116_800_000  # 2015-06-01 UTC, in ms
H = 3600 * 1000
SPEC = TableConfig(format="csv", time="timestamp", time_format="unix_ms", row_id=["visitorid", "itemid", "timestamp"],
                   user="visitorid", item="itemid", numeric=["price"],
                   events=EventsSpec("event", "view", 6, {"cart": "addtocart", "buy": "transaction"}))


def _log(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    """Views, carts and purchases of 40 visitors and 15 items over 14 days (14 staged files: ranks past part.9)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"timestamp": T0 + rng.integers(0, 14 * 24 * H, n), "visitorid": rng.integers(0, 40, n),
                         "event": rng.choice(["view", "view", "addtocart", "transaction"], n),
                         "itemid": rng.integers(0, 15, n), "price": rng.integers(1, 9, n)})


def first_release(typed: Path, scratch: Path, out: Path) -> pa.Table:
    """The labelled anchors of a shuffle partition per staged file."""
    import dask.dataframe as dd

    plan = plan_of(SPEC)
    frame = dd.read_parquet(sorted(str(p) for p in typed.rglob("*.parquet")), blocksize=None)
    cutoff = int(frame["_event_ms"].max().compute()) - event_labels.horizon_ms(SPEC.events)
    frame = frame.map_partitions(event_labels.with_kinds, SPEC.events)
    shuffled = frame.shuffle(on=["visitorid", "itemid"], npartitions=frame.npartitions)
    meta = event_labels.label_partition(frame._meta, "visitorid", "itemid", SPEC.events, cutoff)
    shuffled.map_partitions(event_labels.label_partition, "visitorid", "itemid", SPEC.events, cutoff,
                            meta=meta).to_parquet(str(scratch), write_index=False)
    writer = DayWriter(out, plan.labelled_schema, time_column=TABLE_TIME)
    for path in sorted(scratch.glob("*.parquet")):
        table = pq.read_table(path)
        kept = conform(table.filter(pa.compute.invert(table[event_labels.LEFT_OUT])), writer.schema)
        writer.write(event_labels.null_never(kept, ["cart_time", "buy_time"]))  # no labelling event: null
    writer.close()
    return _rows(out)


def _rows(data: Path) -> pa.Table:
    """Every day's parts in name order, one table."""
    return pa.concat_tables([pq.read_table(p) for p in sorted(data.rglob("*.parquet"))])


def _sorted(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas().sort_values(["visitorid", "itemid", TABLE_TIME, "row_id"], ignore_index=True)


def test_the_labelled_rows_are_the_same_whatever_the_partition_count(tmp_path, monkeypatch):
    _log().to_csv(tmp_path / "events.csv", index=False)
    calls, label, real = [], event_labels.label_partition, event_labels.label_events

    def staged_copy(typed_dir, *args):  # the staged rows, kept for the first release's pass
        if not (tmp_path / "typed").exists():
            shutil.copytree(typed_dir, tmp_path / "typed")
        return real(typed_dir, *args)

    monkeypatch.setattr(event_labels, "label_events", staged_copy)
    monkeypatch.setattr(event_labels, "label_partition", lambda df, *a: calls.append(len(df)) or label(df, *a))
    outputs = {}
    for rows in (10**9, 500, 1):  # one partition; 6 runs of key groups; a partition per staged file
        monkeypatch.setattr(event_labels, "ROWS_PER_PARTITION", rows, raising=False)
        calls.clear()
        ingest_table(str(tmp_path / "events.csv"), tmp_path / f"out{rows}", SPEC)
        outputs[rows] = (_rows(tmp_path / f"out{rows}" / "data"), sum(n > 0 for n in calls))
    files = len(list((tmp_path / "typed").rglob("*.parquet")))
    assert files >= 11 and [n for _, n in outputs.values()] == [1, 6, files]
    before = first_release(tmp_path / "typed", tmp_path / "scratch", tmp_path / "before")
    assert before.num_rows > 1000 and before.column("cart").to_numpy().sum() > 0
    assert before.column("cart_time").null_count == before.num_rows - before.column("cart").to_numpy().sum()
    for table, _ in outputs.values():
        pd.testing.assert_frame_equal(_sorted(table), _sorted(before))
        assert table.equals(outputs[10**9][0])  # the same order too
    staged = _rows(tmp_path / "typed").to_pandas()
    anchors = staged.loc[staged["event"] == "view", "row_id"]  # in staged order
    assert table.column("row_id").to_pylist() == anchors[anchors.isin(table.column("row_id").to_pylist())].tolist()
    again = tmp_path / "again"
    ingest_table(str(tmp_path / "events.csv"), again, SPEC)  # ROWS_PER_PARTITION 1: the same files in the same order
    assert _rows(again / "data").equals(outputs[1][0])
