"""Generic event tables (CSV, TSV, JSONL, parquet) -> canonical day-partitioned parquet, bad rows quarantined.

:func:`ingest_table` checks a :class:`~rapids_engage.config.TableConfig` and derives the
output schema (:func:`.table_plan.plan_of`), then streams each input file chunk by chunk
(:mod:`.table_read`), explodes, joins and types each chunk (:mod:`.table_types`) and
writes the day partitions (each input file its own parts, :mod:`.file_output`: whole files on
worker processes when there are as many as workers; a day's small parts merged once written, :mod:`.compact`),
the quarantine and ``ingest.json`` atomically like :func:`.ingest_recsys`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..atomic import staged_dir
from ..config import TableConfig
from ..input_files import hive_hint
from ..layout import TABLE_ROW_ID, TABLE_TIME, table_layout
from . import table_read
from .file_output import FileDone, FileOutput, ingest_in_order
from .parallel import blocks_of, ordered_map, worker_count
from .quarantine import Quarantine, StrictModeError
from .reader import IngestError
from .recsys import IngestResult, _check_out_dir, input_paths, finish
from .table_plan import Plan, plan_of
from .table_read import FORMATS, Bad, Chunk, Source, by_line, missing_message, read
from .side_share import mapped_bytes, shared_sides
from .side_tables import AsOfSide, SideTable, check_kept_names, check_side_columns, read_side
from .table_types import Errors, arrow_strings, explode, hash_strings, row_ids, row_times, typed
from .writer import DayWriter

#: Quarantine reasons of a table ingest.
REASONS = ("wrong_field_count", "unclosed_quote", "invalid_utf8", "bad_json", "duplicate_key", "bad_time", "bad_number",
           "bad_target", "bad_explode_token", "missing_key", "not_anchor")


@dataclass(frozen=True)
class _Job:
    """What every input file of a table ingest is ingested with but the plan and side tables (picklable: sent
    with each file to a worker)."""

    tmp: str  #: the staged output directory
    data: str  #: where the rows are written: ``<tmp>/data``, an event log's ``<tmp>/_typed``
    src: Source
    strict: bool
    chunk_rows: int
    block_bytes: int  #: :func:`.table_read.block_bytes_of` the format, in the ingest's process


def process_chunk(chunk: Chunk, key: str, plan: Plan,
                  sides: list[SideTable | AsOfSide]) -> tuple[pa.Table | None, list[Bad], np.ndarray]:
    """The output rows of a chunk (``key``: its file's name in default row ids), its bad source rows
    (those read bad too) and the chunk row each output row comes from."""
    if chunk.rows == 0:
        return None, list(chunk.bad), np.zeros(0, np.int64)
    table, found, src = typed_chunk(chunk.frame, chunk.line, key, plan, sides)
    return table, chunk.bad + bad_rows(chunk, found), src


#: The rows of a chunk :func:`typed_chunk` found bad: (their positions, columns, reasons, details).
Found = tuple[np.ndarray, list, list, list]


def typed_chunk(frame: pd.DataFrame, line: np.ndarray, key: str, plan: Plan,
                sides: list[SideTable]) -> tuple[pa.Table, Found, np.ndarray]:
    """:func:`process_chunk` of the rows ``frame`` (text, ``line``: the line of each, at least one row), without
    their raw text: (output rows, the rows found bad, the row each output row comes from)."""
    n = len(line)
    err = Errors(n)
    src, pos = np.arange(n), np.zeros(n, np.int64)
    if plan.explode:
        frame, src, pos = explode(frame, plan.explode, err, plan.keep_list, plan.unlabelled_sep)
    times = row_times(frame, plan) if any(isinstance(s, AsOfSide) for s in sides) else None  # parsed once
    for side in sides:
        frame = side.join(frame, times[1] if times else None)
    columns, row_err = typed(frame, plan, times)
    err.lift(row_err, src)
    if len(plan.row_id) == 1 and plan.row_id[0] in plan.ids:  # already hashed
        columns[TABLE_ROW_ID] = columns[plan.row_id[0]]
    else:
        columns[TABLE_ROW_ID] = row_ids(frame, plan.row_id, key, line[src], pos)
    for col, raw in plan.raw_ids:  # the text row_id hashes (a blank one is a bad row)
        columns[raw] = frame[col]
    arrays = [pa.array(columns[f.name], f.type, from_pandas=True) for f in plan.schema]
    good = ~err.bad[src]
    table = pa.Table.from_arrays(arrays, schema=plan.schema).filter(pa.array(good))
    at = np.flatnonzero(err.bad)
    return table, (at, err.column[at].tolist(), err.reason[at].tolist(), err.detail[at].tolist()), src[good]


def bad_rows(chunk: Chunk, found: Found) -> list[Bad]:
    """The rows of ``chunk`` :func:`typed_chunk` found bad, with their raw text."""
    at, columns, reasons, details = found
    raws = chunk.raw(at) if len(at) else []
    return [Bad(int(chunk.line[i]), c, r, d, raw) for i, c, r, d, raw in zip(at, columns, reasons, details, raws)]


def _file_tasks(path: Path, key: str, plan: Plan, job: _Job) -> Iterator[tuple[tuple, tuple | None]]:
    """The tasks of one file, in order: ((part or None, bytes done or None), (rows, key) or None)
    per chunk part (None: a part without rows, or the file's last progress)."""
    ex = plan.explode
    for chunk in read(path, job.src, job.chunk_rows, job.block_bytes):
        if chunk.missing:
            raise IngestError(_missing_columns(path, job.src.fmt, chunk, plan))
        weights = None
        if ex and chunk.rows:
            weights = pc.count_substring(arrow_strings(chunk.frame[ex.column]), ex.sep).to_numpy() + 1
        for part in chunk.slices(job.chunk_rows, weights):
            yield (part, None), ((part.frame, part.line, key) if part.rows else None)
        yield (None, chunk.bytes_done), None


def _chunk_work(state: tuple[Plan, list[SideTable]], task: tuple) -> tuple[pa.Table, Found, np.ndarray]:
    """:func:`typed_chunk` of one task of :func:`_file_tasks`."""
    return typed_chunk(*task, *state)


def ingest_file(state: tuple[Plan, list[SideTable]], task: tuple) -> FileDone:
    """Read, type and write one input file (``task``: its index, path, key in row ids and the :class:`_Job`) in
    this process."""
    index, path, key, job = task
    return _ingest_chunks([(index, Path(path), key)], *state, job, 1, None)[0]


def _ingest_chunks(files: list[tuple[int, Path, str]], plan: Plan, sides: list[SideTable | AsOfSide], job: _Job,
                   workers: int, progress: Callable[[int, int], None] | None) -> list[FileDone]:
    """Ingest ``files`` (index, path, key in row ids) one after the other, their chunks typed on ``workers``
    processes (1: here), each file written by its own :class:`.FileOutput` here, closed once its last chunk is;
    ``progress(index, bytes done)`` after each read chunk."""
    outputs = [_file_output(i, plan, job) for i, _, _ in files]  # a writer opens no file before its first rows
    counts = [[0, 0] for _ in files]  # source rows, ingested source rows
    tasks = (((k, tag), payload) for k, (_, path, key) in enumerate(files) for tag, payload in _file_tasks(path, key, plan, job))
    current = 0
    for (k, (part, bytes_done)), typed_rows in ordered_map(_chunk_work, _same, (plan, sides), tasks, workers):
        while current < k:  # the files before are done: their buffers written, not held to the end
            outputs[current].done(*counts[current])
            current += 1
        if part is not None:
            source, good = _apply(outputs[k], job.strict, files[k][1], part, typed_rows)
            counts[k] = [counts[k][0] + source, counts[k][1] + good]
        elif progress:
            progress(files[k][0], bytes_done)
    return [output.done(*c) for output, c in zip(outputs, counts)]


#: An input file's writer holds at most this many day parts open (each keeps its last row group's dictionary
#: encoders, ~4-6 MiB: a file spanning a year of days kept 365 open) and this many bytes of rows buffered, so its
#: memory does not grow with the file (bench/README.md "Table ingest: peak memory").
OPEN_PARTS = 16
BUFFER_BYTES = 128 << 20


def _file_output(index: int, plan: Plan, job: _Job) -> FileOutput:
    return FileOutput(index, Path(job.data), Path(job.tmp), plan.schema, time_column=TABLE_TIME,
                      max_open_parts=OPEN_PARTS, max_buffer_bytes=BUFFER_BYTES)


def _chunks_of(path: Path, fmt: str, chunk_rows: int) -> int:
    """The tasks ``path`` is counted as when choosing the workers, about: its :data:`.table_read.BLOCK_BYTES`
    pieces (text: a CSV / TSV reads in smaller blocks, a file under 16 MiB is one task) or row batches (parquet)."""
    if fmt == "parquet":
        try:
            return blocks_of(pq.ParquetFile(path).metadata.num_rows, chunk_rows)
        except (OSError, pa.ArrowException):
            return 1  # the reader names what is wrong with it
    return blocks_of(path.stat().st_size, table_read.BLOCK_BYTES)


def _same(*state: object) -> tuple:
    return state


def _apply(output: FileOutput, strict: bool, path: Path, part: Chunk, typed_rows: tuple | None) -> tuple[int, int]:
    """Write one chunk part's output rows and quarantine its bad rows (strict: StrictModeError at the first);
    (source rows, ingested source rows)."""
    table, bad = None, list(part.bad)
    if typed_rows is not None:
        table, found, _ = typed_rows
        bad += bad_rows(part, found)
    if bad and strict:
        b = min(bad, key=by_line)
        raise StrictModeError(str(path), b.line, b.column, b.reason, b.detail)
    if bad:
        bad.sort(key=by_line)
        output.quarantine.extend([str(path)], [b.line for b in bad], [b.column for b in bad],
                                 [b.reason for b in bad], [b.raw for b in bad], [b.detail for b in bad])
    if table is not None:
        output.writer.write(table)
    return part.rows + len(part.bad), part.rows + len(part.bad) - len(bad)


def _missing_columns(path: Path, fmt: str, chunk: Chunk, plan: Plan) -> str:
    """The error of an input file without some declared columns (:func:`.table_read.missing_message`)."""
    msg = missing_message(path, fmt, chunk) + hive_hint(path, chunk.missing)
    if plan.targets and set(chunk.missing) == {c for c, _ in plan.targets}:
        msg += "; rows to score without labels: ingest with --unlabelled"
    return msg


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
    unlabelled: bool = False,
    workers: int | str = 1,
) -> IngestResult:
    """Ingest the event table files ``inputs`` (a glob or a list of paths) described by ``spec`` into ``out_dir``.

    ``chunk_rows`` bounds the rows handled at once (after explode);
    ``on_progress(done_bytes, total_bytes)`` is called after each chunk, or after each file when
    workers ingest whole files (on-disk bytes). ``workers``: as :func:`.ingest_recsys`'s (whole files
    on each worker, or chunks typed on the workers when there are fewer files than workers; the
    output is the same whatever their number). Raises :class:`.IngestError` for a bad ``spec``, a missing or
    unreadable input or side table, an input file without a declared column
    (naming the file, the columns and the closest names it has; JSONL: a time,
    target, row_id or explode key that none of the first records has), or an
    ``out_dir`` that is not an earlier ingest output; :class:`.StrictModeError`
    at the first bad row when ``strict``. Writes::

        <out_dir>/data/day=YYYY-MM-DD/part-FFFFF-NNNNN.parquet   UTC day of event_time, FFFFF: the input file
        <out_dir>/layout.json                              column roles (:func:`..layout.table_layout`)
        <out_dir>/quarantine.parquet                       bad source rows (if any)
        <out_dir>/parts.json                               each part's input files, each file's counts (not events)
        <out_dir>/ingest.json                              the IngestResult (written last)

    **Columns** (one schema for every part, in this order): ``row_id`` (int64 hash
    of the ``row_id`` columns joined by ``\\x1f``, else of ``file\\x1fline\\x1ftoken``),
    ``event_time`` (int64 unix seconds), the id columns (``user``, ``item``,
    ``creator``, ``group``, the explode item: int64 :func:`hash_strings` of the
    text; null where it is empty, blank or missing: no key), the targets under their
    source column (``binary``/``present``: int8, ``count``: float64), the
    ``categorical`` (null where blank) / ``numeric`` (float64; empty or ``nan``:
    NaN; ``true`` / ``false``, any case: 1 / 0) / ``text`` / ``url`` / ``lists`` columns, then ``raw_<column>`` (string: the text
    as read, the one hashed into ``row_id``) per ``row_id`` column, to join predictions
    back to the input (never a feature). Every other source column is dropped.

    **Per chunk**: explode (one row per token of ``explode.column``), left-join the
    side tables (read once, first row per key wins, a missing key gives ``""``: null
    for a categorical column),
    then type the columns. A row with any bad value is quarantined as a whole *source*
    row (a line / record before explode), so always
    ``input_rows == ingested_rows + quarantined_rows``; ``output_rows`` counts the
    rows written (after explode).

    **Bad rows** (reason, column): ``wrong_field_count``, ``unclosed_quote`` (CSV: the line
    a quote opens on when the quoted field runs over lines that look like records; the lines
    after it are read as records; a record whose quote is still open at the end of the file), ``invalid_utf8``,
    ``bad_json`` (also a JSON list / object in a key, text, url or categorical
    column), ``duplicate_key`` (a JSONL object giving a declared column twice: which value is meant is
    unknown), ``bad_time`` (the time column: missing, unparsable, or outside
    1990-01-01 .. 2099-12-31 UTC, with a hint when a unix time fits another unit;
    fractions of a second are dropped), ``bad_number`` (numeric column
    not a number, or infinite), ``bad_target`` (binary not 0/1/true/false, count
    not a number or not an integer in [0, 2**53], binary / count value missing or NaN),
    ``bad_explode_token`` (no token, or one without ``label_sep``),
    ``missing_key`` (a blank ``row_id`` or ``group`` column). A JSON list / object (a nested
    parquet value) in a target, numeric or time column is a ``bad_target`` /
    ``bad_number`` / ``bad_time``; only ``lists`` and the explode column take
    lists. A file without rows is listed in ``empty_files``; an unreadable
    file (e.g. truncated gzip) is an :class:`.IngestError`. Malformed side-table
    rows are skipped with a warning (strict: :class:`.StrictModeError`). How each format is read:
    :func:`.table_read.read`.
    """
    start = time.perf_counter()
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
    plan = plan_of(spec, unlabelled)
    paths = input_paths(inputs)
    out = Path(out_dir).absolute()
    _check_out_dir(out)
    src = Source(spec.format, spec.header, tuple(spec.columns), plan.needed, plan.list_seps, spec.time,
                 spec.time_format, plan.scalars, plan.required)
    for side in spec.join:  # headers only, so that these errors come before any side table is read whole
        check_side_columns(side, chunk_rows)
    check_kept_names(paths, src, spec.join, chunk_rows)
    sides = [read_side(j, strict, chunk_rows, spec.time_format) for j in spec.join]
    with staged_dir(out) as tmp:
        job = _Job(str(tmp), str(tmp / ("_typed" if plan.keep_events else "data")),  # an event log's rows are labelled from there
                   src, strict, chunk_rows, table_read.block_bytes_of(spec.format))
        keys = _file_keys(paths)
        with shared_sides(sides, tmp / "_sides") as sides:  # one memory-mapped copy for every process, removed after
            n = worker_count(workers, sum(_chunks_of(p, spec.format, chunk_rows) for p in paths), len(paths),
                             mapped_bytes(tmp / "_sides"))
            written = ingest_in_order(paths, n, Quarantine(spill_dir=tmp), on_progress,
                                      (ingest_file, _same, (plan, sides), lambda i, path: (i, str(path), keys[path], job)),
                                      lambda progress: _ingest_chunks([(i, p, keys[p]) for i, p in enumerate(paths)],
                                                                      plan, sides, job, n, progress))
        table_layout(spec).save(tmp)
        result = IngestResult(written.rows, written.ingested, 0, len(paths), {}, str(out), 0.0, written.empty(paths),
                              workers=n)
        labelled = _labelled(Path(job.data), tmp, plan, result) if plan.keep_events else written
        return finish(tmp, out, labelled, written.quarantine, start, result)


def _labelled(typed: Path, tmp: Path, plan: Plan, result: IngestResult) -> DayWriter:
    """The writer (closed) of an event log's labelled anchors (:mod:`.event_labels`) from the typed rows staged
    under ``typed``; the counts in ``result.events``, the staged rows removed."""
    import shutil

    from .event_labels import label_events

    writer = DayWriter(tmp / "data", plan.labelled_schema, time_column=TABLE_TIME)
    counts = label_events(typed, tmp / "_labelled", writer, plan.events, *plan.event_keys)
    writer.close()
    for staged in (typed, tmp / "_labelled"):
        shutil.rmtree(staged, ignore_errors=True)
    result.events = counts.as_dict() | {"anchor": plan.events.anchor, "horizon_hours": float(plan.events.horizon_hours)}
    return writer


__all__ = ["FORMATS", "REASONS", "Plan", "hash_strings", "ingest_table"]
