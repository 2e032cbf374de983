"""Raw RecSys Challenge 2021 files -> canonical, day-partitioned parquet, bad rows quarantined.

Output (built in a temporary sibling directory, renamed into place at the end,
so a killed ingest never leaves a half-written ``out_dir``)::

    <out_dir>/data/day=YYYY-MM-DD/part-FFFFF-NNNNN.parquet   canonical schema (schema.py), UTC day of tweet_timestamp
                                                             (FFFFF: the input file's position; NNNNN: its part;
                                                             a day's runs of small parts merged: :mod:`.compact`)
    <out_dir>/quarantine.parquet                       bad rows with file, line, column, reason (if any)
    <out_dir>/ingest.json                              the IngestResult (written last)

* **Ids.** ``tweet_id``, ``engaged_with_user_id`` and ``engaging_user_id`` are
  hashed to int64 (:func:`.ids.hex_id_to_int64`: the first 16 of the 32 hex
  chars as a uint64 viewed as int64): 8-byte keys instead of 32-byte strings,
  so joins and group-bys downstream are on fixed-width ints. List columns,
  ``language`` and ``tweet_type`` stay strings as in the raw files.
* **Streaming.** Each file is read in blocks of ``block_size`` bytes of whole
  lines (:mod:`.reader`); each block is split into fields (pyarrow's CSV
  parser on CPU), parsed and validated column by column, vectorized (:mod:`.convert`), and its rows appended to the
  per-day parquet writers (:mod:`.writer`). Memory is bounded by a few blocks,
  whatever the file size.
* **File kind.** Training files have 24 fields, test files the first 20; a
  file's kind is the more common of the two field counts in its first 1000
  lines (ties: 24). Test rows get all-null engagement columns (same schema).
* **Bad rows.** A row with the wrong field count, invalid UTF-8, an invalid
  int / timestamp / bool or an invalid hex id goes to the quarantine with
  ``file:line:column`` and a reason; ``strict=True`` raises
  :class:`.StrictModeError` at the first one instead. Always
  ``input_rows == ingested_rows + quarantined_rows`` (input rows: non-empty lines).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import replace_dir, staged_dir, write_text
from ..backend import CPU, Backend
from ..input_files import InputPathError, expand
from ..schema import DTYPES, EVENT_TIME, RAW_COLUMNS, TEST_COLUMNS
from .compact import compact_parts
from .convert import CpuOps, make_ops
from .quarantine import Quarantine, StrictModeError
from .file_output import FileDone, FileOutput, Written, ingest_in_order
from .part_sources import FileCounts, PartSources, after_merge, listing, merged_ranges, own_ranges, own_sources
from .parallel import blocks_of, ordered_map, worker_count
from .reader import IngestError, LineBlock, iter_line_blocks, iter_raw_blocks, line_block
from .writer import DayWriter, canonical_schema, conform

CPU_BACKEND = CPU
ID_COLUMNS = ("tweet_id", "engaged_with_user_id", "engaging_user_id")
#: Largest accepted tweet_timestamp (9999-12-31T23:59:59Z), so its day is a valid date.
MAX_TIMESTAMP = 253_402_300_799
RESULT_FILE = "ingest.json"
QUARANTINE_FILE = "quarantine.parquet"
#: Lines of a file looked at to tell a training (24 fields) from a test (20 fields) file.
DETECT_LINES = 1000


@dataclass
class IngestResult:
    """What an ingest did; ``input_rows == ingested_rows + quarantined_rows``."""

    input_rows: int
    ingested_rows: int
    quarantined_rows: int
    files: int
    quarantine_counts: dict[str, int]
    out_dir: str
    elapsed_s: float
    empty_files: list[str] = field(default_factory=list)
    test_files: list[str] = field(default_factory=list)
    rows_per_day: dict[str, int] = field(default_factory=dict)
    output_files: int = 0
    output_rows: int = 0  #: rows written (more than ingested_rows when a table ingest explodes rows)
    quarantine_file: str | None = None  #: <out_dir>/quarantine.parquet when rows were quarantined
    #: the first quarantined row in short (``file:line column c: detail``), when rows were quarantined
    first_quarantined: str | None = None
    #: an event log's labelling (``data.table.events``): anchors, those left out in the last horizon, positives kept
    events: dict | None = None
    workers: int = 1  #: processes that parsed the input (the output is the same whatever their number)

    def summary(self) -> str:
        """One line: rows in, ingested, quarantined per reason and where."""
        line = f"{self.input_rows:,} input rows: {self.ingested_rows:,} ingested, {self.quarantined_rows:,} quarantined"
        if self.output_rows and self.output_rows != self.ingested_rows and not self.events:  # explode: a row per item, as the run's data line
            line += f", {self.output_rows:,} event rows"
        if self.quarantined_rows:
            reasons = ", ".join(f"{k} {v:,}" for k, v in self.quarantine_counts.items())
            line += f" ({reasons}; see {self.quarantine_file})"
            if self.first_quarantined:
                line += f"; first: {self.first_quarantined}"
        if self.events:  # an event log: its anchors are the rows
            line += f"; {events_line(self.events, self.output_rows)}"
        if self.workers > 1:
            line += f"; parsed on {self.workers} processes"
        return f"{line} -> {self.out_dir}"


def events_line(events: dict, rows: int) -> str:
    """An event log's labelling in words: the anchor rows kept and their positives, those left out."""
    positives = ", ".join(f"{name} {n:,}" for name, n in events["positives"].items())
    return (f"{rows:,} {events['anchor']!r} rows labelled ({positives}), {events['anchors_in_last_horizon']:,} left out "
            f"in the last {events['horizon_hours']:g} h of the log")


