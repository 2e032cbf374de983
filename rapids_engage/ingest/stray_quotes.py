"""Stray quotes in a CSV file, told from the lines themselves.

A ``"`` opening a field that is never closed (``"27 inch screen``) makes pyarrow read on to the next
quote. :class:`.read_delimited._DelimitedReader` then quarantines the line the quote opens on
(``unclosed_quote``) and starts a new pyarrow reader on the line after it: right, but slow when a
file has many. :func:`scan` tells from the bytes of the lines after a new reader's start which
lines that reader, and the ones started after each stray quote, would quarantine, as long as no
record that any of them could read there is long enough for pyarrow's read blocks to matter. The
reader then reads those lines in one go, the stray-quote lines left out
(:meth:`.read_delimited._DelimitedReader._skip_strays`). Near a record longer than a read block,
pyarrow's blocks still decide, as they did before, whether an unclosed quote's detail says that it
ran past a read block or over so many lines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def open_quote(text: str | bytes, delim: str | bytes, quoted: bool = False) -> int | None:
    """The field (0-based) of ``text`` whose quote is still open at its end, None if none is: quotes
    as pyarrow reads them (a ``"`` opens a field only at its start, ``""`` within one is a quote);
    ``quoted``: whether the line starts inside a quoted field (a newline in it)."""
    q = '"' if isinstance(text, str) else b'"'
    field_no, i = 0, 0
    while True:
        if quoted or text[i : i + 1] == q:
            j = i if quoted else i + 1
            while True:  # the quote that closes it: one not doubled
                j = text.find(q, j)
                if j < 0:
                    return field_no
                if text[j + 1 : j + 2] != q:
                    break
                j += 2
            i, quoted = j + 1, False
        k = text.find(delim, i)
        if k < 0:
            return None
        field_no, i = field_no + 1, k + 1


@dataclass
class Stray:
    """A line whose quote is not closed before lines that look like records."""

    line: int  #: the line the quote opens on
    field: int  #: the field it opens (0-based)
    last: int  #: the last line of the record pyarrow reads from it (the one with the next quote)
    raw: str  #: the line, without its line end


class _Lines:
    """The lines of ``data`` (each ending with a newline): where each is, and its quotes.

    ``quoted``: the lines with a ``"``; ``opens``: the field whose quote each leaves open, read from a
    record start (-1: none); ``close``: the next one (its index in ``quoted``; ``len(quoted)``: none)
    that closes a quote open at its start. A record read from any line, in or out of a quoted field,
    ends on that line or on the next line that closes it: ``told`` is the first line from which one
    could be ``limit`` bytes or more or run past ``data``, or a line with a bare ``"\\r"`` (from there
    on nothing is told).
    """

    def __init__(self, data: bytes, delim: bytes, limit: int) -> None:
        arr = np.frombuffer(data, np.uint8)
        self.data, self.delim = data, delim
        self.end = np.flatnonzero(arr == 10)
        self.start = np.concatenate([[0], self.end + 1])[: len(self.end)]
        self.quoted = np.unique(np.searchsorted(self.end, np.flatnonzero(arr == 34)))
        texts = [self.text(i) for i in self.quoted.tolist()]
        self.opens = np.array([-1 if (f := open_quote(t, delim)) is None else f for t in texts], np.int64)
        closes = np.flatnonzero([open_quote(t, delim, quoted=True) is None for t in texts])
        self.close = np.append(closes, len(texts))[np.searchsorted(closes, np.arange(len(texts)), "right")]
        cr = np.flatnonzero(arr == 13)
        bare = np.searchsorted(self.end, cr[arr[cr + 1] != 10])  # lines with a "\r" that does not end them
        self.told = min(_first(bare, len(self.end)), self._too_long(limit, len(data)))

    def _too_long(self, limit: int, size: int) -> int:
        """The first line that is, or opens a record that could be, ``limit`` bytes or more (or run past the data)."""
        opening = self.quoted[self.opens >= 0]
        last = np.append(self.quoted, len(self.end))[self.close[self.opens >= 0]]  # len(end): past the data
        ends = np.append(self.end, size + limit)[last]
        return min(_first(np.flatnonzero(self.end - self.start >= limit), len(self.end)),
                   _first(opening[ends - self.start[opening] >= limit], len(self.end)))

    def text(self, i: int) -> bytes:
        return self.data[self.start[i] : self.end[i]].rstrip(b"\r")

    def stray(self, k: int, width: int) -> bool | None:
        """Whether the quote that line ``quoted[k]`` leaves open runs over lines that look like records (as
        many delimiters as a record) up to the line that closes it, as the reader tells it; None where its
        two ways of telling (the record's text: ``_runaway_record``, or its field's value: ``_swallowed``)
        could differ."""
        j = self.close[k]
        first, last = self.quoted[k], self.quoted[j]
        inner = self.quoted[k + 1]  # the first line after it with a quote
        if any(self.data.count(self.delim, self.start[i], self.end[i]) >= width - 1 for i in range(first + 1, inner)):
            return True  # a line like a record, whole in the quoted field
        if inner < last:
            return None
        text = self.text(last)
        c = text.find(b'"')
        return None if text[c + 1 : c + 2] == b'"' else text[:c].count(self.delim) >= width - 1


def scan(data: bytes, first: int, delim: str, width: int, limit: int) -> list[Stray]:
    """The stray quotes a reader starting on line ``first`` (a record start; ``data``: its lines, each
    with its newline) would quarantine, each one's later lines read again by a new reader, up to the
    first line that cannot be told (see :class:`_Lines`; or a quote whose record the two tests of
    :meth:`_Lines.stray` could take differently)."""
    lines = _Lines(data, delim.encode(), limit)
    strays, k, n = [], 0, len(lines.quoted)
    while k < n and lines.quoted[k] < lines.told:
        if lines.opens[k] < 0:  # its quotes are closed on the line
            k += 1
            continue
        is_stray = lines.stray(k, width) if lines.quoted[lines.close[k]] < lines.told else None
        if is_stray is None:
            break
        if is_stray:
            at = int(lines.quoted[k])
            strays.append(Stray(first + at, int(lines.opens[k]), first + int(lines.quoted[lines.close[k]]),
                                lines.text(at).decode("utf-8", "replace")))
            k += 1
        else:  # a quoted field over lines that do not look like records: one record
            k = lines.close[k] + 1
    return strays


def _first(lines: np.ndarray, default: int) -> int:
    return int(lines[0]) if len(lines) else default


def blank_lines(data: bytes, first: int, lines: list[int], cut: bool = False) -> bytes:
    """``data`` (lines from ``first`` on, each with its newline) with ``lines`` (in order; those past it
    left out) left blank; ``cut``: only up to the last of them."""
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
    parts, at = [], 0
    for line in lines:
        i = line - first
        if i >= len(ends):
            break
        parts += [data[at : int(ends[i - 1]) + 1 if i else 0], b"\n"]
        at = int(ends[i]) + 1
    return b"".join(parts if cut else [*parts, data[at:]])
