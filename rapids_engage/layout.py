"""What the columns of a canonical dataset mean: row key, event time, targets and feature roles.

Every stage after ingest reads columns through a :class:`Layout` instead of
naming them: the RecSys 2021 schema is one layout (:data:`RECSYS`), a generic
table ingested by :mod:`.ingest.table` is another, stored as ``layout.json``
beside its ``data/``. The feature store and the models keep the layout of the
run so ``predict`` computes features the same way.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

from .atomic import check_fields, read_json
from .schema import CREATOR, EVENT_TIME, ROW_KEY, TARGETS, USER

LAYOUT_FILE = "layout.json"
#: Canonical name of the event time (int64 unix seconds) in an ingested table.
TABLE_TIME = "event_time"
#: Canonical row key of an ingested table (int64 hash of the declared row id).
TABLE_ROW_ID = "row_id"
#: Prefix of the columns that keep the text of each declared ``row_id`` column of a table (``id`` ->
#: ``raw_id``): ids the user knows, carried into the predictions, never features.
RAW_ID_PREFIX = "raw_"
TARGET_KINDS = ("present", "binary", "count")


@dataclass(frozen=True)
class Target:
    """A target: label ``name`` computed from ``column`` (``present``: non-null, ``binary``: 0/1, ``count``: log1p);
    ``time``: the column of its positives' engagement times, epoch seconds (null: none), where the data keep them
    apart from ``column`` (an event log's :func:`label_time_name`; RecSys: ``column`` is that time)."""

    name: str
    column: str
    kind: str
    time: str | None = None

    @property
    def is_regression(self) -> bool:
        return self.kind == "count"


@dataclass(frozen=True)
class Layout:
    """Column roles of a canonical dataset (``kind`` is ``recsys`` or ``table``)."""

    kind: str
    row_key: tuple[str, ...]
    time: str
    targets: tuple[Target, ...]
    user: str | None = None
    item: str | None = None
    creator: str | None = None
    group: str | None = None
    popularity: str | None = None  # column whose quantiles group AP/RCE (RecSys: creator followers)
    oracle_id: str | None = None  # key of the synthetic truth files
    categorical: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    text: tuple[str, ...] = ()
    url: tuple[str, ...] = ()
    lists: tuple[str, ...] = ()
    list_sep: str = " "
    #: The declared ``row_id`` source columns and the canonical columns keeping their text
    #: (:func:`raw_id_name`): not features, carried into the predictions to join them to the input.
    row_id_columns: tuple[str, ...] = ()
    raw_ids: tuple[str, ...] = ()

    def target(self, name: str) -> Target:
        for t in self.targets:
            if t.name == name:
                return t
        names = [t.name for t in self.targets]
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        raise ValueError(f"train.targets names {name!r}, which the data do not define"
                         + (f": did you mean {close[0]!r}?" if close else "")
                         + (f" (targets: {', '.join(names)})" if names else
                            " (it defines none" + (": data.table.targets is empty)" if self.kind == "table" else ")")))

    def input_columns(self) -> list[str]:
        """Input columns needed to compute the layout's features (the targets are optional)."""
        if self.kind == "recsys":
            from .schema import TEST_COLUMNS

            return list(TEST_COLUMNS)
        roles = [self.user, self.item, self.creator, self.group]
        cols = [*self.row_key, self.time, *roles, *self.categorical, *self.numeric, *self.text, *self.url, *self.lists]
        return list(dict.fromkeys(c for c in cols if c))

    def text_columns(self) -> list[str]:
        """Input columns the features read as text (string ops): the RecSys lists, tweet type and language;
        a table's text, url and list columns."""
        if self.kind == "recsys":
            from .schema import DTYPES, TEST_COLUMNS

            return [c for c in TEST_COLUMNS if DTYPES[c] == "str"]
        return [*self.text, *self.url, *self.lists]

    def fold_key(self) -> list[str]:
        """The columns whose hash picks a training row's out-of-fold fold: the ranking group where there is one
        (an impression's rows then share a fold, so no row's encoding holds its siblings' labels: with one click
        per impression, a sibling's label tells the row's own), else the row key."""
        return [self.group] if self.group else list(self.row_key)

    def carried(self) -> list[str]:
        """Non-feature columns kept beside the features in the store (identity, time, grouping, popularity)."""
        cols = [*self.row_key, self.time, self.user, self.item, self.creator, self.group, self.popularity, self.oracle_id]
        return list(dict.fromkeys(c for c in cols if c))

    def to_dict(self) -> dict[str, Any]:
        """The fields; the raw-id ones and a target's ``time`` only when set (layouts without them, e.g. RecSys, stay as they were)."""
        data = asdict(self)
        for key in ("row_id_columns", "raw_ids"):
            if not data[key]:
                del data[key]
        for target in data["targets"]:  # a target's time only when kept (layouts without, e.g. RecSys, as they were)
            if target["time"] is None:
                del target["time"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "layout", hint: str = "") -> Layout:
        """The layout of :meth:`to_dict`'s fields; a ValueError naming ``source`` (the file) and the field when
        one is unknown (written by a newer rapids_engage), a required one is missing, or one is of another JSON
        type (a :class:`~.atomic.DamagedFile` then, with ``hint``)."""
        data = dict(check_fields(data, {}, source, hint))
        _check_fields(cls, data, source)
        _check_types(cls, data, source, hint)
        for i, t in enumerate(data["targets"]):
            check_fields(t, {}, source, hint, f"targets.{i}")
            _check_fields(Target, t, f"{source}: targets")
            _check_types(Target, t, source, hint, f"targets.{i}")
        data["targets"] = tuple(Target(**t) for t in data["targets"])
        for key, value in data.items():
            if isinstance(value, list):
                data[key] = tuple(value)
        return cls(**data)

    def save(self, directory: str | Path) -> None:
        (Path(directory) / LAYOUT_FILE).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, directory: str | Path) -> Layout | None:
        path = Path(directory) / LAYOUT_FILE
        if not path.is_file():
            return None
        hint = "ingest the data again (an ingest cache entry in data.cache_dir: delete it, the next run ingests again)"
        return cls.from_dict(read_json(path, hint=hint), str(path), hint)


