"""Generic event tables (CSV, TSV, JSONL, parquet) -> canonical day-partitioned parquet, bad rows quarantined.

:func:`ingest_table` checks a :class:`~rapids_engage.config.TableConfig` and derives the
output schema (:func:`_plan`), then streams each input file chunk by chunk
(:mod:`.table_read`), explodes, joins and types each chunk (:mod:`.table_types`) and
writes the day partitions (each input file its own parts, :mod:`.file_output`: whole files on
worker processes when there are as many as workers), the quarantine and ``ingest.json``
atomically like :func:`.ingest_recsys`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..atomic import staged_dir
from ..config import EventsSpec, ExplodeSpec, TableConfig
from ..features.counts import DAY
from ..features.folds import FOLD
from ..features.table_content import computed_columns
from ..layout import TABLE_ROW_ID, TABLE_TIME, label_time_name, raw_id_name, table_layout
from . import table_read
from .file_output import FileDone, FileOutput, ingest_in_order
from .parallel import blocks_of, ordered_map, worker_count
from .quarantine import Quarantine, StrictModeError
from .reader import IngestError
from .recsys import IngestResult, _check_out_dir, input_paths, finish
from .table_read import FORMATS, Bad, Chunk, Source, by_line, close_names, missing_message, read
from .side_share import mapped_bytes, shared_sides
from .side_checks import check_joins
from .side_tables import AsOfSide, SideTable, check_kept_names, read_side
from .table_types import (EVENT_MS, Errors, arrow_strings, check_time_format, explode, hash_strings, row_ids, row_times,
                          typed)
from .writer import DayWriter

#: Quarantine reasons of a table ingest.
REASONS = ("wrong_field_count", "unclosed_quote", "invalid_utf8", "bad_json", "duplicate_key", "bad_time", "bad_number",
           "bad_target", "bad_explode_token", "missing_key", "not_anchor")


# ---------------------------------------------------------------- plan


@dataclass(frozen=True)
class Plan:
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
    categorical: tuple[str, ...] = ()
    scalars: dict[str, str] = field(default_factory=dict)  # column -> reason of a JSON list / object in it
    required: tuple[str, ...] = ()  # columns without which no row is good
    group: str | None = None  # the ranking group: a row without one is bad (missing_key)
    raw_ids: tuple[tuple[str, str], ...] = ()  # (row_id column, canonical column keeping its text)
    unlabelled_sep: str | None = None  # rows without labels of a spec with explode labels: a token ending in this + 0/1 is bad
    events: EventsSpec | None = None  # an event log labelled by its own later events
    event_keys: tuple[str, ...] = ()  # its user and item columns: a row without them is bad
    keep_events: bool = False  # whether ``schema`` keeps the event type and EVENT_MS for labelling (else: rows to score)
    labelled_schema: pa.Schema | None = None  # an event log's output: its anchors with their labels


def plan_of(spec: TableConfig, unlabelled: bool = False) -> Plan:
    """Check ``spec`` (IngestError naming the problem) and derive the output columns; ``unlabelled``:
    rows to score, without the target columns (or explode labels: a token still carrying one is a bad row)."""
    labelled_tokens = unlabelled and spec.explode is not None and spec.explode.label is not None
    if unlabelled:
        explode = dataclasses.replace(spec.explode, label=None) if spec.explode else None
        spec = dataclasses.replace(spec, targets={}, explode=explode)
    if spec.format not in FORMATS:
        raise IngestError(f"data.table.format must be one of {FORMATS}, got {spec.format!r}")
    if not spec.time:
        raise IngestError("data.table.time: name the event time column")
    check_time_format(spec.time_format)
    for name, t in spec.targets.items():
        if t.kind not in ("binary", "count", "present"):
            raise IngestError(f"data.table.targets.{name}: kind must be binary, count or present, got {t.kind!r}")
        if name in (DAY, FOLD):
            raise IngestError(f"data.table.targets: the target name {name!r} collides with the feature build's own "
                              f"{name!r} column; rename it")
    ex = spec.explode
    _check_events(spec)
    roles = _roles(spec)
    produced = {ex.item, ex.label} - {None} if ex else set()
    kept = check_joins(spec, produced)
    ons = [j.key for j in spec.join]
    declared = [*roles, *spec.row_id, *([ex.column] if ex else []), *ons]
    needed = tuple(c for c in dict.fromkeys(declared) if c not in produced | kept)
    if spec.format in ("csv", "tsv") and not spec.header:
        twice = next((c for c in spec.columns if spec.columns.count(c) > 1), None)
        if twice is not None:  # which field is meant is unknown (and pyarrow cannot name two fields alike)
            at = ", ".join(str(i + 1) for i, c in enumerate(spec.columns) if c == twice)
            raise IngestError(f"data.table.columns: {twice!r} is named {spec.columns.count(twice)} times "
                              f"(at positions {at}); name each field once")
        absent = [c for c in needed if c not in spec.columns]
        if absent:
            key = roles.get(absent[0]) or ("row_id" if absent[0] in spec.row_id else "explode.column" if ex and absent[0] == ex.column
                                           else "events.column" if spec.events and absent[0] == spec.events.column else "join.key")
            near = close_names(absent[0], tuple(spec.columns))
            hint = f"; did you mean {' or '.join(map(repr, near))}?" if near else ""
            raise IngestError(f"data.table.{key}: {absent[0]!r} is not one of data.table.columns (the header-less "
                              f"{spec.format}'s {', '.join(spec.columns)}){hint}")
    ids = tuple(dict.fromkeys(c for c in (spec.user, spec.item, spec.creator, spec.group, ex and ex.item) if c))
    targets = tuple((t.column, t.kind) for t in spec.targets.values())
    required = [spec.time, *(c for c, _ in targets), *spec.row_id, *([ex.column] if ex else [])]
    schema = _schema(ids, targets, spec)
    raw_ids = tuple((c, raw_id_name(c)) for c in dict.fromkeys(spec.row_id))
    _check_raw_ids(spec, raw_ids, schema.names)
    schema = _with_raw_ids(schema, raw_ids)
    labelled = None
    if spec.events:
        labels = tuple((name, "binary") for name in spec.events.targets)
        times = tuple(label_time_name(name) for name in spec.events.targets)
        labelled = _with_raw_ids(_schema(ids, labels, spec, times), raw_ids)
        _check_event_targets(spec, schema.names)
        if not unlabelled:  # typed rows staged for the labelling pass
            schema = schema.append(pa.field(spec.events.column, pa.string())).append(pa.field(EVENT_MS, pa.int64()))
    return Plan(
        time=spec.time, time_format=spec.time_format, ids=ids, targets=targets, numeric=tuple(spec.numeric),
        strings=(*spec.categorical, *spec.text, *spec.url, *spec.lists), row_id=tuple(spec.row_id), needed=needed,
        list_seps={c: spec.list_sep for c in spec.lists} | ({ex.column: ex.sep} if ex else {}), explode=ex,
        schema=schema,
        keep_list=bool(ex) and (ex.column in roles or ex.column in spec.row_id or ex.column in ons),
        categorical=tuple(spec.categorical), scalars=_scalars(roles, spec, needed),
        required=tuple(c for c in dict.fromkeys(required) if c in needed), group=spec.group, raw_ids=raw_ids,
        unlabelled_sep=spec.explode.label_sep if labelled_tokens else None,
        events=spec.events, event_keys=(spec.user, spec.item) if spec.events else (), keep_events=bool(spec.events) and not unlabelled,
        labelled_schema=None if unlabelled else labelled,
    )


def _check_events(spec: TableConfig) -> None:
    """An IngestError naming the key when ``data.table.events`` cannot label this table."""
    if not spec.events:
        return
    missing = [role for role in ("user", "item") if not getattr(spec, role)]
    if missing:
        raise IngestError(f"data.table.{missing[0]}: not set; data.table.events labels rows per user and item "
                          f"(data.table.{' and data.table.'.join(missing)} not set)")
    if spec.targets:
        raise IngestError("data.table.targets: an event log's targets are its event types (data.table.events.targets: "
                          "{name: event type}), not columns; leave data.table.targets out")
    if spec.explode:
        raise IngestError("data.table.events: an event log is one event per row; data.table.explode is not read with it")


def _check_event_targets(spec: TableConfig, columns: list[str]) -> None:
    """An IngestError when an event target's name, or its label time column's (``<target>_time``), is a column of
    the output or of the feature build, or another target's."""
    taken = set(columns) | set(computed_columns(table_layout(spec))) | {DAY, FOLD}
    names = [*spec.events.targets, *(label_time_name(name) for name in spec.events.targets)]
    for i, name in enumerate(names):
        if name in taken or name in names[:i]:
            target = list(spec.events.targets)[i % len(spec.events.targets)]
            what = f"the target name {name!r}" if name == target else f"the label time column {name!r} of target {target!r}"
            raise IngestError(f"data.table.events.targets: {what} is already a column of the ingested table, of the "
                              "feature build or of another target; rename the target")


