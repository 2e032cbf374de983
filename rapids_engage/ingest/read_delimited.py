"""CSV / TSV reader: pyarrow's streaming CSV parser, every field a string, each record mapped back
to its physical line; after a record longer than a read block, one record per line."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .delimited_lines import LineFeed, RecordLines
from .reader import IngestError, iter_line_blocks
from .table_chunk import Bad, Chunk, Source, drop_rows

#: Fields a CSV header may have.
MAX_FIELDS = 4096


def read_delimited(path: Path, src: Source, block_size: int) -> Iterator[Chunk]:
    """CSV / TSV chunks (see :class:`_DelimitedReader`)."""
    return _DelimitedReader(path, src, block_size).chunks()


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
        self.feed = LineFeed(path, block_size)
        self.records = RecordLines(self.feed)
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
        return drop_rows(chunk, column, reason, detail)

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