def _check_fields(cls: type, data: dict[str, Any], source: str) -> None:
    """A ValueError naming ``source`` and the first field of ``data`` that dataclass ``cls`` does not have,
    or the first required one it lacks (not the constructor's TypeError)."""
    known = {f.name: f for f in fields(cls)}
    unknown = [k for k in data if k not in known]
    if unknown:
        raise ValueError(f"{source}: unknown field {unknown[0]!r} (written by a newer rapids_engage?): use that version, "
                         "or ingest / build it again with this one")
    missing = [n for n, f in known.items() if n not in data and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise ValueError(f"{source}: field {missing[0]!r} is missing")


def _check_types(cls: type, data: dict[str, Any], source: str, hint: str, where: str = "") -> None:
    """A :class:`~.atomic.DamagedFile` naming ``source`` and the first field of ``data`` whose JSON type is not
    the one dataclass ``cls`` declares (a string, null where optional, an array (of strings) for a tuple)."""
    hints = get_type_hints(cls)
    types = {key: _json_types(hints[key]) for key in data}
    check_fields(data, types, source, hint, where)
    prefix = f"{where}." if where else ""
    for key, value in data.items():
        if types[key] == (list, tuple) and get_args(hints[key])[0] is str:
            check_fields(dict(enumerate(value)), dict.fromkeys(range(len(value)), str), source, hint, prefix + key)


def _json_types(annotation: Any) -> type | tuple[type, ...]:
    """The JSON type(s) (as :func:`~.atomic.check_fields` takes them) of a field annotated ``annotation``."""
    if get_origin(annotation) is tuple:
        return list, tuple  # a tuple: :meth:`Layout.to_dict`'s own, not read back from JSON
    if get_origin(annotation) in (Union, UnionType):
        return get_args(annotation)
    return annotation


RECSYS = Layout(
    kind="recsys",
    row_key=ROW_KEY,
    time=EVENT_TIME,
    targets=tuple(Target(name, col, "present") for name, col in TARGETS.items()),
    user=USER,
    item="tweet_id",
    creator=CREATOR,
    popularity="engaged_with_user_follower_count",
    oracle_id="tweet_id",
)


def table_layout(spec: Any) -> Layout:
    """The layout of a table ingested with :class:`~rapids_engage.config.TableConfig` ``spec``.

    Targets keep their source column names (``present`` targets are stored as
    0/1, so they are ``binary`` here; an event log's are 0/1 columns named as the target, with the time of the
    event that made each 1 in ``<target>_time``: :func:`label_time_name`); the time is ``event_time`` and the row key
    ``row_id``; the text of each declared ``row_id`` column is kept as ``raw_<column>``
    (``raw_ids``).
    """
    targets = tuple(
        Target(name, t.column, "binary" if t.kind == "present" else t.kind) for name, t in spec.targets.items()
    )
    if spec.events:  # labelled by later events: a 0/1 column named as the target, the labelling event's time beside
        targets = tuple(Target(name, name, "binary", label_time_name(name)) for name in spec.events.targets)
    row_id = tuple(dict.fromkeys(spec.row_id))
    for t in spec.targets.values():
        if t.kind not in TARGET_KINDS:
            raise ValueError(f"data.table.targets: kind must be one of {TARGET_KINDS}, got {t.kind!r}")
    item = spec.explode.item if spec.explode and not spec.item else spec.item
    return Layout(
        kind="table",
        row_key=(TABLE_ROW_ID,),
        time=TABLE_TIME,
        targets=targets,
        user=spec.user,
        item=item,
        creator=spec.creator,
        group=spec.group,
        categorical=tuple(spec.categorical),
        numeric=tuple(spec.numeric),
        text=tuple(spec.text),
        url=tuple(spec.url),
        lists=tuple(spec.lists),
        list_sep=spec.list_sep,
        row_id_columns=row_id,
        raw_ids=tuple(raw_id_name(c) for c in row_id),
    )


def label_time_name(target: str) -> str:
    """The column of an event log's ``target``: the time of the event that labelled each anchor 1 (epoch seconds,
    as :data:`TABLE_TIME`; null where 0): ``<target>_time``."""
    return f"{target}_time"


def raw_id_name(column: str) -> str:
    """The canonical column keeping the text of ``row_id`` source column ``column``: ``raw_<column>``."""
    return RAW_ID_PREFIX + column