def _check_raw_ids(spec: TableConfig, raw_ids: tuple[tuple[str, str], ...], columns: list[str]) -> None:
    """An IngestError when the column keeping a row_id column's text (``raw_<column>``) has the name of
    another output column, a label, or a row-wise feature or key (as :mod:`..features.table_content`
    names them)."""
    taken = {c: "a column of the ingested table" for c in columns}
    taken |= {name: f"the label of target {name!r}" for name in spec.targets}
    taken |= computed_columns(table_layout(spec))
    for col, raw in raw_ids:
        if raw in taken:
            raise IngestError(f"data.table.row_id: the text of column {col!r} is kept as {raw!r}, which is already "
                              f"{taken[raw]}; rename that column")


def _with_raw_ids(schema: pa.Schema, raw_ids: tuple[tuple[str, str], ...]) -> pa.Schema:
    """``schema`` plus a string column per row_id column (after the others, the metadata kept)."""
    for _, raw in raw_ids:
        schema = schema.append(pa.field(raw, pa.string()))
    return schema


def _scalars(roles: dict[str, str], spec: TableConfig, needed: tuple[str, ...]) -> dict[str, str]:
    """Column -> the reason of a JSON list / object in it, for the needed columns but the list columns."""
    lists = {*spec.lists, *([spec.explode.column] if spec.explode else [])}
    reason = {"time": "bad_time", "numeric": "bad_number"}
    return {c: "bad_target" if roles.get(c, "").startswith("targets.") else reason.get(roles.get(c), "bad_json")
            for c in needed if c not in lists}


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
    if spec.events:
        roles.append((spec.events.column, "events.column"))
    seen: dict[str, str] = {}
    for col, role in roles:
        if col in seen:
            raise IngestError(f"data.table: column {col!r} is both {seen[col]} and {role}")
        if col in (TABLE_ROW_ID, TABLE_TIME) and role != "time":
            raise IngestError(f"data.table: column {col!r} ({role}) collides with the canonical {col!r} column")
        if col in (DAY, FOLD) and role != "time":  # the feature build adds them to the rows (the time becomes TABLE_TIME)
            raise IngestError(f"data.table: column {col!r} ({role}) collides with the feature build's own {col!r} column "
                              f"(the {'event day' if col == DAY else 'target-encoding fold'}); rename it")
        seen[col] = role
    return seen


