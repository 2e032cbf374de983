"""Field splitting and per-column parsing/validation: the only CPU/GPU-specific code of ingest.

Both backends take a block (:class:`.reader.LineBlock`) and return, per
column, the parsed values (numpy/Arrow on CPU, cudf on GPU) with a host numpy
validity mask, so the driver (:mod:`.recsys`) decides quarantine and writes
output the same way for both. Validation rules (identical on both):

* ints: 1-18 ASCII digits (no sign; fits int64 without overflow checks);
* nullable ints: an int or the empty string (null);
* bools: exactly ``true`` / ``false``;
* ids: exactly 32 hex chars (:mod:`.ids`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ..backend import Backend
from .ids import parse_hex_ids
from .reader import LineBlock

INT_PATTERN = r"^[0-9]{1,18}$"


def _without_line_end(col: pa.Array) -> pa.Array:
    """The last fields of lines without their line end, LF or CR LF (Windows): a slice, and a second only
    where a CR is left (a regex on every row made the ingest's field split several times slower)."""
    col = pc.utf8_slice_codeunits(col, 0, -1)
    cr = pc.ends_with(col, "\r")
    return pc.if_else(cr, pc.utf8_slice_codeunits(col, 0, -1), col) if pc.any(cr).as_py() else col


class CpuOps:
    """pyarrow.csv / pyarrow.compute / numpy implementation."""

    def fields(self, block: LineBlock, rows: np.ndarray, n_fields: int) -> list[Any]:
        """The ``n_fields`` columns of the lines at positions ``rows`` (each has exactly that many fields).

        Fast path: pyarrow's C++ CSV parser over the block's bytes, skipping rows
        with another field count; used when its rows provably are exactly the
        lines with ``n_fields`` fields (no carriage return nor invalid UTF-8 in the block, row
        count checked).
        Otherwise: split each line and gather the fields.
        """
        same = np.flatnonzero(block.counts == n_fields)
        if not block.bad_utf8 and not block.has_cr:
            table = pacsv.read_csv(
                pa.BufferReader(block.data),
                read_options=pacsv.ReadOptions(column_names=[f"f{j}" for j in range(n_fields)], block_size=16 << 20),
                parse_options=pacsv.ParseOptions(delimiter="\x01", quote_char=False, escape_char=False,
                                                 invalid_row_handler=lambda row: "skip"),
                convert_options=pacsv.ConvertOptions(column_types={f"f{j}": pa.large_string() for j in range(n_fields)},
                                                     check_utf8=False, strings_can_be_null=False),
            )
            if table.num_rows == len(same):
                if len(rows) != len(same):
                    table = table.filter(pa.array(np.isin(same, rows)))
                return [table.column(j).combine_chunks() for j in range(n_fields)]
        lists = pc.split_pattern(block.lines, "\x01")
        starts = np.asarray(lists.offsets)[rows]
        cols = [lists.values.take(pa.array(starts + j)) for j in range(n_fields)]
        cols[-1] = _without_line_end(cols[-1])
        return cols

    def parse_int(self, col: pa.Array, nullable: bool = False, lo: int | None = None, hi: int | None = None) -> tuple[Any, np.ndarray]:
        ok = pc.and_(pc.ascii_is_decimal(col), pc.less_equal(pc.binary_length(col), 18))
        values = pc.cast(pc.if_else(ok, col, "0"), pa.int64())
        if lo is not None:
            ok = pc.and_(ok, pc.greater_equal(values, lo))
        if hi is not None:
            ok = pc.and_(ok, pc.less_equal(values, hi))
        if nullable:
            empty = pc.equal(col, "")
            values = pc.if_else(empty, pa.scalar(None, pa.int64()), values)
            ok = pc.or_(ok, empty)
        return values, ok.to_numpy(zero_copy_only=False)

    def parse_bool(self, col: pa.Array) -> tuple[Any, np.ndarray]:
        values = pc.equal(col, "true")
        ok = pc.or_(values, pc.equal(col, "false"))
        return values, ok.to_numpy(zero_copy_only=False)

    def parse_id(self, col: pa.Array) -> tuple[Any, np.ndarray]:
        return parse_hex_ids(col)

    def pick(self, col: pa.Array, idx: np.ndarray) -> list[str]:
        """Host strings of ``col`` at ``idx`` (for quarantine details)."""
        return col.take(pa.array(idx)).to_pylist()

    def to_arrow(self, columns: dict[str, Any], keep: np.ndarray) -> pa.Table:
        """The rows ``keep`` of the parsed columns as one Arrow table (host)."""
        return pa.table({k: v if isinstance(v, pa.Array) else pa.array(v) for k, v in columns.items()}).filter(pa.array(keep))


class GpuOps(CpuOps):
    """cudf implementation (same rules; lines are moved to the device once per block)."""

    def __init__(self) -> None:
        import cudf

        self.cudf = cudf

    def fields(self, block: LineBlock, rows: np.ndarray, n_fields: int) -> list[Any]:
        lines = self.cudf.Series.from_arrow(block.lines.take(pa.array(rows)).cast(pa.string()))
        parts = lines.str.slice(0, -1).str.split("\x01", expand=True)  # drop the "\n", split
        cols = [parts[j].fillna("") for j in range(n_fields)]
        last = cols[-1]
        cols[-1] = last.where(~last.str.endswith("\r"), last.str.slice(0, -1))  # the "\r" of a Windows line end
        return cols

    def parse_int(self, col: Any, nullable: bool = False, lo: int | None = None, hi: int | None = None) -> tuple[Any, np.ndarray]:
        ok = col.str.match(INT_PATTERN).fillna(False)
        values = col.where(ok, "0").astype("int64")
        if lo is not None:
            ok &= values >= lo
        if hi is not None:
            ok &= values <= hi
        if nullable:
            empty = col == ""
            values = values.where(~empty)  # null where empty
            ok |= empty
        return values, ok.to_numpy()

    def parse_bool(self, col: Any) -> tuple[Any, np.ndarray]:
        values = col == "true"
        return values, (values | (col == "false")).to_numpy()

    def parse_id(self, col: Any) -> tuple[Any, np.ndarray]:
        keys, ok = parse_hex_ids(col)
        return keys, ok.to_numpy()

    def pick(self, col: Any, idx: np.ndarray) -> list[str]:
        return col.iloc[idx].to_arrow().to_pylist()

    def to_arrow(self, columns: dict[str, Any], keep: np.ndarray) -> pa.Table:
        frame = self.cudf.DataFrame(columns)
        return frame[self.cudf.Series(keep)].to_arrow(preserve_index=False)


def make_ops(backend: Backend) -> CpuOps:
    """The column operations of ``backend``."""
    return GpuOps() if backend.is_gpu else CpuOps()


__all__ = ["CpuOps", "GpuOps", "make_ops"]
