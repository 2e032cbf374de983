"""Checks of a table's side tables (``data.table.join``) in its config, before anything is read.

:func:`check_joins` refuses a side table whose format, header, columns or point-in-time keys
(``time`` / ``time_format`` / ``property`` / ``value``) cannot be read, or whose kept column clashes
with another column (its key, an earlier join's kept column or key, a column explode makes, a header-less
table's column, the table's time when a join is point in time). Reading and joining them: :mod:`.side_tables`, :mod:`.side_join`;
kept columns the table's files have too: :func:`.side_tables.check_kept_names`.
"""

from __future__ import annotations

from ..config import SideTableSpec, TableConfig
from .reader import IngestError
from .side_tables import kept_names
from .table_read import FORMATS
from .table_types import check_time_format


def check_joins(spec: TableConfig, produced: set[str]) -> set[str]:
    """The columns the side tables add (checked for clashes)."""
    kept: dict[str, str] = {}  # column -> the side table's path
    for at, j in enumerate(spec.join):
        if j.format not in FORMATS:
            raise IngestError(f"data.table.join {j.path}: format must be one of {FORMATS}, got {j.format!r}")
        if j.format in ("csv", "tsv") and not j.header and not j.columns:
            raise IngestError(f"data.table.join {j.path}: a header-less side table needs columns, or header: true to "
                              "read its first line as them (a side table's header is false, and its format tsv, unless set)")
        _check_as_of(j, spec.time_format)
        for col, name in zip(j.keep, kept_names(j)):
            if name == spec.time and any(side.time for side in spec.join):  # the rows' times are parsed before joining
                raise IngestError(f"data.table.join {j.path}: kept column {name!r} is the table's time (data.table.time), "
                                  "which a point-in-time join looks up by; keep another column or property")
            if col == j.key:
                raise IngestError(f"data.table.join {j.path}: kept column {col!r} clashes with another column (its key)")
            clash = _kept_clash(spec, spec.join[:at], name, produced, kept)
            if clash:
                raise IngestError(f"data.table.join {j.path}: kept column {name!r} is also {clash}, which the join would "
                                  f"replace; set prefix on this join (its kept columns are then named prefix + column, "
                                  f"e.g. prefix: side_ gives 'side_{col}') or keep another column")
            kept[name] = j.path
    return set(kept)


def _kept_clash(spec: TableConfig, before: list[SideTableSpec], name: str, produced: set[str],
                kept: dict[str, str]) -> str:
    """What else a side table's kept column ``name`` would be, ``before``: the joins before it ("" if nothing the
    config knows of)."""
    if name in kept:
        return f"a kept column of data.table.join {kept[name]}"
    if name in produced:
        return "a column explode makes"
    earlier = next((o for o in before if o.key == name), None)  # a later join's key: chained, it looks the column up
    if earlier is not None:
        return f"the key of data.table.join {earlier.path}"
    if not spec.header and name in spec.columns:
        return "a column of the table (data.table.columns)"
    return ""


def _check_as_of(j: SideTableSpec, table_format: str) -> None:
    """An IngestError naming the key when a side table's ``time`` / ``time_format`` / ``property`` / ``value``
    cannot be read."""
    where = f"data.table.join {j.path}"
    if bool(j.property) != bool(j.value):
        given, other = ("property", "value") if j.property else ("value", "property")
        raise IngestError(f"{where}: {given} without {other}; a long side table names both (the column of each row's "
                          "property and the column of its value)")
    if not j.time:
        if j.time_format:
            raise IngestError(f"{where}: time_format without time (the side table's time column); set time or leave "
                              "time_format out")
        if j.property:
            raise IngestError(f"{where}: a long side table (property, value) needs time: each property's value is "
                              "joined as of each row's time")
        return
    check_time_format(j.time_format or table_format, f"{where}: time_format" if j.time_format
                      else f"{where}: time_format (the table's, unless set)")
    columns = {"key": j.key, "time": j.time, "property": j.property, "value": j.value}
    if not j.property:
        columns |= {f"keep {c!r}": c for c in j.keep}
    seen: dict[str, str] = {}
    for role, col in columns.items():
        if col in seen:
            raise IngestError(f"{where}: column {col!r} is both {seen[col]} and {role}")
        if col:
            seen[col] = role


__all__ = ["check_joins"]
