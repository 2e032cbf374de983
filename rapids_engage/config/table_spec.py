"""The ``data.table`` section: a generic event table's format and column roles."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class TargetSpec:
    """One engagement target of a table: its source column and kind.

    ``binary``: 0/1 (also true/false); ``count``: a non-negative count, modelled
    as log1p(count) by regression; ``present``: 1 where the column is non-empty
    (e.g. an engagement timestamp).
    """

    column: str
    kind: Literal["binary", "count", "present"] = "binary"


@dataclass
class ExplodeSpec:
    """Turn one row into one row per token of a list column (e.g. MIND impressions).

    Each ``sep``-separated token of ``column`` becomes a row whose ``item``
    column holds the token; with ``label`` set, a token is ``ITEM<label_sep>LABEL``
    and the part after the last ``label_sep`` becomes the ``label`` column.
    """

    column: str
    item: str
    label: str | None = None
    sep: str = " "
    label_sep: str = "-"


@dataclass
class SideTableSpec:
    """A small metadata table (e.g. MIND news.tsv) left-joined on its ``key`` column before typing.

    Without ``time`` a row gets the first side row of its key. With ``time`` (parsed by ``time_format``, default
    the table's) a row gets the values of the latest side row of its key strictly earlier than its own time
    (point-in-time); with ``property`` and ``value`` too the side table is long (key, time, property, value: one
    property's value per row), and each ``keep`` name is a property looked up on its own rows.
    """

    path: str
    key: str
    keep: list[str] = field(default_factory=list)
    format: Literal["csv", "tsv", "jsonl", "parquet"] = "tsv"
    header: bool = False
    columns: list[str] = field(default_factory=list)
    time: str = ""
    time_format: str = ""
    property: str = ""
    value: str = ""
    prefix: str = ""


@dataclass
class EventsSpec:
    """An event log labelled by its own later events (e-commerce views by carts and purchases).

    Rows whose ``column`` is ``anchor`` are the rows to score; such a row is labelled 1 for target
    ``name: EVENT`` when the same user has an ``EVENT`` row for the same item strictly after it and at most
    ``horizon_hours`` later. Anchors within the last horizon of the log are left out (their label is not
    final); rows of other types are not rows of the output.
    """

    column: str
    anchor: str
    horizon_hours: float
    targets: dict[str, str] = field(default_factory=dict)


@dataclass
class TableConfig:
    """A generic event table (``data.source: table``): the format and the role of each column.

    ``format``: csv | tsv | jsonl | parquet (gzip/bz2/zstd detected from the
    bytes); ``columns`` names the fields of header-less files. ``time_format``:
    ``unix`` (seconds), ``unix_ms``, ``iso`` or a strptime pattern. ``row_id``:
    columns that identify a row (after ``explode``; default: file and line).
    ``user`` / ``item`` / ``creator`` / ``group`` and ``row_id`` are hashed to
    int64; ``categorical``, ``text``, ``url`` and ``lists`` stay strings;
    ``numeric`` becomes float64. ``group`` is the ranking group (e.g. impression). ``events``: the
    table is an event log labelled by its own later events (:class:`EventsSpec`), not by target columns.
    """

    format: Literal["csv", "tsv", "jsonl", "parquet"] = "csv"
    header: bool = True
    columns: list[str] = field(default_factory=list)
    time: str = ""
    time_format: str = "unix"
    row_id: list[str] = field(default_factory=list)
    user: str | None = None
    item: str | None = None
    creator: str | None = None
    group: str | None = None
    targets: dict[str, TargetSpec] = field(default_factory=dict)
    categorical: list[str] = field(default_factory=list)
    numeric: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    url: list[str] = field(default_factory=list)
    lists: list[str] = field(default_factory=list)
    list_sep: str = " "
    explode: ExplodeSpec | None = None
    join: list[SideTableSpec] = field(default_factory=list)
    events: EventsSpec | None = None
