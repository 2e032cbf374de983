"""The feature catalog of a run, built from :class:`~rapids_engage.config.FeaturesConfig`.

:class:`FeatureBuilder` fits every encoder on the training rows only and
returns out-of-fold values for them (``fit_transform``); validation, test and
new rows get full-training statistics (``transform``). Its fitted state is a
directory of parquet tables + JSON (``save`` / ``load``): the serving state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dask

from ..config import FeaturesConfig
from ..schema import EVENT_TIME, ROW_KEY, TARGETS
from .content import content_features, derived_keys, feature_names
from .counts import DAY, CountEncoder, with_day
from .folds import FOLD, assign_folds
from .frames import Join, apply_joins, as_dask
from .history import HistoryEncoder, history_features
from .target_encoding import TargetEncoder


def add_labels(frame: Any, targets: list[str]) -> Any:
    """int8 label columns: 1 where the target's engagement timestamp is present."""
    return frame.assign(**{t: frame[TARGETS[t]].notnull().astype("int8") for t in targets})


def _rowwise(frame: Any, fn: Any) -> Any:
    frame = as_dask(frame)
    return frame.map_partitions(fn, meta=fn(frame._meta))


class FeatureBuilder:
    """All feature groups of one config, for the given label columns."""

    def __init__(self, config: FeaturesConfig, targets: list[str]) -> None:
        self.config = config
        self.targets = list(targets)
        te = config.target_encoding
        self.target_encoders = [
            TargetEncoder(key, te.n_folds, te.smooth, te.fold_method, te.seed, ROW_KEY) for key in te.keys
        ]
        self.count_encoders = [CountEncoder(key) for key in config.counts]
        hist = config.history
        self.history_encoders = [HistoryEncoder(key, self.targets, tuple(hist.windows)) for key in hist.keys]

    def feature_names(self) -> list[str]:
        names = feature_names() if self.config.content else []
        for enc in self.count_encoders:
            names += enc.output_names()
        for enc in self.history_encoders:
            names += enc.output_names(self.targets)
        for enc in self.target_encoders:
            names += [enc.output_name(t) for t in self.targets]
        return names

    def _rowwise_features(self, frame: Any) -> Any:
        frame = _rowwise(frame, derived_keys)
        return _rowwise(frame, content_features) if self.config.content else frame

    def _apply(self, frame: Any, joins: list[Join], daily_graphs: list[Any]) -> Any:
        """Compute the batch's per-day counts, then add every encoder's columns in one pass."""
        it = iter(dask.compute(*[g for g in daily_graphs if g is not None]))
        for enc, graph in zip(self.count_encoders, daily_graphs):
            joins += enc.joins(next(it) if graph is not None else None)
        drop = [c for c in (FOLD, DAY) if c in frame.columns]
        return apply_joins(frame, joins).drop(columns=drop)

    def _needed(self, frame: Any, carry: list[str]) -> Any:
        """Row-wise features plus the day key, restricted to what encoders and the caller need."""
        frame = with_day(self._rowwise_features(frame))
        keys = [c for enc in [*self.target_encoders, *self.count_encoders, *self.history_encoders] for c in enc.columns]
        content = feature_names() if self.config.content else []
        wanted = [*ROW_KEY, EVENT_TIME, DAY, *self.targets, *keys, *content, *carry]
        return frame[[c for c in dict.fromkeys(wanted) if c in frame.columns]]

    def _with_history(self, frame: Any, fit: bool) -> Any:
        """``frame`` plus the point-in-time history features (shuffled on each key, joined back on the row key).

        Training rows see the labels of strictly earlier training rows; other
        rows see training history plus earlier events of their own batch, never
        its labels (as at serving time).
        """
        for enc in self.history_encoders:
            cols = list(dict.fromkeys([*ROW_KEY, EVENT_TIME, *enc.columns, *(t for t in self.targets if t in frame.columns)]))
            hist = history_features(frame[cols], enc, fit=fit, labels=None if fit else False)
            frame = frame.merge(hist[[*ROW_KEY, *enc.output_names(self.targets)]], on=list(ROW_KEY), how="left")
        return frame

    def fit_transform(self, train: Any, carry: list[str] = ()) -> Any:
        """Fit on ``train`` (labels present); out-of-fold encodings for its rows.

        The row-wise features and folds are computed once and persisted; all
        encoder statistics come from that frame in one ``dask.compute``.
        ``carry``: further input columns to keep in the output.
        """
        frame = self._needed(train, list(carry))
        te = self.config.target_encoding
        frame = assign_folds(frame, list(ROW_KEY), te.n_folds, te.fold_method, te.seed)
        frame = self._with_history(frame.persist(), fit=True).persist()
        te_graphs = [enc.stats_graph(frame, self.targets) for enc in self.target_encoders]
        cnt_graphs = [enc.stats_graph(frame) for enc in self.count_encoders]
        daily_graphs = [enc.daily_graph(frame) for enc in self.count_encoders]
        n_te = len(te_graphs)
        stats = dask.compute(*te_graphs, *cnt_graphs)
        for enc, table in zip(self.target_encoders, stats[:n_te]):
            enc.set_stats(table, self.targets)
        for enc, table in zip(self.count_encoders, stats[n_te:]):
            enc.counts_ = table
        return self._apply(frame, [enc.oof_join() for enc in self.target_encoders], daily_graphs)

    def transform(self, frame: Any, carry: list[str] = ()) -> Any:
        """Features for rows outside the training set, from the fitted state only."""
        frame = self._with_history(self._needed(frame, list(carry)).persist(), fit=False).persist()
        daily_graphs = [enc.daily_graph(frame) for enc in self.count_encoders]
        return self._apply(frame, [enc.full_join() for enc in self.target_encoders], daily_graphs)

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for enc in [*self.target_encoders, *self.count_encoders, *self.history_encoders]:
            enc.save(directory)
        spec = {
            "targets": self.targets,
            "features": self.feature_names(),
            "target_encoding": [f"te_{e.name}" for e in self.target_encoders],
            "counts": [f"cnt_{e.name}" for e in self.count_encoders],
            "history": [f"hist_{e.name}" for e in self.history_encoders],
        }
        (directory / "features.json").write_text(json.dumps(spec, indent=1))

    @classmethod
    def load(cls, directory: str | Path, config: FeaturesConfig, df_lib: Any = None) -> FeatureBuilder:
        directory = Path(directory)
        spec = json.loads((directory / "features.json").read_text())
        builder = cls(config, spec["targets"])
        builder.target_encoders = [TargetEncoder.load(directory, n, df_lib) for n in spec["target_encoding"]]
        builder.count_encoders = [CountEncoder.load(directory, n, df_lib) for n in spec["counts"]]
        builder.history_encoders = [HistoryEncoder.load(directory, n, df_lib) for n in spec.get("history", [])]
        return builder

