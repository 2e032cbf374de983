"""Point-in-time session features of a key (default: the user).

A session of a key is a run of its events whose consecutive distinct times are at most ``gap``
seconds apart (``features.session.gap``, default 30 min; a gap of exactly ``gap`` continues the
session). For an event at time ``t``, only the key's events with time STRICTLY earlier than ``t``
count, as in the history features (:mod:`.history`): events at the same time never see each other
and get the same values::

    sess_n      earlier events of the event's session (0: it starts one)
    sess_age    t - the session's first event time (0: it starts one)
    sess_index  sessions of the key before the event's (0: its first session)

The seconds since the key's previous event are the history's ``hist_<key>_dt_prev``. No label is
used. Int64 values; an event whose key has a null is a session of its own (as it has no history).

Serving state (:meth:`SessionEncoder.save`: parquet + JSON), one row per key: the time of its last
event ``_last``, the events at that time ``_n_last``, the session's earlier events ``_n_before``,
its start ``_start`` and index ``_index``. :meth:`SessionEncoder.transform` continues from it for
events at time >= the end of training, exactly as the computation over training and new rows
together would; :meth:`SessionEncoder.extend` folds later events into it. With a ``row_key`` the state
also keeps the row ids of its events at its last second, as the history's (:mod:`.last_second`): such
an event sent again (a ``time >= end`` filter) gets its features but is not counted again for later rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np

from ..backend import array_module, frame_library, host_frame, is_gpu_object, series_like
from ..data import DataError
from ..schema import EVENT_TIME
from .estimator_conventions import EstimatorParams, FrameOutput, Param, ParamError, column_names, check_columns, check_fitted, check_time_column, load_state, save_state
from .frames import Checkpoints, as_dask, cast_to_state, group_ids, in_memory, is_dask, key_tables, null_key_rows, share
from .history_state import (
    alone_if_null, early_events_refusal, early_rows_refusal, encoder_state_rows, state_window, times,
)
from .last_second import LastSecondIds, end_rows, load_ids
from .key_values import shuffle_by_key, value_dtypes, with_dtypes

#: The group id, the prefix of the feature names and the stem of the state files.
PREFIX = "sess"
#: The state's value columns (besides the key).
LAST, N_LAST, N_BEFORE, START, INDEX = "_last", "_n_last", "_n_before", "_start", "_index"
STATE_VALUES = [LAST, N_LAST, N_BEFORE, START, INDEX]
#: The default ``gap``: 30 minutes.
DEFAULT_GAP = 1800
#: The format of the serving state, part of the session group's signature (:mod:`.groups`): 2 keeps its last
#: second's row ids; a version whose state keeps none (1, unnamed) then lends it to no new version.
STATE_FORMAT = 2


def session_values(xp: Any, g: Any, t: Any, w: Any, base: dict | None = None, gap: int = DEFAULT_GAP) -> tuple[dict, dict]:
    """(per input row, per key's last (key, time) block) session values of weighted events.

    ``g`` key ids, ``t`` int64 times, ``w`` events a row stands for. ``base`` (state rows continued):
    arrays ``has``, ``n_before``, ``start``, ``index`` per row, nonzero only on a key's state row, which
    is at the key's earliest time (its last event's): the key's first session is then the state's.
    Rows: ``n``, ``age``, ``index`` (see the module); blocks: ``g`` and the state columns.
    """
    size = len(t)
    if not size:
        empty = xp.zeros(0, dtype=np.int64)
        return dict.fromkeys(("n", "age", "index"), empty), {"g": empty, **dict.fromkeys(STATE_VALUES, empty)}
    order = xp.argsort(_composite(xp, g, t))
    gs, ts = g[order], t[order]
    new_block = xp.ones(size, dtype=bool)
    new_block[1:] = (gs[1:] != gs[:-1]) | (ts[1:] != ts[:-1])
    first = xp.flatnonzero(new_block)
    block = xp.cumsum(new_block) - 1  # each sorted row's (key, time) block

    def block_sum(a: Any) -> Any:
        p = xp.zeros(size + 1, dtype=np.int64)
        p[1:] = xp.cumsum(a[order])
        return p[xp.concatenate([first[1:], xp.full(1, size, dtype=first.dtype)])] - p[first]

    bg, bt, bw = gs[first], ts[first], block_sum(w)
    nb = len(first)
    new_group = xp.ones(nb, dtype=bool)
    new_group[1:] = bg[1:] != bg[:-1]
    brk = new_group.copy()
    brk[1:] |= bt[1:] - bt[:-1] > gap
    n_sessions = xp.cumsum(brk)
    session_first = xp.flatnonzero(brk)[n_sessions - 1]
    group_first = xp.flatnonzero(new_group)[xp.cumsum(new_group) - 1]
    in_group = n_sessions - n_sessions[group_first]  # sessions of the key before the block's
    bp = xp.zeros(nb + 1, dtype=np.int64)
    bp[1:] = xp.cumsum(bw)
    n = bp[:-1] - bp[session_first]
    start, index = bt[session_first], in_group
    if base is not None:
        has, n_before, start0, index0 = (block_sum(base[k])[group_first] for k in ("has", "n_before", "start", "index"))
        continued = (has > 0) & (in_group == 0)
        n = n + xp.where(continued, n_before, 0)
        start = xp.where(continued, start0, start)
        index = index + index0
    rows = {}
    for name, value in (("n", n), ("age", bt - start), ("index", index)):
        col = xp.empty(size, dtype=np.int64)
        col[order] = value[block]
        rows[name] = col
    last = xp.ones(nb, dtype=bool)
    last[:-1] = new_group[1:]
    state = {"g": bg[last], LAST: bt[last], N_LAST: bw[last], N_BEFORE: n[last], START: start[last], INDEX: index[last]}
    return rows, state


def _gap(gap: Any) -> int:
    """``gap`` as whole seconds >= 0, else a ValueError."""
    try:
        out = int(gap)
    except OverflowError:
        raise ParamError(f"SessionEncoder gap must be >= 0 seconds, got {gap!r}") from None
    if out < 0:
        raise ParamError(f"SessionEncoder gap must be >= 0 seconds, got {out}")
    return out


def _composite(xp: Any, g: Any, t: Any) -> Any:
    """An int64 code per row ordered as (key id, time): key id * time span + time offset, or time ranks in place of
    offsets when that could overflow (as the history's)."""
    t_min, span = int(t.min()), int(t.max()) - int(t.min()) + 1
    if (int(g.max()) + 1) * span < 2**62:
        return g * span + (t - t_min)
    distinct = xp.sort(t)
    keep = xp.ones(len(distinct), dtype=bool)
    keep[1:] = distinct[1:] != distinct[:-1]
    distinct = distinct[keep]
    return g * len(distinct) + xp.searchsorted(distinct, t)


class SessionEncoder(LastSecondIds, FrameOutput, EstimatorParams):
    """sklearn-style point-in-time session features of one key (see :mod:`.sessions`).

    ``columns``: the key (one column or a list); ``gap``: the longest gap (seconds) within a session;
    ``time_column``: int64 event times in seconds; ``row_key``: integer columns identifying an event (with
    them an event of the state's last second sent again is not counted twice). Frames are in-memory pandas
    or cudf frames holding all the events of their keys (a dask partition after a shuffle on the key:
    :func:`fit_sessions`); ``keep_input``: ``fit_transform`` / ``transform`` return ``X`` with the features (the
    default) or the features alone (:class:`~.estimator_conventions.FrameOutput`; the dask forms always keep the rows'
    columns). Parameters are kept as given and read normalized (:class:`~.estimator_conventions.Param`).
    """

    columns = Param(column_names)
    gap = Param(_gap)
    row_key = Param(list)

    def __init__(self, columns: str | list[str], gap: int = DEFAULT_GAP, time_column: str = EVENT_TIME,
                 row_key: tuple[str, ...] | list[str] = (), keep_input: bool = True) -> None:
        self.columns = columns
        self.gap = gap
        self.time_column = time_column
        self.row_key = row_key
        self.keep_input = keep_input

    @property
    def name(self) -> str:
        return PREFIX

    def output_names(self) -> list[str]:
        return [f"{PREFIX}_{s}" for s in ("n", "age", "index")]

    def _what(self) -> str:
        return "session features"

    def _times(self, frame: Any) -> Any:
        return times(frame, self.time_column, self._what())

    def _check(self, frame: Any) -> None:
        if is_dask(frame):
            raise TypeError("SessionEncoder takes in-memory frames (pandas or cudf); for a dask frame use "
                            "rapids_engage.features.sessions.session_features(frame, encoder)")
        check_columns(self, frame, [*self.columns, self.time_column])
        check_time_column(self, frame, self.time_column)

    def _key_ids(self, frame: Any) -> Any:
        return alone_if_null(group_ids(frame[self.columns]), frame[self.columns])

    def _attach(self, frame: Any, rows: dict) -> Any:
        return frame.assign(**{f"{PREFIX}_{k}": series_like(frame, v) for k, v in rows.items()})

    def _state_frame(self, frame: Any, g: Any, state: dict) -> Any:
        """State rows (key columns + :data:`STATE_VALUES`) of ``state`` blocks, keys from ``frame``'s rows of ids ``g``;
        keys with a null are none (their events are no key's)."""
        xp = array_module(g)
        first_row = xp.zeros(int(g.max()) + 1 if len(g) else 0, dtype=np.int64)
        first_row[g] = xp.arange(len(g), dtype=np.int64)  # a row of each key id (any: they share the key)
        keys = frame[self.columns].iloc[first_row[state["g"]]].reset_index(drop=True)
        out = keys.assign(**{c: series_like(keys, state[c]) for c in STATE_VALUES})
        return out[~null_key_rows(out[self.columns])].reset_index(drop=True)

    # ---- partition functions ---------------------------------------------
    def features_partition(self, frame: Any) -> Any:
        """``frame`` (all its keys' events) with the session features from its own rows; order and index kept."""
        self._check(frame)
        g, t = self._key_ids(frame), self._times(frame)
        rows, _ = session_values(array_module(t), g, t, array_module(t).ones(len(t), dtype=np.int64), gap=self.gap)
        return self._attach(frame, rows)

    def state_partition(self, frame: Any) -> Any:
        """The serving-state rows of ``frame``'s keys (one per key)."""
        self._check(frame)
        g, t = self._key_ids(frame), self._times(frame)
        _, state = session_values(array_module(t), g, t, array_module(t).ones(len(t), dtype=np.int64), gap=self.gap)
        return self._state_frame(frame, g, state)

    def set_state(self, state: Any, t_end: int, last_ids: Any = None) -> SessionEncoder:
        """Finish fitting from state rows (e.g. concatenated :meth:`state_partition` outputs) of a window ending at
        ``t_end`` and the sorted row-key hashes of its events at ``t_end`` (:meth:`last_ids`; None: none known)."""
        self.state_, self.t_end_, self._index, self.extended_ = state, int(t_end), None, False
        self.last_ids_ = np.asarray([] if last_ids is None else last_ids, dtype=np.uint64)
        return self

    # ---- sklearn-style API -------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> SessionEncoder:  # noqa: ARG002 - sklearn signature
        """Learn the serving state from the training window ``X``."""
        self.check_params()
        self._check(X)
        check_columns(self, X, self.row_key)
        if not len(X):
            raise ValueError("SessionEncoder: no training rows")
        t_end = int(X[self.time_column].max())
        self.set_state(self.state_partition(X), t_end, self.last_ids(X, t_end))
        self._remember_input(X)
        return self

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        self.fit(X, y)
        return self._output(self.features_partition(X), X)

    def transform(self, X: Any, labels: bool | None = None) -> Any:  # noqa: ARG002 - no label is used
        """Features of events at time >= the end of training: the state continued by the earlier rows of ``X``
        (equals ``fit_transform(train + X)`` on the rows of ``X``; an event the state holds, sent again, gets the
        features it got in training and is not counted again)."""
        return self._output(self.features(X), X)

    def features(self, X: Any) -> Any:
        """:meth:`transform`'s ``X`` with the features, whatever ``keep_input`` (what the dask form joins back)."""
        return self._attach(X, self._continued(X, self._served_times(X))[0])

    def extend(self, X: Any) -> SessionEncoder:
        """Fold events at time >= the state's end into the serving state: rows after them continue their sessions,
        as if :meth:`fit` had been given the training window plus ``X`` (an event the state holds, sent again, is
        skipped)."""
        check_fitted(self, "state_")
        self._check(X)
        check_columns(self, X, self.row_key)
        if not len(X):
            return self
        t = self._times(X)
        if int(t.min()) < self.t_end_:  # events to fold in, not rows to score: said as the history says it
            raise DataError(early_events_refusal("session events", self.t_end_, int((t < self.t_end_).sum()), len(t),
                                                 int(t.min())))
        keep = ~self._resent(X, t)  # events the state holds already (sent again at its last second): not twice
        X, t = X[keep], t[keep]
        if not len(X):
            return self
        t_end = max(self.t_end_, int(t.max()))
        last_ids = self._ids_after(X, t_end)
        _, blocks, g = self._continued(X, t)
        rows = self._state_frame(X, g, blocks)  # the continued state of X's keys
        old = in_memory(self.state_) if is_dask(self.state_) else self.state_
        lib = frame_library(old)
        if is_gpu_object(rows) != is_gpu_object(old):
            rows = lib.from_pandas(rows) if is_gpu_object(old) else host_frame(rows)  # as the history's events
        old, rows = cast_to_state(old, rows)
        flag = "__continued"
        others = old.merge(rows[self.columns].assign(**{flag: 1}), on=self.columns, how="left")
        others = others[others[flag].isna()].drop(columns=flag)
        self.set_state(lib.concat([others, rows], ignore_index=True), t_end, last_ids)
        self.extended_ = True  # the state now ends with the events: messages say so, not "the training window"
        return self

    def _served_times(self, X: Any) -> Any:
        """The times of ``X``'s rows to serve, checked: the state fitted, the columns there, no row before its end."""
        check_fitted(self, "state_")
        self._check(X)
        check_columns(self, X, self.row_key)
        t = self._times(X)
        self._check_not_before(t)
        return t

    def _continued(self, X: Any, t: Any) -> tuple[dict, dict, Any]:
        """:func:`session_values` of the state rows of ``X``'s keys followed by ``X``'s rows (times ``t``, checked):
        (the values of ``X``'s rows, the last blocks, the key ids of ``X``'s rows, which the blocks' ``g`` are)."""
        xp = array_module(X)
        old, g, m = self._state_rows(X)
        g = xp.concatenate([g[:m], alone_if_null(g[m:], X[self.columns], int(g.max()) + 1 if len(g) else 0)])
        zeros = xp.zeros(len(t), dtype=np.int64)
        fresh = (~self._resent(X, t)).astype(np.int64)  # an event the state holds already is none of later rows'
        base = {"has": xp.concatenate([xp.ones(m, dtype=np.int64), zeros]),
                **{k: xp.concatenate([old[c], zeros]) for k, c in (("n_before", N_BEFORE), ("start", START), ("index", INDEX))}}
        rows, blocks = session_values(xp, g, xp.concatenate([old[LAST], t]), xp.concatenate([old[N_LAST], fresh]), base,
                                      self.gap)
        return {k: v[m:] for k, v in rows.items()}, blocks, g[m:]

    def _check_not_before(self, t: Any) -> None:
        """A DataError (:meth:`early_rows`) when a time of ``t`` is before the state's end."""
        if len(t) and int(t.min()) < self.t_end_:
            raise DataError(self.early_rows(int((t < self.t_end_).sum()), len(t), int(t.min())))

    def early_rows(self, early: int, rows: int, earliest: int) -> str:
        """The refusal of rows to serve of which ``early`` (of ``rows``, the ``earliest`` at that time) are
        earlier than the serving state's end (as the history's: ``predict`` says it before its cluster starts)."""
        return early_rows_refusal(self._what(), self.window(), self.t_end_, early, rows, earliest)

    def window(self) -> str:
        """What the serving state spans, for messages (as the history's): the training window, or that plus the
        events :meth:`extend` folded in."""
        return state_window(getattr(self, "extended_", False))

    def _state_rows(self, X: Any) -> tuple[dict, Any, int]:
        """The state rows of ``X``'s keys: (column -> array, key ids of those rows then of ``X``'s rows, number of state
        rows), as the history's (:class:`~.history_state.StateIndex` on pandas, one pass on cudf)."""
        return encoder_state_rows(self, X, STATE_VALUES)

    # ---- state -----------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """Write the fitted state: ``sess.parquet`` (one row per key), with a ``row_key`` ``sess.last_ids.parquet``
        (:attr:`last_ids_`, uint64 ``row_id``), and ``sess.json`` (params, t_end, the number of last ids)."""
        check_fitted(self, "state_")
        state = {"params": self.params(), "t_end": self.t_end_, "last_ids": self._save_ids(directory, PREFIX), **self._input_state()}
        save_state(directory, PREFIX, self.state_, state)

    @classmethod
    def load(cls, directory: str | Path, name: str = PREFIX, df_lib: Any = None) -> SessionEncoder:
        """Read state written by :meth:`save` into ``df_lib`` frames. A state written before it kept row ids (no
        ``row_key`` in its params, no ``last_ids``) is read as it was: none known, an event sent again counts again."""
        state, table = load_state(directory, name, df_lib)
        encoder = cls.from_params(state["params"]).set_state(table, state["t_end"], load_ids(directory, name, state))
        return encoder._load_input(state)


def fit_sessions(frame: Any, encoder: SessionEncoder, checkpoint: Any = None, limit: int | None = None) -> tuple[Any, Any]:
    """Dask form of fitting, as :func:`~.history.fit_history`: shuffle ``frame`` on the key (kept by ``checkpoint``
    for its two reads), fit ``encoder``'s state from its partitions (gathered, or left partitioned by key when it may
    exceed ``limit`` rows); (the rows with their features, lazy; the kept shuffled rows without them)."""
    encoder.check_params()
    frame = (checkpoint or Checkpoints())(shuffle_by_key(as_dask(frame), encoder.columns))
    t_end, rows = dask.compute(frame[encoder.time_column].max(), frame.map_partitions(len).sum())
    t_end = int(t_end)
    state_meta = encoder.state_partition(frame._meta)
    partitioned = limit is not None and rows > limit
    state, *last = key_tables([frame.map_partitions(encoder.state_partition, meta=state_meta)], limit, [partitioned],
                              also=end_rows(frame, encoder.time_column, encoder.row_key, t_end))
    encoder.set_state(state if is_dask(state) else state.reset_index(drop=True), t_end,
                      encoder.last_ids(last[0], t_end) if last else None)
    stateless = SessionEncoder(**encoder.params())  # the graph must not carry the state
    return frame.map_partitions(stateless.features_partition, meta=stateless.features_partition(frame._meta)), frame


def _transform_partition(part: Any, encoder: SessionEncoder) -> Any:
    return encoder.features(part)


def _transform_with_state(part: Any, state: Any, encoder: SessionEncoder, last_ids: Any) -> Any:
    """:meth:`SessionEncoder.transform` of a partition with the state partition of its keys (``last_ids``: the
    state's, shipped once, not in every task)."""
    return SessionEncoder(**encoder.params()).set_state(state, encoder.t_end_, last_ids).features(part)


def session_features(frame: Any, encoder: SessionEncoder, fit: bool = True, checkpoint: Any = None,
                     limit: int | None = None) -> Any:
    """Dask form: ``fit`` (:func:`fit_sessions`) or :meth:`SessionEncoder.transform` per partition after a shuffle
    on the key (a partitioned state shuffled alike, so a partition meets its own keys' state; its last ids go to the
    workers once). Lazy, partitioned by key: rows are NOT in the input order."""
    if fit:
        return fit_sessions(frame, encoder, checkpoint, limit)[0]
    check_fitted(encoder, "state_")
    frame, state, keys = as_dask(frame), encoder.state_, encoder.columns
    stateless = SessionEncoder(**encoder.params())
    meta = stateless.set_state((state._meta if is_dask(state) else state.iloc[:0]), encoder.t_end_).features(frame._meta)
    if not is_dask(state):
        return shuffle_by_key(frame, keys).map_partitions(_transform_partition, share(encoder), meta=meta)
    values = value_dtypes(frame, keys)  # categorical keys: their values' dtypes (a pass where the meta lacks categories)
    state = shuffle_by_key(with_dtypes(state, {c: values.get(c, frame._meta[c].dtype) for c in keys}), keys, state.npartitions)
    frame = shuffle_by_key(frame, keys, state.npartitions, values)
    return dd.map_partitions(_transform_with_state, frame, state, stateless, share(encoder.last_ids_), meta=meta,
                             align_dataframes=False)
