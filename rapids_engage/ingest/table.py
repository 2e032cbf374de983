"""Generic event tables (CSV, TSV, JSONL, parquet) -> canonical day-partitioned parquet, bad rows quarantined.

A :class:`~rapids_engage.config.TableConfig` says what each source column is;
:func:`ingest_table` streams the input files (gzip / bz2 / zstd detected from
the bytes) chunk by chunk and writes, atomically like :func:`.ingest_recsys`::

    <out_dir>/data/day=YYYY-MM-DD/part-NNNNN.parquet   UTC day of event_time
    <out_dir>/layout.json                              column roles (:func:`..layout.table_layout`)
    <out_dir>/quarantine.parquet                       bad source rows (if any)
    <out_dir>/ingest.json                              the IngestResult (written last)

**Columns** (one schema for every part, in this order): ``row_id`` (int64 hash
of the ``row_id`` columns joined by ``\\x1f``, else of ``file\\x1fline\\x1ftoken``),
``event_time`` (int64 unix seconds), the id columns (``user``, ``item``,
``creator``, ``group``, the explode item: int64 :func:`hash_strings` of the
text; an empty or missing id hashes like ``""``), the targets under their
source column (``binary``/``present``: int8, ``count``: float64), the
``categorical`` / ``numeric`` (float64) / ``text`` / ``url`` / ``lists``
columns. Every other source column is dropped.

**Per chunk**: explode (one row per token of ``explode.column``), left-join the
side tables (read once, first row per key wins, a missing key gives ``""``),
then type the columns. A row with any bad value is quarantined as a whole *source*
row (a line / record before explode), so always
``input_rows == ingested_rows + quarantined_rows``; ``output_rows`` counts the
rows written (after explode).

**Reading**: CSV / TSV go through pyarrow's streaming CSV parser fed with the
file's UTF-8 lines (:class:`_LineFeed`; lines that are not UTF-8 are
quarantined and blanked), every field read as a string, so quoted CSV fields
may hold newlines while every record is still mapped back to its physical
line (exact unless a quoted field holds a bare ``\r``). CSV honours ``"``
quoting (a stray ``"`` opening a field runs to the next quote, as in any CSV
reader; should that run past a read block, the rest of the file is parsed one
record per line), TSV has none. A leading UTF-8 BOM is fine. JSONL is read
line by line (a missing key reads as ``""``, a JSON list as its items joined
by the column's list separator); parquet by record batches (line = 1-based
record number; raw = the record's declared columns as JSON; timestamp columns
are taken as UTC instants).

**Bad rows** (reason, column): ``wrong_field_count``, ``invalid_utf8``,
``bad_json``, ``bad_time`` (the time column), ``bad_number`` (numeric or count
column not a finite number), ``bad_target`` (binary not 0/1/true/false, count
negative, binary / count value missing), ``bad_explode_token`` (no token, or one
without ``label_sep``), ``missing_column`` (a file without a declared column:
all its rows). A file without rows is listed in ``empty_files``; an unreadable
file (e.g. truncated gzip) is an :class:`.IngestError`. Malformed side-table
rows are skipped with a warning (strict: :class:`.StrictModeError`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..config import ExplodeSpec, SideTableSpec, TableConfig
from ..layout import TABLE_ROW_ID, TABLE_TIME, table_layout
from .quarantine import Quarantine, StrictModeError
from .reader import IngestError, LineBlock, iter_line_blocks
from .recsys import QUARANTINE_FILE, RESULT_FILE, IngestResult, _check_out_dir, _input_paths, _publish, _write_json
from .writer import DayWriter

FORMATS = ("csv", "tsv", "jsonl", "parquet")
#: Quarantine reasons of a table ingest.
REASONS = ("wrong_field_count", "invalid_utf8", "bad_json", "bad_time", "bad_number", "bad_target",
           "bad_explode_token", "missing_column")
#: Accepted event times: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
MIN_TIME, MAX_TIME = -62_135_596_800, 253_402_300_799
#: Bytes per CSV / JSONL read block (a CSV record must fit in one).
BLOCK_BYTES = 16 << 20
#: Fields a CSV header may have.
MAX_FIELDS = 4096
_SEP = "\x1f"
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_TRUE, _FALSE = ("1", "true", "1.0"), ("0", "false", "0.0")


def hash_strings(values: Any) -> np.ndarray:
    """int64 hash of each string (pandas' SipHash with its fixed key: the same in every run).

    Missing values hash like ``""``; use this to hash raw ids the way the ingest did.
    """
    arr = pd.Series(values, dtype="str").fillna("").to_numpy(dtype=object)
    return pd.util.hash_array(arr).view(np.int64)


# ---------------------------------------------------------------- plan


@dataclass(frozen=True)
class _Plan:
    """The validated column roles of a spec and the output schema."""

    time: str
    time_format: str
    ids: tuple[str, ...]
    targets: tuple[tuple[str, str], ...]  # (source column, kind)
    numeric: tuple[str, ...]
    strings: tuple[str, ...]
    row_id: tuple[str, ...]
    needed: tuple[str, ...]  # columns every input file must have
    list_seps: dict[str, str]
    explode: ExplodeSpec | None
    schema: pa.Schema
    keep_list: bool = False  # whether the explode column is used after explode


def _plan(spec: TableConfig) -> _Plan:
    """Check ``spec`` (IngestError naming the problem) and derive the output columns."""
    if spec.format not in FORMATS:
        raise IngestError(f"data.table.format must be one of {FORMATS}, got {spec.format!r}")
    if not spec.time:
        raise IngestError("data.table.time: name the event time column")
    _check_time_format(spec.time_format)
    for name, t in spec.targets.items():
        if t.kind not in ("binary", "count", "present"):
            raise IngestError(f"data.table.targets.{name}: kind must be binary, count or present, got {t.kind!r}")
    ex = spec.explode
    roles = _roles(spec)
    produced = {ex.item, ex.label} - {None} if ex else set()
    kept = _check_joins(spec, produced)
    ons = [j.key for j in spec.join]
    declared = [*roles, *spec.row_id, *([ex.column] if ex else []), *ons]
    needed = tuple(c for c in dict.fromkeys(declared) if c not in produced | kept)
    if spec.format in ("csv", "tsv") and not spec.header:
        absent = [c for c in needed if c not in spec.columns]
        if absent:
            raise IngestError(f"data.table.columns (header-less {spec.format}) lacks declared column {absent[0]!r}")
    ids = tuple(dict.fromkeys(c for c in (spec.user, spec.item, spec.creator, spec.group, ex and ex.item) if c))
    targets = tuple((t.column, t.kind) for t in spec.targets.values())
    return _Plan(
        time=spec.time, time_format=spec.time_format, ids=ids, targets=targets, numeric=tuple(spec.numeric),
        strings=(*spec.categorical, *spec.text, *spec.url, *spec.lists), row_id=tuple(spec.row_id), needed=needed,
        list_seps={c: spec.list_sep for c in spec.lists} | ({ex.column: ex.sep} if ex else {}), explode=ex,
        schema=_schema(ids, targets, spec),
        keep_list=bool(ex) and (ex.column in roles or ex.column in spec.row_id or ex.column in ons),
    )


def _roles(spec: TableConfig) -> dict[str, str]:
    """Column -> role of every column the spec writes (or parses: the time); a column in two roles is an error.

    ``row_id`` columns may have a role too (they only feed the row_id hash), and
    ``item`` may be the explode item.
    """
    ex = spec.explode
    roles = [(spec.time, "time")]
    roles += [(c, r) for r in ("user", "item", "creator", "group") if (c := getattr(spec, r))]
    if ex and ex.item != spec.item:
        roles.append((ex.item, "explode.item"))
    roles += [(t.column, f"targets.{name}") for name, t in spec.targets.items()]
    for role in ("categorical", "numeric", "text", "url", "lists"):
        roles += [(c, role) for c in getattr(spec, role)]
    seen: dict[str, str] = {}
    for col, role in roles:
        if col in seen:
            raise IngestError(f"data.table: column {col!r} is both {seen[col]} and {role}")
        if col in (TABLE_ROW_ID, TABLE_TIME) and role != "time":
            raise IngestError(f"data.table: column {col!r} ({role}) collides with the canonical {col!r} column")
        seen[col] = role
    return seen


def _check_time_format(fmt: str) -> None:
    if fmt in ("unix", "unix_ms", "iso"):
        return
    if "%" not in fmt:
        raise IngestError(f"data.table.time_format must be unix, unix_ms, iso or a strptime pattern, got {fmt!r}")
    try:
        pd.to_datetime(pd.Series(["x"]), format=fmt, errors="coerce", utc=True)
    except ValueError as exc:
        raise IngestError(f"data.table.time_format {fmt!r} is not a valid strptime pattern: {exc}") from None


def _check_joins(spec: TableConfig, produced: set[str]) -> set[str]:
    """The columns the side tables add (checked for clashes)."""
    kept: set[str] = set()
    for j in spec.join:
        if j.format not in FORMATS:
            raise IngestError(f"data.table.join {j.path}: format must be one of {FORMATS}, got {j.format!r}")
        if j.format in ("csv", "tsv") and not j.header and not j.columns:
            raise IngestError(f"data.table.join {j.path}: a header-less side table needs columns")
        for col in j.keep:
            if col == j.key or col in produced or col in kept or (not spec.header and col in spec.columns):
                raise IngestError(f"data.table.join {j.path}: kept column {col!r} clashes with another column")
            kept.add(col)
    return kept


def _schema(ids: list[str], targets: tuple[tuple[str, str], ...], spec: TableConfig) -> pa.Schema:
    fields = [(TABLE_ROW_ID, pa.int64()), (TABLE_TIME, pa.int64())] + [(c, pa.int64()) for c in ids]
    fields += [(c, pa.float64() if kind == "count" else pa.int8()) for c, kind in targets]
    fields += [(c, pa.string()) for c in spec.categorical] + [(c, pa.float64()) for c in spec.numeric]
    fields += [(c, pa.string()) for c in (*spec.text, *spec.url, *spec.lists)]
    return pa.schema(fields)


# ---------------------------------------------------------------- chunks


class _Bad(NamedTuple):
    """One bad source row."""

    line: int
    column: str | None
    reason: str
    detail: str
    raw: bytes | str


def _line(bad: _Bad) -> int:
    return bad.line


@dataclass
class _Chunk:
    """Source rows as strings (declared columns only), with their lines and the bad rows read among them."""

    frame: pd.DataFrame
    line: np.ndarray
    raw: Callable[[np.ndarray], list[bytes | str]]
    bad: list[_Bad] = field(default_factory=list)
    missing: str | None = None
    bytes_done: int = 0

    @property
    def rows(self) -> int:
        return len(self.line)

    def slices(self, limit: int, weights: np.ndarray | None = None) -> Iterator[_Chunk]:
        """Consecutive parts of at most ``limit`` rows (or total ``weights``); bad rows go with their lines."""
        w = np.ones(self.rows, np.int64) if weights is None else np.maximum(weights, 1)
        group = (np.cumsum(w) - 1) // max(limit, 1)
        cuts = [0, *(np.flatnonzero(np.diff(group)) + 1).tolist(), self.rows]
        if len(cuts) <= 2:
            yield self
            return
        bad = sorted(self.bad, key=_line)
        at = np.searchsorted([b.line for b in bad], self.line[cuts[1:-1]], side="left").tolist()
        for i, (a, b) in enumerate(zip(cuts[:-1], cuts[1:])):
            lo, hi = ([0] + at)[i], (at + [len(bad)])[i]
            yield _Chunk(self.frame.iloc[a:b].reset_index(drop=True), self.line[a:b],
                         lambda rows, a=a: self.raw(np.asarray(rows) + a), bad[lo:hi], self.missing, self.bytes_done)


@dataclass(frozen=True)
class _Source:
    """How to read one kind of file."""

    fmt: str
    header: bool
    columns: tuple[str, ...]
    needed: tuple[str, ...]
    list_seps: dict[str, str]
    time: str | None = None
    time_format: str = "unix"


def _empty_frame(columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype="str") for c in columns})


def _read(path: Path, src: _Source, chunk_rows: int) -> Iterator[_Chunk]:
    """The chunks of one input file."""
    if src.fmt == "parquet":
        return _read_parquet(path, src, chunk_rows)
    if src.fmt == "jsonl":
        return _read_jsonl(path, src, BLOCK_BYTES)
    return _read_delimited(path, src, BLOCK_BYTES)


# ---------------------------------------------------------------- CSV / TSV


class _LineFeed(io.RawIOBase):
    """A file's lines as a byte stream for pyarrow's CSV parser.

    Lines that are not UTF-8 are blanked (and set aside as bad rows) so the
    parser never sees them; the physical number of each non-blank line fed is
    kept, once per record pyarrow starts on it (bare ``\r`` also end a line
    for pyarrow), so records can be mapped back to lines by :class:`_RecordLines`
    (pyarrow reads ahead in a thread, hence the lock).
    """

    def __init__(self, path: Path, block_size: int) -> None:
        super().__init__()
        self._blocks = iter_line_blocks(path, block_size)
        self._buf, self._pos, self._next_line = memoryview(b""), 0, 1
        self._lock = threading.Lock()
        self._lines: list[np.ndarray] = []
        self._bad: list[_Bad] = []
        self.bytes_done = 0
        self.seen_lines = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        """Fill ``b`` whole unless the file ends (pyarrow needs a quoted record's rest within the next read)."""
        done = 0
        while done < len(b):
            if self._pos >= len(self._buf):
                block = next(self._blocks, None)
                if block is None:
                    break
                self._buf, self._pos = self._feed(block), 0
                continue
            n = min(len(b) - done, len(self._buf) - self._pos)
            b[done : done + n] = self._buf[self._pos : self._pos + n]
            self._pos += n
            done += n
        return done

    def _feed(self, block: LineBlock) -> memoryview:
        first = self._next_line
        self._next_line += int(np.count_nonzero(np.frombuffer(block.data, np.uint8) == 10))
        records = np.ones(len(block.line_no), np.int64)  # records pyarrow sees on each line (if unquoted)
        data, bad = block.data, []
        if block.bad_utf8:
            pos = np.fromiter(block.bad_utf8, np.int64)
            records[pos] = 0
            bad = [_Bad(int(block.line_no[i]), None, "invalid_utf8", "invalid UTF-8", raw)
                   for i, raw in block.bad_utf8.items()]
            lines = bytes(data).split(b"\n")
            for i in block.line_no[pos] - first:
                lines[i] = b""
            data = memoryview(b"\n".join(lines))
        if block.has_cr:  # pyarrow also ends a line at a bare "\r"
            for i in np.flatnonzero(pc.match_substring(block.lines, "\r").to_numpy(zero_copy_only=False)):
                pieces = block.lines[int(i)].as_py()[:-1].removesuffix("\r").split("\r")
                records[i] = sum(1 for piece in pieces if piece)
        with self._lock:
            self._lines.append(np.repeat(block.line_no, records))
            self._bad.extend(bad)
            self.bytes_done = block.bytes_done
            self.seen_lines += int(records.sum())
        return data

    def take_lines(self) -> list[np.ndarray]:
        with self._lock:
            out, self._lines = self._lines, []
        return out

    def take_bad(self, upto: float = math.inf) -> list[_Bad]:
        """The non-UTF-8 lines up to line ``upto``, removed from the feed."""
        with self._lock:
            out = [b for b in self._bad if b.line <= upto]
            self._bad = [b for b in self._bad if b.line > upto]
        return out

    def close(self) -> None:
        try:
            self._blocks.close()
        except ValueError:  # still running in pyarrow's read-ahead thread; it ends with the reader
            pass
        super().close()


class _RecordLines:
    """The physical line each CSV record starts on.

    pyarrow numbers records (1-based, blank lines skipped): a batch's rows plus
    the invalid rows reported before it are the next records in order. A record
    starts on the next non-blank line fed and spans one line more per newline
    inside it.
    """

    def __init__(self, feed: _LineFeed) -> None:
        self.feed = feed
        self.next = 1
        self.invalid: dict[int, tuple[str, int, int]] = {}
        self._lines = np.zeros(0, np.int64)
        self._i = 0
        self.end = 0  # last line of the last record of the last batch

    def on_invalid(self, row: Any) -> str:
        self.invalid[row.number if row.number is not None else -len(self.invalid) - 1] = (
            row.text, row.expected_columns, row.actual_columns)
        return "skip"

    def batch(self, nl: np.ndarray) -> tuple[np.ndarray, list[_Bad]]:
        """Lines of a batch's rows (``nl``: newlines in each) and the invalid records before its last row."""
        pending = sorted(self.invalid)
        cand = np.arange(self.next, self.next + len(nl) + len(pending))
        is_bad = np.isin(cand, pending)
        stop = int(np.flatnonzero(~is_bad)[len(nl) - 1]) + 1
        cand, is_bad = cand[:stop], is_bad[:stop]
        rows = [self.invalid.pop(int(k)) for k in cand[is_bad]]
        all_nl = np.zeros(stop, np.int64)
        all_nl[~is_bad] = nl
        all_nl[is_bad] = [text.count("\n") for text, _, _ in rows]
        starts = self._starts(all_nl)
        self.next = int(cand[-1]) + 1
        self.end = int(starts[-1] + all_nl[-1])
        return starts[~is_bad], _field_count_rows(starts[is_bad], rows)

    def rest(self) -> list[_Bad]:
        """The invalid records after the last batch."""
        rows = [self.invalid.pop(k) for k in sorted(self.invalid)]
        return _field_count_rows(self._starts(np.array([t.count("\n") for t, _, _ in rows], np.int64)), rows)

    def _starts(self, nl: np.ndarray) -> np.ndarray:
        self._lines = np.concatenate([self._lines[self._i :], *self.feed.take_lines()])
        lines, i, k = self._lines, 0, 0
        out = np.empty(len(nl), np.int64)
        for j in [*np.flatnonzero(nl).tolist(), len(nl) - 1]:
            if j < k:
                continue
            run = lines[i : i + j - k + 1]
            out[k : k + len(run)] = run
            out[k + len(run) : j + 1] = run[-1] if len(run) else (lines[-1] if len(lines) else 0)  # only on a desync
            i += j - k + 1
            if nl[j]:
                i = int(np.searchsorted(lines, out[j] + nl[j], side="right"))
            k = j + 1
        self._i = min(i, len(lines))
        return out


def _field_count_rows(lines: np.ndarray, rows: list[tuple[str, int, int]]) -> list[_Bad]:
    return [_Bad(int(line), None, "wrong_field_count", f"expected {want} fields, got {got}", text)
            for line, (text, want, got) in zip(lines, rows)]


class _LongRecord(Exception):
    """pyarrow met a record longer than a read block (or a quote left open)."""


class _DelimitedReader:
    """CSV / TSV chunks: pyarrow batches, then (after a :class:`_LongRecord`) one record per line.

    A stray ``"`` opening a field makes a CSV record run to the next quote,
    maybe past a whole read block; the rest of the file is then parsed line by
    line (Python's csv module, quotes honoured within a line) instead of failing.
    """

    def __init__(self, path: Path, src: _Source, block_size: int) -> None:
        self.path, self.src, self.block_size = path, src, block_size
        self.delim = "," if src.fmt == "csv" else "\t"
        self.feed = _LineFeed(path, block_size)
        self.records = _RecordLines(self.feed)
        self.index: dict[str, int] | None = None if src.header else _header_index(src.columns)
        self.width = len(src.columns)  # fields per record

    def chunks(self) -> Iterator[_Chunk]:
        try:
            yield from self._batches()
        except _LongRecord:
            yield from self._line_mode(self.records.end + 1, self.feed.take_bad(self.records.end))
        finally:
            self.feed.close()

    def _batches(self) -> Iterator[_Chunk]:
        reader = self._open()
        while reader is not None:
            batch = self._next(reader)
            if batch is None:
                break
            if batch.num_rows == 0:
                continue
            cols = [batch.column(i) for i in range(batch.num_columns)]
            nl = _newlines(cols) if self.src.fmt == "csv" else np.zeros(batch.num_rows, np.int64)
            lines, bad = self.records.batch(nl)
            if self.index is None:
                self.index, self.width = _header_index([c[0].as_py() for c in cols]), len(cols)
                cols, lines = [c.slice(1) for c in cols], lines[1:]
            yield self._chunk(cols, lines, bad + self.feed.take_bad(self.records.end))
        rest = self.records.rest() + self.feed.take_bad()
        if rest:
            yield self._chunk([pa.array([], pa.string())] * self.width, np.zeros(0, np.int64), rest)

    def _open(self) -> pacsv.CSVStreamingReader | None:
        """pyarrow's streaming reader over the feed, every column a string; None for a file without records."""
        names = None if self.src.header else list(self.src.columns)
        types = {n: pa.string() for n in (names or [f"f{i}" for i in range(MAX_FIELDS)])}
        try:
            reader = pacsv.open_csv(
                self.feed,
                read_options=pacsv.ReadOptions(use_threads=False, block_size=self.block_size, column_names=names,
                                               autogenerate_column_names=names is None),
                parse_options=pacsv.ParseOptions(delimiter=self.delim, quote_char='"' if self.src.fmt == "csv" else False,
                                                 newlines_in_values=self.src.fmt == "csv", ignore_empty_lines=True,
                                                 invalid_row_handler=self.records.on_invalid),
                convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False),
            )
        except (pa.ArrowException, OSError) as exc:
            if not isinstance(exc, IngestError) and (self.feed.seen_lines == 0 or "Empty CSV file" in str(exc)):
                return None
            self._fail(exc)
        if len(reader.schema) > len(types):
            raise IngestError(f"{self.path}: more than {MAX_FIELDS} fields per record")
        return reader

    def _next(self, reader: pacsv.CSVStreamingReader) -> pa.RecordBatch | None:
        try:
            return reader.read_next_batch()
        except StopIteration:
            return None
        except (pa.ArrowException, OSError) as exc:
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        if isinstance(exc, IngestError):
            raise exc
        if "straddl" in str(exc):
            raise _LongRecord() from exc
        raise IngestError(f"{self.path}: unreadable input ({exc})") from exc

    def _chunk(self, cols: list[pa.Array], lines: np.ndarray, bad: list[_Bad]) -> _Chunk:
        index, delim = self.index or {}, self.delim
        frame = pd.DataFrame({c: cols[index[c]].to_pandas() for c in self.src.needed if c in index},
                             index=range(len(lines)))

        def raw(rows: np.ndarray) -> list[bytes | str]:
            picked = [c.take(pa.array(rows, pa.int64())).to_pylist() for c in cols]
            return [delim.join(values) for values in zip(*picked)]

        missing = next((c for c in self.src.needed if c not in index), None)
        return _Chunk(frame, np.asarray(lines, np.int64), raw, bad, missing, self.feed.bytes_done)

    def _line_mode(self, start: int, bad: list[_Bad]) -> Iterator[_Chunk]:
        """Chunks of the lines from ``start`` on, each line one record."""
        for block in iter_line_blocks(self.path, self.block_size):
            rows, lines = [], []
            for i in np.flatnonzero(block.line_no >= start).tolist():
                line = int(block.line_no[i])
                if i in block.bad_utf8:
                    bad.append(_Bad(line, None, "invalid_utf8", "invalid UTF-8", block.bad_utf8[i]))
                    continue
                text = block.lines[i].as_py().rstrip("\r\n").removeprefix("\ufeff" if line == 1 else "")
                if not text:
                    continue
                fields = _split_line(text, self.delim)
                if self.index is None:
                    self.index, self.width = _header_index(fields or [text]), len(fields or [text])
                elif fields is None or len(fields) != self.width:
                    got = "an unparsable line" if fields is None else f"{len(fields)} fields"
                    bad.append(_Bad(line, None, "wrong_field_count", f"expected {self.width} fields, got {got}", text))
                else:
                    rows.append(fields)
                    lines.append(line)
            cols = [pa.array(col, pa.string()) for col in zip(*rows)] if rows else [pa.array([], pa.string())] * self.width
            yield self._chunk(cols, np.asarray(lines, np.int64), bad)
            bad = []


def _split_line(text: str, delim: str) -> list[str] | None:
    """The fields of one line (quotes honoured for CSV only); None if it cannot be split."""
    try:
        return next(csv.reader([text], delimiter=delim, quoting=csv.QUOTE_MINIMAL if delim == "," else csv.QUOTE_NONE))
    except csv.Error:
        return None


def _header_index(names: list[str] | tuple[str, ...]) -> dict[str, int]:
    """Column -> position of a header (the first of duplicated names wins)."""
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)
    return index


