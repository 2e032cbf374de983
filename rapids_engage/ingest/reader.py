"""Streaming, line-aligned blocks of a raw text file (plain, gzip, bz2 or zstd).

A file is read ``block_size`` bytes at a time (decompressed on the fly, so a
file never sits in memory whole); each block is cut after its last newline and
the tail carried to the next one. A block becomes one Arrow string array of its
non-empty lines (zero-copy over the block), the 1-based physical line number
and the field count of each (vectorized with numpy), so every later stage can
name ``file:line``.
Lines that are not valid UTF-8 are set aside with their raw bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_BZ2_LEVELS = b"123456789"
_BZ2_BLOCKS = (b"1AY&SY", b"\x17rE8P\x90")  # first block / end of stream (an empty file)


def _codec(head: bytes) -> str | None:
    """The compression of a file starting with ``head`` (its first 10 bytes), None for plain text.

    Full signatures, not just the 2-3 magic bytes, so a plain file whose first
    line happens to start with e.g. ``BZh`` is read as text (its bad rows
    quarantined) instead of failing as corrupt bz2.
    """
    if head.startswith(b"\x1f\x8b\x08"):  # gzip, deflate (the only method)
        return "gzip"
    if head.startswith(b"BZh") and head[3:4] and head[3] in _BZ2_LEVELS and head[4:10] in _BZ2_BLOCKS:
        return "bz2"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    return None


class IngestError(OSError):
    """An input file is missing, unreadable or not a file; the message names it."""


@dataclass
class LineBlock:
    """The non-empty lines of one newline-terminated block of a file."""

    data: memoryview  #: the block's bytes (every line, empty ones too, ends with "\n")
    has_cr: bool  #: whether the block holds a carriage return (some parsers take it for a line end)
    lines: pa.LargeStringArray  #: non-empty lines, each with its "\n" (zero-copy over ``data``); non-UTF-8 ones are ""
    line_no: np.ndarray  #: int64 1-based physical line number of each line
    counts: np.ndarray  #: number of "\x01"-separated fields of each line
    bad_utf8: dict[int, bytes]  #: position in ``lines`` -> raw bytes (no "\n"), for lines that are not UTF-8
    bytes_done: int  #: on-disk (compressed) bytes of the file consumed so far

    def text(self, rows: np.ndarray) -> list[bytes | str]:
        """The lines at positions ``rows`` without their newline (raw bytes for non-UTF-8 lines)."""
        out = [t[:-1] for t in self.lines.take(pa.array(rows, pa.int64())).to_pylist()]
        return [self.bad_utf8.get(int(i), t) for i, t in zip(rows, out)]


def _open(path: Path) -> tuple[pa.NativeFile, pa.NativeFile]:
    """(decompressed stream, underlying on-disk file); compression sniffed from the signature (:func:`_codec`)."""
    try:
        raw = pa.OSFile(str(path), "rb")
    except (OSError, pa.ArrowException) as exc:
        raise IngestError(f"{path}: cannot open input file: {exc}") from exc
    head = raw.read(10)
    raw.seek(0)
    codec = _codec(head)
    return (pa.CompressedInputStream(raw, codec) if codec else raw), raw


def _fill(stream: pa.NativeFile, view: memoryview) -> int:
    """Read into ``view`` until it is full or the stream ends; returns the bytes read."""
    done = 0
    while done < len(view):
        n = stream.readinto(view[done:])
        if not n:
            break
        done += n
    return done


#: Bytes the reader looks at for a ``\n`` before it takes a ``\r`` for old Mac line ends.
CR_DETECT_BYTES = 1 << 20


def _cr_line_ends(buf: bytearray, size: int) -> bool | None:
    """Whether the first ``size`` bytes read of a file say old Mac line ends: False once a ``\n`` is in them, True
    when :data:`CR_DETECT_BYTES` or more hold none but a ``\r`` before their last byte (a last ``\r`` waits for
    the next byte: ``\r\n``), else None (undecided: read on)."""
    if buf.find(b"\n", 0, size) >= 0:
        return False
    if size < CR_DETECT_BYTES:
        return None
    if buf.find(b"\r", 0, size - 1) >= 0:
        return True
    return None if buf.find(b"\r", 0, size) >= 0 else False


def _raw_blocks(path: Path, block_size: int) -> Iterator[tuple[memoryview, int]]:
    r"""Newline-terminated byte blocks of ``path`` (a final line without newline gets one), with bytes done.

    A file with a ``\r`` before another byte than ``\n`` and no ``\n`` in its first :data:`CR_DETECT_BYTES` (or in
    all of it, when shorter) has old Mac line ends: its ``\r`` are read as ``\n`` (else the whole file was one
    line: every record on line 1, the same default row id). The rule reads that much whatever the block size: a
    ``\r`` in a first line longer than a small block is data of a ``\n`` file.
    """
    stream, raw = _open(path)
    carry, cr_only = b"", None
    try:
        with stream:
            while True:
                buf = bytearray(len(carry) + block_size)
                buf[: len(carry)] = carry
                try:
                    n = _fill(stream, memoryview(buf)[len(carry):])
                except (OSError, pa.ArrowException) as exc:
                    raise IngestError(f"{path}: unreadable input ({exc})") from exc
                if n == 0:
                    break
                size = len(carry) + n
                start = len(carry)  # bytes before it: read as line ends already
                if cr_only is None:
                    cr_only = _cr_line_ends(buf, size)
                    start = 0  # undecided until now: the carry held no line end
                if cr_only:
                    buf[start:size] = buf[start:size].replace(b"\r", b"\n")
                cut = buf.rfind(b"\n", 0, size) + 1
                carry = bytes(buf[cut:size])
                if cut:  # else a line longer than the block: keep reading
                    yield memoryview(buf)[:cut], raw.tell()
            if carry:
                if cr_only is None and b"\r" in carry:  # a short file without "\n": its "\r" end its lines
                    carry = carry.replace(b"\r", b"\n")
                yield memoryview(carry + b"\n"), raw.tell()
    finally:
        raw.close()


def _split_lines(block: memoryview, first_line: int) -> tuple[pa.LargeBinaryArray, np.ndarray, np.ndarray, int]:
    """(non-empty lines with their newline, their line numbers, their field counts, lines in the block)."""
    arr = np.frombuffer(block, np.uint8)
    nl = np.flatnonzero(arr == 10)
    offsets = np.zeros(len(nl) + 1, np.int64)
    offsets[1:] = nl + 1
    counts = np.diff(np.searchsorted(np.flatnonzero(arr == 1), nl), prepend=0) + 1
    lines = pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(nl), [None, pa.py_buffer(offsets), pa.py_buffer(block)])
    nonempty = np.diff(offsets) > 1
    if nonempty.all():
        return lines, first_line + np.arange(len(nl)), counts, len(nl)
    return lines.filter(pa.array(nonempty)), first_line + np.flatnonzero(nonempty), counts[nonempty], len(nl)


def _to_strings(lines: pa.LargeBinaryArray) -> tuple[pa.LargeStringArray, dict[int, bytes]]:
    """Lines as strings; lines that are not UTF-8 become "" and are returned separately (without the newline)."""
    try:
        return lines.cast(pa.large_string()), {}
    except pa.ArrowInvalid:
        pass
    bad: dict[int, bytes] = {}
    for i, b in enumerate(lines.to_pylist()):
        try:
            b.decode("utf-8")
        except UnicodeDecodeError:
            bad[i] = b[:-1]
    mask = np.zeros(len(lines), bool)
    mask[list(bad)] = True
    clean = pc.if_else(pa.array(mask), pa.scalar(b"", pa.large_binary()), lines)
    return clean.cast(pa.large_string()), bad


def iter_line_blocks(path: str | Path, block_size: int = 64 << 20) -> Iterator[LineBlock]:
    """Stream ``path`` as :class:`LineBlock` s of about ``block_size`` bytes each."""
    for block, first_line, done in iter_raw_blocks(path, block_size):
        yield _line_block(block, first_line, done)[0]


def iter_raw_blocks(path: str | Path, block_size: int = 64 << 20) -> Iterator[tuple[memoryview, int, int]]:
    """Stream ``path`` as (newline-terminated bytes, the number of their first line, on-disk bytes done) of about
    ``block_size`` bytes each: what :func:`line_block` makes a :class:`LineBlock` of, here or in another process."""
    next_line = 1
    for block, done in _raw_blocks(Path(path), max(int(block_size), 1)):
        yield block, next_line, done
        next_line += block.obj.count(b"\n", 0, block.nbytes)  # views start at 0 of their object


def line_block(data: bytes | memoryview, first_line: int, bytes_done: int) -> LineBlock:
    """The :class:`LineBlock` of ``data`` (whole lines, each ending with a newline) whose first line is ``first_line``."""
    return _line_block(data if isinstance(data, memoryview) else memoryview(data), first_line, bytes_done)[0]


def _line_block(block: memoryview, first_line: int, bytes_done: int) -> tuple[LineBlock, int]:
    """(the LineBlock of ``block``, the lines in it, empty ones too)."""
    lines, line_no, counts, n_lines = _split_lines(block, first_line)
    strings, bad = _to_strings(lines)
    has_cr = block.obj.find(b"\r", 0, block.nbytes) >= 0  # views start at 0 of their object
    return LineBlock(block, has_cr, strings, line_no, counts, bad, bytes_done), n_lines


__all__ = ["IngestError", "LineBlock", "iter_line_blocks", "iter_raw_blocks", "line_block"]
