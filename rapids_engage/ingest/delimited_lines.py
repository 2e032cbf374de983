"""CSV / TSV lines for pyarrow's parser: the UTF-8 lines fed to it (:class:`LineFeed`) and the
physical line each record it parses starts on (:class:`RecordLines`)."""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow.compute as pc

from .reader import LineBlock, line_block
from .table_chunk import Bad


class _Held:
    """A block of lines fed (as fed: non-UTF-8 lines blanked), kept while its lines may be read again."""

    def __init__(self, first: int, data: memoryview) -> None:
        self.first, self.data = first, data
        self._nl: np.ndarray | None = None

    @property
    def newlines(self) -> np.ndarray:
        if self._nl is None:
            self._nl = np.flatnonzero(np.frombuffer(self.data, np.uint8) == 10)
        return self._nl

    @property
    def last(self) -> int:
        return self.first + len(self.newlines) - 1

    def lines(self, a: int, b: int) -> bytes:
        """Lines ``a`` .. ``b`` (clipped to this block), each with its newline."""
        s, e = max(a, self.first) - self.first, min(b, self.last) - self.first
        if e < s:
            return b""
        nl = self.newlines
        return bytes(self.data[(int(nl[s - 1]) + 1 if s else 0) : int(nl[e]) + 1])


class LineFeed(io.RawIOBase):
    """A file's lines (``blocks``, the first one starting at line ``first_line``) as a byte stream for
    pyarrow's CSV parser.

    Lines that are not UTF-8 are blanked (and set aside as bad rows) so the
    parser never sees them; the physical number of each non-blank line fed is
    kept, once per record pyarrow starts on it (bare ``\\r`` also end a line
    for pyarrow), so records can be mapped back to lines by :class:`RecordLines`
    (pyarrow reads ahead in a thread, hence the locks). The blocks fed are kept
    until :meth:`release` d, so their lines can be read again (:meth:`lines`) or
    handed to another feed (:meth:`hand_over`).
    """

    def __init__(self, blocks: Iterator[LineBlock], first_line: int = 1, bad: list[Bad] | None = None) -> None:
        super().__init__()
        self._blocks = blocks
        self._buf, self._pos, self._next_line = memoryview(b""), 0, first_line
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._detached = False
        self._lines: list[np.ndarray] = []
        self._bad: list[Bad] = list(bad or [])
        self._held: list[_Held] = []
        self.bytes_done = 0
        self.seen_lines = 0
        self.exhausted = False  # whether every block was fed

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        """Fill ``b`` whole unless the file ends (pyarrow needs a quoted record's rest within the next read)."""
        done = 0
        with self._read_lock:
            while done < len(b) and not self._detached:
                if self._pos >= len(self._buf):
                    block = next(self._blocks, None)
                    if block is None:
                        self.exhausted = True
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
            self._held.append(_Held(first, data))
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

    def give_back(self, bad: list[Bad]) -> None:
        """Put bad rows taken (:meth:`take_bad`) back."""
        with self._lock:
            self._bad = bad + self._bad

    def lines(self, a: int, b: int, limit: float = math.inf) -> bytes:
        """Lines ``a`` .. ``b`` as fed (each with its newline; non-UTF-8 ones blank), of the blocks still held;
        with ``limit``, only those that fit in that many bytes (the first one at least)."""
        with self._lock:
            held = [h for h in self._held if h.last >= a and h.first <= b]
        parts, size = [], 0
        for h in held:
            if size >= limit:
                break
            parts.append(h.lines(a, b))
            size += len(parts[-1])
        data = b"".join(parts)
        if len(data) > limit:  # up to the last line that fits (or the first)
            data = data[: data.rfind(b"\n", 0, int(limit)) + 1 or data.find(b"\n") + 1]
        return data

    def fed_lines(self) -> int:
        """The last line fed so far."""
        with self._lock:
            return self._held[-1].last if self._held else 0

    def release(self, before: int) -> None:
        """Forget the blocks whose lines all come before line ``before``."""
        with self._lock:
            while self._held and self._held[0].last < before:
                self._held.pop(0)

    def hand_over(self, start: int, blank: int) -> LineFeed:
        """A feed of this one's lines from ``start`` on, line ``blank`` blanked (the lines fed
        again, then the blocks not fed yet); this feed ends here."""
        with self._read_lock:
            self._detached = True
            blocks, self._blocks = self._blocks, iter(())
            end = self._next_line - 1
        rest = blocks.parts if isinstance(blocks, _Blocks) else [blocks]
        feed = LineFeed(_Blocks([self._replay(start, end, blank), *rest]), start, self.take_bad())
        feed.bytes_done = self.bytes_done
        return feed

    def _replay(self, start: int, end: int, blank: int, lines: int = 8192) -> Iterator[LineBlock]:
        """Lines ``start`` .. ``end`` as fed, line ``blank`` blanked, as blocks of ``lines`` lines (made as read)."""
        for at in range(start, end + 1, lines):
            hi = min(at + lines - 1, end)
            data = (self.lines(at, blank - 1) + b"\n" + self.lines(blank + 1, hi) if at <= blank <= hi
                    else self.lines(at, hi))
            yield line_block(data, at, self.bytes_done)

    def close(self) -> None:
        try:
            self._blocks.close()
        except (ValueError, AttributeError):  # still running in pyarrow's read-ahead thread; it ends with the reader
            pass
        super().close()