def _read_delimited(path: Path, src: _Source, block_size: int) -> Iterator[_Chunk]:
    """CSV / TSV chunks (see :class:`_DelimitedReader`)."""
    return _DelimitedReader(path, src, block_size).chunks()


def _newlines(cols: list[pa.Array]) -> np.ndarray:
    """Newlines inside each row's fields (quoted CSV fields may hold some)."""
    total = np.zeros(len(cols[0]) if cols else 0, np.int64)
    for col in cols:
        total += pc.count_substring(col, "\n").to_numpy(zero_copy_only=False)
    return total


# ---------------------------------------------------------------- JSONL


def _json_text(value: Any, sep: str) -> str:
    """A JSON value as the text a CSV field would hold (lists joined by ``sep``)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return sep.join(_json_text(v, sep) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _read_jsonl(path: Path, src: _Source, block_size: int) -> Iterator[_Chunk]:
    """JSONL chunks, one per line block; blank lines are skipped, other non-objects quarantined."""
    first = True
    for block in iter_line_blocks(path, block_size):
        objs, lines, raws, bad = [], [], [], []
        for i, text in enumerate(block.lines.to_pylist()):
            line = int(block.line_no[i])
            if i in block.bad_utf8:
                bad.append(_Bad(line, None, "invalid_utf8", "invalid UTF-8", block.bad_utf8[i]))
                continue
            text = text.rstrip("\r\n")
            if first:
                text, first = text.removeprefix("\ufeff"), False
            if not text.strip():
                continue
            obj, problem = _json_object(text)
            if problem:
                bad.append(_Bad(line, None, "bad_json", problem, text))
                continue
            objs.append(obj)
            lines.append(line)
            raws.append(text)
        frame = pd.DataFrame({c: pd.Series([_json_text(o.get(c), src.list_seps.get(c, " ")) for o in objs], dtype="str")
                              for c in src.needed}, index=range(len(objs)))
        yield _Chunk(frame, np.asarray(lines, np.int64), lambda rows, raws=raws: [raws[i] for i in rows], bad, None,
                     block.bytes_done)


def _json_object(text: str) -> tuple[dict, str]:
    """(the object, "") or ({}, why the line is not a JSON object)."""
    try:
        obj = json.loads(text)
    except ValueError as exc:
        return {}, f"bad_json: {exc}"
    return (obj, "") if isinstance(obj, dict) else ({}, f"bad_json: a JSON {type(obj).__name__}, not an object")


# ---------------------------------------------------------------- parquet


def _read_parquet(path: Path, src: _Source, batch_rows: int) -> Iterator[_Chunk]:
    """Parquet chunks of ``batch_rows`` records; line = 1-based record number."""
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise IngestError(f"{path}: not a readable parquet file ({exc})") from exc
    names = pf.schema_arrow.names
    missing = next((c for c in src.needed if c not in names), None)
    cols = [c for c in src.needed if c in names]
    first = 1
    batches = pf.iter_batches(batch_size=batch_rows, columns=cols or names[:1])
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError) as exc:
            raise IngestError(f"{path}: unreadable input ({exc})") from exc
        if batch is None:
            return
        n = batch.num_rows
        texts, bad_col = {}, np.full(n, None, dtype=object)
        for c in cols:
            texts[c], bad = _arrow_text(batch.column(c), src.list_seps.get(c, " "),
                                        src.time_format if c == src.time else None)
            bad_col[bad & (bad_col == None)] = c  # noqa: E711 - elementwise
        lines = np.arange(first, first + n, dtype=np.int64)
        records = batch.select(cols) if cols else None

        def raw(rows: np.ndarray, records: pa.RecordBatch | None = records) -> list[bytes | str]:
            if records is None:
                return ["{}"] * len(rows)
            picked = records.take(pa.array(rows, pa.int64())).to_pylist()
            return [json.dumps(r, default=str, ensure_ascii=False) for r in picked]

        done = int(os.path.getsize(path) * (first + n - 1) / max(pf.metadata.num_rows, first + n - 1))
        chunk = _Chunk(pd.DataFrame(texts, index=range(n)), lines, raw, [], missing, done)
        if (bad_col != None).any():  # noqa: E711 - elementwise
            chunk = _drop_rows(chunk, bad_col, "invalid_utf8")
        first += n
        yield chunk


def _drop_rows(chunk: _Chunk, column: np.ndarray, reason: str) -> _Chunk:
    """``chunk`` without the rows that name a ``column``, which become bad rows with ``reason``."""
    rows = column != None  # noqa: E711 - elementwise
    at, keep = np.flatnonzero(rows), np.flatnonzero(~rows)
    bad = [_Bad(int(chunk.line[i]), column[i], reason, reason, r) for i, r in zip(at, chunk.raw(at))]
    return _Chunk(chunk.frame.iloc[keep].reset_index(drop=True), chunk.line[keep],
                  lambda r: chunk.raw(keep[np.asarray(r, np.int64)]), chunk.bad + bad, chunk.missing, chunk.bytes_done)


def _arrow_text(arr: pa.Array, sep: str, time_format: str | None) -> tuple[pd.Series, np.ndarray]:
    """A parquet column as text (as a CSV field would hold it) and the rows whose bytes are not UTF-8."""
    t, bad = arr.type, np.zeros(len(arr), bool)
    try:
        if time_format and (pa.types.is_timestamp(t) or pa.types.is_date(t)):
            arr = _timestamp_text(arr, time_format)
        elif pa.types.is_list(t) or pa.types.is_large_list(t):
            arr = pc.binary_join(pc.cast(arr, pa.list_(pa.string())), sep)
        elif not (pa.types.is_string(t) or pa.types.is_large_string(t)):
            arr = pc.cast(arr, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        values = arr.to_pylist()
        if pa.types.is_binary(t) or pa.types.is_large_binary(t):
            bad = np.array([v is not None and not _is_utf8(v) for v in values], bool)
            arr = pa.array([None if b or v is None else v.decode() for v, b in zip(values, bad)], pa.string())
        else:
            arr = pa.array([None if v is None else json.dumps(v, default=str) for v in values], pa.string())
    return pc.fill_null(arr, "").to_pandas(), bad


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _timestamp_text(arr: pa.Array, fmt: str) -> pa.Array:
    """Timestamps / dates as text in ``fmt`` (instants in UTC)."""
    if pa.types.is_date(arr.type):
        arr = arr.cast(pa.timestamp("s"))
    per_s = _PER_SECOND[arr.type.unit]
    ticks = pc.fill_null(arr.cast(pa.int64()), 0).to_numpy()
    secs = ticks // per_s
    if fmt in ("unix", "unix_ms"):
        text = pa.array((ticks * 1000 // per_s if fmt == "unix_ms" else secs).astype(str))
    else:
        text = pc.strftime(pa.array(secs, pa.timestamp("s")), format="%Y-%m-%dT%H:%M:%S" if fmt == "iso" else fmt)
    return pc.if_else(arr.is_null(), pa.scalar(None, pa.string()), text.cast(pa.string()))


# ---------------------------------------------------------------- side tables


@dataclass(frozen=True)
class _SideTable:
    """A side table's kept columns indexed by its key (the first row of each key)."""

    on: str
    keep: tuple[str, ...]
    table: pd.DataFrame

    def join(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with the kept columns of the rows matching its ``on`` values ("" where none does)."""
        found = self.table.reindex(frame[self.on].to_numpy(dtype=object))
        return frame.assign(**{c: found[c].fillna("").set_axis(frame.index) for c in self.keep})


def _read_side(side: SideTableSpec, strict: bool, chunk_rows: int) -> _SideTable:
    """Read a whole side table; its malformed rows are skipped with a warning (strict: StrictModeError)."""
    path = _input_paths([side.path])[0]
    needed = (side.key, *side.keep)
    src = _Source(side.format, side.header, tuple(side.columns), needed, {})
    frames, skipped = [], 0
    for chunk in _read(path, src, chunk_rows):
        if chunk.missing:
            raise IngestError(f"{path}: side table has no column {chunk.missing!r}")
        if chunk.bad:
            if strict:
                b = min(chunk.bad, key=_line)
                raise StrictModeError(str(path), b.line, b.column, b.reason, b.detail)
            skipped += len(chunk.bad)
        frames.append(chunk.frame[list(needed)])
    if skipped:
        warnings.warn(f"{path}: skipped {skipped} malformed side-table rows", stacklevel=3)
    table = pd.concat(frames, ignore_index=True) if frames else _empty_frame(needed)
    table = table.drop_duplicates(subset=side.key, keep="first").set_index(side.key)
    return _SideTable(side.key, tuple(side.keep), table)


# ---------------------------------------------------------------- typing


class _Errors:
    """The first error of each row: reason ("" where none), column and detail."""

    def __init__(self, n: int) -> None:
        self.reason = np.full(n, "", dtype=object)
        self.column = np.full(n, None, dtype=object)
        self.detail = np.full(n, "", dtype=object)

    @property
    def bad(self) -> np.ndarray:
        return self.reason != ""

    def add(self, mask: np.ndarray, reason: str, column: str | None, values: pd.Series | None = None,
            what: str = "") -> None:
        """Mark the rows of ``mask`` that have no error yet (detail: ``what`` or ``reason`` and the value)."""
        new = np.flatnonzero(np.asarray(mask, bool) & ~self.bad)
        if not len(new):
            return
        self.reason[new], self.column[new] = reason, column
        shown = values.iloc[new].tolist() if values is not None else [None] * len(new)
        self.detail[new] = [f"{what or reason}: {v!r}"[:200] if v is not None else (what or reason) for v in shown]

    def lift(self, rows: _Errors, src: np.ndarray) -> None:
        """Give each source row (``src``: source of each row) the first error of its rows."""
        bad = np.flatnonzero(rows.bad)
        if not len(bad):
            return
        s, first = np.unique(src[bad], return_index=True)
        at = bad[first]
        new = ~self.bad[s]
        s, at = s[new], at[new]
        self.reason[s], self.column[s], self.detail[s] = rows.reason[at], rows.column[at], rows.detail[at]


def _parse_time(s: pd.Series, fmt: str) -> tuple[np.ndarray, np.ndarray]:
    """(unix seconds, valid) of each value; naive times are UTC."""
    s = s.str.strip()
    if fmt in ("unix", "unix_ms"):
        v = pd.to_numeric(s, errors="coerce").to_numpy(np.float64)
        with np.errstate(invalid="ignore"):
            secs = np.floor(v / (1000 if fmt == "unix_ms" else 1))
            ok = np.isfinite(secs) & (secs >= MIN_TIME) & (secs <= MAX_TIME)
        return np.where(ok, secs, 0).astype(np.int64), ok
    dt = pd.to_datetime(s, format="ISO8601" if fmt == "iso" else fmt, utc=True, errors="coerce")
    arr = dt.dt.tz_convert(None).to_numpy()
    secs = arr.view(np.int64) // _PER_SECOND[np.datetime_data(arr.dtype)[0]]
    ok = ~np.isnat(arr) & (secs >= MIN_TIME) & (secs <= MAX_TIME)
    return np.where(ok, secs, 0).astype(np.int64), ok


def _numbers(s: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(float values, empty, unparsable or infinite) of text values ("nan" parses as NaN)."""
    s = s.str.strip()
    empty = (s == "").to_numpy(bool)
    v = pd.to_numeric(s, errors="coerce").to_numpy(np.float64)
    literal_nan = s.str.lower().isin(["nan", "+nan", "-nan"]).to_numpy(bool)
    bad = ~empty & ((np.isnan(v) & ~literal_nan) | np.isinf(v))
    return v, empty, bad


def _target(s: pd.Series, kind: str, column: str, err: _Errors) -> np.ndarray:
    """Typed values of a target column; bad values marked in ``err``."""
    if kind == "present":
        return (s.str.strip() != "").to_numpy(bool).astype(np.int8)
    if kind == "binary":
        v = s.str.strip().str.lower()
        one, zero = v.isin(_TRUE).to_numpy(bool), v.isin(_FALSE).to_numpy(bool)
        err.add((v == "").to_numpy(bool), "bad_target", column, s, "missing target value")
        err.add(~(one | zero), "bad_target", column, s, "not 0/1/true/false")
        return one.astype(np.int8)
    values, empty, bad = _numbers(s)
    err.add(empty, "bad_target", column, s, "missing target value")
    err.add(bad, "bad_number", column, s)
    with np.errstate(invalid="ignore"):
        err.add(values < 0, "bad_target", column, s, "negative count")
    return values


def _typed(frame: pd.DataFrame, plan: _Plan) -> tuple[dict[str, Any], _Errors]:
    """The output columns (but row_id) of ``frame``'s rows, and each row's first bad value."""
    err = _Errors(len(frame))
    out: dict[str, Any] = {}
    out[TABLE_TIME], ok = _parse_time(frame[plan.time], plan.time_format)
    err.add(~ok, "bad_time", plan.time, frame[plan.time])
    for c in plan.ids:
        out[c] = hash_strings(frame[c])
    for c, kind in plan.targets:
        out[c] = _target(frame[c], kind, c, err)
    for c in plan.numeric:
        out[c], _, bad = _numbers(frame[c])
        err.add(bad, "bad_number", c, frame[c])
    for c in plan.strings:
        out[c] = frame[c].fillna("")
    return out, err


def _row_ids(frame: pd.DataFrame, cols: tuple[str, ...], key: str, line: np.ndarray, pos: np.ndarray) -> np.ndarray:
    if cols:
        text = frame[cols[0]] if len(cols) == 1 else frame[cols[0]].str.cat([frame[c] for c in cols[1:]], sep=_SEP)
    else:
        line_text, pos_text = pd.Series(line, dtype="int64").astype("str"), pd.Series(pos, dtype="int64").astype("str")
        text = (key + _SEP) + line_text + _SEP + pos_text
    return hash_strings(text)


# ---------------------------------------------------------------- explode


def _explode(frame: pd.DataFrame, ex: ExplodeSpec, err: _Errors,
             keep_list: bool) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """One row per token of ``ex.column`` (source rows with no or a malformed token marked in ``err``).

    Returns the rows, the source row of each and its token position; the
    list column itself is dropped unless ``keep_list``.
    """
    lists = pc.split_pattern(_arrow_strings(frame[ex.column]), ex.sep)
    tokens = pc.list_flatten(lists)
    parent = pc.list_parent_indices(lists).to_numpy()
    nonempty = pc.not_equal(tokens, "").to_numpy(zero_copy_only=False)
    tokens, parent = tokens.filter(pa.array(nonempty)), parent[nonempty]
    pos = np.arange(len(parent)) - np.searchsorted(parent, parent, side="left")
    items, labels, bad = _split_tokens(tokens, ex)
    n = len(frame)
    err.add(np.bincount(parent, minlength=n) == 0, "bad_explode_token", ex.column, None, "empty list")
    if bad.any():
        at = np.flatnonzero(bad)
        sources, first = np.unique(parent[at], return_index=True)
        rows, shown = np.zeros(n, bool), pd.Series([""] * n, dtype="str")
        rows[sources] = True
        shown.iloc[sources] = tokens.take(pa.array(at[first])).to_pylist()
        err.add(rows, "bad_explode_token", ex.column, shown, "malformed token")
    keep = np.flatnonzero(~err.bad[parent])
    parent = parent[keep]
    out = (frame if keep_list else frame.drop(columns=[ex.column])).iloc[parent].reset_index(drop=True)
    out[ex.item] = pd.Series(items.take(pa.array(keep)).to_pandas(), dtype="str")
    if ex.label:
        out[ex.label] = pd.Series(labels[keep], dtype="str")
    return out, parent, pos[keep]


def _arrow_strings(s: pd.Series) -> pa.Array:
    arr = pa.array(s, pa.large_string())
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _split_tokens(tokens: pa.Array, ex: ExplodeSpec) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """(items, labels, malformed) of ``ITEM<label_sep>LABEL`` tokens (labels "" without ``ex.label``)."""
    n = len(tokens)
    if not ex.label:
        return tokens, np.full(n, "", dtype=object), np.zeros(n, bool)
    parts = pc.split_pattern(tokens, ex.label_sep, max_splits=1, reverse=True)
    two = (pc.list_value_length(parts).to_numpy(zero_copy_only=False) == 2)
    items = pc.list_element(parts, 0)
    labels = np.full(n, "", dtype=object)
    labels[two] = pc.list_flatten(pc.list_slice(parts, 1, 2)).to_numpy(zero_copy_only=False)
    bad = ~two | (pc.equal(items, "").to_numpy(zero_copy_only=False))
    return items, labels, bad


# ---------------------------------------------------------------- driver


@dataclass
class _Run:
    """What every chunk of an ingest is processed with."""

    plan: _Plan
    sides: list[_SideTable]
    writer: DayWriter
    quarantine: Quarantine
    strict: bool
    chunk_rows: int


def _process(chunk: _Chunk, key: str, run: _Run) -> tuple[pa.Table | None, list[_Bad]]:
    """The output rows of a chunk and its bad source rows (those read bad too)."""
    n, plan = chunk.rows, run.plan
    if n == 0:
        return None, list(chunk.bad)
    err = _Errors(n)
    if chunk.missing:
        err.add(np.ones(n, bool), "missing_column", chunk.missing, None, f"the file has no column {chunk.missing!r}")
        return None, chunk.bad + _bad_rows(chunk, err)
    frame, src, pos = chunk.frame, np.arange(n), np.zeros(n, np.int64)
    if plan.explode:
        frame, src, pos = _explode(frame, plan.explode, err, plan.keep_list)
    for side in run.sides:
        frame = side.join(frame)
    columns, row_err = _typed(frame, plan)
    err.lift(row_err, src)
    if len(plan.row_id) == 1 and plan.row_id[0] in plan.ids:  # already hashed
        columns[TABLE_ROW_ID] = columns[plan.row_id[0]]
    else:
        columns[TABLE_ROW_ID] = _row_ids(frame, plan.row_id, key, chunk.line[src], pos)
    arrays = [pa.array(columns[f.name], f.type, from_pandas=True) for f in plan.schema]
    table = pa.Table.from_arrays(arrays, schema=plan.schema).filter(pa.array(~err.bad[src]))
    return table, chunk.bad + _bad_rows(chunk, err)


def _bad_rows(chunk: _Chunk, err: _Errors) -> list[_Bad]:
    at = np.flatnonzero(err.bad)
    raws = chunk.raw(at) if len(at) else []
    return [_Bad(int(chunk.line[i]), err.column[i], err.reason[i], err.detail[i], r) for i, r in zip(at, raws)]


def _ingest_file(path: Path, key: str, run: _Run, src: _Source,
                 progress: Callable[[int], None]) -> tuple[int, int]:
    """Ingest one file: (source rows, ingested source rows)."""
    rows = ingested = 0
    ex = run.plan.explode
    for chunk in _read(path, src, run.chunk_rows):
        weights = None
        if ex and not chunk.missing and chunk.rows:
            weights = pc.count_substring(_arrow_strings(chunk.frame[ex.column]), ex.sep).to_numpy() + 1
        for part in chunk.slices(run.chunk_rows, weights):
            table, bad = _process(part, key, run)
            if bad and run.strict:
                b = min(bad, key=_line)
                raise StrictModeError(str(path), b.line, b.column, b.reason, b.detail)
            if bad:
                bad.sort(key=_line)
                run.quarantine.extend([str(path)], [b.line for b in bad], [b.column for b in bad],
                                      [b.reason for b in bad], [b.raw for b in bad], [b.detail for b in bad])
            if table is not None:
                run.writer.write(table)
            rows += part.rows + len(part.bad)
            ingested += part.rows + len(part.bad) - len(bad)
        progress(chunk.bytes_done)
    return rows, ingested


def _file_keys(paths: list[Path]) -> dict[Path, str]:
    """The name of each file in default row ids: its file name, or its path under the inputs' common folder."""
    names = [p.name for p in paths]
    if len(set(names)) == len(names):
        return dict(zip(paths, names))
    root = os.path.commonpath([str(p.absolute().parent) for p in paths])
    return {p: os.path.relpath(p.absolute(), root) for p in paths}


def ingest_table(
    inputs: str | os.PathLike | list[str | os.PathLike],
    out_dir: str | os.PathLike,
    spec: TableConfig,
    *,
    strict: bool = False,
    chunk_rows: int = 200_000,
    on_progress: Callable[[int, int], None] | None = None,
) -> IngestResult:
    """Ingest the event table files ``inputs`` (a glob or a list of paths) described by ``spec`` into ``out_dir``.

    ``chunk_rows`` bounds the rows handled at once (after explode);
    ``on_progress(done_bytes, total_bytes)`` is called after each chunk (on-disk
    bytes). Raises :class:`.IngestError` for a bad ``spec``, a missing or
    unreadable input or side table, or an ``out_dir`` that is not an earlier
    ingest output; :class:`.StrictModeError` at the first bad row when ``strict``.
    """
    start = time.perf_counter()
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
    plan = _plan(spec)
    paths = _input_paths(inputs)
    out = Path(out_dir).absolute()
    _check_out_dir(out)
    sides = [_read_side(j, strict, chunk_rows) for j in spec.join]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        quarantine = Quarantine(spill_dir=tmp)
        writer = DayWriter(tmp / "data", plan.schema, time_column=TABLE_TIME)
        run = _Run(plan, sides, writer, quarantine, strict, chunk_rows)
        src = _Source(spec.format, spec.header, tuple(spec.columns), plan.needed, plan.list_seps, spec.time,
                      spec.time_format)
        keys = _file_keys(paths)
        total = sum(p.stat().st_size for p in paths)
        done, input_rows, ingested, empty = 0, 0, 0, []
        for path in paths:
            report = (lambda b, done=done: on_progress(done + b, total)) if on_progress else (lambda b: None)
            rows, good = _ingest_file(path, keys[path], run, src, report)
            done += path.stat().st_size
            input_rows, ingested = input_rows + rows, ingested + good
            if rows == 0:
                empty.append(str(path))
        writer.close()
        if quarantine.total:
            quarantine.write(tmp / QUARANTINE_FILE)
        quarantine.cleanup()
        table_layout(spec).save(tmp)
        result = IngestResult(
            input_rows=input_rows,
            ingested_rows=ingested,
            quarantined_rows=quarantine.total,
            files=len(paths),
            quarantine_counts=dict(sorted(quarantine.counts.items())),
            out_dir=str(out),
            elapsed_s=round(time.perf_counter() - start, 3),
            empty_files=empty,
            rows_per_day=dict(sorted(writer.rows_per_day.items())),
            output_files=writer.files,
            output_rows=sum(writer.rows_per_day.values()),
        )
        _write_json(tmp / RESULT_FILE, asdict(result))
        _publish(tmp, out)
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["FORMATS", "REASONS", "hash_strings", "ingest_table"]