def _reason(col: str) -> str:
    if col in ID_COLUMNS:
        return "invalid_id"
    if DTYPES[col] == "bool":
        return "invalid_bool"
    return "invalid_timestamp" if "timestamp" in col or "creation" in col else "invalid_int"


def _parse(ops: CpuOps, col: str, values: Any) -> tuple[Any, np.ndarray]:
    """Canonical values of one raw column and their validity mask."""
    kind = DTYPES[col]
    if col in ID_COLUMNS:
        return ops.parse_id(values)
    if kind == "bool":
        return ops.parse_bool(values)
    if kind == "Int64":
        return ops.parse_int(values, nullable=True)
    if kind == "int64":
        return ops.parse_int(values, hi=MAX_TIMESTAMP) if col == EVENT_TIME else ops.parse_int(values)
    return values, np.ones(len(values), bool)


@dataclass
class BlockResult:
    """What one block gives: its good rows (``table``, None when none) and their lines, its bad rows as
    :meth:`.Quarantine.extend` takes them (``bad``: lines, columns, reasons, raw lines, details) and its rows."""

    table: Any
    line_no: np.ndarray
    bad: tuple[list, list, list, list, list]
    rows: int


def process_block(block: LineBlock, n_fields: int | None, ops: CpuOps, schema: Any) -> BlockResult:
    """Parse and check the rows of ``block`` of a file of ``n_fields`` fields (None: no line has 24 or 20)."""
    n = len(block.lines)
    reason = np.full(n, "", dtype=object)
    column = np.full(n, None, dtype=object)
    detail = np.full(n, "", dtype=object)
    expected = n_fields or len(RAW_COLUMNS)
    for i, raw in block.bad_utf8.items():
        reason[i] = "invalid_utf8"
        column[i], detail[i] = _utf8_column(raw, expected)
    wrong = (block.counts != expected) & (reason == "")
    reason[wrong] = "field_count"
    detail[wrong] = [f"expected {expected} fields, got {c}" for c in block.counts[wrong]]
    rows = np.flatnonzero(reason == "") if n_fields else np.zeros(0, np.int64)
    table, line_no = None, np.zeros(0, np.int64)
    if len(rows):
        table, line_no = _parse_rows(block, rows, n_fields, ops, schema, reason, column, detail)
    bad = np.flatnonzero(reason != "")
    found = (block.line_no[bad].tolist(), column[bad].tolist(), reason[bad].tolist(),
             block.text(bad) if len(bad) else [], detail[bad].tolist())
    return BlockResult(table, line_no, found, n)


