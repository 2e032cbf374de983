"""The feature catalog of a run, built from :class:`~rapids_engage.config.FeaturesConfig`.

:class:`FeatureBuilder` fits every encoder on the training rows only and
returns out-of-fold values for them (``fit_transform``); validation, test and
new rows get full-training statistics (``transform``). Its fitted state is a
directory of parquet tables + JSON (``save`` / ``load``): the serving state.
"""

from __future__ import annotations

import difflib
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from functools import partial

from ..config import ConfigError, FeaturesConfig, HistoryConfig, SessionConfig
from ..config.sections import DEFAULT_COUNT_KEYS, WINNER_TE_KEYS
from ..data import DataError
from ..layout import RECSYS, Layout
from ..schema import PLAUSIBLE_TIMES
from . import content, table_content
from .by_key import encode_by_key
from .cardinality import distinct_counts
from .counts import DAY, CountEncoder, with_day
from .folds import FOLD, assign_folds
from .frames import Checkpoints, Join, KeyTable, apply_joins, as_dask, in_memory, index_named, is_dask, join_all, key_tables
from .history import HistoryEncoder, fit_history, history_features
from .sessions import SessionEncoder, fit_sessions, session_features
from .target_encoding import TargetEncoder, fill_unkeyed

#: The version of the feature values this code computes from the same input: raised whenever a change alters a
#: value (a fix of the words of a text, say). A store version records it and is not served by code of another
#: (its models would see other values than they were trained on); ``tests/test_feature_values.py`` fails on a
#: change of values that keeps it. 1: before it was recorded; 2: words split on any run of whitespace, url
#: domains without credentials; 3: a ranking group's rows share a fold (:meth:`Layout.fold_key`), which changes
#: the training rows' out-of-fold target encodings of grouped tables; 4: a blank url is absent (``<url>_present``
#: 0, the domain of the stripped url), empty list items (stray separators, RecSys tabs) are no items (``<list>_len``,
#: ``n_tokens`` ..., ``first_hashtag`` / ``first_domain`` after a leading tab), and contiguous / random folds keep a
#: fold key's rows together.
VALUES_VERSION = 4
#: Earlier values versions whose stores this code serves: they may differ from this version only in the training
#: rows' out-of-fold values, so that the validation and new rows' features, what their models are served, are the
#: same. None since 4: its url and list fixes change the features of new rows too.
SERVES_ALIKE: tuple[int, ...] = ()

#: A RecSys batch of history events without any engagement is refused (taken for a test file's rows) when
#: labelled events would hold none with a smaller chance than this (a few rows without one are not refused).
NO_ENGAGEMENT_CHANCE = 1e-6

#: A key table is reduced into one (broadcast) table when its estimated rows times this are
#: within ``broadcast_limit``: room for the estimate's error (about 2 %, see ``cardinality``).
ESTIMATE_MARGIN = 1.1


def label(column: Any, kind: str, missing: bool = False) -> Any:
    """The label of a target column: ``present`` -> int8 non-null flag, ``binary`` -> int8, ``count`` -> log1p float64.
    ``missing``: labels may be missing (rows to score, whose metrics leave such rows out): a binary label is then
    float64, missing where the column is (int8 cannot hold one on pandas, where the cast raised; cudf casts NaN to
    an arbitrary integer)."""
    if kind == "present":
        return column.notnull().astype("int8")
    if kind == "binary":
        return column.astype("float64" if missing else "int8")
    import numpy as np

    return np.log1p(column.astype("float64"))


def add_labels(frame: Any, targets: str | list[str], layout: Layout = RECSYS, missing: bool = False) -> Any:
    """One label column per target, named after it (see :func:`label`, also for ``missing``); ``layout``: the data's
    (``FeatureStore(path).layout()`` for a run's)."""
    targets = [targets] if isinstance(targets, str) else targets
    return frame.assign(**{t: label(frame[layout.target(t).column], layout.target(t).kind, missing) for t in targets})


def row_features(layout: Layout) -> tuple[Any, Any, list[str]]:
    """(derived-keys function, content-features function, content feature names) of a layout's rows."""
    if layout.kind == "recsys":
        return content.derived_keys, content.content_features, content.feature_names()
    return (
        partial(table_content.derived_keys, layout=layout),
        partial(table_content.content_features, layout=layout),
        table_content.feature_names(layout),
    )


