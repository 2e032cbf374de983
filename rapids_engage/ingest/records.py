"""Raw rows in process: records as a service receives them (JSON objects, a pandas frame) become the
canonical rows ``ingest`` writes for the same table, with the same checks, without files.

:class:`RecordReader` types one batch at a time through the table ingest's own steps (explode,
side-table joins, ids hashed to int64 keys, times parsed, targets and numbers checked); a bad
record is returned with its reason instead of being written to a quarantine file.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..config import TableConfig
from .read_jsonl import objects_chunk
from .read_parquet import arrow_text
from .table import process_chunk
from .table_plan import plan_of
from .table_read import close_names
from .side_tables import read_side

#: The columns of the rejected records' frame.
REJECTED_COLUMNS = ("record", "column", "reason", "detail")


def _value(v: Any) -> Any:
    """A record's value with pandas' missing markers (NaN, NA, NaT) as None, numpy's as Python's
    (a ``datetime64`` as a ``pd.Timestamp``: its ``item()`` may be an int of nanoseconds; an array as a
    list: ``str`` gave ``"['a' 'b']"``)."""
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, np.ndarray):  # a list column's value in a frame (``pd.read_parquet``) or its ``to_dict``
        return [_value(x) for x in v.tolist()]  # a NaN item none: pandas' null float item
    if isinstance(v, np.datetime64):
        return None if np.isnat(v) else pd.Timestamp(v)
    return v.item() if isinstance(v, np.generic) else v


def _as_instants(objs: list[dict], plan: Any) -> None:
    """The datetime values (``datetime``, ``date``, ``pd.Timestamp``) of the table's columns, in place, as
    the text the parquet ingest reads from a timestamp: the UTC instant (naive = UTC) in ``time_format``
    for the time column (``str`` gave local ISO text, not a unix time), as a frame's datetime columns."""
    for c in plan.needed:
        at = [i for i, o in enumerate(objs) if isinstance(o.get(c), dt.date)]
        if at:
            stamps = pa.array([_utc(objs[i][c]) for i in at], pa.timestamp("us", tz="UTC"))
            texts = arrow_text(stamps, " ", plan.time_format if c == plan.time else None)[0]
            for i, text in zip(at, texts.tolist()):
                objs[i][c] = text


def _utc(value: dt.date) -> dt.datetime:
    """A date or datetime as an aware UTC datetime (a naive one, or a date's midnight, taken as UTC)."""
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    return value.astimezone(dt.timezone.utc) if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


class RecordReader:
    """Canonical rows of ``spec``'s table from in-memory records (``labelled``: the records carry the
    target columns, else they are not read, as ``ingest --unlabelled``). Side tables are read once."""

    def __init__(self, spec: TableConfig, labelled: bool = False) -> None:
        self.plan = plan_of(spec, unlabelled=not labelled)
        self.sides = [read_side(j, False, 200_000, spec.time_format) for j in spec.join]

    @property
    def time_column(self) -> str:
        """The records' event time field."""
        return self.plan.time

    def read(self, records: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(canonical rows, rejected records) of ``records``: a list of dicts or a pandas frame. The rows'
        index is the position of the record each comes from (several with ``explode``); the rejected
        frame has a row per bad record: its position, the column, the reason (the ingest's:
        ``bad_time``, ``missing_key``, ...) and the detail."""
        plan = self.plan
        if isinstance(records, pd.DataFrame):
            records = _as_parquet_text(records, plan)
        objs = [{k: _value(v) for k, v in r.items()} for r in _as_records(records)]
        _as_instants(objs, plan)  # a list of dicts' datetimes (a frame's object columns') as a frame's datetime columns
        misspelt = {i: m for i, o in enumerate(objs) if (m := _misspelt(o, plan.needed))}
        keep = [i for i in range(len(objs)) if i not in misspelt]
        chunk = objects_chunk([objs[i] for i in keep], keep, [""] * len(keep), plan.needed, plan.scalars, plan.list_seps)
        table, bad, sources = process_chunk(chunk, "records", plan, self.sides)
        rows = table.to_pandas() if table is not None else plan.schema.empty_table().to_pandas()
        rows.index = pd.Index(np.asarray(chunk.line, dtype=np.int64)[sources], name="record")  # the record of each row
        found = [(b.line, b.column, b.reason, b.detail) for b in bad]
        found += [(i, column, "unknown_field", detail) for i, (column, detail) in misspelt.items()]
        rejected = pd.DataFrame(sorted(found, key=lambda r: r[0]), columns=list(REJECTED_COLUMNS))
        return rows, rejected


def _as_parquet_text(frame: pd.DataFrame, plan: Any) -> pd.DataFrame:
    """``frame`` with its float and datetime columns of the table as the text the parquet ingest reads
    from the same values (a frame is a parquet file's columns: ``pd.read_parquet``): ``123.0`` as
    ``123`` (an int id column with a missing value is float64 in pandas: ``str`` gave ``"123.0"``,
    another key), times as instants in ``time_format`` (``str`` gave ISO text, not a unix time), list
    columns as a parquet list's items (``str`` of an array gave ``"['a' 'b']"``)."""
    from pandas.api.types import is_datetime64_any_dtype, is_float_dtype


    texts = {}
    for c in frame.columns:
        s = frame[c]
        if c in plan.needed and isinstance(s, pd.Series) and (is_float_dtype(s.dtype) or is_datetime64_any_dtype(s.dtype)):
            fmt = plan.time_format if c == plan.time else None
            texts[c] = arrow_text(pa.array(s), plan.list_seps.get(c, " "), fmt)[0].set_axis(frame.index)
        elif c in plan.list_seps and isinstance(s, pd.Series) and (lists := _list_array(s)) is not None:
            texts[c] = arrow_text(lists, plan.list_seps[c], None)[0].set_axis(frame.index)
    return frame.assign(**texts) if texts else frame


def _list_array(s: pd.Series) -> pa.Array | None:
    """A frame's list column (arrays or lists, as ``pd.read_parquet`` gives a parquet list) as arrow's, its
    items of their dtype (a float32 item as a list<float>'s); None for another column (text, mixed values)."""
    if s.dtype != object:
        return None
    try:
        arr = pa.array(s, from_pandas=True)  # a NaN item null (no item): pandas' null float item
    except (pa.ArrowException, TypeError, ValueError):
        return None
    return arr if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type) else None


def _misspelt(record: dict, needed: tuple[str, ...]) -> tuple[str, str] | None:
    """(column, detail) when ``record`` lacks a column of the table but has a field named like it
    (``autor`` for ``author``, ``Author``): a typo that would otherwise read as a missing value."""
    fields = tuple(k for k in record if k not in needed)
    for column in needed:
        if column not in record:
            near = close_names(column, fields)
            if near:
                return column, f"no field {column!r}, but {near[0]!r}: misspelt? (fields not of the table are ignored)"
    return None


def _as_records(records: Any) -> list[dict]:
    if isinstance(records, pd.DataFrame):
        return records.to_dict("records")
    if isinstance(records, dict):
        raise TypeError("records: a list of dicts (one per row) or a pandas DataFrame, got one dict; wrap it in a list")
    rows = list(records)
    if any(not isinstance(r, dict) for r in rows):
        raise TypeError("records: a list of dicts (one per row) or a pandas DataFrame")
    return rows