def _parse_rows(block: LineBlock, rows: np.ndarray, n_fields: int, ops: CpuOps, schema: Any, reason: np.ndarray,
                column: np.ndarray, detail: np.ndarray) -> tuple[Any, np.ndarray]:
    """(the good ones of ``rows`` as a table of ``schema``, their lines); the bad ones marked in ``reason``,
    ``column``, ``detail``."""
    names = RAW_COLUMNS[:n_fields]
    fields = ops.fields(block, rows, len(names))
    parsed: dict[str, Any] = {}
    ok_all = np.ones(len(rows), bool)
    for name, raw in zip(names, fields):
        parsed[name], ok = _parse(ops, name, raw)
        new = np.flatnonzero(~ok & ok_all)  # first bad column of a row wins
        if len(new):
            at = rows[new]
            reason[at], column[at] = _reason(name), name
            detail[at] = [f"{_reason(name)}: {v!r}"[:200] for v in ops.pick(raw, new)]
            ok_all[new] = False
    return conform(ops.to_arrow(parsed, ok_all), schema), block.line_no[rows[ok_all]]


class _FileIngest:
    """Ingest state of one input file.

    The file kind (24 or 20 fields) is decided by majority over its first
    ``DETECT_LINES`` lines (blocks are held back until then), so one corrupt
    first line cannot flip it. :meth:`block` / :meth:`finish` ingest in this
    process; :meth:`hold` / :meth:`ready` only decide, for blocks processed
    elsewhere (:func:`process_block`) whose results :meth:`apply` takes, in order.
    """

    def __init__(self, name: str, ops: CpuOps, quarantine: Quarantine, writer: DayWriter, schema: Any, strict: bool) -> None:
        self.name, self.ops, self.quarantine, self.writer, self.schema, self.strict = name, ops, quarantine, writer, schema, strict
        self.n_fields: int | None = None
        self.decided = False
        self.rows = self.ingested = 0
        self._pending: list[Any] = []
        self._votes = np.zeros(2, np.int64)  # lines with 24, with 20 fields

    def block(self, block: LineBlock) -> None:
        """Ingest one block (or hold it back until the file kind is known)."""
        for ready in self.hold(block, block):
            self._process(ready)

    def finish(self) -> None:
        """Decide the file kind (if not yet) and ingest the held-back blocks."""
        for ready in self.ready():
            self._process(ready)

    def hold(self, block: LineBlock, item: Any) -> list[Any]:
        """The items (``item``: what stands for ``block``) that can be processed now, in order: none while the
        file kind is undecided (``item`` held back), all held back ones and ``item`` once it is."""
        if len(block.lines) == 0:
            return []
        if self.decided:
            return [item]
        self._pending.append(item)
        self._votes += _votes(block)
        return self.ready() if self._votes.sum() >= DETECT_LINES else []

    def ready(self) -> list[Any]:
        """Decide the file kind (if not yet); the held-back items."""
        if not self.decided:
            self.n_fields = _n_fields(self._votes)
            self.decided = True
        pending, self._pending = self._pending, []
        return pending

    def _process(self, block: LineBlock) -> None:
        self.apply(process_block(block, self.n_fields, self.ops, self.schema))

    def apply(self, result: BlockResult) -> None:
        """Take one block's result: its bad rows to the quarantine (strict: StrictModeError at the first), its
        good rows on (:meth:`_emit`)."""
        if result.table is not None:
            self._emit(result.table, result.line_no)
        lines, columns, reasons, raws, details = result.bad
        if lines:
            if self.strict:
                raise StrictModeError(self.name, int(lines[0]), columns[0], reasons[0], details[0])
            self.quarantine.extend([self.name], lines, columns, reasons, raws, details)
        self.rows += result.rows
        self.ingested += result.rows - len(lines)

    def _emit(self, table: Any, line_no: np.ndarray) -> None:
        """Hand on the good rows of a block (``line_no``: the line of each)."""
        self.writer.write(table)


