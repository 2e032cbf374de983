"""The history encoder's serving state: its rows, and the rows of given keys.

Fitted state (``state_`` and ``last_ids_``, saved as parquet; params, ``t_end_`` and
the number of ``last_ids_`` as JSON), for ``T = t_end_`` (last training time) and ``W``
the longest reach of a span (:meth:`~.history_encoder.HistoryEncoder.reach`):

* one row per (key, time) for training events with time >= ``T - W``
  (everything a window of an event at time >= ``T`` can reach);
* one row per key summarising its older events: their count and positives,
  time = the last of them, and the last positive time per target.

Each row is a weighted event of :func:`~.history_spans.span_features`: ``_n``
events, ``_pos_<target>`` positives, ``_last_<target>`` the last positive time.
With engagement label times (``label_time: engagement``) a positive sits at the
time it became known, its engagement time, not at its event's: a row is the
events of its (key, time) and the positives engaged then (``_n`` 0 where there
were only those). Training positives engaged after ``T`` are such rows after
``T`` (the pending engagements): kept, they count for rows served after them.
``last_ids_``: the sorted row-key hashes (:func:`~.last_second.row_ids`) of the events at ``T``, which
tell an event sent again from a new one of that second (as many as the events at ``T``: the
whole last day of date-only times, hence a parquet file, and only rows at ``T`` look them up).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import array_module, frame_library, is_gpu_object, values
from ..data import DataError
from ..schema import utc
from .frames import group_ids, in_memory, is_dask, null_key_rows
from .value_checks import plain

N = "_n"


def pos_col(t: str) -> str:
    return f"_pos_{t}"


def last_col(t: str) -> str:
    return f"_last_{t}"


def value_columns(time_column: str, targets: list[str]) -> list[str]:
    """The state's columns besides the key, in order."""
    return [time_column, N, *[pos_col(t) for t in targets], *[last_col(t) for t in targets]]


#: Event times and spans stay below this in magnitude (about 146 billion years): a time minus a span,
#: and the difference of two times, then fit in int64.
TIME_LIMIT = 2**62


def times(frame: Any, time_column: str, what: str) -> Any:
    """The int64 times of ``frame``; a DataError prefixed with ``what`` (the features reading them, e.g. ``history
    features``) naming the column for a null time or a time of magnitude >= :data:`TIME_LIMIT`."""
    null = frame[time_column].isna()
    if bool(null.any()):  # (pandas cast a null to int64's minimum, cudf refused it: neither said so)
        raise DataError(f"{what}: column {time_column!r} has {int(null.sum()):,} null time(s), the first at index "
                        f"{plain(frame.index[int(values(null).argmax())])!r}: the features need a time on every row")
    t = values(frame[time_column]).astype(np.int64)
    if len(t) and (int(t.min()) <= -TIME_LIMIT or int(t.max()) >= TIME_LIMIT):
        bad = int(t.min()) if int(t.min()) <= -TIME_LIMIT else int(t.max())
        raise DataError(f"{what}: column {time_column!r} holds {bad}, beyond the +-2**62 seconds whose "
                        "windows int64 arithmetic can take (epoch seconds?)")
    return t


def state_window(extended: bool) -> str:
    """What a serving state spans, for messages: the training window, or (``extended``) that plus the events an
    ``extend`` folded in (its end is then theirs, not training's)."""
    return "the training window and the history events folded in" if extended else "the training window"


def early_rows_refusal(what: str, window: str, t_end: int, early: int, rows: int, earliest: int) -> str:
    """The refusal by ``what`` (the features) of rows to serve of which ``early`` (of ``rows``, the ``earliest`` at
    that time) are earlier than the end ``t_end`` of its serving state's ``window``."""
    return (f"{what} serve rows at or after the end of {window} ({utc(t_end)}): {early:,} of {rows:,} rows are "
            f"earlier (the earliest at {utc(earliest)}); score rows from after it")


def early_events_refusal(what: str, t_end: int, early: int, events: int, earliest: int) -> str:
    """The refusal by ``what`` (the events' features) of events to fold into a serving state ending at ``t_end``,
    of which ``early`` (of ``events``, the ``earliest`` at that time) are earlier (``extend``, ``predict --history``)."""
    return (f"{what} extend the serving state, which ends at {utc(t_end)}: {early:,} of {events:,} events are "
            f"earlier (the earliest at {utc(earliest)}); pass the events after it")


def positive(frame: Any, target: str) -> Any:
    """1 where ``frame``'s label of ``target`` is > 0, else 0 (its encoder refuses a missing label before)."""
    return (values(frame[target].fillna(0)) > 0).astype(np.int64)


#: A last positive time below every event time, for the max over rows without a positive (-1 is not:
#: times before 1970 are negative).
NO_TIME = np.iinfo(np.int64).min