class _Blocks:
    """Line blocks from several iterators in turn (a feed handed over: lines fed again, then the file's)."""

    def __init__(self, parts: list[Iterator[LineBlock]]) -> None:
        self.parts = parts

    def __iter__(self) -> _Blocks:
        return self

    def __next__(self) -> LineBlock:
        while self.parts:
            block = next(self.parts[0], None)
            if block is not None:
                return block
            self.parts.pop(0)
        raise StopIteration

    def close(self) -> None:
        for part in self.parts:
            close = getattr(part, "close", None)
            if close is not None:
                close()


class RecordLines:
    """The physical line each CSV record starts on.

    pyarrow numbers records (1-based, blank lines skipped): a batch's rows plus
    the invalid rows reported before it are the next records in order. A record
    starts on the next non-blank line fed and spans one line more per newline
    inside it.
    """

    def __init__(self, feed: LineFeed, end: int = 0) -> None:
        self.feed = feed
        self.next = 1
        self.invalid: dict[int, tuple[str, int, int]] = {}
        self._lines = np.zeros(0, np.int64)
        self._i = 0
        self.end = end  # last line of the last record of the last batch (the line before the feed's first)

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
        all_nl[is_bad] = [text_newlines(text) for text, _, _ in rows]
        starts = self._starts(all_nl)
        self.next = int(cand[-1]) + 1
        self.end = int(starts[-1] + all_nl[-1])
        return starts[~is_bad], _field_count_rows(starts[is_bad], rows)

    def rest(self) -> list[Bad]:
        """The invalid records after the last batch."""
        rows = [self.invalid.pop(k) for k in sorted(self.invalid)]
        return _field_count_rows(self._starts(np.array([text_newlines(t) for t, _, _ in rows], np.int64)), rows)

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


def text_newlines(text: str) -> int:
    """The line ends in a record's text: its newlines, and the bare ``\\r`` (pyarrow drops the ``\\n`` of a
    ``\\r\\n`` that ends a read block from an invalid row's text; a bare ``\\r`` in a quoted field is rare)."""
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def _field_count_rows(lines: np.ndarray, rows: list[tuple[str, int, int]]) -> list[Bad]:
    """Bad records of the wrong width; one that a quoted field stretched over several lines says how many
    (an unclosed quote swallows the lines after it: they are in this record, not lost)."""
    def detail(text: str, want: int, got: int) -> str:
        spans = text_newlines(text.rstrip("\r\n")) + 1
        return f"expected {want} fields, got {got}" + (f"; the record spans {spans} lines (an unclosed quote?)" if spans > 1 else "")

    return [Bad(int(line), None, "wrong_field_count", detail(text, want, got), text) for line, (text, want, got) in zip(lines, rows)]