def key_columns(layout: Layout) -> list[str]:
    """The columns a feature key may name for data of ``layout``: its input columns, the derived keys
    (``first_hashtag``, ``<text>_first_word``, ``<url>_domain``, ...) and the row-wise content
    features (``hour``, ...)."""
    return list(dict.fromkeys([*layout.input_columns(), *derived_key_names(layout), *row_features(layout)[2]]))


def derived_key_names(layout: Layout) -> list[str]:
    """The key columns computed from a row of ``layout`` (``first_hashtag``, ``<text>_first_word``, ...)."""
    return list(content.DERIVED_KEYS) if layout.kind == "recsys" else table_content.key_names(layout)


def check_keys(config: FeaturesConfig, layout: Layout) -> None:
    """A ConfigError naming the config key, the column and the closest names when a feature key names
    a column data of ``layout`` will not have, or history label times the data do not carry (checked before
    any data is read)."""
    if config.history.keys:
        engagement_times(config.history, layout, [t.name for t in layout.targets])
    known = key_columns(layout)
    sessions = [session_key(config.session, layout)] if config.session.enabled else []
    for path, keys in (("features.target_encoding.keys", config.target_encoding.keys), ("features.counts", config.counts),
                       ("features.history.keys", config.history.keys), ("features.session.key", sessions)):
        for key in keys:
            for column in key:
                if column not in known:
                    raise ConfigError(f"{path}: {unknown_column(column, known, layout)}" + _recsys_default_hint(path, keys, layout))


def _recsys_default_hint(path: str, keys: list[list[str]], layout: Layout) -> str:
    """For a table whose ``keys`` at ``path`` are the RecSys 2021 defaults (the config names none): what to write
    instead (it said only "no column 'engaging_user_id' in the data", a column the user never named)."""
    if layout.kind == "recsys" or keys not in ([list(k) for k in WINNER_TE_KEYS], [list(k) for k in DEFAULT_COUNT_KEYS]):
        return ""
    roles = [c for c in (layout.user, layout.item, layout.creator, *layout.categorical) if c][:3]
    example = "[" + ", ".join(f"[{c}]" for c in roles) + "]" if roles else "[[COLUMN], ...]"
    return (f"; {path} was not set, and its default is the RecSys 2021 keys: name this table's keys, "
            f"e.g. {path}: {example} (features.target_encoding.keys and features.counts both default to RecSys columns)")


def unknown_column(column: str, known: list[str], layout: Layout) -> str:
    """``column`` is not one of ``known``: the closest names and the derived keys there are."""
    close = difflib.get_close_matches(column, known, n=1, cutoff=0.6)
    derived = derived_key_names(layout)
    return (f"no column {column!r} in the data" + (f": did you mean {close[0]!r}?" if close else "")
            + (f" (derived keys: {', '.join(derived)})" if derived else ""))


def check_values(part: Any, column: str, required: tuple[str, ...] = (), counts: tuple[str, ...] = ()) -> Any:
    """``part`` unchanged; a DataError naming the column and the first row's index label when the time
    ``column`` or a ``required`` column has a null, naming the column when the time ``column`` holds times
    outside :data:`~..schema.PLAUSIBLE_TIMES` as epoch seconds (milliseconds, say) or a ``counts`` column
    a negative number."""
    from ..backend import values

    for name in (column, *required):
        null = part[name].isna()
        if bool(null.any()):
            first = _plain(part.index[int(values(null).argmax())])
            raise DataError(f"column {name!r} has {int(null.sum())} null value(s), the first at index {first!r}: "
                            "the features need a value there")
    if len(part):
        lo, hi = int(part[column].min()), int(part[column].max())
        if lo < PLAUSIBLE_TIMES[0] or hi >= PLAUSIBLE_TIMES[1]:
            bad = lo if lo < PLAUSIBLE_TIMES[0] else hi
            hint = "; milliseconds? divide by 1000" if bad >= PLAUSIBLE_TIMES[1] * 100 else ""
            raise DataError(f"column {column!r} holds {bad}, not an epoch-seconds time from 1990 to 2100{hint}")
    for name in counts:  # a ratio's denominator is count + 1: -1 made it infinite (which XGBoost refuses)
        if bool(part[name].lt(0).any()):
            raise DataError(f"column {name!r} holds {int(part[name].min())}, not a count (>= 0)")
    return part


