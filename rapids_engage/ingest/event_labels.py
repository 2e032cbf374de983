"""An event log's anchor rows labelled by its own later events (``data.table.events``): a dask pass after typing.

Only what labelling needs travels: each staged file's (user, item) keys, :data:`.table_types.EVENT_MS`, its event
type as a small code (:data:`KIND`) and the row's locator (:data:`LOC`: staged file number and row position) are
shuffled by (user, item), so every event of a key is in one partition whatever file or day it came from: as many
partitions as :data:`ROWS_PER_PARTITION` asks (their count from the parquet footers; one: no shuffle). Per partition
(:func:`label_partition`), the rows are sorted by (user, item, time); over each key's rows in descending order, a
cumulative min of each target's event time, taken from the next row and carried over the rows of one time (a groupby
cummax): the first target event *strictly* after each time; no merge. An anchor is 1 for a target when that event is
at most the horizon later, and keeps that event's time (``<target>_time``, unix seconds; null when 0: what history
features count a positive from). The anchors' labels (locator, a flag and a time per target, :data:`LEFT_OUT`) go back to their staged
file by a second, narrow shuffle (a range partition of the locators: one partition per staged file, sorted); each
staged file is then read once, whole, and its anchors gathered in its own order, labels attached. So the output is the
staged rows' anchors in staged order (file by file, by name; rows as staged): a function of the staged rows alone,
whatever the partition or worker count. Anchors after the log's last event less the horizon are left out (their
label is not final) and counted. Only operations pandas and cudf share (sort, shift, where, cumsum, groupby cummin /
cummax, take; no ``merge_asof``, which cudf lacks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..backend import frame_library
from ..config import EventsSpec
from ..layout import label_time_name
from .table_types import EVENT_MS
from .writer import DayWriter, conform

#: A time no event has: "no target event later".
NEVER = int(np.iinfo(np.int64).max)
#: The flag of an anchor within the last horizon of the log (dropped, counted).
LEFT_OUT = "_left_out"
#: The coded event type of a shuffled row (:func:`with_kinds`).
KIND = "_kind"
#: A shuffled row's locator: its staged file's number << :data:`ROW_BITS` | its row position in that file.
LOC = "_loc"
#: A staged file holds at most 1M rows (the typing pass's ``DayWriter``), far below 2**32.
ROW_BITS = 32
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


def event_kinds(events: EventsSpec) -> list[str]:
    """The event types labelling looks at, once each: the anchor's, then the targets'; :data:`KIND` codes them as
    their position + 1 (0: any other type)."""
    return list(dict.fromkeys([events.anchor, *events.targets.values()]))


def with_kinds(df: Any, events: EventsSpec) -> Any:
    """``df`` (pandas or cudf) with its event type column replaced by :data:`KIND` (int8 codes of
    :func:`event_kinds`)."""
    kinds = event_kinds(events)
    if len(kinds) > 126:
        raise ValueError(f"data.table.events: at most 126 event types can be labelled by, not {len(kinds)}")
    kind = df[events.column].fillna("")  # staged types are never null; a null would be no type labelled by
    code = (kind == kinds[0]).astype("int8")
    for i, name in enumerate(kinds[1:], 2):
        code = code.where(kind != name, i)
    return df.drop(columns=[events.column]).assign(**{KIND: code})


def _label_columns(events: EventsSpec) -> list[str]:
    """Each target's label, then each one's labelling event time."""
    return [*events.targets, *(label_time_name(name) for name in events.targets)]


def label_partition(df: Any, user: str, item: str, events: EventsSpec, cutoff_ms: int) -> Any:
    """The anchor rows of ``df`` (every event of its (user, item) keys, event types coded by :func:`with_kinds`;
    pandas or cudf), each target's label as an int8 column named as the target and the time of the event that made
    it 1 (the first target event strictly later, within the horizon) in unix seconds, :data:`NEVER` where 0, as
    ``<target>_time`` (:func:`.layout.label_time_name`), :data:`LEFT_OUT` where its time is
    after ``cutoff_ms``; :data:`KIND` and the time in ms dropped, the other columns kept. Sorted by (user, item,
    time); the order of anchors of one key and time is not specified.

    Only the keys, times and kinds are sorted and scanned; the anchor rows are gathered once, at the end."""
    names, codes = list(events.targets), {kind: i for i, kind in enumerate(event_kinds(events), 1)}
    df = df.reset_index(drop=True)  # the index: each row's position in ``df``
    kind = df[KIND]
    rows = df[[user, item, EVENT_MS]].assign(
        _anchor=kind == codes[events.anchor],
        **{name: df[EVENT_MS].where(kind == codes[target], NEVER) for name, target in events.targets.items()})
    rows = rows.sort_values([user, item, EVENT_MS])
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
    labelled = {name: first_later[name] <= horizon for name in names}
    # the labelling event's time in seconds (floored, as the typed rows' TABLE_TIME), NEVER where the label is 0
    back = back.assign(**{name: labelled[name].astype("int8") for name in names},
                       **{label_time_name(name): (first_later[name] // 1000).where(labelled[name], NEVER) for name in names})
    anchors = back[back["_anchor"]].iloc[::-1]
    out = df.take(anchors.index).drop(columns=[KIND, EVENT_MS])
    out = out.assign(**{name: anchors[name] for name in _label_columns(events)}, **{LEFT_OUT: anchors[EVENT_MS] > cutoff_ms})
    return out.reset_index(drop=True)


def located(df: Any, events: EventsSpec, number: int) -> Any:
    """The rows of staged file ``number`` (its keys, time and event type; pandas or cudf) with kinds coded
    (:func:`with_kinds`) and each row's :data:`LOC` (``number`` << :data:`ROW_BITS` | row position)."""
    position = df[EVENT_MS].notna().astype("int64").cumsum() - 1  # 0, 1, ...: times are never null
    return with_kinds(df, events).assign(**{LOC: position + (number << ROW_BITS)})


