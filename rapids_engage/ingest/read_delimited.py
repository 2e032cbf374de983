"""CSV / TSV reader: pyarrow's streaming CSV parser, every field a string, each record mapped back
to its physical line; after a record longer than a read block, one record per line."""

from __future__ import annotations

import copy
import csv
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .delimited_lines import LineFeed, RecordLines, text_newlines
from .reader import IngestError, LineBlock, iter_line_blocks, line_block
from .stray_quotes import open_quote as _open_quote
from .stray_quotes import Stray, blank_lines, scan
from .table_chunk import Bad, Chunk, Source, by_line, twice_message

#: Fields a CSV header may have.
MAX_FIELDS = 4096


def read_delimited(path: Path, src: Source, block_size: int) -> Iterator[Chunk]:
    """CSV / TSV chunks (see :class:`_DelimitedReader`)."""
    return _DelimitedReader(path, src, block_size).chunks()


class _LongRecord(Exception):
    """pyarrow met a record longer than a read block (or a quote left open)."""


class _Escape(Exception):
    """A reader of some lines again (:meth:`_DelimitedReader._reparse`) would need to read past them."""


class _Resume(Exception):
    """Read again from the line after ``line`` (an unclosed quote's), with a new pyarrow reader."""

    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


#: Lines after an unclosed quote looked at for lines that look like records, when it runs past a read block.
LOOK_AHEAD = 1000
#: pyarrow's read block after an unclosed quote (each one parses the lines after it again, up to a block;
#: a record longer than this then goes back to the full block).
RESUME_BLOCK = 1 << 20