def _schema(ids: tuple[str, ...], targets: tuple[tuple[str, str], ...], spec: TableConfig,
            times: tuple[str, ...] = ()) -> pa.Schema:
    """The output schema (``times``: an event log's label time columns, after the labels); its pandas metadata makes
    the id and label time columns (null: no key, no labelling event) read back as ``Int64`` in every part, whether it
    has nulls or not."""
    fields = [(TABLE_ROW_ID, pa.int64()), (TABLE_TIME, pa.int64())] + [(c, pa.int64()) for c in ids]
    fields += [(c, pa.float64() if kind == "count" else pa.int8()) for c, kind in targets]
    fields += [(c, pa.int64()) for c in times]
    fields += [(c, pa.string()) for c in spec.categorical] + [(c, pa.float64()) for c in spec.numeric]
    fields += [(c, pa.string()) for c in (*spec.text, *spec.url, *spec.lists)]
    nullable = pd.DataFrame({c: pd.Series([], dtype="Int64") for c in (*ids, *times)})
    return pa.schema(fields, metadata=pa.Schema.from_pandas(nullable, preserve_index=False).metadata)


# ---------------------------------------------------------------- driver


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
    msg = missing_message(path, fmt, chunk)
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
    sides = [read_side(j, strict, chunk_rows, spec.time_format) for j in spec.join]
    with staged_dir(out) as tmp:
        src = Source(spec.format, spec.header, tuple(spec.columns), plan.needed, plan.list_seps, spec.time,
                     spec.time_format, plan.scalars, plan.required)
        job = _Job(str(tmp), str(tmp / ("_typed" if plan.keep_events else "data")),  # an event log's rows are labelled from there
                   src, strict, chunk_rows, table_read.block_bytes_of(spec.format))
        check_kept_names(paths, src, spec.join, chunk_rows)
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