def label_bounds(layout: Layout, names: Sequence[str] = ()) -> dict[str, tuple[int, int | None]]:
    """Target column -> the (lowest, highest or None) value its labels may take: 0..1 for a binary target,
    0.. for a count (a ``present`` target takes any value); ``names``: only the columns among them."""
    return {t.column: (0, 1 if t.kind == "binary" else None) for t in layout.targets
            if t.kind != "present" and (not names or t.column in names)}


def check_labels(part: Any, bounds: dict[str, tuple[int, int | None]]) -> Any:
    """``part`` unchanged; a DataError naming the column, the value and its row's index label for the first value
    of a target column outside its :func:`label_bounds` (a missing label is allowed: its row is unlabelled)."""
    from ..backend import values

    for name, (low, high) in bounds.items():
        column = part[name]
        bad = column.lt(low) | (column.gt(high) if high is not None else False)
        if bool(bad.fillna(False).any()):
            at = int(values(bad.fillna(False)).argmax())
            kind = "a 0/1 label" if high is not None else "a count (>= 0)"
            raise DataError(f"target column {name!r} holds {_plain(column.iloc[at])!r} at index {_plain(part.index[at])!r}, "
                            f"not {kind}")
    return part


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value (its repr is ``np.int64(11)``)."""
    return value.item() if hasattr(value, "item") else value


def _is_text(dtype: Any) -> bool:
    """Whether a key column's dtype holds text (object, string, category) rather than numbers."""
    return getattr(dtype, "kind", "O") not in "iufb"


def row_columns(frame: Any, layout: Layout, content: bool) -> Any:
    """``frame`` (dask, or in memory: pandas / cudf) with the layout's derived key columns (e.g. ``first_hashtag``,
    ``url_domain``) and, with ``content``, its row-wise content features (``hour``, ...)."""
    derived, features, _ = row_features(layout)
    for fn in (derived, features) if content else (derived,):
        frame = _rowwise(frame, fn) if is_dask(frame) else fn(frame)
    return frame


def with_key_columns(frame: Any, layout: Layout, keys: list[list[str]]) -> Any:
    """``frame`` with every column ``keys`` may name: the derived keys, and the content features when a key
    names one (``hour``)."""
    names = row_features(layout)[2]
    return row_columns(frame, layout, any(c in names for key in keys for c in key))


def history_encoder(cfg: HistoryConfig, key: list[str], targets: list[str], time_column: str,
                    row_key: tuple[str, ...] = (), engagement: dict[str, str] | None = None) -> HistoryEncoder:
    """The history encoder of one key as configured (``row_key``: what tells an event sent again;
    ``engagement``: :func:`engagement_times`)."""
    return HistoryEncoder(
        key, targets, tuple(cfg.windows), time_column, days=tuple(cfg.days), rates=cfg.rates, label_delay=cfg.label_delay,
        row_key=row_key, engagement=engagement,
    )


def session_key(cfg: SessionConfig, layout: Layout) -> list[str]:
    """The key of the session features: ``features.session.key``, else the data's user (the engaging user on RecSys
    data, a table's ``data.table.user``); a ConfigError when neither names one."""
    if cfg.key:
        return list(cfg.key)
    if layout.user is None:
        raise ConfigError("features.session.key: not set and the data name no user column (data.table.user): "
                          "name the key, e.g. features.session.key: [visitor_id]")
    return [layout.user]


def label_time(cfg: HistoryConfig, layout: Layout) -> str:
    """``features.history.label_time`` resolved for data of ``layout``: ``auto`` is ``engagement`` where the data
    carry engagement times (:func:`carries_engagement_times`: RecSys, event logs; a positive then counts once it
    happened, no value from the future) and history keys are set, else ``event`` (a plain table's targets hold labels
    only; without history keys it changes nothing, and ``event`` keeps the store versions built before label times
    had a choice); ``event`` / ``engagement`` as given."""
    if cfg.label_time != "auto":
        return cfg.label_time
    return "engagement" if carries_engagement_times(layout) and cfg.keys else "event"


def carries_engagement_times(layout: Layout) -> bool:
    """Whether every target of ``layout`` has its positives' engagement times: RecSys (its ``<engagement>_timestamp``
    columns are the targets), an event log (each target's ``<target>_time``: :attr:`.Target.time`)."""
    return layout.kind == "recsys" or (bool(layout.targets) and all(t.time for t in layout.targets))


def resolve_label_time(config: FeaturesConfig, layout: Layout) -> FeaturesConfig:
    """``config`` with its history's ``label_time`` resolved (:func:`label_time`; a copy, ``config`` unchanged): what
    a run records (the store's definition and group signatures, report.json, config.yaml, the serving state)."""
    return replace(config, history=replace(config.history, label_time=label_time(config.history, layout)))


