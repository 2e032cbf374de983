"""Raw rows in process: records as a service receives them (JSON objects, a pandas frame) become the
canonical rows ``ingest`` writes for the same table, with the same checks, without files.

:class:`RecordReader` types one batch at a time through the table ingest's own steps (explode,
side-table joins, ids hashed to int64 keys, times parsed, targets and numbers checked); a bad
record is returned with its reason instead of being written to a quarantine file.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..config import TableConfig
from .read_jsonl import objects_chunk
from .table import plan_of, process_chunk
from .table_read import close_names
from .table_types import read_side

#: The columns of the rejected records' frame.
REJECTED_COLUMNS = ("record", "column", "reason", "detail")


def _value(v: Any) -> Any:
    """A record's value with pandas' missing markers (NaN, NA, NaT) as None."""
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
        return None
    return v.item() if isinstance(v, np.generic) else v


class RecordReader:
    """Canonical rows of ``spec``'s table from in-memory records (``labelled``: the records carry the
    target columns, else they are not read, as ``ingest --unlabelled``). Side tables are read once."""

    def __init__(self, spec: TableConfig, labelled: bool = False) -> None:
        self.plan = plan_of(spec, unlabelled=not labelled)
        self.sides = [read_side(j, False, 200_000) for j in spec.join]

    @property
    def time_column(self) -> str:
        """The records' event time field."""
        return self.plan.time

    def read(self, records: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(canonical rows, rejected records) of ``records``: a list of dicts or a pandas frame. The rows'
        index is the position of the record each comes from (several with ``explode``); the rejected
        frame has a row per bad record: its position, the column, the reason (the ingest's:
        ``bad_time``, ``missing_key``, ...) and the detail."""
        objs = [{k: _value(v) for k, v in r.items()} for r in _as_records(records)]
        plan = self.plan
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

