"""An event log's anchor rows labelled by its own later events (``data.table.events``): a dask pass after typing.

The typed rows (staged parquet holding the event type and :data:`.table_types.EVENT_MS`) are shuffled by
(user, item), so every event of a key is in one partition whatever file or day it came from: as many partitions as
:data:`ROWS_PER_PARTITION` asks (their count from the parquet footers; one: no shuffle), at most one per staged file.
The output's order is a function of the staged rows alone (the count follows from them). Per partition, the
keys, times and event types alone are sorted by (user, item, time, row id); over each key's rows in descending
order, a cumulative min of each target's event time, taken from the next row and carried over the rows of one time
(a groupby cummax): the first target event *strictly* after each time; no merge. An anchor is 1 for a target when
that event is at most the horizon later; the wide anchor rows are gathered once, in that order. Anchors after the
log's last event less the horizon are left out (their label is not final) and counted. Only operations pandas and
cudf share (sort, shift, where, cumsum, groupby cummin / cummax, take; no ``merge_asof``, which cudf lacks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..config import EventsSpec
from .table_types import EVENT_MS
from .writer import DayWriter, conform

#: A time no event has: "no target event later".
NEVER = int(np.iinfo(np.int64).max)
#: The flag of an anchor within the last horizon of the log (dropped, counted).
LEFT_OUT = "_left_out"
#: Staged rows per labelling task, about: a smaller log gets fewer partitions than staged files (a task costs ~0.2 s
#: whatever its rows); a larger one a partition per staged file (at most 1M rows: a task's memory).
ROWS_PER_PARTITION = 100_000


@dataclass
class EventCounts:
    """What labelling an event log did: its anchors, those left out in the last horizon, the positives kept."""

    anchors: int = 0
    left_out: int = 0
    positives: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"anchors": self.anchors, "anchors_in_last_horizon": self.left_out, "positives": dict(self.positives)}


def horizon_ms(events: EventsSpec) -> int:
    return round(float(events.horizon_hours) * 3_600_000)


def label_partition(df: Any, user: str, item: str, events: EventsSpec, cutoff_ms: int) -> Any:
    """The anchor rows of ``df`` (every event of its (user, item) keys; pandas or cudf), each target's label as an
    int8 column named as the target, :data:`LEFT_OUT` where its time is after ``cutoff_ms``; the event type and
    time in ms dropped. Sorted by (user, item, time, row id): the same rows in the same order on every run.

    Only the keys, times and event types are sorted and scanned; the wide anchor rows are gathered once, at the end."""
    names, order = list(events.targets), [user, item, EVENT_MS, "row_id"]
    df = df.reset_index(drop=True)  # the index: each row's position in ``df``
    kind = df[events.column]
    rows = df[order].assign(_anchor=kind == events.anchor,
                            **{name: df[EVENT_MS].where(kind == target, NEVER) for name, target in events.targets.items()})
    rows = rows.sort_values(order)
    # the row before, kept in its int64 (a plain shift makes it float64, in which two 64-bit hashed keys may be one)
    prev = rows[[user, item, EVENT_MS]].shift(1, fill_value=0)
    first = rows[EVENT_MS].shift(1).isna()  # the first row (times are never null)
    new_key = first | (rows[user] != prev[user]) | (rows[item] != prev[item])
    new_time = new_key | (rows[EVENT_MS] != prev[EVENT_MS])
    back = rows.assign(_key=new_key.cumsum(), _time=new_time.cumsum()).iloc[::-1]  # each key's times descending
    at_or_later = back.groupby("_key", sort=False)[names].cummin()
    back = back.assign(**{name: at_or_later[name] for name in names})
    same_key = back["_key"] == back["_key"].shift(1)
    # the row before (a later time, or the same): at a time's first row, the first target event strictly later
    next_row = back[names].shift(1, fill_value=NEVER)
    back = back.assign(**{name: next_row[name].where(same_key, NEVER) for name in names})
    first_later = back.groupby("_time", sort=False)[names].cummax()  # a time's first row's, at each of its rows
    horizon = back[EVENT_MS] + horizon_ms(events)
    back = back.assign(**{name: (first_later[name] <= horizon).astype("int8") for name in names})
    anchors = back[back["_anchor"]].iloc[::-1]
    out = df.take(anchors.index).drop(columns=[events.column, EVENT_MS])
    out = out.assign(**{name: anchors[name] for name in names}, **{LEFT_OUT: anchors[EVENT_MS] > cutoff_ms})
    return out.reset_index(drop=True)


def staged_extent(files: list[str]) -> tuple[int, int | None]:
    """The rows of the staged ``files`` and their last :data:`EVENT_MS` (None when a footer lacks it), from
    the parquet footers."""
    rows, last = 0, None
    for path in files:
        meta = pq.ParquetFile(path).metadata
        rows += meta.num_rows
        at = meta.schema.to_arrow_schema().get_field_index(EVENT_MS)
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(at).statistics
            if meta.row_group(g).num_rows == 0:
                continue
            if stats is None or not stats.has_min_max:
                return rows, None
            last = stats.max if last is None else max(last, stats.max)
    return rows, last


def _arrow(frame: Any) -> pa.Table:
    """``frame`` (pandas or cudf) as an Arrow table, without its index."""
    if type(frame).__module__.split(".")[0] == "cudf":
        return frame.to_arrow(preserve_index=False)
    return pa.Table.from_pandas(frame, preserve_index=False)


def store_kept(labelled: Any, path: Path, schema: pa.Schema, names: list[str]) -> EventCounts:
    """Write the kept anchors of one labelled partition to ``path`` (Arrow IPC, conformed to ``schema``: the
    final writer's rows as they are) and count them."""
    left_out = labelled[LEFT_OUT]
    kept = labelled[~left_out]
    counts = EventCounts(len(labelled), int(left_out.sum()), {name: int(kept[name].sum()) for name in names})
    table = conform(_arrow(kept), schema)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema, options=pa.ipc.IpcWriteOptions(compression="lz4")) as out:
        out.write_table(table)
    return counts