def known_times(frame: Any, t: Any, engagement: dict[str, str], targets: list[str]) -> dict:
    """target -> when each row's positive became known: its engagement time (column ``engagement[target]``),
    never before the row's own time ``t``; the row's time where the column is null."""
    xp = array_module(t)
    out = {}
    for target in targets:
        column = engagement[target]
        e = values(frame[column].fillna(NO_TIME)).astype(np.int64)
        if len(e) and int(e.max()) >= TIME_LIMIT:
            raise DataError(f"history features: engagement time column {column!r} holds {int(e.max())}, beyond the "
                            "+-2**62 seconds whose windows int64 arithmetic can take (epoch seconds?)")
        out[target] = xp.maximum(t, e)
    return out


def at_engagement(xp: Any, g: Any, t: Any, n: Any, lab: Any, pos: dict, known: dict) -> tuple:
    """Weighted events (see :func:`~.history_spans.span_features`) with every positive moved to the time it
    became known: the rows, their positives removed, then per target one row per positive at ``known[target]``
    (no event, not labelled, that positive alone). Returns (g, t, n, lab, pos, last); the rows keep their places."""
    def zeros(k: int) -> Any:
        return xp.zeros(k, dtype=np.int64)

    gs, ts, ns, labs = [g], [t], [n], [lab]
    pos_out = {x: [zeros(len(t))] for x in pos}
    last_out = {x: [t] for x in pos}  # no positive there: never read
    for x, p in pos.items():
        hit = xp.flatnonzero(p > 0)
        gs.append(g[hit])
        ts.append(known[x][hit])
        ns.append(zeros(len(hit)))
        labs.append(zeros(len(hit)))
        for y in pos:
            pos_out[y].append(p[hit] if y == x else zeros(len(hit)))
            last_out[y].append(known[x][hit] if y == x else xp.full(len(hit), -1, dtype=np.int64))
    cat = xp.concatenate
    return (cat(gs), cat(ts), cat(ns), cat(labs), {x: cat(v) for x, v in pos_out.items()},
            {x: cat(v) for x, v in last_out.items()})


def event_rows(frame: Any, columns: list[str], time_column: str, targets: list[str], engagement: dict | None = None) -> Any:
    """State-format rows of the keyed events of ``frame``: key, time, 1 event, its positives and their
    times (-1 where none). With ``engagement`` (target -> engagement time column) the events' positives are
    rows of their own at the time they became known (:func:`known_times`), without an event."""
    xp = array_module(frame)
    t = times(frame, time_column, "history features")
    keys = frame[columns].reset_index(drop=True)
    keyed = ~values(null_key_rows(keys))  # a key with a null is no key: no state
    pos = {target: positive(frame, target) for target in targets}

    def rows(mask: Any, at: Any, n: int, weights: dict) -> Any:  # (the kept rows first: no full-length column per target)
        out, at = keys[mask], at[mask]
        columns = {time_column: at, N: xp.full(len(at), n, dtype=np.int64)}
        for target in targets:
            p = weights[target][mask] if target in weights else xp.zeros(len(at), dtype=np.int64)
            columns[pos_col(target)] = p
            columns[last_col(target)] = xp.where(p > 0, at, -1)
        return out.assign(**columns)

    if not engagement:
        return rows(keyed, t, 1, pos)
    known = known_times(frame, t, engagement, targets)
    blocks = [rows(keyed, t, 1, {})]
    blocks += [rows(keyed & (pos[x] > 0), known[x], 0, {x: pos[x]}) for x in targets]
    return frame_library(frame).concat(blocks, ignore_index=True)


def aggregate(tmp: Any, columns: list[str], time_column: str, targets: list[str], cutoff: int) -> Any:
    """State rows of state-format rows ``tmp`` (events, or earlier state rows): per key one row of
    everything before ``cutoff`` (older than any span reaches; time: its last event's), and per (key, time)
    the later rows.
    A row's last positive time is the latest of its positive rows' (-1 where it has no positive). A categorical key
    is grouped by its values present (``observed``: pandas 2 also made a row of NaN times per absent category)."""
    sums = {N: "sum", **{pos_col(x): "sum" for x in targets}, **{last_col(x): "max" for x in targets}}
    tmp = tmp.assign(**{last_col(x): tmp[last_col(x)].where(tmp[pos_col(x)] > 0, NO_TIME) for x in targets})
    old = tmp[tmp[time_column] < cutoff]
    old = old.assign(**{time_column: old[time_column].where(old[N] > 0, NO_TIME)})  # the last event's time, not a positive's
    old = old.groupby(columns, sort=False, dropna=False, observed=True).agg({time_column: "max", **sums}).reset_index()
    recent = tmp[tmp[time_column] >= cutoff]
    recent = recent.groupby([*columns, time_column], sort=False, dropna=False, observed=True).agg(sums).reset_index()
    cols = [*columns, *value_columns(time_column, targets)]
    state = frame_library(tmp).concat([old[cols], recent[cols]], ignore_index=True)
    state = state.assign(**{last_col(x): state[last_col(x)].where(state[pos_col(x)] > 0, -1) for x in targets})
    return state.astype({c: "int64" for c in cols[len(columns) :]})