def read_staged(numbered: tuple[int, str], like: Any, columns: list[str] | None = None,
                events: EventsSpec | None = None) -> Any:
    """Staged file ``numbered`` = (number, path) read whole (``columns``: those alone) by ``like``'s library
    (pandas or cudf); with ``events``, :func:`located`."""
    number, path = numbered
    frame = frame_library(like).read_parquet(path, columns=columns)
    return located(frame, events, number) if events is not None else frame


def file_divisions(files: int) -> tuple[int, ...]:
    """The :data:`LOC` divisions that make partition ``i`` the rows of staged file ``i``."""
    return (*(i << ROW_BITS for i in range(files)), ((files - 1) << ROW_BITS) + (1 << ROW_BITS) - 1)


def attach(staged: Any, labels: Any, events: EventsSpec) -> Any:
    """The anchors of one staged file's rows (``staged``, as read) in its order, with their ``labels`` (that file's
    :func:`label_partition` rows, indexed by :data:`LOC`, sorted), the event type and time in ms dropped."""
    labels = labels.reset_index()
    rows = labels[LOC] % (1 << ROW_BITS)
    out = staged.reset_index(drop=True).take(rows).drop(columns=[events.column, EVENT_MS]).reset_index(drop=True)
    return out.assign(**{name: labels[name] for name in [*_label_columns(events), LEFT_OUT]})


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


def null_never(table: pa.Table, columns: list[str]) -> pa.Table:
    """``table`` with :data:`NEVER` in ``columns`` (no labelling event) made null."""
    for column in columns:
        at = table.schema.get_field_index(column)
        values = table[column]
        table = table.set_column(at, table.schema.field(at), pc.if_else(pc.equal(values, NEVER), pa.nulls(len(values), values.type), values))
    return table


def store_kept(staged: Any, labels: Any, path: Path, schema: pa.Schema, events: EventsSpec) -> EventCounts:
    """Write the kept anchors of one staged file (``staged``, its ``labels``: :func:`attach`) to ``path`` (Arrow
    IPC, conformed to ``schema``: the final writer's rows as they are) and count them."""
    names = list(events.targets)
    labelled = attach(staged, labels, events)
    left_out = labelled[LEFT_OUT]
    kept = labelled[~left_out]
    counts = EventCounts(len(labelled), int(left_out.sum()), {name: int(kept[name].sum()) for name in names})
    table = null_never(conform(_arrow(kept), schema), [label_time_name(name) for name in names])
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema, options=pa.ipc.IpcWriteOptions(compression="lz4")) as out:
        out.write_table(table)
    return counts


def anchor_labels(df: Any, user: str, item: str, events: EventsSpec, cutoff_ms: int) -> Any:
    """The labels of the anchors of ``df`` (:func:`located` rows of whole keys): :data:`LOC`, a flag and its
    labelling event's time per target, :data:`LEFT_OUT`."""
    return label_partition(df, user, item, events, cutoff_ms)[[LOC, *_label_columns(events), LEFT_OUT]]


def label_events(typed_dir: Path, scratch: Path, writer: DayWriter, events: EventsSpec, user: str, item: str) -> EventCounts:
    """Label the typed rows under ``typed_dir`` (a dask pass, out of core: the narrow rows shuffled by key, their
    labels back by locator; each staged file's kept anchors written to ``scratch`` by its own task, as Arrow IPC),
    then stream them through ``writer`` (the canonical day partitions) in staged order, a row group at a time."""
    import dask
    import dask.dataframe as dd

    files = sorted(str(p) for p in typed_dir.rglob("*.parquet"))
    names = list(events.targets)
    counts = EventCounts(positives=dict.fromkeys(names, 0))
    if not files:  # every row quarantined
        return counts
    like = dd.read_parquet(files[:1])._meta  # the staged columns in the backend's library (pandas or cudf)
    numbered, columns = list(enumerate(files)), [user, item, EVENT_MS, events.column]
    # one partition per staged file, whatever its size or the columns read (dd.read_parquet may fuse files)
    staged = dd.from_map(partial(read_staged, like=like), numbered, meta=like, enforce_metadata=False)
    narrow = dd.from_map(partial(read_staged, like=like, columns=columns, events=events), numbered,
                         meta=located(like[columns], events, 0), enforce_metadata=False)
    rows, last = staged_extent(files)
    if last is None:
        last = int(narrow[EVENT_MS].max().compute())
    cutoff = int(last) - horizon_ms(events)
    parts = min(len(files), max(1, math.ceil(rows / ROWS_PER_PARTITION)))
    runs = narrow.repartition(npartitions=1) if parts == 1 else narrow.shuffle(on=[user, item], npartitions=parts)
    labels = runs.map_partitions(anchor_labels, user, item, events, cutoff,
                                 meta=anchor_labels(narrow._meta, user, item, events, cutoff))
    by_file = labels.set_index(LOC, divisions=file_divisions(len(files)))
    scratch.mkdir(parents=True, exist_ok=True)
    paths = [scratch / f"part.{i:06d}.arrow" for i in range(len(files))]
    stored = [dask.delayed(store_kept)(part, file_labels, path, writer.schema, events)
              for part, file_labels, path in zip(staged.to_delayed(), by_file.to_delayed(), paths)]
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
