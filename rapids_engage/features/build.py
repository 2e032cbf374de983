"""The feature catalog of a run, built from :class:`~rapids_engage.config.FeaturesConfig`.

:class:`FeatureBuilder` fits every encoder on the training rows only and
returns out-of-fold values for them (``fit_transform``); validation, test and
new rows get full-training statistics (``transform``). Its fitted state is a
directory of parquet tables + JSON (``save`` / ``load``): the serving state.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ..config import FeaturesConfig
from ..data import DataError
from ..layout import RECSYS, Layout
from . import content
from .by_key import encode_by_key
from .cardinality import distinct_counts
from .configured_encoders import history_encoder, session_key
from .counts import DAY, CountEncoder, with_day
from .folds import FOLD, assign_folds
from .frames import (Checkpoints, Join, KeyTable, apply_joins, as_dask, drop_per_partition, in_memory, index_named, is_dask,
                     join_all, key_tables)
from .history import HistoryEncoder, fit_history, history_features
from .key_checks import unknown_column
from .key_columns import row_columns, row_features
from .label_times import engagement_times
from .labels import add_labels
from .sessions import SessionEncoder, fit_sessions, session_features
from .target_encoding import TargetEncoder, fill_unkeyed
from .value_checks import check_values

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


def _is_text(dtype: Any) -> bool:
    """Whether a key column's dtype holds text (object, string, category) rather than numbers."""
    return getattr(dtype, "kind", "O") not in "iufb"


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
        self.session_encoders = ([SessionEncoder(session_key(config.session, layout), config.session.gap, layout.time,
                                                 layout.row_key)] if config.session.enabled else [])
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
        encoders = [*self.history_encoders, *self.session_encoders]
        return encoders[0].window() if encoders else "the training window"

    def state_groups(self) -> str:
        """The feature groups whose serving state :meth:`history_end` ends, for messages: "history features",
        "session features" or "history and session features"."""
        names = [name for name, encoders in (("history", self.history_encoders), ("session", self.session_encoders))
                 if encoders]
        return " and ".join(names or ["history"]) + " features"

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

    def _with_folds(self, frame: Any, keep: Checkpoints) -> Any:
        """``frame`` with its target-encoding fold (:func:`~.folds.assign_folds`; ``keep``: where contiguous folds by
        key keep the rows)."""
        te = self.config.target_encoding
        return assign_folds(frame, self.layout.fold_key(), te.n_folds, te.fold_method, te.seed,
                            "group" if self.layout.group else "row key", keep)

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
        frame, kept = self._fit_history(self._with_folds(frame, keep), keep)
        frame = drop_per_partition(frame, [c for c in dict.fromkeys(engaged) if c not in carry])  # only the history reads them
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