def state_rows_by_pass(state: Any, keys: Any, columns: list[str], value_cols: list[str]) -> tuple[dict, Any, int]:
    """The rows of ``state`` (a frame of ``keys``' library) of the keys of ``keys`` by one pass over the
    state: (column -> array, key ids of those rows then of ``keys``' rows, number of state rows)."""
    lib = frame_library(keys)
    g = group_ids(lib.concat([state[columns], keys.reset_index(drop=True)], ignore_index=True))
    m = len(state)
    xp = array_module(keys)
    present = xp.zeros(int(g.max()) + 1 if len(g) else 0, dtype=bool)
    present[g[m:]] = True
    keep = present[g[:m]]
    rows = {c: values(state[c]).astype(np.int64)[keep] for c in value_cols}
    return rows, xp.concatenate([g[:m][keep], g[m:]]), int(keep.sum())


def alone_if_null(g: Any, keys: Any, start: int | None = None) -> Any:
    """Key ids ``g`` of the rows of ``keys`` where a row whose key has a null is a group of its own
    (new ids from ``start``, default ``max(g) + 1``): null is no key, so such an event has no
    history and is in no one's, as it gets the prior in the target encoding and counts 0."""
    null = values(null_key_rows(keys))
    if not bool(null.any()):
        return g
    xp = array_module(g)
    start = (int(g.max()) + 1 if len(g) else 0) if start is None else start
    return xp.where(null, start + xp.arange(len(g), dtype=np.int64), g)


def _nan_nulls(keys: Any) -> Any:
    """Every null key value as NaN: an index lookup matches NaN with NaN but not None with NaN,
    while a groupby puts all nulls of a column in one key."""
    return keys.where(keys.notna(), np.nan)


class StateIndex:
    """A pandas state sorted by key, with its keys indexed: the rows of given keys in O(those rows)."""

    def __init__(self, state: Any, columns: list[str], value_columns: list[str]) -> None:
        import pandas as pd

        gid = group_ids(state[columns])
        order = np.argsort(gid, kind="stable")
        self.arrays = {c: state[c].to_numpy(np.int64)[order] for c in value_columns}
        self.bounds = np.searchsorted(gid[order], np.arange(int(gid.max()) + 2 if len(gid) else 1))
        keys = _nan_nulls(state[columns].iloc[order[self.bounds[:-1]]])  # one row per key, in key-id order
        self.index = pd.Index(keys[columns[0]]) if len(columns) == 1 else pd.MultiIndex.from_frame(keys)

    def rows(self, keys: Any) -> tuple[dict, Any, int]:
        """See :func:`state_rows`."""
        import pandas as pd

        g_new = group_ids(keys)
        firsts = np.unique(g_new, return_index=True)[1]  # first row of each key of ``keys``, by key id
        if len(self.index) == 0:  # no state (e.g. every training key had a null): no state rows
            return {c: a[:0] for c, a in self.arrays.items()}, g_new, 0
        first_keys = _nan_nulls(keys.iloc[firsts])
        found = self.index.get_indexer(
            first_keys.iloc[:, 0] if keys.shape[1] == 1 else pd.MultiIndex.from_frame(first_keys)
        )
        lo = np.where(found >= 0, self.bounds[np.maximum(found, 0)], 0)
        lengths = np.where(found >= 0, self.bounds[np.maximum(found, 0) + 1], 0) - lo
        take = np.repeat(lo - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
        g_old = np.repeat(np.arange(len(firsts), dtype=np.int64), lengths)
        return {c: a[take] for c, a in self.arrays.items()}, np.concatenate([g_old, g_new]), len(take)


def encoder_state_rows(encoder: Any, X: Any, value_cols: list[str]) -> tuple[dict, Any, int]:
    """The rows of ``encoder.state_`` (a per-key serving state over ``encoder.columns``) of ``X``'s keys, their
    ``value_cols``: (column -> array, key ids of those rows then of ``X``'s rows, number of state rows). On pandas
    through a :class:`StateIndex` built once per encoder (``encoder._index``; a call costs O(rows of X + state rows
    taken)); on cudf by one pass over the state (:func:`state_rows_by_pass`). A partitioned (dask) state is gathered
    on first use."""
    if is_dask(encoder.state_):
        encoder.state_ = in_memory(encoder.state_)
    columns = encoder.columns
    if not is_gpu_object(X):
        if getattr(encoder, "_index", None) is None:
            state = encoder.state_.to_pandas() if is_gpu_object(encoder.state_) else encoder.state_
            encoder._index = StateIndex(state, columns, value_cols)
        return encoder._index.rows(X[columns])
    state = encoder.state_ if is_gpu_object(encoder.state_) else frame_library(X).from_pandas(encoder.state_)
    return state_rows_by_pass(state, X[columns], columns, value_cols)