def _votes(block: LineBlock) -> np.ndarray:
    """The lines of ``block`` with 24 fields and with 20 (invalid UTF-8 lines not counted)."""
    counts = np.delete(block.counts, list(block.bad_utf8))
    return np.array([(counts == len(RAW_COLUMNS)).sum(), (counts == len(TEST_COLUMNS)).sum()], np.int64)


def _n_fields(votes: np.ndarray) -> int | None:
    """A file's kind by its first lines' votes: 24 fields (training), 20 (test), None (no such line)."""
    n24, n20 = votes
    return None if n24 == n20 == 0 else len(RAW_COLUMNS) if n24 >= n20 else len(TEST_COLUMNS)


def files_without_engagements(paths: list[Path], block_size: int = 1 << 20) -> list[str]:
    """The files among ``paths`` that the ingest would read as test files (20 fields), judged as it judges
    them, on their first ``DETECT_LINES`` lines: a few blocks of each, read before any ingest."""
    found = []
    for path in paths:
        votes = np.zeros(2, np.int64)
        for block in iter_line_blocks(path, block_size):
            votes += _votes(block)
            if votes.sum() >= DETECT_LINES:
                break
        if _n_fields(votes) == len(TEST_COLUMNS):
            found.append(str(path))
    return found


def _utf8_column(raw: bytes, n_fields: int) -> tuple[str | None, str]:
    """(column, detail) of the first field of a non-UTF-8 line that fails to decode."""
    parts = raw.split(b"\x01")
    for j, part in enumerate(parts):
        try:
            part.decode("utf-8")
        except UnicodeDecodeError as exc:
            col = RAW_COLUMNS[j] if len(parts) == n_fields else None
            return col, f"invalid UTF-8 in field {j + 1}: {exc.reason} at byte {exc.start}"
    return None, "invalid UTF-8"


def input_paths(inputs: str | os.PathLike | list[str | os.PathLike]) -> list[Path]:
    """The input files (a glob pattern, a directory: :func:`.input_files.expand`, or a list of paths); each must be a
    readable file."""
    if isinstance(inputs, (str, os.PathLike)):
        pattern = str(inputs)
        try:
            paths = [str(p) for p in expand(pattern)]  # as data.path
        except InputPathError as exc:
            raise IngestError(str(exc)) from None
        if not paths:
            raise IngestError(f"{pattern}: no input files match")
    else:
        paths = [str(p) for p in inputs]
        if not paths:
            raise IngestError("no input files given")
    for p in paths:
        if not os.path.exists(p):
            raise IngestError(f"{p}: no such input file")
        if os.path.isdir(p):
            ending = _suffix(Path(p))
            raise IngestError(f"{p}: a directory, not an input file; " + (
                f"name its files by a glob, e.g. '{os.path.join(p, '**', '*' + ending)}' (every such file below it)"
                if ending else "it holds no file"))
        if not os.path.isfile(p):
            raise IngestError(f"{p}: input is not a regular file")
        if not os.access(p, os.R_OK):
            raise IngestError(f"{p}: input file is not readable")
    return [Path(p) for p in paths]


def _suffix(folder: Path) -> str:
    """The file ending of the first file below ``folder`` (``.csv``, ``.tsv.gz``; ``""`` when no file has one)."""
    first = next((f for f in folder.rglob("*") if f.is_file() and f.suffix), None)
    if first is None:
        return ""
    two = "".join(first.suffixes[-2:])
    return two if first.suffix in (".gz", ".bz2", ".zst") and len(first.suffixes) > 1 else first.suffix


def _check_out_dir(out: Path) -> None:
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or (out / RESULT_FILE).is_file())):
        raise IngestError(f"{out}: exists and is not an ingest output directory; refusing to replace it")