class _DelimitedReader:
    """CSV / TSV chunks: pyarrow batches, then (after a :class:`_LongRecord`) one record per line.

    A stray ``"`` opening a field makes a CSV record run to the next quote (or
    the end of the file), maybe past a whole read block. When the lines it runs
    over look like records (as many delimiters as a record has), the line it
    opens on is quarantined (``unclosed_quote``) and the lines after it are
    parsed again as records: those up to the record's end by a reader of their
    own (:meth:`_reparse`), or, when the record ran past a read block, the rest
    of the file by a new pyarrow reader (:meth:`_restart`). Before a new reader
    starts, the stray quotes that the lines fed tell by themselves (what the
    readers started after each would read: :mod:`.stray_quotes`) are quarantined
    and the lines up to the last read in one go (:meth:`_skip_strays`), so many
    stray quotes do not cost a reader each. A record longer than
    a read block otherwise makes the rest of the file parsed line by line
    (Python's csv module, quotes honoured within a line) instead of failing.
    """

    def __init__(self, path: Path, src: Source, block_size: int) -> None:
        self.path, self.src, self.block_size = path, src, block_size
        self.parse_block = block_size  # pyarrow's read block (smaller after an unclosed quote: see _resume)
        self.delim = "," if src.fmt == "csv" else "\t"
        self._blocks: Callable[[], Iterator[LineBlock]] = lambda: iter_line_blocks(path, block_size)
        self.feed = LineFeed(self._blocks())
        self.records = RecordLines(self.feed)
        self.index: dict[str, int] | None = None if src.header else _header_index(src.columns)
        self.width = len(src.columns)  # fields per record
        self.nested = False  # whether this reader reads again some lines of another (:meth:`_reparse`)
        self.pending: list[Chunk] = []  # chunks read by :meth:`_resume`, before the feed's lines
        self.blank = 0  # the line the feed leaves blank (an unclosed quote's, quarantined): none yet

    def chunks(self) -> Iterator[Chunk]:
        try:
            while True:
                try:
                    yield from self._batches()
                    return
                except _Resume as resume:  # a new reader from the line after an unclosed quote
                    self._resume(resume.line, resume.line)
                except _LongRecord:
                    end = self.records.end
                    bad, upto = self._restart()
                    if upto is not None:  # the lines up to the record's end in one read, a new reader after them
                        data = self.feed.lines(end + 1, upto)
                        try:
                            again = list(self._reparse(data, end + 1)) if data.strip() else []
                        except _Escape:  # a quote in them left open: line by line
                            yield from self._line_mode(end + 1, [b for b in bad if b.line <= end])
                            return
                        more = upto < self.feed.fed_lines() or not self.feed.exhausted
                        if more:
                            self._resume(upto + 1, 0)
                        yield self._chunk([pa.array([], pa.string())] * self.width, np.zeros(0, np.int64), bad)
                        yield from again
                        if not more:
                            return
                        continue
                    if bad is None:
                        yield from self._line_mode(end + 1, self.feed.take_bad(end))
                        return
                    yield self._chunk([pa.array([], pa.string())] * self.width, np.zeros(0, np.int64), bad)
        finally:
            self.feed.close()

    def _batches(self) -> Iterator[Chunk]:
        pending, self.pending = self.pending, []
        yield from pending
        reader = self._open()
        while reader is not None:
            self.feed.release(self.records.end + 1)
            batch = self._next(reader)
            if batch is None:
                break
            if batch.num_rows == 0:
                continue
            cols = [batch.column(i) for i in range(batch.num_columns)]
            nl = _newlines(cols) if self.src.fmt == "csv" else np.zeros(batch.num_rows, np.int64)
            lines, bad = self.records.batch(nl)
            if self.index is None:
                self.index, self.width = self._header_index([c[0].as_py() for c in cols]), len(cols)
                cols, lines, nl = [c.slice(1) for c in cols], lines[1:], nl[1:]
            yield from self._unquoted(cols, lines, nl, bad + self.feed.take_bad(self.records.end))
        rest = self.records.rest() + self.feed.take_bad()
        if rest:
            yield from self._unquoted([pa.array([], pa.string())] * self.width, np.zeros(0, np.int64),
                                      np.zeros(0, np.int64), rest)

    def _header_index(self, names: list[str]) -> dict[str, int]:
        """Column -> position of the file's header; a declared column named twice is an error."""
        twice = twice_message(self.path, self.src.fmt, names, self.src.needed)
        if twice:  # which one is meant is unknown
            raise IngestError(twice)
        return _header_index(names)

    def _open(self) -> pacsv.CSVStreamingReader | None:
        """pyarrow's streaming reader over the feed, every column a string; None for a file without records.

        Without a header, or once it was read (a new reader after a runaway quote), the records
        have the known fields.
        """
        names = None if self.index is None else (list(self.src.columns) if not self.src.header
                                                 else [f"f{i}" for i in range(self.width)])
        types = {n: pa.string() for n in (names or [f"f{i}" for i in range(MAX_FIELDS)])}
        try:
            reader = pacsv.open_csv(
                self.feed,
                read_options=pacsv.ReadOptions(use_threads=False, block_size=self.parse_block, column_names=names,
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

    def _unquoted(self, cols: list[pa.Array], lines: np.ndarray, nl: np.ndarray, bad: list[Bad]) -> Iterator[Chunk]:
        """The chunk of a batch's records; a record whose quoted field runs over lines that look like
        records (an unclosed quote, to the next quote or the end of the file) is not one: its first line is
        quarantined (``unclosed_quote``), and its other lines are parsed again: by a reader of their own
        (:meth:`_reparse`) when the quote that closed it opens none (the records after it are then read
        right), else by a new reader of the rest of the file (:class:`_Resume`: the records after it are
        dropped), so the result is the same as if the quote's line were not there."""
        runaway: dict[int, tuple[int, int | None]] = {}  # first line -> (last line, field the quote opens)
        keep = np.ones(len(lines), bool)
        for r, field_no in _swallowed(cols, nl, self.width, self.delim).items():
            keep[r] = False
            runaway[int(lines[r])] = (int(lines[r] + nl[r]), field_no)
        for r in np.flatnonzero(keep & (lines + nl > self.feed.fed_lines())).tolist():  # took the file's last line end
            keep[r] = False
            bad = [*bad, self._open_at_end(int(lines[r]))]
        kept_bad = []
        for b in bad:
            field_no = self._runaway_record(b)
            if field_no is False:
                kept_bad.append(b)
            else:
                runaway[b.line] = (b.line + text_newlines(str(b.raw)), field_no)
        if not runaway and keep.all():
            yield self._chunk(cols, lines, bad)
            return
        again: list[Chunk] = []
        resume, done = None, 0  # done: the last line read again
        starts = {*lines[keep].tolist(), *(b.line for b in kept_bad if b.reason != "invalid_utf8")}
        for first, (last, field_no) in sorted(runaway.items()):
            if first <= done:
                continue
            last = min(last, self.feed.fed_lines())  # a quoted field to the end of the file ends with a newline
            kept_bad.append(self._unclosed(first, field_no, f"it ran over {last - first} more lines"))
            try:
                done = self._rejoin(first, last, starts)
                data = self.feed.lines(first + 1, done)
                again += list(self._reparse(data, first + 1)) if data.strip() else []
            except _Escape:  # a quote left open at its end: what was read after it was read wrong
                resume = first
                break
            if done > last:  # what was read after it up to there is read again
                keep &= (lines <= last) | (lines > done)
                kept_bad = [b for b in kept_bad if not last < b.line <= done or b.reason == "invalid_utf8"]
        if resume is not None:  # drop what was read after it (but the non-UTF-8 lines: fed blank, not read again)
            keep &= lines < resume
            kept_bad = [b for b in kept_bad if b.line <= resume or b.reason == "invalid_utf8"]
        at = pa.array(np.flatnonzero(keep), pa.int64())
        yield self._chunk([c.take(at) for c in cols], lines[keep], kept_bad)
        yield from again
        if resume is not None:
            raise _Resume(resume)

    def _rejoin(self, first: int, last: int, starts: set[int]) -> int:
        """The line to read again up to after an unclosed quote on line ``first`` (its record ended on line
        ``last``): the first from ``last`` on that a reader from line ``first + 1`` ends outside quotes and
        before a record this reader read (``starts``: their first lines), from where both read alike;
        :class:`_Escape` if there is none in the lines fed (or the next LOOK_AHEAD)."""
        quoted, at, end = False, first + 1, min(max(max(starts, default=0) - 1, last), last + LOOK_AHEAD)
        while at <= end:
            text = self.feed.lines(at, min(at + 999, end)).decode("utf-8", "replace").split("\n")[:-1]
            for k, line in enumerate(text):
                if '"' in line:
                    quoted = _open_quote(line.rstrip("\r"), self.delim, quoted) is not None
                if not quoted and (at + k == last or (at + k > last and at + k + 1 in starts)):
                    return at + k
            if not text:
                break
            at += len(text)
        raise _Escape()

    def _runaway_record(self, bad: Bad) -> int | None | bool:
        """The field an unclosed quote opens in a bad record whose later lines look like records (None:
        not known); False for another bad record."""
        if bad.reason != "wrong_field_count" or not isinstance(bad.raw, str) or "\n" not in bad.raw:
            return False
        first, *later = bad.raw.split("\n")
        later[-1] = later[-1].split('"', 1)[0]  # up to the quote that closed it
        if self.width > 1 and any(line.count(self.delim) >= self.width - 1 for line in later):
            return _open_quote(first.rstrip("\r"), self.delim)
        return False

    def _like_record(self, line: str) -> bool:
        """Whether ``line`` holds as many delimiters as a record."""
        return self.width > 1 and line.count(self.delim) >= self.width - 1

    def _unclosed(self, line: int, field_no: int | None, how: str, raw: str | None = None) -> Bad:
        """The bad row of the line an unclosed quote opens on (``raw``: its text, else read from the feed)."""
        if raw is None:
            raw = self.feed.lines(line, line).decode("utf-8", "replace").rstrip("\r\n")
        return self._quote_bad(line, field_no, f"before lines that look like records ({how}; they are read again as "
                                               "records)", raw)

    def _open_at_end(self, line: int) -> Bad:
        """The bad row of the record from line ``line`` whose quote is still open at the end of the file (its raw:
        the lines it ran over too)."""
        raw = self.feed.lines(line, self.feed.fed_lines()).decode("utf-8", "replace").rstrip("\r\n")
        more = raw.count("\n")
        how = f" (it ran over {more} more line{'s' if more > 1 else ''})" if more else ""
        field_no = _open_quote(raw.split("\n", 1)[0].rstrip("\r"), self.delim)
        return self._quote_bad(line, field_no, f"before the end of the file{how}", raw)

    def _quote_bad(self, line: int, field_no: int | None, where_not: str, raw: str) -> Bad:
        """An ``unclosed_quote`` bad row: the quote opening field ``field_no`` is not closed ``where_not``."""
        names = {i: c for c, i in (self.index or {}).items()}
        column = None if field_no is None else names.get(field_no, f"field {field_no + 1}")
        where = f"the quote opening {column!r}" if column else "a quote"
        return Bad(line, column, "unclosed_quote", f"{where} is not closed {where_not}", raw)

    def _reparse(self, data: bytes, first_line: int, bad: list[Bad] | None = None) -> Iterator[Chunk]:
        """The chunks of ``data``: the lines from ``first_line`` on that a runaway quote took (``bad``: bad
        rows of lines left out of it, given with the records around them)."""
        sub = copy.copy(self)
        sub.nested, sub.pending = True, []
        block = line_block(data, first_line, self.feed.bytes_done)
        sub.block_size = sub.parse_block = len(data) + 1  # one read: no record runs past a block
        sub._blocks = lambda: iter([block])
        sub.feed = LineFeed(sub._blocks(), first_line, bad)
        sub.records = RecordLines(sub.feed, first_line - 1)
        return sub.chunks()

    def _restart(self) -> tuple[list[Bad] | None, int | None]:
        """After a record ran past a read block (pyarrow gave up on it): (bad rows, None) when it opened on
        an unclosed quote before lines that look like records (a new feed and pyarrow reader then start on
        the line after the last record read, without the line the quote opens on); (bad lines, last line)
        when the record ends in the lines fed (or the file does): read them in one go (as a read block that
        large would have); (None, None) for another (a long line): the rest is read line by line."""
        if self.src.fmt != "csv" or self.index is None:
            return None, None
        end, last = self.records.end, self.feed.fed_lines()
        text = self.feed.lines(end + 1, last).decode("utf-8", "replace").split("\n")[: last - end]
        for k, line in enumerate(text):
            if len(line) >= self.block_size // 2:  # a long line made the long record
                return None, None
            field_no = _open_quote(line.rstrip("\r"), self.delim) if '"' in line else None
            if field_no is not None:
                break
        else:
            return (self.feed.take_bad(), last) if self.feed.exhausted else (None, None)
        later, closed = [], None
        for j, line in enumerate(text[k + 1 :], k + 1):
            if '"' in line:
                later.append(line.split('"', 1)[0])
                if _open_quote(line.rstrip("\r"), self.delim, quoted=True) is None:
                    closed = j
                    break
            elif len(later) < LOOK_AHEAD:
                later.append(line)
        if self._like_record_any(later):
            opened = end + 1 + k
            bad = self.feed.take_bad(opened) + [self._unclosed(opened, field_no, "it ran past a read block")]
            self._resume(end + 1, opened)
            return bad, None
        if closed is not None and not _ends_quoted("\n".join(text[: closed + 1]), self.delim):
            return self.feed.take_bad(end + 1 + closed), end + 1 + closed
        if self.feed.exhausted:
            return self.feed.take_bad(), last
        if self.parse_block < self.block_size:  # a long record after an unclosed quote: read it with full blocks
            self._resume(end + 1, 0)
            self.parse_block = self.block_size
            return [], None
        return None, None

    def _like_record_any(self, lines: list[str]) -> bool:
        return any(self._like_record(line) for line in lines)

    def _resume(self, start: int, blank: int) -> None:
        """A new feed and pyarrow reader from line ``start`` on, line ``blank`` left out (:class:`_Escape`
        in a reader of some lines again: the reader of the file reads on from its unclosed quote); the
        lines up to the last stray quote :meth:`_skip_strays` tells are read first (``pending``)."""
        if self.nested:
            raise _Escape()
        self.parse_block = min(self.parse_block, RESUME_BLOCK)
        self.pending, start, blank = self._skip_strays(start, blank)
        self.blank = blank
        old, self.feed = self.feed, self.feed.hand_over(start, blank)
        old.close()
        self.records = RecordLines(self.feed, start - 1)

    def _skip_strays(self, start: int, blank: int) -> tuple[list[Chunk], int, int]:
        """(chunks, start, blank) of a new reader from line ``start`` on, line ``blank`` left out: when
        :func:`.stray_quotes.scan` tells stray quotes in the lines fed (a read block of them), the chunks
        of the lines up to the last one, read in one go as the readers started after each would read them
        (:meth:`_read_over`), and that line (left blank); else no chunks, and ``start`` and ``blank``."""
        if self.src.fmt != "csv" or self.index is None or self.width < 2:
            return [], start, blank
        data = self.feed.lines(start, self.feed.fed_lines(), self.block_size)
        data = blank_lines(data, start, [blank]) if blank >= start else data
        strays = scan(data, start, self.delim, self.width, self.parse_block // 2)
        chunks = self._read_over(data, start, strays) if strays and strays[0].line > blank else None
        if chunks is None:
            return [], start, blank
        return chunks, strays[-1].line, strays[-1].line  # as after an unclosed quote (_Resume)

    def _read_over(self, data: bytes, start: int, strays: list[Stray]) -> list[Chunk] | None:
        """The chunks of ``data`` (lines from ``start`` on) up to the last of ``strays``, those lines left out
        and quarantined (``unclosed_quote``); None if a reader of them would read on past them."""
        utf8 = self.feed.take_bad(strays[-1].line)
        bad = utf8 + [self._unclosed(s.line, s.field, f"it ran over {s.last - s.line} more lines", s.raw)
                      for s in strays]
        try:
            return list(self._reparse(blank_lines(data, start, [s.line for s in strays], cut=True), start,
                                      sorted(bad, key=by_line)))
        except _Escape:
            self.feed.give_back(utf8)
            return None

    def _chunk(self, cols: list[pa.Array], lines: np.ndarray, bad: list[Bad]) -> Chunk:
        index, delim = self.index or {}, self.delim
        field = _csv_field if delim == "," else str
        frame = pd.DataFrame({c: cols[index[c]].to_pandas() for c in self.src.needed if c in index},
                             index=range(len(lines)))

        def raw(rows: np.ndarray) -> list[bytes | str]:
            picked = [c.take(pa.array(rows, pa.int64())).to_pylist() for c in cols]
            return [delim.join(map(field, values)) for values in zip(*picked)]  # a record that reads back as read

        missing = tuple(c for c in self.src.needed if c not in index)
        return Chunk(frame, np.asarray(lines, np.int64), raw, bad, missing, self.feed.bytes_done, tuple(index))

    def _line_mode(self, start: int, bad: list[Bad]) -> Iterator[Chunk]:
        """Chunks of the lines from ``start`` on, each line one record."""
        for block in self._blocks():
            rows, lines = [], []
            for i in np.flatnonzero(block.line_no >= start).tolist():
                line = int(block.line_no[i])
                if line == self.blank:  # quarantined already (the file's blocks do not have it blank)
                    continue
                if i in block.bad_utf8:
                    bad.append(Bad(line, None, "invalid_utf8", "invalid UTF-8", block.bad_utf8[i]))
                    continue
                text = block.lines[i].as_py().rstrip("\r\n").removeprefix("\ufeff" if line == 1 else "")
                if not text:
                    continue
                fields = _split_line(text, self.delim)
                opened = _open_quote(text, self.delim) if self.delim == "," and '"' in text else None
                if self.index is None:
                    self.index, self.width = self._header_index(fields or [text]), len(fields or [text])
                elif opened is not None:  # Python's csv would close it at the line end
                    bad.append(self._quote_bad(line, opened, "on its line", text))
                elif fields is None or len(fields) != self.width:
                    got = "an unparsable line" if fields is None else f"{len(fields)} fields"
                    bad.append(Bad(line, None, "wrong_field_count", f"expected {self.width} fields, got {got}", text))
                else:
                    rows.append(fields)
                    lines.append(line)
            cols = [pa.array(col, pa.string()) for col in zip(*rows)] if rows else [pa.array([], pa.string())] * self.width
            yield self._chunk(cols, np.asarray(lines, np.int64), bad)
            bad = []


def _ends_quoted(text: str, delim: str) -> bool:
    """Whether the lines ``text`` (read from their start, outside quotes) end inside a quoted field."""
    quoted = False
    for line in text.split("\n"):
        if '"' in line:
            quoted = _open_quote(line.rstrip("\r"), delim, quoted) is not None
    return quoted


def _csv_field(value: str) -> str:
    """``value`` as a CSV field: quoted (its quotes doubled) when it holds a comma, a quote or a line end."""
    return '"' + value.replace('"', '""') + '"' if any(c in value for c in ',"\n\r') else value


def _split_line(text: str, delim: str) -> list[str] | None:
    """The fields of one line (quotes honoured for CSV only); None if it cannot be split."""
    try:
        return next(csv.reader([text], delimiter=delim, quoting=csv.QUOTE_MINIMAL if delim == "," else csv.QUOTE_NONE))
    except csv.Error:
        return None


def _header_index(names: list[str] | tuple[str, ...]) -> dict[str, int]:
    """Column -> position of a header (the first of duplicated names, undeclared ones only: see
    :meth:`_DelimitedReader._header_index`)."""
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)
    return index


def _swallowed(cols: list[pa.Array], nl: np.ndarray, width: int, delim: str) -> dict[int, int]:
    """Record -> field of the records with a quoted field whose later lines hold as
    many delimiters as a whole record: the rows an unclosed quote swallowed (to the next quote or the
    end of the file), which would otherwise vanish into one text value."""
    found: dict[int, int] = {}
    for r in np.flatnonzero(nl).tolist():
        for f, col in enumerate(cols):
            value = col[r].as_py() or ""
            later = value.rstrip("\r\n").split("\n")[1:]
            if width > 1 and any(line.count(delim) >= width - 1 for line in later):
                found[r] = f
                break
    return found


def _newlines(cols: list[pa.Array]) -> np.ndarray:
    """Newlines inside each row's fields (quoted CSV fields may hold some; counted only in a column whose text
    buffer holds a newline byte at all)."""
    total = np.zeros(len(cols[0]) if cols else 0, np.int64)
    for col in cols:
        if _holds_newline(col):
            total += pc.count_substring(col, "\n").to_numpy(zero_copy_only=False)
    return total


def _holds_newline(col: pa.Array) -> bool:
    """Whether a string column's data buffer (of a slice: the whole array's) may hold a newline."""
    buffers = col.buffers()
    if len(buffers) != 3 or buffers[2] is None:
        return True
    return bool((np.frombuffer(buffers[2], np.uint8) == 10).any())
