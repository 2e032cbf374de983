"""Count (frequency) encodings of single- and multi-column keys.

``cnt_<key>``: rows with that key over the fitted window (no labels used);
new rows look the count up in the stored table, unseen keys count 0.
``cnt_day_<key>``: rows with that key on the same UTC day, computed from the
batch being transformed (no stored state).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..backend import array_module, bincount, series_like
from ..schema import EVENT_TIME
from .estimator_conventions import EstimatorParams, FrameOutput, Param, column_names, check_columns, check_fitted, check_key_dtypes, check_time_column, load_state, save_state
from .frames import Join, apply_joins, as_dask, computed_like, free_name, key_ids, key_name, keys_of_ids, without
from .key_values import with_key_values

DAY = "_day"


def count_graph(frame: Any, key: list[str], name: str, split_out: int = 1) -> Any:
    """Lazy key -> row count table of a dask frame, in ``split_out`` partitions."""
    return with_key_values(frame[key], key).assign(**{name: 1}).groupby(key, sort=False).sum(split_out=split_out).reset_index()


def with_day(frame: Any, time_column: str = EVENT_TIME) -> Any:
    """``frame`` plus the UTC day number of each event (the per-day count key)."""
    return frame.assign(**{DAY: frame[time_column] // 86400})


class CountEncoder(FrameOutput, EstimatorParams):
    """sklearn-style count encoder for one key: ``fit`` learns the counts, ``transform`` joins them (``keep_input``:
    see :class:`~.estimator_conventions.FrameOutput`)."""

    _fitted = "counts_"
    columns = Param(column_names)

    def __init__(self, columns: str | list[str], per_day: bool = True, time_column: str = EVENT_TIME,
                 keep_input: bool = True) -> None:
        self.columns = columns
        self.per_day = per_day
        self.time_column = time_column
        self.keep_input = keep_input

    @property
    def name(self) -> str:
        return key_name(self.columns)

    @property
    def total_name(self) -> str:
        return f"cnt_{self.name}"

    @property
    def daily_name(self) -> str:
        return f"cnt_day_{self.name}"

    def output_names(self) -> list[str]:
        return [self.total_name] + ([self.daily_name] if self.per_day else [])

    def stats_graph(self, frame: Any) -> Any:
        """Lazy counts over the fitting window."""
        return count_graph(frame, self.columns, self.total_name)

    def daily_graph(self, frame: Any, split_out: int = 1) -> Any | None:
        """Lazy per-day counts of the batch being transformed (``frame`` from :func:`with_day`)."""
        return count_graph(frame, self.columns + [DAY], self.daily_name, split_out) if self.per_day else None

    def daily_counts(self, frame: Any) -> Any:
        """``cnt_day_<key>`` of each row of an in-memory batch (pandas or cudf, from :func:`with_day`):
        the batch's rows with its key that day, 0 for a null key (as the joined :meth:`daily_graph`)."""
        return series_like(frame, self.partition_daily_counts(frame))

    def partition_daily_counts(self, frame: Any) -> Any:
        """:meth:`daily_counts` as an array (numpy or cupy)."""
        return _row_counts(key_ids(frame, self.columns + [DAY]))[0]

    def partition_counts(self, ids: Any) -> Any:
        """``cnt_<key>`` of each row of an in-memory frame holding every row of its keys (``ids``:
        their :func:`~.frames.key_ids`; 0 for a null key)."""
        return _row_counts(ids)[0]

    def partition_table(self, frame: Any, ids: Any) -> Any:
        """The key -> count table (``counts_``'s rows) of such a frame."""
        return keys_of_ids(frame, self.columns, ids).assign(**{self.total_name: _row_counts(ids)[1]})

    def _check_time_column(self, X: Any) -> None:
        """With ``per_day``: a ValueError when ``X`` lacks the time column (saying how to do without), a TypeError
        when it holds no numbers."""
        if self.per_day:
            if self.time_column not in X.columns:
                raise ValueError(f"CountEncoder({self.name}): columns {[self.time_column]} are not in the frame (the time "
                                 "column of the per-day counts: name yours with time_column=..., or per_day=False)")
            check_time_column(self, X, self.time_column)

    def fit(self, X: Any, y: Any = None) -> CountEncoder:  # noqa: ARG002 - sklearn signature
        """Learn the counts; with ``per_day`` ``X`` must have the time column that :meth:`transform` reads."""
        check_columns(self, X, self.columns)
        self._check_time_column(X)
        self.counts_ = self.stats_graph(as_dask(X)).compute()
        self._remember_input(X)
        return self

    def joins(self, daily: Any | None) -> list[Join]:
        """The joins adding this encoder's columns; ``daily`` is the batch's computed per-day table."""
        return [self.total_join()] + ([self.daily_join(daily)] if self.per_day else [])

    def total_join(self) -> Join:
        """The key -> fitted count join (unseen keys count 0)."""
        check_fitted(self, "counts_")
        return Join(self.counts_, self.columns, {self.total_name: "int64"}, {self.total_name: 0})

    def daily_join(self, daily: Any) -> Join:
        """The (key, day) -> count join of a batch's per-day table (:meth:`daily_graph`)."""
        return Join(daily, self.columns + [DAY], {self.daily_name: "int64"}, {self.daily_name: 0})

    def transform(self, X: Any) -> Any:
        """``X`` with ``cnt_<key>`` and, ``per_day``, ``cnt_day_<key>`` (only then is the time column read)."""
        check_fitted(self, "counts_")
        check_columns(self, X, self.columns)
        self._check_time_column(X)
        check_key_dtypes(self, self.counts_, X, self.columns)
        frame = without(as_dask(X), self.output_names())  # replaced, last
        if not self.per_day:
            out = apply_joins(frame, [self.total_join()])
            return self._output(computed_like(out, X), X)
        if DAY in self.columns:
            raise ValueError(f"CountEncoder({self.name}): the key column name {DAY!r} is reserved for the day of the "
                             "per-day counts; rename it (or per_day=False)")
        aside = free_name(DAY, frame.columns)  # X's own column of that name, kept aside (it was dropped)
        frame = with_day(frame.rename(columns={DAY: aside}), self.time_column)
        daily = self.daily_graph(frame)
        out = apply_joins(frame, self.joins(daily.compute())).drop(columns=[DAY]).rename(columns={aside: DAY})
        return self._output(computed_like(out, X), X)

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        return self.fit(X, y).transform(X)

    def save(self, directory: str | Path) -> None:
        check_fitted(self, "counts_")
        save_state(directory, self.total_name, self.counts_, {"params": self.params(), **self._input_state()})

    @classmethod
    def load(cls, directory: str | Path, name: str, df_lib: Any = None) -> CountEncoder:
        state, table = load_state(directory, name, df_lib)
        enc = cls.from_params(state["params"])
        enc.counts_ = table
        return enc._load_input(state)


def _row_counts(ids: Any) -> tuple[Any, Any]:
    """(each row's count of rows with its id, 0 for id -1; the count of each id) as int64 arrays."""
    xp = array_module(ids)
    seen = ids >= 0
    per_id = bincount(ids[seen], minlength=int(ids.max()) + 1 if len(ids) else 0).astype(np.int64)
    return xp.where(seen, per_id[xp.where(seen, ids, 0)] if len(per_id) else 0, 0).astype(np.int64), per_id