def engagement_times(cfg: HistoryConfig, layout: Layout, targets: list[str]) -> dict[str, str] | None:
    """Target -> the column of its engagement times with ``label_time: engagement`` (RecSys: the
    ``<engagement>_timestamp`` column its label is derived from; an event log: ``<target>_time``, the labelling
    event's; ``auto``: :func:`label_time`), None with ``event``; a ConfigError naming the key for data without such
    times (a plain table's target columns hold labels only)."""
    if label_time(cfg, layout) == "event":
        return None
    if not carries_engagement_times(layout):
        raise ConfigError("features.history.label_time: engagement counts a positive from its engagement time, which only "
                          "RecSys data (<engagement>_timestamp columns) and event logs (data.table.events: <target>_time "
                          "columns) carry; a plain table's targets hold labels only: use label_time: event, with "
                          "label_delay for labels that arrive later")
    if layout.kind == "recsys":
        return {t: layout.target(t).column for t in targets}
    return {t: layout.target(t).time for t in targets}


def _without(frame: Any, columns: list[str]) -> Any:
    """Dask ``frame`` without ``columns``, dropped per partition: not shuffled or written further. Not by
    ``frame.drop``: dask takes a projection into the parquet read of a checkpoint below, and fuses that read's
    partitions, which then no longer line up with the kept rows' (a shuffle join then found no rows)."""
    if not columns:
        return frame
    return frame.map_partitions(_drop_columns, columns, meta=frame._meta.drop(columns=columns))


def _drop_columns(part: Any, columns: list[str]) -> Any:
    return part.drop(columns=columns)


def _rowwise(frame: Any, fn: Any) -> Any:
    frame = as_dask(frame)
    return frame.map_partitions(fn, meta=fn(frame._meta))


