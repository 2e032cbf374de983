"""Streaming readers: one CSV / TSV / JSONL / parquet file -> chunks of string columns.

:func:`read` yields a file as :class:`Chunk` objects: the declared columns of a run of source
rows as text (a CSV field's text for JSONL values and parquet cells), the physical line
(parquet: record number) of each row, and the bad rows met while reading
(``wrong_field_count``, ``invalid_utf8``, ``bad_json``, a JSON list / object or a nested
parquet value where one value is expected) or the declared columns the file lacks. Typing
the text is :mod:`.table_types`' job.

Here: the dispatch by format and the names the rest of the ingest imports. The readers are
:mod:`.read_delimited` (lines fed by :mod:`.delimited_lines`, stray quotes told by
:mod:`.stray_quotes`), :mod:`.read_jsonl` and
:mod:`.read_parquet`; what they share is in :mod:`.table_chunk`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .read_delimited import MAX_FIELDS, read_delimited
from .read_jsonl import read_jsonl
from .read_parquet import PER_SECOND, read_parquet
from .table_chunk import Bad, Chunk, Source, by_line, close_names, missing_message

#: The input formats :func:`read` reads (csv and tsv by :mod:`.read_delimited`).
FORMATS = ("csv", "tsv", "jsonl", "parquet")
#: Bytes per JSONL read block (its first block's keys are checked for missing columns), the most a CSV / TSV
#: read block has, and the size a text input's share of the work is counted in (:func:`.table.ingest_table`).
BLOCK_BYTES = 16 << 20
#: Bytes per CSV / TSV read block (at most :data:`BLOCK_BYTES`; a record must fit in one, else the rest of its file is
#: read line by line): pyarrow's streaming reader reads up to ~32 blocks ahead of its parsing, so 16 MiB blocks held
#: ~1.8 GB reading a 20M-row file; 2 MiB was as fast or faster and leanest (bench/README.md "Raw ingest (CPU)").
DELIMITED_BLOCK_BYTES = 2 << 20


def block_bytes_of(fmt: str) -> int:
    """The read block of a ``fmt`` file (csv, tsv, jsonl; parquet is read by record batches)."""
    return BLOCK_BYTES if fmt == "jsonl" else min(DELIMITED_BLOCK_BYTES, BLOCK_BYTES)


def read(path: Path, src: Source, chunk_rows: int, block_bytes: int | None = None) -> Iterator[Chunk]:
    """The chunks of one input file (CSV / JSONL: read ``block_bytes`` at a time, :func:`block_bytes_of` unless set).

    **Reading**: CSV / TSV go through pyarrow's streaming CSV parser fed with the
    file's UTF-8 lines (:class:`.delimited_lines.LineFeed`; lines that are not UTF-8 are
    quarantined and blanked), every field read as a string, so quoted CSV fields
    may hold newlines while every record is still mapped back to its physical
    line (exact unless a quoted field holds a bare ``\\r``). CSV honours ``"``
    quoting; a stray ``"`` opening a field whose quoted text runs over lines that
    look like records (to the next quote or the end of the file, maybe past a read
    block) quarantines its line (``unclosed_quote``) and the lines after it are read
    as records (:class:`.read_delimited._DelimitedReader`), and a record whose quote is still open at
    the end of the file is quarantined (``unclosed_quote``); after a record longer
    than a read block otherwise, the rest of the file is parsed one record per line.
    TSV has no quoting. A leading UTF-8 BOM is fine. JSONL is read
    line by line (a missing key reads as ``""``, a JSON list as its items joined
    by the column's list separator); parquet by record batches (line = 1-based
    record number; raw = the record's declared columns as JSON; timestamp columns
    are taken as UTC instants). A JSON list or object (a parquet list, struct or map)
    in a column of ``src.scalars`` makes a bad row with that column's reason.

    **Missing columns**: a chunk's ``missing`` lists the declared columns the
    header (the parquet schema) lacks; for JSONL, the ``src.required`` keys that
    none of the first block's records has, and the other declared keys none of them
    has while they have one named like it (:func:`.table_chunk.close_names`).
    """
    if src.fmt == "parquet":
        return read_parquet(path, src, chunk_rows)
    block_bytes = block_bytes or block_bytes_of(src.fmt)
    if src.fmt == "jsonl":
        return read_jsonl(path, src, block_bytes)
    return read_delimited(path, src, block_bytes)


__all__ = ["BLOCK_BYTES", "DELIMITED_BLOCK_BYTES", "FORMATS", "MAX_FIELDS", "PER_SECOND", "Bad", "Chunk", "Source",
           "block_bytes_of", "by_line", "close_names", "missing_message", "read"]