def label_events(typed_dir: Path, scratch: Path, writer: DayWriter, events: EventsSpec, user: str, item: str) -> EventCounts:
    """Label the typed rows under ``typed_dir`` (a dask pass, out of core: shuffled by key; each partition's kept
    anchors written to ``scratch`` by its own task, as Arrow IPC), then stream them through ``writer`` (the canonical
    day partitions) in partition order, a row group at a time."""
    import dask
    import dask.dataframe as dd

    files = sorted(str(p) for p in typed_dir.rglob("*.parquet"))
    names = list(events.targets)
    counts = EventCounts(positives=dict.fromkeys(names, 0))
    if not files:  # every row quarantined
        return counts
    frame = dd.read_parquet(files, blocksize=None)
    rows, last = staged_extent(files)
    if last is None:
        last = int(frame[EVENT_MS].max().compute())
    cutoff = int(last) - horizon_ms(events)
    parts = min(frame.npartitions, max(1, math.ceil(rows / ROWS_PER_PARTITION)))
    runs = frame.repartition(npartitions=1) if parts == 1 else frame.shuffle(on=[user, item], npartitions=parts)
    meta = label_partition(frame._meta, user, item, events, cutoff)
    labelled = runs.map_partitions(label_partition, user, item, events, cutoff, meta=meta)
    scratch.mkdir(parents=True, exist_ok=True)
    paths = [scratch / f"part.{i:06d}.arrow" for i in range(labelled.npartitions)]
    stored = [dask.delayed(store_kept)(part, path, writer.schema, names)
              for part, path in zip(labelled.to_delayed(), paths)]
    for done in dask.compute(*stored):
        counts.anchors += done.anchors
        counts.left_out += done.left_out
        for name in names:
            counts.positives[name] += done.positives[name]
    for path in paths:  # in order
        with pa.memory_map(str(path)) as source:
            for batch in pa.ipc.open_file(source).read_all().to_batches(max_chunksize=writer.row_group_rows):
                writer.write(pa.Table.from_batches([batch]))
    return counts