class FeatureBuilder:
    """All feature groups of one config, for the given label columns."""

    def __init__(self, config: FeaturesConfig, targets: list[str], layout: Layout = RECSYS) -> None:
        self.config = config
        self.targets = list(targets)
        self.layout = layout
        self.row_key = list(layout.row_key)
        te = config.target_encoding
        self.target_encoders = [
            TargetEncoder(key, te.n_folds, te.smooth, te.fold_method, te.seed, layout.fold_key()) for key in te.keys
        ]
        self.count_encoders = [CountEncoder(key, config.daily_counts, layout.time) for key in config.counts]
        engagement = engagement_times(config.history, layout, self.targets) if config.history.keys else None
        self.history_encoders = [history_encoder(config.history, key, self.targets, layout.time, layout.row_key, engagement)
                                 for key in config.history.keys]
        self.session_encoders = ([SessionEncoder(session_key(config.session, layout), config.session.gap, layout.time)]
                                 if config.session.enabled else [])
        #: after :meth:`fit_transform`: the key tables estimated above ``broadcast_limit`` rows, kept partitioned
        self.partitioned: list[str] | None = None

    def check_rows(self, frame: Any) -> None:
        """A clear error for rows the fitted state cannot give features to: not a data frame, input
        columns missing, a time column that is not integer epoch seconds, a null time or profile value
        (in-memory rows here; dask rows per partition), a text, URL or list column of numbers (RecSys: its lists, type, language), or a key column of another kind (text / number)
        than the fitted tables' (every key would be unseen and get the prior)."""
        if not hasattr(frame, "columns"):
            raise TypeError(f"rows must be a data frame (pandas, cudf or dask), got {type(frame).__name__} "
                            "(raw records, as a service receives them: Scorer.predict_records)")
        missing = [c for c in self.layout.input_columns() if c not in frame.columns]
        if missing:
            raise DataError(f"rows lack column(s) {missing} needed to compute features (rows in the canonical form, as the "
                            "ingest subcommand writes them)")
        time = frame.dtypes[self.layout.time]
        if getattr(time, "kind", "O") not in "iu":
            raise DataError(f"column {self.layout.time!r} must hold integer epoch seconds, got {time}")
        if not is_dask(frame):  # dask rows: checked per partition by transform
            check_values(frame, self.layout.time, *self.required_columns())
        for column in self.layout.text_columns():
            if column in frame.columns and not _is_text(frame.dtypes[column]):
                raise DataError(f"column {column!r} is {frame.dtypes[column]} here but the layout reads it as text; cast it first")
        for column, fitted in self._fitted_key_dtypes().items():
            if column in frame.columns and _is_text(frame.dtypes[column]) != _is_text(fitted):
                raise DataError(f"key column {column!r} is {frame.dtypes[column]} here but {fitted} in the fitted "
                                "tables: every key would be unseen; cast it first")
            if column in frame.columns and getattr(frame.dtypes[column], "kind", "") == "f" and getattr(fitted, "kind", "") in ("i", "u"):
                raise DataError(f"key column {column!r} is {frame.dtypes[column]} here but {fitted} in the fitted tables: "
                                "64-bit ids lose their low digits as floats (a missing id turns an int column to float: "
                                "use the nullable Int64)")

    def history_end(self) -> int | None:
        """The end of the training window the fitted history (or session) state holds (epoch seconds): rows to
        serve start there; None without fitted history or session features."""
        ends = [e.t_end_ for e in [*self.history_encoders, *self.session_encoders] if getattr(e, "t_end_", None) is not None]
        return max(ends) if ends else None

    def history_window(self) -> str:
        """What :meth:`history_end` ends, for messages: "the training window", or that and the events
        :meth:`extend_history` folded in."""
        return self.history_encoders[0].window() if self.history_encoders else "the training window"

    def extend_history(self, events: Any) -> FeatureBuilder:
        """Fold labelled events that follow the training window into every history encoder's serving
        state (:meth:`~.history.HistoryEncoder.extend`): rows scored after them see them as history.
        ``events``: rows in the canonical form with their engagements (a table's target columns, an event log's
        with their ``<target>_time`` too, RecSys engagement timestamps), pandas, cudf or dask (gathered here)."""
        events = in_memory(events) if is_dask(events) else events
        if not self.history_encoders:  # session features alone use no label
            if self.session_encoders:
                self.check_rows(events)
                self.session_encoders[0].extend(self._rowwise_features(events))
            return self
        self.check_rows(events)
        sources = [self.layout.target(t).column for t in self.targets]
        times = [c for c in (self.history_encoders[0].engagement or {}).values() if c not in sources]  # an event log's
        missing = [c for c in [*sources, *times] if c not in events.columns]
        if missing:
            raise DataError(f"history events lack the engagement column(s) {missing}: they extend the history with labelled "
                            "events (rows to score carry none)")
        if self.layout.kind == "recsys" and not any(bool(events[c].notna().any()) for c in sources):
            chance = self._no_engagement_chance(len(events))
            if chance < NO_ENGAGEMENT_CHANCE:
                raise DataError(f"history events hold no engagement at all (rows of a RecSys test file?): {len(events):,} "
                                f"labelled events would hold none with a chance under {max(chance, sys.float_info.min):.0e} "  # 0.0: underflow
                                "at the training positive rates, and an event without one would count as seen and not engaged with")
        unlabelled = [c for c in sources if self.layout.kind != "recsys" and bool(events[c].isna().any())]
        if unlabelled:
            raise DataError(f"history events need every label: column(s) {unlabelled} have missing values")
        frame = self._rowwise_features(add_labels(events, self.targets, self.layout))  # a key may be a content column (hour)
        for enc in [*self.history_encoders, *self.session_encoders]:
            enc.extend(frame)
        self._key_dtypes = None
        return self

    def _no_engagement_chance(self, n: int) -> float:
        """At most the chance that ``n`` labelled events hold no engagement at all: an event holds none with a
        chance of at most 1 - the highest positive rate of the serving state (a test file's rows hold none)."""
        return (1.0 - max(self.history_encoders[0].positive_rates().values(), default=0.0)) ** n

    def required_columns(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(input columns besides the time that may hold no null, columns that may hold no negative number):
        the RecSys profile columns and follower / following counts, with content features."""
        recsys = self.layout.kind == "recsys" and self.config.content
        return (content.NON_NULL, content.RAW_NUMERIC) if recsys else ((), ())

    def _fitted_key_dtypes(self) -> dict[str, Any]:
        """Key column -> its dtype in the first fitted table that has it (found once per fit: a
        serving call checks every batch)."""
        if getattr(self, "_key_dtypes", None) is None:
            self._key_dtypes = self._find_key_dtypes()
        return self._key_dtypes

    def _find_key_dtypes(self) -> dict[str, Any]:
        tables = [getattr(e, "stats_", None) for e in self.target_encoders] + [getattr(e, "counts_", None) for e in self.count_encoders]
        tables += [getattr(e, "state_", None) for e in [*self.history_encoders, *self.session_encoders]]
        dtypes: dict[str, Any] = {}
        for table in tables:
            for column, dtype in (table.dtypes.items() if table is not None else ()):
                dtypes.setdefault(column, dtype)
        keys = {c for e in [*self.target_encoders, *self.count_encoders, *self.history_encoders, *self.session_encoders]
                for c in e.columns}
        return {c: d for c, d in dtypes.items() if c in keys}

    def _content_names(self) -> list[str]:
        return row_features(self.layout)[2] if self.config.content else []

    def _computes_content(self) -> bool:
        """Whether the row-wise content features are computed: as features, or as the columns of a key
        (``hour``; also in a partial build whose content group is taken from another version)."""
        names = set(row_features(self.layout)[2])
        return self.config.content or any(c in names for e in [*self.target_encoders, *self.count_encoders,
                                                               *self.history_encoders] for c in e.columns)

    def feature_names(self) -> list[str]:
        names = self._content_names()
        for enc in self.count_encoders:
            names += enc.output_names()
        for enc in self.history_encoders:
            names += enc.output_names(self.targets)
        for enc in self.session_encoders:
            names += enc.output_names()
        for enc in self.target_encoders:
            names += [enc.output_name(t) for t in self.targets]
        return names

    def _rowwise_features(self, frame: Any) -> Any:
        """:func:`row_columns` of ``frame``, the content features when computed (:meth:`_computes_content`)."""
        return row_columns(frame, self.layout, self._computes_content())

    def _split_outs(self, frame: Any, groups: list[list[str] | None]) -> list[int]:
        """Partitions of the key table grouped by each of ``groups`` (None: no table) of a
        (persisted) frame: 1 (one table, broadcast) when it cannot exceed ``broadcast_limit`` rows
        (the frame is no longer) or its estimated distinct groups are well under it, else the
        frame's partitions (reduced partitioned; still gathered if it turns out small)."""
        limit = self.config.broadcast_limit
        if limit is None or len(frame) <= limit:
            return [1] * len(groups)
        wanted = [g for g in groups if g is not None]
        estimates = iter(distinct_counts(frame, wanted))
        return [1 if g is None or next(estimates) * ESTIMATE_MARGIN <= limit else frame.npartitions for g in groups]

    def _apply(self, frame: Any, joins: list[Join], keep: Checkpoints) -> Any:
        """Compute the batch's per-day counts (each table reduced partitioned when it may exceed
        ``broadcast_limit`` rows, see :meth:`_split_outs`), then add every encoder's columns
        (``keep``: where a shuffle join's result goes, see :func:`~.frames.apply_joins`)."""
        groups = [[*enc.columns, DAY] if enc.per_day else None for enc in self.count_encoders]
        split_outs = self._split_outs(frame, groups)
        graphs = [enc.daily_graph(frame, n) for enc, n in zip(self.count_encoders, split_outs)]
        daily = key_tables(graphs, self.config.broadcast_limit, [n > 1 for n in split_outs])
        for enc, table in zip(self.count_encoders, daily):
            joins += enc.joins(table)
        drop = [c for c in (FOLD, DAY) if c in frame.columns]
        return apply_joins(frame, joins, keep).drop(columns=drop)

    def _checked(self, frame: Any) -> Any:
        """``frame`` as dask, each partition checked by :func:`check_values` (a null time or profile value named,
        not an integer cast's error deep in the content features)."""
        frame = as_dask(frame)
        return frame.map_partitions(check_values, self.layout.time, *self.required_columns(), meta=frame._meta)

    def _needed(self, frame: Any, carry: list[str]) -> Any:
        """Row-wise features plus the day key, restricted to what encoders and the caller need."""
        return self._select(with_day(self._rowwise_features(as_dask(frame)), self.layout.time), carry)

    def _select(self, frame: Any, carry: list[str]) -> Any:
        keys = [c for enc in [*self.target_encoders, *self.count_encoders, *self.history_encoders, *self.session_encoders]
                for c in enc.columns]
        missing = sorted({c for c in keys if c not in frame.columns})
        if missing:
            raise ValueError(f"feature keys: {unknown_column(missing[0], list(frame.columns), self.layout)}")
        wanted = [*self.row_key, *self.layout.fold_key(), self.layout.time, DAY, *self.targets, *keys, *self._content_names(), *carry]
        return frame[[c for c in dict.fromkeys(wanted) if c in frame.columns]]

    def _with_history(self, frame: Any) -> Any:
        """Rows outside the training set plus their point-in-time history features: training history plus
        earlier events of their own batch, never its labels (as at serving time); one shuffle on each key,
        the rows carried along (training rows: :meth:`_fit_history`)."""
        for enc in self.history_encoders:
            frame = history_features(frame, enc, fit=False, labels=False)
        for enc in self.session_encoders:
            frame = session_features(frame, enc, fit=False)
        return frame

    def _fit_history(self, frame: Any, checkpoint: Checkpoints) -> tuple[Any, Any]:
        """(training ``frame`` with its history features, lazy; kept rows of the same partitions, rows and order
        without the last key's features: :func:`~.history.fit_history`'s, else ``frame`` kept). The key tables
        are computed from the kept rows, and the features once, for the rows written (a checkpoint of the rows
        with them was written and read twice: a third of the parquet bytes the stage wrote at 300k rows)."""
        kept = None
        for enc in self.history_encoders:
            frame, kept = fit_history(frame, enc, checkpoint, limit=self.config.broadcast_limit)
        for enc in self.session_encoders:
            frame, kept = fit_sessions(frame, enc, checkpoint, limit=self.config.broadcast_limit)
        if kept is None:
            frame = kept = checkpoint(frame)
        return frame, kept

    def fit_transform(self, train: Any, carry: list[str] = (), scratch: str | Path | None = None) -> Any:
        """Fit on ``train`` (labels present); out-of-fold encodings for its rows.

        The row-wise features, folds and history features are computed once and
        kept (see :class:`~.frames.Checkpoints`: on the workers, or as parquet
        under ``scratch``, which must outlive the returned lazy frame's
        computation); all encoder statistics come from that frame, computed
        together; key tables larger than ``broadcast_limit`` rows stay
        partitioned on the workers, and the rows' values of their keys are
        computed by key (:func:`~.by_key.encode_by_key`). ``carry``: further
        input columns to keep.
        """
        self._tables = self._key_dtypes = None  # refitting invalidates what was derived from the fitted state
        keep = Checkpoints(scratch)
        engaged = [c for enc in self.history_encoders for c in (enc.engagement or {}).values()]  # the history's label times
        frame = self._needed(self._checked(train), [*carry, *engaged])
        te = self.config.target_encoding
        frame = assign_folds(frame, self.layout.fold_key(), te.n_folds, te.fold_method, te.seed,
                             "group" if self.layout.group else "row key", keep)
        frame, kept = self._fit_history(frame, keep)
        frame = _without(frame, [c for c in dict.fromkeys(engaged) if c not in carry])  # only the history reads them
        daily = [enc for enc in self.count_encoders if enc.per_day]
        encoders = (self.target_encoders, self.count_encoders, daily)
        tables = [[*e.columns, FOLD] for e in self.target_encoders] + [e.columns for e in self.count_encoders]
        outs = iter(n > 1 for n in self._split_outs(kept, tables + [[*e.columns, DAY] for e in daily]))
        big = [[next(outs) for _ in group] for group in encoders]  # per encoder: is its table partitioned
        self.partitioned = [f"{kind} {'+'.join(e.columns)}" for group, flags, kind in zip(encoders, big, ("target encoding", "counts", "day counts"))
                            for e, b in zip(group, flags) if b]
        joins = self._fit_broadcast_tables(kept, encoders, big)
        partitioned = [[e for e, b in zip(group, flags) if b] for group, flags in zip(encoders, big)]
        frame = encode_by_key(frame, *partitioned, keep, self.config.broadcast_limit, rows=kept)
        broadcast = [e for e, b in zip(self.target_encoders, big[0]) if not b]
        return fill_unkeyed(apply_joins(frame, joins, keep), broadcast).drop(columns=[FOLD, DAY])

    def _fit_broadcast_tables(self, frame: Any, encoders: tuple[list, list, list], big: list[list[bool]]) -> list[Join]:
        """Fit, in one pass over ``frame``, the encoders whose tables are broadcast (``big`` False)
        and the priors of the key-partitioned target encoders (the rest is :func:`~.by_key.encode_by_key`'s);
        the joins adding the broadcast tables' columns. ``encoders``: the target encoders, the count
        encoders and the per-day count encoders; ``big``: per encoder, whether its table is partitioned."""
        (target, count, daily), (big_te, big_cnt, big_daily) = encoders, big
        graphs = [e.fold_totals_graph(frame, self.targets) if b else e.stats_graph(frame, self.targets)
                  for e, b in zip(target, big_te)]
        graphs += [None if b else e.stats_graph(frame) for e, b in zip(count, big_cnt)]
        graphs += [None if b else e.daily_graph(frame) for e, b in zip(daily, big_daily)]
        tables = iter(key_tables(graphs, self.config.broadcast_limit))
        joins = []
        for enc, b, table in zip(target, big_te, tables):
            if b:
                enc.set_fold_totals(table, self.targets)
            else:
                joins.append(enc.set_stats(table, self.targets).oof_join())
        for enc, b, table in zip(count, big_cnt, tables):
            if not b:
                enc.counts_ = table
                joins.append(enc.total_join())
        return joins + [enc.daily_join(table) for enc, b, table in zip(daily, big_daily, tables) if not b]

    def transform(self, frame: Any, carry: list[str] = (), scratch: str | Path | None = None) -> Any:
        """Features for rows outside the training set, from the fitted state only (``scratch``: as in
        :meth:`fit_transform`)."""
        self.check_rows(frame)
        frame = self._checked(frame)
        name = frame._meta.index.name  # (an index named like a key column: see index_named)
        keep = Checkpoints(scratch)
        frame = keep(self._with_history(self._needed(index_named(frame, None), list(carry))))
        return index_named(self._apply(frame, [enc.full_join() for enc in self.target_encoders], keep), name)

    def transform_frame(self, frame: Any, carry: list[str] = ()) -> Any:
        """:meth:`transform` for an in-memory batch (pandas or cudf) without dask: the same
        functions on one frame, with the fitted key tables indexed once per builder. For
        low-latency serving of small batches; equals :meth:`transform` of the same rows."""
        self.check_rows(frame)
        frame = self._select(with_day(self._rowwise_features(frame), self.layout.time), list(carry))
        for enc in [*self.history_encoders, *self.session_encoders]:
            frame = enc.transform(frame, labels=False)
        daily = {enc.daily_name: enc.daily_counts(frame) for enc in self.count_encoders if enc.per_day}
        frame = join_all(frame, [(table, join.fill, join.new_columns) for table, join in self._serving_tables()])
        return frame.assign(**daily).drop(columns=[DAY])

    def _serving_tables(self) -> list[tuple[KeyTable, Join]]:
        """The fitted (batch-independent) joins with their indexed tables, built on first use."""
        if getattr(self, "_tables", None) is None:
            joins = [enc.full_join() for enc in self.target_encoders]
            joins += [enc.joins(None)[0] for enc in self.count_encoders]
            self._tables = [(KeyTable(in_memory(j.table), j.on), j) for j in joins]
        return self._tables

    def save(self, directory: str | Path) -> None:
        """Every encoder's fitted state plus ``features.json`` (what :meth:`load` reads)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for enc in [*self.target_encoders, *self.count_encoders, *self.history_encoders, *self.session_encoders]:
            enc.save(directory)
        self.write_spec(directory)

    def write_spec(self, directory: Path) -> None:
        """``features.json``: targets, layout, feature names and the encoders' state files."""
        spec = {
            "targets": self.targets,
            "layout": self.layout.to_dict(),
            "features": self.feature_names(),
            "target_encoding": [f"te_{e.name}" for e in self.target_encoders],
            "counts": [f"cnt_{e.name}" for e in self.count_encoders],
            "history": [f"hist_{e.name}" for e in self.history_encoders],
        }
        if self.session_encoders:
            spec["session"] = [e.name for e in self.session_encoders]
        (directory / "features.json").write_text(json.dumps(spec, indent=1))

    @classmethod
    def load(cls, directory: str | Path, config: FeaturesConfig, df_lib: Any = None) -> FeatureBuilder:
        directory = Path(directory)
        spec = json.loads((directory / "features.json").read_text())
        layout = Layout.from_dict(spec["layout"], f"{directory / 'features.json'}: layout") if "layout" in spec else RECSYS
        builder = cls(config, spec["targets"], layout)
        builder.target_encoders = [TargetEncoder.load(directory, n, df_lib) for n in spec["target_encoding"]]
        builder.count_encoders = [CountEncoder.load(directory, n, df_lib) for n in spec["counts"]]
        builder.history_encoders = [HistoryEncoder.load(directory, n, df_lib) for n in spec.get("history", [])]
        builder.session_encoders = [SessionEncoder.load(directory, n, df_lib) for n in spec.get("session", [])]
        return builder