def _publish(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``, replacing an earlier ingest output there."""
    _check_out_dir(out)
    replace_dir(tmp, out)


def _write_json(path: Path, obj: dict) -> None:
    write_text(path, json.dumps(obj, indent=1))


def finish(tmp: Path, out: Path, written: Any, quarantine: Quarantine, start: float, result: IngestResult) -> IngestResult:
    """Write the quarantine, complete ``result`` (row counts from ``written``: a :class:`.file_output.Written` or a
    closed :class:`.DayWriter`, and the quarantine, elapsed time), merge the small parts (:mod:`.compact`), write
    each part's input files (:mod:`.part_sources`; not an event log's) and ``ingest.json`` into ``tmp`` and publish
    ``tmp`` as ``out``."""
    if quarantine.total:
        quarantine.write(tmp / QUARANTINE_FILE)
    quarantine.cleanup()
    result.quarantined_rows = quarantine.total
    result.quarantine_file = str(out / QUARANTINE_FILE) if quarantine.total else None
    result.quarantine_counts = dict(sorted(quarantine.counts.items()))
    result.first_quarantined = quarantine.first_text()
    result.elapsed_s = round(time.perf_counter() - start, 3)
    result.rows_per_day = dict(sorted(written.rows_per_day.items()))
    before = own_sources(listing(tmp / "data"))
    ranges = own_ranges(tmp / "data", list(before)) if isinstance(written, Written) else {}
    result.output_files = compact_parts(tmp / "data") if written.files else 0  # small parts merged, rows as written
    if isinstance(written, Written):  # each file's parts (an event log's labelled rows are no file's alone)
        files = [FileCounts(d.rows, d.ingested, d.rows_per_day, d.quarantine.counts, d.test_file) for d in written.per_file]
        after = listing(tmp / "data")
        PartSources(after_merge(before, after), tuple(files), merged_ranges(ranges, after)).save(tmp)
    result.output_rows = sum(written.rows_per_day.values())
    _write_json(tmp / RESULT_FILE, {k: v for k, v in asdict(result).items() if k != "workers"})  # the same whatever the workers
    _publish(tmp, out)
    return result


@dataclass(frozen=True)
class _Job:
    """What every input file of a RecSys ingest is ingested with (picklable: sent with each file to a worker)."""

    tmp: str  #: the staged output directory
    strict: bool
    block_size: int
    rows_per_file: int


def ingest_recsys(
    inputs: str | os.PathLike | list[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    backend: Backend = CPU_BACKEND,
    strict: bool = False,
    block_size: int = 64 << 20,
    on_progress: Callable[[int, int], None] | None = None,
    rows_per_file: int = 1_000_000,
    workers: int | str = 1,
) -> IngestResult:
    """Ingest raw RecSys 2021 files (``inputs``: a list of paths or a glob) into ``out_dir``.

    ``workers``: processes that ingest (an int, or ``"auto"``: :func:`.parallel.worker_count`; the GPU backend
    and inputs of one block ingest in this process): as many input files as workers or more, each worker reads,
    parses and writes whole files (:func:`ingest_file`); fewer, this process reads and writes and the workers
    parse the blocks. Each input file has its own parts and quarantine (:mod:`.file_output`; a day's small
    parts merged once all are written, :mod:`.compact`), so the output is the same whatever the workers. ``on_progress(done_bytes, total_bytes)`` is called after each block, or
    after each file when workers ingest whole files (on-disk bytes, so compressed files count their compressed
    size). Raises :class:`.IngestError` for a missing/unreadable input or an ``out_dir`` that is not an earlier
    ingest output, :class:`.StrictModeError` at the first bad row in input order in strict mode.
    """
    start = time.perf_counter()
    paths = input_paths(inputs)
    out = Path(out_dir).absolute()
    _check_out_dir(out)
    with staged_dir(out) as tmp:
        ops = make_ops(backend)
        job = _Job(str(tmp), strict, block_size, rows_per_file)
        blocks = sum(blocks_of(p.stat().st_size, block_size) for p in paths)
        n = 1 if backend.is_gpu else worker_count(workers, blocks, len(paths))
        written = ingest_in_order(paths, n, Quarantine(spill_dir=tmp), on_progress,
                                  (ingest_file, _worker_ops, (), lambda i, path: (i, str(path), job)),
                                  lambda progress: _ingest_blocks(list(enumerate(paths)), ops, job, n, progress))
        result = IngestResult(written.rows, written.ingested, 0, len(paths), {}, str(out), 0.0, written.empty(paths),
                              [str(p) for p, d in zip(paths, written.per_file) if d.test_file], workers=n)
        return finish(tmp, out, written, written.quarantine, start, result)


def ingest_file(state: tuple, task: tuple) -> FileDone:
    """Read, parse and write one input file (``task``: its index, path and the :class:`_Job`) in this process."""
    index, path, job = task
    return _ingest_blocks([(index, Path(path))], state[0], job, 1, None)[0]


def _ingest_blocks(files: list[tuple[int, Path]], ops: CpuOps, job: _Job, workers: int,
                   progress: Callable[[int, int], None] | None) -> list[FileDone]:
    """Ingest ``files`` (index, path) one after the other, their blocks parsed on ``workers`` processes (1: here),
    each file written by its own :class:`.FileOutput` here, closed once its last block is written;
    ``progress(index, bytes done)`` after each block."""
    schema = canonical_schema()
    tmp = Path(job.tmp)
    outputs = [FileOutput(i, tmp / "data", tmp, schema, rows_per_file=job.rows_per_file,
                          max_buffer_bytes=writer_buffer_bytes(job.block_size)) for i, _ in files]
    states = [_FileIngest(str(path), ops, o.quarantine, o.writer, schema, job.strict) for o, (_, path) in zip(outputs, files)]
    index = {state: k for k, state in enumerate(states)}
    setup = (_worker_ops, ()) if workers > 1 else (_same, (ops, schema))
    current = 0
    for (state, bytes_done), result in ordered_map(_block_work, *setup, _block_tasks([p for _, p in files], states,
                                                                                      job.block_size, workers > 1), workers):
        k = index[state]
        while current < k:  # the files before are done: their buffers written, not held to the end
            _done(outputs[current], states[current])
            current += 1
        if result is not None:
            state.apply(result)
        if progress and bytes_done is not None:
            progress(files[k][0], bytes_done)
    return [_done(o, s) for o, s in zip(outputs, states)]


def _done(output: FileOutput, state: _FileIngest) -> FileDone:
    return output.done(state.rows, state.ingested, test_file=state.n_fields == len(TEST_COLUMNS))


def writer_buffer_bytes(block_size: int) -> int:
    """The rows a file's writer buffers before writing (bytes): two blocks' worth, at least 64 MiB."""
    return max(2 * block_size, 64 << 20)


def _block_tasks(paths: list[Path], states: list[_FileIngest], block_size: int,
                 raw: bool) -> Iterator[tuple[tuple[_FileIngest, int | None], tuple]]:
    """((file state, on-disk bytes done after the block or None), (block, its file's field count) or None: a block
    held back or empty, for progress) per block read, in input order; ``raw``: the block as (bytes, first line, bytes done) for another process (a
    :class:`LineBlock` is built here only while the file kind is undecided), else as a :class:`LineBlock`."""
    for path, state in zip(paths, states):
        for data, first_line, bytes_done in iter_raw_blocks(path, block_size):
            item = (bytes(data), first_line, bytes_done) if raw else None
            if state.decided and raw:
                yield (state, bytes_done), (item, state.n_fields)
                continue
            block = line_block(data, first_line, bytes_done)
            held = state.hold(block, item or block)
            if not held:  # an empty block, or held back: progress as a serial ingest reports it
                yield (state, bytes_done), None
            for i, ready in enumerate(held):
                yield (state, bytes_done if i == len(held) - 1 else None), (ready, state.n_fields)
        for ready in state.ready():
            yield (state, None), (ready, state.n_fields)


def _block_work(state: tuple, task: tuple) -> BlockResult:
    """:func:`process_block` of one task of :func:`_block_tasks`."""
    ops, schema = state
    block, n_fields = task
    if isinstance(block, tuple):
        block = line_block(*block)
    return process_block(block, n_fields, ops, schema)


def _worker_ops() -> tuple[CpuOps, Any]:
    """A worker's state: the CPU column operations and the canonical schema."""
    return CpuOps(), canonical_schema()


def _same(*state: Any) -> tuple:
    return state


__all__ = ["CPU_BACKEND", "IngestResult", "ingest_recsys"]
