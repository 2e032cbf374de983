"""Raw RecSys 2021 records in process: a service's requests become canonical rows, typed and checked
by the file ingest's own steps (:mod:`.recsys`), without files.

A record is a raw line (``\\x01``-separated: the 20 fields of a test row, or all 24) or a dict (or a
pandas row) of the fields by name, with the raw values or their natural Python form (a list of
token ids for ``text_tokens``, ``True`` for a flag, an int for a timestamp). A bad record is returned
with its position and the ingest's reason instead of being quarantined to a file.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..schema import EVENT_TIME, RAW_COLUMNS, TEST_COLUMNS
from .convert import CpuOps
from .quarantine import Quarantine
from .reader import line_block
from .records import REJECTED_COLUMNS, _value
from .recsys import _FileIngest
from .writer import canonical_schema

def _field(value: Any) -> str:
    """A dict value as the raw files spell it (missing markers as an empty field)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return "\t".join(_field(v) for v in value)
    value = _value(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _lines(records: Any) -> list[str]:
    """One raw line (no newline) per record."""
    if isinstance(records, pd.DataFrame):
        records = records.to_dict("records")
    elif isinstance(records, (str, bytes, dict)):
        raise TypeError("records: a list of raw lines or of dicts (one per row), or a pandas DataFrame; wrap one in a list")
    records = list(records)
    dicts = [r for r in records if isinstance(r, dict)]
    names = RAW_COLUMNS if any(c in d for d in dicts for c in RAW_COLUMNS[len(TEST_COLUMNS):]) else TEST_COLUMNS
    unknown = sorted({k for d in dicts for k in d} - set(RAW_COLUMNS))
    if unknown:
        raise TypeError(f"records: field(s) {unknown} are not RecSys 2021 fields ({', '.join(RAW_COLUMNS)})")
    out = []
    for r in records:
        if isinstance(r, dict):
            out.append("\x01".join(_field(r.get(c)) for c in names))
        elif isinstance(r, (str, bytes)):
            out.append((r.decode("utf-8", "replace") if isinstance(r, bytes) else r).rstrip("\r\n"))
        else:
            raise TypeError(f"records: a raw line (str) or a dict per row, got {type(r).__name__}")
    return _one_kind(out)


def _one_kind(lines: list[str]) -> list[str]:
    """``lines`` with a test row's 20 fields given the 4 empty engagement fields of a labelled row when the batch
    holds a labelled (24-field) one, as a batch of dicts is read: each record is either kind (a file, read by the
    majority of its lines, quarantines the other kind)."""
    counts = [line.count("\x01") + 1 for line in lines]
    if len(RAW_COLUMNS) not in counts:
        return lines
    pad = "\x01" * (len(RAW_COLUMNS) - len(TEST_COLUMNS))
    return [line + pad if n == len(TEST_COLUMNS) else line for line, n in zip(lines, counts)]


class _RecordsIngest(_FileIngest):
    """The file ingest's checks over one batch of records, keeping the good rows and their positions."""

    def __init__(self) -> None:
        super().__init__("records", CpuOps(), Quarantine(), None, canonical_schema(), strict=False)
        self.tables: list[Any] = []
        self.positions: list[np.ndarray] = []

    def _emit(self, table: Any, line_no: np.ndarray) -> None:
        self.tables.append(table)
        self.positions.append(line_no)


class RecsysRecordReader:
    """Canonical RecSys rows from in-memory records (see the module doc)."""

    time_column = EVENT_TIME  #: the records' event time field

    def read(self, records: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(canonical rows, rejected records): the rows' index is the position of their record; the
        rejected frame has a row per bad record (position, column, reason — the ingest's:
        ``field_count``, ``invalid_id``, ... — and detail)."""
        import pyarrow as pa

        lines = _lines(records)
        empty = {i for i, t in enumerate(lines) if not t.strip() or "\n" in t}
        rejected = [(i, None, "field_count", "an empty record" if not lines[i].strip() else "a newline inside the record")
                    for i in sorted(empty)]
        ingest = _RecordsIngest()
        if len(empty) < len(lines):
            data = "".join(("" if i in empty else t) + "\n" for i, t in enumerate(lines)).encode()
            ingest.block(line_block(data, 0, 0))  # line numbers from 0: the record positions
            ingest.finish()
        bad = ingest.quarantine.table().to_pandas()
        rejected += list(zip(bad["line"], bad["column"], bad["reason"], bad["detail"]))
        schema = canonical_schema()
        table = pa.concat_tables(ingest.tables) if ingest.tables else schema.empty_table()
        rows = table.to_pandas()
        rows.index = pd.Index(np.concatenate(ingest.positions) if ingest.positions else np.zeros(0, np.int64), name="record")
        frame = pd.DataFrame(sorted(rejected, key=lambda r: r[0]), columns=list(REJECTED_COLUMNS))
        return rows, frame


__all__ = ["RecsysRecordReader"]
