"""Streaming readers: one CSV / TSV / JSONL / parquet file -> chunks of string columns.

:func:`read` yields a file as :class:`Chunk` objects: the declared columns of a run of source
rows as text (a CSV field's text for JSONL values and parquet cells), the physical line
(parquet: record number) of each row, and the bad rows met while reading
(``wrong_field_count``, ``invalid_utf8``, ``bad_json``, a JSON list / object or a nested
parquet value where one value is expected) or the declared columns the file lacks. Typing
the text is :mod:`.table_types`' job.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import math
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .reader import IngestError, LineBlock, iter_line_blocks

#: Bytes per CSV / JSONL read block (a CSV record must fit in one).
BLOCK_BYTES = 16 << 20
#: Fields a CSV header may have.
MAX_FIELDS = 4096
#: Ticks per second of each time unit.
PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


# ---------------------------------------------------------------- chunks


class Bad(NamedTuple):
    """One bad source row."""

    line: int
    column: str | None
    reason: str
    detail: str
    raw: bytes | str


def by_line(bad: Bad) -> int:
    """Sort key of bad rows: their line."""
    return bad.line


@dataclass
class Chunk:
    """Source rows as strings (declared columns only), with their lines and the bad rows read among them."""

    frame: pd.DataFrame
    line: np.ndarray
    raw: Callable[[np.ndarray], list[bytes | str]]
    bad: list[Bad] = field(default_factory=list)
    missing: tuple[str, ...] = ()  # declared columns the file lacks
    bytes_done: int = 0
    names: tuple[str, ...] = ()  # the file's columns (header, keys seen, schema), for messages

    @property
    def rows(self) -> int:
        return len(self.line)

    def slices(self, limit: int, weights: np.ndarray | None = None) -> Iterator[Chunk]:
        """Consecutive parts of at most ``limit`` rows (or total ``weights``); bad rows go with their lines."""
        w = np.ones(self.rows, np.int64) if weights is None else np.maximum(weights, 1)
        group = (np.cumsum(w) - 1) // max(limit, 1)
        cuts = [0, *(np.flatnonzero(np.diff(group)) + 1).tolist(), self.rows]
        if len(cuts) <= 2:
            yield self
            return
        bad = sorted(self.bad, key=by_line)
        at = np.searchsorted([b.line for b in bad], self.line[cuts[1:-1]], side="left").tolist()
        for i, (a, b) in enumerate(zip(cuts[:-1], cuts[1:])):
            lo, hi = ([0] + at)[i], (at + [len(bad)])[i]
            yield Chunk(self.frame.iloc[a:b].reset_index(drop=True), self.line[a:b],
                        lambda rows, a=a: self.raw(np.asarray(rows) + a), bad[lo:hi], self.missing, self.bytes_done,
                        self.names)


def missing_message(path: Path, fmt: str, chunk: Chunk) -> str:
    """What a file without the columns ``chunk.missing`` lacks, with the closest names it has."""
    has = {"jsonl": "the records have", "parquet": "the schema has"}.get(fmt, "the header has")
    parts = []
    for col in chunk.missing:
        near = close_names(col, chunk.names)
        parts.append(f"{col!r}" + (f" ({has} {', '.join(map(repr, near))})" if near else ""))
    msg = f"{path}: no column{'s' if len(parts) > 1 else ''} {', '.join(parts)}"
    if not any(close_names(c, chunk.names) for c in chunk.missing):
        msg += f"; {has} " + ", ".join(map(repr, chunk.names[:20])) + (", ..." if len(chunk.names) > 20 else "")
    return msg


def close_names(name: str, names: tuple[str, ...]) -> list[str]:
    """Up to 3 of ``names`` like ``name``: equal but for case and surrounding blanks first, then similar ones."""
    same = [n for n in names if n.strip().casefold() == name.strip().casefold()]
    return list(dict.fromkeys(same + difflib.get_close_matches(name, names, n=3, cutoff=0.75)))[:3]


@dataclass(frozen=True)
class Source:
    """How to read one kind of file."""

    fmt: str
    header: bool
    columns: tuple[str, ...]
    needed: tuple[str, ...]
    list_seps: dict[str, str]
    time: str | None = None
    time_format: str = "unix"
    scalars: dict[str, str] = field(default_factory=dict)  # column -> reason of a JSON list / object in it
    required: tuple[str, ...] = ()  # JSONL: keys one of the first block's records at least must have


def read(path: Path, src: Source, chunk_rows: int) -> Iterator[Chunk]:
    """The chunks of one input file.

    **Reading**: CSV / TSV go through pyarrow's streaming CSV parser fed with the
    file's UTF-8 lines (:class:`_LineFeed`; lines that are not UTF-8 are
    quarantined and blanked), every field read as a string, so quoted CSV fields
    may hold newlines while every record is still mapped back to its physical
    line (exact unless a quoted field holds a bare ``\\r``). CSV honours ``"``
    quoting (a stray ``"`` opening a field runs to the next quote, as in any CSV
    reader; should that run past a read block, the rest of the file is parsed one
    record per line), TSV has none. A leading UTF-8 BOM is fine. JSONL is read
    line by line (a missing key reads as ``""``, a JSON list as its items joined
    by the column's list separator); parquet by record batches (line = 1-based
    record number; raw = the record's declared columns as JSON; timestamp columns
    are taken as UTC instants). A JSON list or object (a parquet list, struct or map)
    in a column of ``src.scalars`` makes a bad row with that column's reason.

    **Missing columns**: a chunk's ``missing`` lists the declared columns the
    header (the parquet schema) lacks; for JSONL, the ``src.required`` keys that
    none of the first block's records has.
    """
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
        self._bad: list[Bad] = []
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
            bad = [Bad(int(block.line_no[i]), None, "invalid_utf8", "invalid UTF-8", raw)
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

    def take_bad(self, upto: float = math.inf) -> list[Bad]:
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

    def batch(self, nl: np.ndarray) -> tuple[np.ndarray, list[Bad]]:
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

    def rest(self) -> list[Bad]:
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


def _field_count_rows(lines: np.ndarray, rows: list[tuple[str, int, int]]) -> list[Bad]:
    """Bad records of the wrong width; one that a quoted field stretched over several lines says how many
    (an unclosed quote swallows the lines after it: they are in this record, not lost)."""
    def detail(text: str, want: int, got: int) -> str:
        spans = text.rstrip("\r\n").count("\n") + 1
        return f"expected {want} fields, got {got}" + (f"; the record spans {spans} lines (an unclosed quote?)" if spans > 1 else "")

    return [Bad(int(line), None, "wrong_field_count", detail(text, want, got), text) for line, (text, want, got) in zip(lines, rows)]


class _LongRecord(Exception):
    """pyarrow met a record longer than a read block (or a quote left open)."""


class _DelimitedReader:
    """CSV / TSV chunks: pyarrow batches, then (after a :class:`_LongRecord`) one record per line.

    A stray ``"`` opening a field makes a CSV record run to the next quote,
    maybe past a whole read block; the rest of the file is then parsed line by
    line (Python's csv module, quotes honoured within a line) instead of failing.
    """

    def __init__(self, path: Path, src: Source, block_size: int) -> None:
        self.path, self.src, self.block_size = path, src, block_size
        self.delim = "," if src.fmt == "csv" else "\t"
        self.feed = _LineFeed(path, block_size)
        self.records = _RecordLines(self.feed)
        self.index: dict[str, int] | None = None if src.header else _header_index(src.columns)
        self.width = len(src.columns)  # fields per record

    def chunks(self) -> Iterator[Chunk]:
        try:
            yield from self._batches()
        except _LongRecord:
            yield from self._line_mode(self.records.end + 1, self.feed.take_bad(self.records.end))
        finally:
            self.feed.close()

    def _batches(self) -> Iterator[Chunk]:
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
                cols, lines, nl = [c.slice(1) for c in cols], lines[1:], nl[1:]
            chunk = self._chunk(cols, lines, bad + self.feed.take_bad(self.records.end))
            swallowed = _swallowed(cols, nl, self.width, self.delim)
            yield self._drop_swallowed(chunk, swallowed) if swallowed else chunk
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

    def _drop_swallowed(self, chunk: Chunk, swallowed: dict[int, tuple[int, int]]) -> Chunk:
        """``chunk`` without the records of :func:`_swallowed`, which become bad rows."""
        names = {i: c for c, i in (self.index or {}).items()}
        column, reason, detail = (np.full(chunk.rows, None, dtype=object) for _ in range(3))
        for r, (field_no, spans) in swallowed.items():
            column[r], reason[r] = names.get(field_no, f"field {field_no + 1}"), "wrong_field_count"
            detail[r] = f"a quoted field runs over {spans} lines that look like records (an unclosed quote?)"
        return _drop_rows(chunk, column, reason, detail)

    def _chunk(self, cols: list[pa.Array], lines: np.ndarray, bad: list[Bad]) -> Chunk:
        index, delim = self.index or {}, self.delim
        frame = pd.DataFrame({c: cols[index[c]].to_pandas() for c in self.src.needed if c in index},
                             index=range(len(lines)))

        def raw(rows: np.ndarray) -> list[bytes | str]:
            picked = [c.take(pa.array(rows, pa.int64())).to_pylist() for c in cols]
            return [delim.join(values) for values in zip(*picked)]

        missing = tuple(c for c in self.src.needed if c not in index)
        return Chunk(frame, np.asarray(lines, np.int64), raw, bad, missing, self.feed.bytes_done, tuple(index))

    def _line_mode(self, start: int, bad: list[Bad]) -> Iterator[Chunk]:
        """Chunks of the lines from ``start`` on, each line one record."""
        for block in iter_line_blocks(self.path, self.block_size):
            rows, lines = [], []
            for i in np.flatnonzero(block.line_no >= start).tolist():
                line = int(block.line_no[i])
                if i in block.bad_utf8:
                    bad.append(Bad(line, None, "invalid_utf8", "invalid UTF-8", block.bad_utf8[i]))
                    continue
                text = block.lines[i].as_py().rstrip("\r\n").removeprefix("\ufeff" if line == 1 else "")
                if not text:
                    continue
                fields = _split_line(text, self.delim)
                if self.index is None:
                    self.index, self.width = _header_index(fields or [text]), len(fields or [text])
                elif fields is None or len(fields) != self.width:
                    got = "an unparsable line" if fields is None else f"{len(fields)} fields"
                    bad.append(Bad(line, None, "wrong_field_count", f"expected {self.width} fields, got {got}", text))
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


def _read_delimited(path: Path, src: Source, block_size: int) -> Iterator[Chunk]:
    """CSV / TSV chunks (see :class:`_DelimitedReader`)."""
    return _DelimitedReader(path, src, block_size).chunks()


def _swallowed(cols: list[pa.Array], nl: np.ndarray, width: int, delim: str) -> dict[int, tuple[int, int]]:
    """Record -> (field, lines it spans) of the records with a quoted field whose later lines hold as
    many delimiters as a whole record: the rows an unclosed quote swallowed (to the next quote or the
    end of the file), which would otherwise vanish into one text value."""
    found: dict[int, tuple[int, int]] = {}
    for r in np.flatnonzero(nl).tolist():
        for f, col in enumerate(cols):
            value = col[r].as_py() or ""
            later = value.rstrip("\r\n").split("\n")[1:]
            if width > 1 and any(line.count(delim) >= width - 1 for line in later):
                found[r] = (f, len(later) + 1)
                break
    return found


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


def _read_jsonl(path: Path, src: Source, block_size: int) -> Iterator[Chunk]:
    """JSONL chunks, one per line block; blank lines are skipped, other non-objects quarantined."""
    first, checked = True, False
    for block in iter_line_blocks(path, block_size):
        objs, lines, raws, bad = [], [], [], []
        for i, text in enumerate(block.lines.to_pylist()):
            line = int(block.line_no[i])
            if i in block.bad_utf8:
                bad.append(Bad(line, None, "invalid_utf8", "invalid UTF-8", block.bad_utf8[i]))
                continue
            text = text.rstrip("\r\n")
            if first:
                text, first = text.removeprefix("\ufeff"), False
            if not text.strip():
                continue
            obj, problem = _json_object(text)
            if problem:
                bad.append(Bad(line, None, "bad_json", problem, text))
                continue
            nested = next((c for c in src.scalars if isinstance(obj.get(c), (list, dict))), None)
            if nested:
                bad.append(Bad(line, nested, src.scalars[nested], _nested(obj[nested]), text))
                continue
            objs.append(obj)
            lines.append(line)
            raws.append(text)
        missing, names = (), ()
        if objs and not checked:
            checked, names = True, tuple(dict.fromkeys(k for o in objs for k in o))
            missing = tuple(c for c in src.required if c not in names)
        frame = pd.DataFrame({c: pd.Series([_json_text(o.get(c), src.list_seps.get(c, " ")) for o in objs], dtype="str")
                              for c in src.needed}, index=range(len(objs)))
        yield Chunk(frame, np.asarray(lines, np.int64), lambda rows, raws=raws: [raws[i] for i in rows], bad, missing,
                    block.bytes_done, names)


def _nested(value: Any) -> str:
    """The detail of a JSON list / object where one value is expected."""
    kind = "list" if isinstance(value, list) else "object"
    return f"a JSON {kind} where one value is expected: {json.dumps(value, ensure_ascii=False)[:100]}"


def _json_object(text: str) -> tuple[dict, str]:
    """(the object, "") or ({}, why the line is not a JSON object)."""
    try:
        obj = json.loads(text)
    except ValueError as exc:
        return {}, f"bad_json: {exc}"
    return (obj, "") if isinstance(obj, dict) else ({}, f"bad_json: a JSON {type(obj).__name__}, not an object")


# ---------------------------------------------------------------- parquet


def _read_parquet(path: Path, src: Source, batch_rows: int) -> Iterator[Chunk]:
    """Parquet chunks of ``batch_rows`` records; line = 1-based record number."""
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise IngestError(f"{path}: not a readable parquet file ({exc})") from exc
    names = pf.schema_arrow.names
    missing = tuple(c for c in src.needed if c not in names)
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
        reason, detail = np.full(n, "invalid_utf8", dtype=object), np.full(n, "invalid UTF-8", dtype=object)
        for c in cols:
            texts[c], bad = _arrow_text(batch.column(c), src.list_seps.get(c, " "),
                                        src.time_format if c == src.time else None)
            if c in src.scalars and pa.types.is_nested(batch.column(c).type):
                nested = batch.column(c).is_valid().to_numpy(zero_copy_only=False) & (bad_col == None)  # noqa: E711
                bad_col[nested], reason[nested] = c, src.scalars[c]
                detail[nested] = f"a parquet {batch.column(c).type} where one value is expected"
            bad_col[bad & (bad_col == None)] = c  # noqa: E711 - elementwise
        lines = np.arange(first, first + n, dtype=np.int64)
        records = batch.select(cols) if cols else None

        def raw(rows: np.ndarray, records: pa.RecordBatch | None = records) -> list[bytes | str]:
            if records is None:
                return ["{}"] * len(rows)
            picked = records.take(pa.array(rows, pa.int64())).to_pylist()
            return [json.dumps(r, default=str, ensure_ascii=False) for r in picked]

        done = int(os.path.getsize(path) * (first + n - 1) / max(pf.metadata.num_rows, first + n - 1))
        chunk = Chunk(pd.DataFrame(texts, index=range(n)), lines, raw, [], missing, done, tuple(names))
        if (bad_col != None).any():  # noqa: E711 - elementwise
            chunk = _drop_rows(chunk, bad_col, reason, detail)
        first += n
        yield chunk


def _drop_rows(chunk: Chunk, column: np.ndarray, reason: np.ndarray, detail: np.ndarray) -> Chunk:
    """``chunk`` without the rows that name a ``column``, which become bad rows (``reason``, ``detail``)."""
    rows = column != None  # noqa: E711 - elementwise
    at, keep = np.flatnonzero(rows), np.flatnonzero(~rows)
    bad = [Bad(int(chunk.line[i]), column[i], reason[i], detail[i], r) for i, r in zip(at, chunk.raw(at))]
    return Chunk(chunk.frame.iloc[keep].reset_index(drop=True), chunk.line[keep],
                 lambda r: chunk.raw(keep[np.asarray(r, np.int64)]), chunk.bad + bad, chunk.missing, chunk.bytes_done,
                 chunk.names)


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
    per_s = PER_SECOND[arr.type.unit]
    ticks = pc.fill_null(arr.cast(pa.int64()), 0).to_numpy()
    secs = ticks // per_s
    if fmt in ("unix", "unix_ms"):
        text = pa.array((ticks * 1000 // per_s if fmt == "unix_ms" else secs).astype(str))
    else:
        text = pc.strftime(pa.array(secs, pa.timestamp("s")), format="%Y-%m-%dT%H:%M:%S" if fmt == "iso" else fmt)
    return pc.if_else(arr.is_null(), pa.scalar(None, pa.string()), text.cast(pa.string()))


__all__ = ["BLOCK_BYTES", "MAX_FIELDS", "PER_SECOND", "Bad", "Chunk", "Source", "by_line", "close_names",
           "missing_message", "read"]
