"""A table spec (``data.table``) checked and turned into the columns an ingest reads, types and writes.

:func:`plan_of` refuses a :class:`~rapids_engage.config.TableConfig` whose roles, formats,
targets, event log, side tables (:mod:`.side_checks`) or row ids clash or cannot be read
(:class:`.IngestError` naming the key) and derives a :class:`Plan`: each column's role, the
columns every input file must have and the output schema. Ingesting by it: :mod:`.table`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

from ..config import EventsSpec, ExplodeSpec, TableConfig
from ..features.counts import DAY
from ..features.folds import FOLD
from ..features.table_content import computed_columns
from ..layout import TABLE_ROW_ID, TABLE_TIME, label_time_name, raw_id_name, table_layout
from .reader import IngestError
from .side_checks import check_joins
from .table_read import FORMATS, close_names
from .table_types import EVENT_MS, check_time_format


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


__all__ = ["Plan", "plan_of"]
