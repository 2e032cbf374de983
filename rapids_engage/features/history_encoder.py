"""The history features' encoder: fit, transform, extend, save (see :mod:`.history`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..backend import array_module, frame_library, host_frame, is_gpu_object, series_like
from ..data import DataError
from ..schema import DAY_SECONDS, EVENT_TIME, TARGETS
from .estimator_conventions import EstimatorParams, FrameOutput, Param, ParamError, column_names, check_columns, check_fitted, check_label_dtypes, check_time_column, load_state, save_state
from .frames import cast_to_state, group_ids, in_memory, is_dask, key_name
from .history_spans import span_features, window_label
from .history_state import (
    N, TIME_LIMIT, aggregate, alone_if_null, at_engagement, early_events_refusal, early_rows_refusal, encoder_state_rows,
    event_rows, known_times, last_col, pos_col, positive, state_window, times, value_columns,
)
from .last_second import LastSecondIds, load_ids


def _seconds(value: Any, name: str) -> int:
    """``value`` as whole seconds; a ValueError (not an OverflowError) for an infinite one."""
    try:
        return int(value)
    except OverflowError:
        raise ParamError(f"HistoryEncoder {name} must be whole seconds, got {value!r}") from None


def _windows(windows: Any) -> list[int]:
    out = [_seconds(w, "windows") for w in windows]
    if any(w <= 0 for w in out) or len(set(out)) < len(out):
        raise ParamError(f"HistoryEncoder windows must be distinct and > 0 seconds, got {out}")
    return out


def _days(days: Any) -> list[int]:
    out = [_seconds(d, "days") for d in days]
    if any(d <= 0 for d in out) or len(set(out)) < len(out):
        raise ParamError(f"HistoryEncoder days must be distinct whole UTC days >= 1, got {out}")
    return out


def _label_delay(delay: Any) -> int:
    out = _seconds(delay, "label_delay")
    if out < 0:
        raise ParamError(f"HistoryEncoder label_delay must be >= 0 seconds, got {out}")
    return out


class HistoryEncoder(LastSecondIds, FrameOutput, EstimatorParams):
    """sklearn-style point-in-time history features of one key (see :mod:`.history`).

    ``columns``: the key (one column or a list); ``targets``: label columns
    (``None``: those of ``schema.TARGETS`` present at fit time); ``windows``:
    window lengths in seconds; ``time_column``: int64 event time in seconds.

    Frames are in-memory pandas or cudf frames holding all the events of their
    keys (one dask partition after a shuffle on the key: :func:`history_features`).
    ``days``: calendar spans, the ``d`` whole UTC days before the event's day;
    ``rates``: add positives / labelled events per span; ``label_delay``:
    seconds before an event's label counts (set it to the serving horizon,
    e.g. the validation window, so training rows see labels as served rows do).
    ``row_key``: integer columns identifying an event; with them an event the state
    already holds (at its last second), sent again, is not counted twice.
    ``engagement``: target -> the column of its positives' engagement times (epoch
    seconds, null: none); a positive then counts from its engagement time, not its
    event's (``features.history.label_time: engagement``); None: from its event's.
    ``keep_input``: ``fit_transform`` / ``transform`` return ``X`` with the features (the default) or the features
    alone (:class:`~.estimator_conventions.FrameOutput`; the dask forms always keep the rows' columns).
    Parameters are kept as given and read normalized (:class:`~.estimator_conventions.Param`).
    """

    columns = Param(column_names)
    targets = Param(lambda targets: None if targets is None else list(targets))
    windows = Param(_windows)
    days = Param(_days)
    rates = Param(bool)
    label_delay = Param(_label_delay)
    row_key = Param(list)
    engagement = Param(lambda engagement: None if engagement is None else {str(k): str(v) for k, v in dict(engagement).items()})

    def __init__(
        self,
        columns: str | list[str],
        targets: list[str] | None = None,
        windows: tuple[int, ...] = (86400, 604800),
        time_column: str = EVENT_TIME,
        prefix: str = "hist",
        days: tuple[int, ...] = (),
        rates: bool = False,
        label_delay: int = 0,
        row_key: tuple[str, ...] | list[str] = (),
        engagement: dict[str, str] | None = None,
        keep_input: bool = True,
    ) -> None:
        self.columns = columns
        self.targets = targets
        self.windows = windows
        self.days = days
        self.rates = rates
        self.label_delay = label_delay
        self.time_column = time_column
        self.prefix = prefix
        self.row_key = row_key
        self.engagement = engagement
        self.keep_input = keep_input

    def check_params(self) -> None:
        """A ValueError for a parameter its normalization refuses: windows, days or a label delay that are not
        distinct positive (>= 0) seconds, or reach back 2**62 seconds or more (what ``fit`` checks first)."""
        super().check_params()
        if self.reach() >= TIME_LIMIT:
            raise ValueError(f"HistoryEncoder windows, days and label_delay must reach back under 2**62 seconds, got {self.reach()}")

    # ---- names -----------------------------------------------------------
    @property
    def name(self) -> str:
        return key_name(self.columns)

    def _targets(self, frame: Any) -> list[str]:
        """The label columns to fit on: ``targets``, or those of ``schema.TARGETS`` in ``frame`` (never an
        earlier fit's: a refit on other data detects them again)."""
        if self.targets is None:
            return [t for t in TARGETS if t in frame.columns]
        return self.targets

    def output_names(self, targets: list[str] | None = None) -> list[str]:
        if targets is None:
            check_fitted(self, "targets_")
            targets = self.targets_
        stems = ["n", *targets]
        suffixes = self._span_suffixes()
        names = [f"{s}{suffix}" for suffix in suffixes for s in stems]
        names += ["dt_prev", *[f"dt_prev_{t}" for t in targets]]
        if self.rates:
            names += [f"{t}_rate{suffix}" for suffix in suffixes for t in targets]
        return [f"{self.prefix}_{self.name}_{s}" for s in names]

    def _span_suffixes(self) -> list[str]:
        return ["", *[f"_{window_label(w)}" for w in self.windows], *[f"_prev{d}d" for d in self.days]]

    def reach(self) -> int:
        """How far back (seconds) any span of an event, or the end of its labelled history, can look."""
        return max([*self.windows, *[(d + 1) * DAY_SECONDS for d in self.days], self.label_delay])

    # ---- helpers -----------------------------------------------------------
    def _check_in_memory(self, frame: Any) -> None:
        if is_dask(frame):
            raise TypeError(f"HistoryEncoder({self.name}) takes in-memory frames (pandas or cudf); for a dask frame use "
                            "rapids_engage.features.history.history_features(frame, encoder)")

    def _check_columns(self, frame: Any, extra: list[str]) -> None:
        check_columns(self, frame, [*self.columns, self.time_column, *extra])
        check_time_column(self, frame, self.time_column)

    def _check_labelled(self, frame: Any, targets: list[str], advice: str = "") -> None:
        """The key, time, ``targets`` (numbers, none missing) and their engagement time columns of ``frame`` checked:
        wherever labels are read (fit, transform with labels, extend), a missing one is a DataError, not a labelled
        negative (fit took it as one, extend refused it; the rates divide by labelled events); ``advice`` ends it."""
        self._check_columns(frame, [*targets, *self._engagement_columns(targets)])
        check_label_dtypes(self, frame, targets)
        unlabelled = [c for c in targets if bool(frame[c].isna().any())]
        if unlabelled:
            raise DataError(f"history events ({self.name}) need every label: column(s) {unlabelled} have missing values{advice}")

    def _engagement_columns(self, targets: list[str]) -> list[str]:
        """The engagement time columns of ``targets`` (none with event label times); a ValueError for a
        target without one."""
        if self.engagement is None:
            return []
        missing = [t for t in targets if t not in self.engagement]
        if missing:
            raise ValueError(f"HistoryEncoder({self.name}): engagement names no engagement time column for target(s) {missing}")
        return [self.engagement[t] for t in targets]

    def _weighted(self, frame: Any, g: Any, t: Any, n: Any, lab: Any, pos: dict, targets: list[str], labels: bool = True) -> tuple:
        """(g, t, n, lab, pos, last) of ``frame``'s rows for :func:`span_features`: positives at their
        events, or with engagement times at those (rows of their own after ``frame``'s; ``labels`` False:
        ``pos`` is all 0, and the frame need not hold the times)."""
        if self.engagement is None or not labels:
            return g, t, n, lab, pos, dict.fromkeys(targets, t)
        return at_engagement(array_module(t), g, t, n, lab, pos, known_times(frame, t, self.engagement, targets))

    def _times(self, frame: Any) -> Any:
        return times(frame, self.time_column, "history features")

    def _what(self) -> str:
        return f"history features ({self.name})"

    def _attach(self, frame: Any, feats: dict, targets: list[str]) -> Any:
        """``frame`` with the features of its rows (``feats``: a value per row of ``frame``)."""
        prefix = f"{self.prefix}_{self.name}_"
        cols = {f"{prefix}{k}": series_like(frame, v) for k, v in feats.items()}
        return frame.assign(**{name: cols[name] for name in self.output_names(targets)})

    # ---- partition functions ---------------------------------------------
    def features_partition(self, frame: Any) -> Any:
        """``frame`` (all its keys' events, labels present) with the features from its own rows.

        Stateless: the training-time computation; row order and index are kept.
        """
        targets = self._targets(frame)
        self._check_labelled(frame, targets)
        xp = array_module(frame)
        t = self._times(frame)
        pos = {target: positive(frame, target) for target in targets}
        g = alone_if_null(group_ids(frame[self.columns]), frame[self.columns])
        ones = xp.ones(len(t), dtype=np.int64)
        rows = self._weighted(frame, g, t, ones, ones, pos, targets)
        feats = span_features(xp, *rows, self.windows, self.days, self.rates, self.label_delay, rows=(0, len(frame)))
        return self._attach(frame, feats, targets)

    def state_partition(self, frame: Any, t_end: int) -> Any:
        """The serving-state rows of ``frame`` for a training window ending at ``t_end``."""
        targets = self._targets(frame)
        self._check_labelled(frame, targets)
        return self._aggregate(self._event_rows(frame, targets), t_end, targets)

    def _event_rows(self, frame: Any, targets: list[str]) -> Any:
        return event_rows(frame, self.columns, self.time_column, targets, self.engagement)

    def _aggregate(self, rows: Any, t_end: int, targets: list[str]) -> Any:
        """State rows of state-format rows (events, or earlier state rows) for a window ending at ``t_end``."""
        return aggregate(rows, self.columns, self.time_column, targets, t_end - self.reach())

    def extend(self, X: Any) -> HistoryEncoder:
        """Fold labelled events that follow the training window (the validation window, or what arrived
        since) into the serving state: rows after them see them as history, labels included, as if
        :meth:`fit` had been given the training window plus ``X``. ``X``: an in-memory frame with the
        key, the time and every target's label; an event before the state's end is an error."""
        self._check_fitted()
        targets = self.targets_
        self._check_labelled(X, targets)
        if not len(X):
            return self
        t = self._times(X)
        if int(t.min()) < self.t_end_:
            raise DataError(early_events_refusal(f"history events ({self.name})", self.t_end_,
                                                 int((t < self.t_end_).sum()), len(t), int(t.min())))
        self._check_columns(X, self.row_key)
        X = X[~self._resent(X, t)]  # events the state holds already (sent again at its last second): not twice
        state = in_memory(self.state_) if is_dask(self.state_) else self.state_
        lib = frame_library(state)
        if is_gpu_object(X) != is_gpu_object(state):  # the events (what the state needs of them) go where the
            X = X[list(dict.fromkeys([*self.columns, self.time_column, *targets, *self._engagement_columns(targets), *self.row_key]))]
            X = lib.from_pandas(X) if is_gpu_object(state) else host_frame(X)  # (not the state to the events')
        events = self._event_rows(X, targets)
        t_end = max(self.t_end_, int(t.max()))
        last_ids = self._ids_after(X, t_end)
        merged = lib.concat(list(cast_to_state(state, events)), ignore_index=True)
        self.set_state(self._aggregate(merged, t_end, targets), t_end, targets, last_ids)
        self.extended_ = True  # the state now ends with the events: messages say so, not "the training window"
        return self

    def positive_rates(self) -> dict[str, float]:
        """target -> positives per keyed event of the serving state (training, and what :meth:`extend` folded in)."""
        self._check_fitted()
        sums = in_memory(self.state_[[N, *[pos_col(t) for t in self.targets_]]].sum())
        n = int(sums[N])
        return {t: int(sums[pos_col(t)]) / n if n else 0.0 for t in self.targets_}

    def set_state(self, state: Any, t_end: int, targets: list[str], last_ids: Any = None) -> HistoryEncoder:
        """Finish fitting from state rows (e.g. concatenated :meth:`state_partition` outputs) and the
        sorted row-key hashes of the events at ``t_end`` (:meth:`last_ids`; None: none known)."""
        self.state_ = state
        self.last_ids_ = np.asarray([] if last_ids is None else last_ids, dtype=np.uint64)
        self.extended_ = False
        self._index = None  # the key index of transform, rebuilt from this state on first use
        self.t_end_ = int(t_end)
        self.targets_ = list(targets)
        return self

    # ---- sklearn-style API -------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> HistoryEncoder:
        """Learn the serving state from the training window ``X`` (labels present: its ``targets`` columns; ``y`` is
        not read, as a Pipeline passes it, and is refused where ``targets=None`` finds no label in ``X``)."""
        self.check_params()
        self._check_in_memory(X)
        targets = self._targets(X)
        if y is not None and self.targets is None and not targets:  # a y would have been silently ignored
            raise ValueError(f"HistoryEncoder({self.name}): y is not read; the labels are columns of X named by targets, and "
                             f"targets=None found none of {list(TARGETS)} in X: pass targets, e.g. HistoryEncoder(..., "
                             "targets=['like']).fit(X.assign(like=y))")
        self._check_columns(X, [*targets, *self.row_key])
        if len(X) == 0:
            raise ValueError(f"HistoryEncoder({self.name}): no training rows")
        t_end = int(X[self.time_column].max())
        self.set_state(self.state_partition(X, t_end), t_end, targets, self.last_ids(X, t_end))
        self._remember_input(X)
        return self

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        """Fit on ``X`` and return it with each row's features from the earlier rows of ``X``."""
        self.fit(X, y)
        return self._output(self.features_partition(X), X)

    def transform(self, X: Any, labels: bool | None = None) -> Any:
        """Features of events at time >= the end of training: fitted history + earlier rows of ``X``.

        ``labels``: use the label columns of ``X`` for positives of its earlier
        rows (``None``: when it has every target's; ``True``: it must;
        ``False``: never, as at serving time). Without them only training
        positives count, and the in-frame rows still count as events. Equals
        ``fit_transform(train + X)`` on the rows of ``X``.
        """
        return self._output(self.features(X, labels), X)

    def features(self, X: Any, labels: bool | None = None) -> Any:
        """:meth:`transform`'s ``X`` with the features, whatever ``keep_input`` (what the dask form joins back)."""
        self._check_fitted()
        self._check_in_memory(X)
        targets = self.targets_
        self._check_columns(X, [*(targets if labels else []), *self.row_key])
        use = labels is not False and all(target in X.columns for target in targets)  # the rates' shared denominator
        if use:  # labels used: with engagement label times, those times too
            self._check_labelled(X, targets, " (rows to score without labels: transform(X, labels=False))")
        xp = array_module(X)
        t_new = self._times(X)
        if len(t_new) and int(t_new.min()) < self.t_end_:
            raise DataError(self.early_rows(int((t_new < self.t_end_).sum()), len(t_new), int(t_new.min())))
        state, g, m_kept = self._state_rows(X)
        g = xp.concatenate([g[:m_kept], alone_if_null(g[m_kept:], X[self.columns], int(g.max()) + 1 if len(g) else 0)])

        def stacked(old: Any, new: Any) -> Any:
            return xp.concatenate([old, new])

        fresh = (~self._resent(X, t_new)).astype(np.int64)  # an event the state holds already is none of later rows'
        pos = {target: positive(X, target) * fresh if use else xp.zeros(len(t_new), dtype=np.int64) for target in targets}
        g_new, t_new, n_new, lab_new, pos, last = self._weighted(X, g[m_kept:], t_new, fresh, fresh * int(use), pos, targets, use)
        pos = {target: stacked(state[pos_col(target)], pos[target]) for target in targets}
        last = {target: stacked(state[last_col(target)], last[target]) for target in targets}
        rows = stacked(g[:m_kept], g_new), stacked(state[self.time_column], t_new), stacked(state[N], n_new)
        feats = span_features(xp, *rows, stacked(state[N], lab_new), pos, last, self.windows, self.days, self.rates,
                              self.label_delay, rows=(m_kept, m_kept + len(X)))
        return self._attach(X, feats, targets)

    def early_rows(self, early: int, rows: int, earliest: int) -> str:
        """The refusal of rows to serve of which ``early`` (of ``rows``, the ``earliest`` at that time) are
        earlier than the serving state's end."""
        return early_rows_refusal(self._what(), self.window(), self.t_end_, early, rows, earliest)

    def window(self) -> str:
        """What the serving state's history spans, for messages: the training window, or that plus the
        events :meth:`extend` folded in (its end is then theirs, not training's)."""
        return state_window(getattr(self, "extended_", False))

    def _state_rows(self, X: Any) -> tuple[dict, Any, int]:
        """The state rows of the keys of ``X``: (column -> array, key ids of those rows then of
        ``X``'s rows, number of state rows). On pandas through a key index built once per encoder
        (a call costs O(rows of X + state rows taken)); on cudf by one pass over the state. A
        partitioned (dask) state is gathered on first use."""
        return encoder_state_rows(self, X, value_columns(self.time_column, self.targets_))

    # ---- state -----------------------------------------------------------
    def _check_fitted(self) -> None:
        check_fitted(self, "state_")

    def save(self, directory: str | Path) -> None:
        """Write the fitted state: ``<prefix>_<key>.parquet`` (state rows), with a ``row_key``
        ``<prefix>_<key>.last_ids.parquet`` (:attr:`last_ids_`, uint64 ``row_id``), and ``.json``
        (params, t_end, targets, the number of last ids)."""
        self._check_fitted()
        stem = f"{self.prefix}_{self.name}"
        state = {"params": self.params(), "targets": self.targets_, "t_end": self.t_end_, "last_ids": self._save_ids(directory, stem),
                 **self._input_state()}
        save_state(directory, stem, self.state_, state)

    @classmethod
    def load(cls, directory: str | Path, name: str, df_lib: Any = None) -> HistoryEncoder:
        """Read state written by :meth:`save` (``name`` = ``hist_<key>``) into ``df_lib`` frames (the
        last ids as a list in the JSON, as the first code that kept them wrote them, are read too)."""
        state, table = load_state(directory, name, df_lib)
        encoder = cls.from_params(state["params"]).set_state(table, state["t_end"], state["targets"], load_ids(directory, name, state))
        return encoder._load_input(state)
