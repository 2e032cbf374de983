"""Point-in-time history features of a (possibly multi-column) key.

For an event at time ``t`` with key ``k``, every feature uses only the events of
``k`` with time STRICTLY earlier than ``t``: an event never sees its own label,
nor any event at the same timestamp, nor later ones. With ``<key>`` the key name
(columns joined by ``__``), ``<target>`` a label column and ``<w>`` a window::

    hist_<key>_n                 earlier events of the key
    hist_<key>_<target>          earlier positives (label > 0) of the target
    hist_<key>_n_<w>             earlier events with time in [t - w, t)
    hist_<key>_<target>_<w>      earlier positives with time in [t - w, t)
    hist_<key>_n_prev<d>d        events of the <d> whole UTC days before the event's day
    hist_<key>_<target>_prev<d>d positives of those days
    hist_<key>_dt_prev           t - time of the key's previous event, -1 when none
    hist_<key>_dt_prev_<target>  t - time of the key's previous positive, -1 when none
    hist_<key>_<target>_rate[_<w> | _prev<d>d]
                                 positives / LABELLED earlier events of the same span, NaN when none

``<w>`` is ``<hours>h`` (``24h``) for whole hours, else ``<seconds>s``. Counts
and times are int64 (-1 rather than NaN keeps them exact and integer; no count
is ever negative, so -1 is unambiguous); rates are float64.

Why rates over labelled events: a served (or validation) row sees the earlier
rows of its own batch as events but not their labels, so a rolling window's
positives / events would drop against training, where every earlier row is
labelled. Dividing by the labelled events only keeps the rate unbiased. The
calendar spans (``prev1d``: yesterday, UTC) of a row served the day after
training ends are entirely training rows: the same quantity as in training.
With ``label_delay = d`` every label-derived feature (positives, rates,
``dt_prev_<target>``) uses only events with time < t - d, in
training as in serving: with ``d`` >= the serving horizon, training rows see
exactly as much labelled history as served rows.

Algorithm (written once against the pandas/cudf + numpy/cupy API, no Python
per-group code): rows are numbered by key (``groupby().ngroup()``) and sorted
by (key, time) on one int64 composite (key id * time span + time offset; time
ranks replace offsets when that could overflow). Counts are differences of
prefix sums taken at the start of the row's key (or of its window: a
``searchsorted`` of (key, t - w) in the composite) and at the start of its
(key, time) tie block. Every row is a weighted event (``n`` events,
per-target positives, last positive time), which lets
:meth:`HistoryEncoder.transform` run the same code on the fitted state rows
followed by the new rows.

Fitted state (``state_``, saved as parquet; params + ``t_end_`` as JSON), for
``T = t_end_`` (last training time) and ``W`` the longest reach of a span
(:meth:`HistoryEncoder.reach`):

* one row per (key, time) for training events with time >= ``T - W``
  (everything a window of an event at time >= ``T`` can reach);
* one row per key summarising its older events: their count and positives,
  time = the last of them, and the last positive time per target.

:meth:`HistoryEncoder.transform` serves events at time >= ``T`` (a time split
puts validation strictly after training); earlier events would see "future"
training events in the summaries and are refused. Events AT ``T`` may be new or
ones the state already holds (sent again, e.g. by a ``time >= T`` filter): with a
``row_key``, the state also keeps the row-key hashes of its events at ``T``
(``last_ids_``), and an event sent again is known by its row key and not counted
twice (:meth:`HistoryEncoder.extend` skips it; :meth:`HistoryEncoder.transform`
gives it its features but does not count it as an event of later rows).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.dataframe as dd
import numpy as np

from .. import hashing
from ..backend import array_module, frame_library, is_gpu_object, series_like, to_host, values
from ..data import DataError
from ..schema import DAY_SECONDS, EVENT_TIME, TARGETS, utc
from .frames import (
    Checkpoints, EstimatorParams, as_dask, check_columns, check_fitted, group_ids, in_memory, is_dask, key_name, key_tables, load_state, null_key_rows, save_state, share,
)

N = "_n"


def _pos(t: str) -> str:
    return f"_pos_{t}"


def _last(t: str) -> str:
    return f"_last_{t}"


def window_label(seconds: int) -> str:
    """``86400`` -> ``24h``; windows that are not whole hours keep seconds (``90s``)."""
    return f"{seconds // 3600}h" if seconds % 3600 == 0 else f"{seconds}s"


def _features(
    xp: Any,
    g: Any,
    t: Any,
    n: Any,
    lab: Any,
    pos: dict,
    last: dict,
    windows: list[int],
    days: list[int],
    rates: bool,
    label_delay: int = 0,
) -> dict:
    """History features of weighted events, returned in input order.

    ``g`` key ids, ``t`` times, ``n`` events a row stands for, ``lab`` of them
    labelled, ``pos[target]`` positives it stands for, ``last[target]`` its
    last positive time (used where ``pos > 0``). Rows of the same (key, time)
    never see each other; labels (positives, labelled events, last positive
    times) only of events with time < t - ``label_delay``.
    """
    size = len(t)
    n_groups = int(g.max()) + 1 if size else 0
    t_min = int(t.min()) if size else 0
    span = int(t.max()) - t_min + 1 if size else 1
    if n_groups * span < 2**62:  # composite = key id * span + time offset: no rank needed
        def time_code(x: Any) -> Any:
            return xp.maximum(x - t_min, 0)  # times below t_min all code 0: still "first time >= x"
    else:  # rank of the first distinct time >= x: composite < n_groups * size always fits
        times = xp.sort(t)
        keep = xp.ones(size, dtype=bool)
        keep[1:] = times[1:] != times[:-1]
        times = times[keep]
        span = len(times)

        def time_code(x: Any) -> Any:
            return xp.searchsorted(times, x)

    composite = g * span + time_code(t)
    order = xp.argsort(composite)
    c, gs, ts = composite[order], g[order], t[order]

    new_group = xp.ones(size, dtype=bool)
    new_block = xp.ones(size, dtype=bool)
    if size:
        new_group[1:] = gs[1:] != gs[:-1]
        new_block[1:] = c[1:] != c[:-1]
    # start position of each row's key and of its (key, time) tie block
    group_start = xp.flatnonzero(new_group)[xp.cumsum(new_group) - 1]
    block_start = xp.flatnonzero(new_block)[xp.cumsum(new_block) - 1]

    def prefix(a: Any) -> Any:  # prefix[i] = a[:i].sum()
        out = xp.zeros(size + 1, dtype=np.int64)
        out[1:] = xp.cumsum(a)
        return out

    counts = {"n": prefix(n[order]), "_lab": prefix(lab[order])}
    for target, p in pos.items():
        counts[target] = prefix(p[order])

    def first_at(x: Any) -> Any:  # position of the row's key's first event at time >= x (x <= t)
        return xp.searchsorted(c, gs * span + time_code(x), side="left")

    known_end = first_at(ts - label_delay) if label_delay else block_start  # labels of rows before it are known
    spans = {"": (group_start, block_start)}
    for w in windows:
        spans[f"_{window_label(w)}"] = (first_at(ts - w), block_start)
    day_start = (ts // DAY_SECONDS) * DAY_SECONDS
    for d in days:
        spans[f"_prev{d}d"] = (first_at(day_start - d * DAY_SECONDS), first_at(day_start))

    feats: dict[str, Any] = {}
    for suffix, (lo, hi) in spans.items():
        known = xp.maximum(xp.minimum(hi, known_end), lo)
        span_counts = {name: cum[hi if name == "n" else known] - cum[lo] for name, cum in counts.items()}
        labelled = span_counts.pop("_lab")
        for name, value in span_counts.items():
            feats[f"{name}{suffix}"] = value
        if rates:
            denominator = xp.where(labelled > 0, labelled, 1).astype(np.float64)
            for target in pos:
                feats[f"{target}_rate{suffix}"] = xp.where(labelled > 0, span_counts[target] / denominator, np.nan)

    has_prev = block_start > group_start
    prev = xp.maximum(block_start - 1, 0)
    feats["dt_prev"] = xp.where(has_prev, ts - ts[prev], -1)
    for target, p in pos.items():
        positive = p[order] > 0
        n_positive = prefix(positive)  # positive rows before each position
        last_time = xp.concatenate([xp.full(1, -1, dtype=np.int64), last[target][order][positive]])
        k = n_positive[known_end]
        has = k > n_positive[group_start]
        feats[f"dt_prev_{target}"] = xp.where(has, ts - last_time[k], -1)

    out = {}
    for name, sorted_values in feats.items():
        col = xp.empty(size, dtype=sorted_values.dtype)
        col[order] = sorted_values
        out[name] = col
    return out


class HistoryEncoder(EstimatorParams):
    """sklearn-style point-in-time history features of one key (see the module docstring).

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
    """

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
    ) -> None:
        self.columns = [columns] if isinstance(columns, str) else list(columns)
        self.targets = None if targets is None else list(targets)
        self.windows = [int(w) for w in windows]
        if any(w <= 0 for w in self.windows):
            raise ValueError(f"HistoryEncoder windows must be > 0 seconds, got {self.windows}")
        self.days = [int(d) for d in days]
        if any(d <= 0 for d in self.days):
            raise ValueError(f"HistoryEncoder days must be >= 1 whole UTC days, got {self.days}")
        self.rates = bool(rates)
        self.label_delay = int(label_delay)
        if self.label_delay < 0:
            raise ValueError(f"HistoryEncoder label_delay must be >= 0 seconds, got {self.label_delay}")
        self.time_column = time_column
        self.prefix = prefix
        self.row_key = list(row_key)

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

    def _times(self, frame: Any) -> Any:
        return values(frame[self.time_column]).astype(np.int64)

    @staticmethod
    def _positive(frame: Any, target: str) -> Any:
        return (values(frame[target].fillna(0)) > 0).astype(np.int64)

    def last_ids(self, frame: Any, t_end: int) -> Any:
        """The sorted row-key hashes (host uint64) of the events of ``frame`` at ``t_end`` with a
        whole row key: what :meth:`_resent` recognises (empty without ``row_key``)."""
        if not self.row_key:
            return np.zeros(0, dtype=np.uint64)
        ids, known = self._row_ids(frame)
        return np.unique(to_host(ids[known & (self._times(frame) == t_end)]))

    def _row_ids(self, frame: Any) -> tuple[Any, Any]:
        """(uint64 hash of each row's ``row_key``, whether the row has one: no null in it)."""
        keys = frame[self.row_key]
        odd = {c: str(keys.dtypes[c]) for c in self.row_key if getattr(keys.dtypes[c], "kind", "O") not in "iu"}
        if odd:
            raise DataError(f"history features ({self.name}) identify events by integer row ids; the row key column(s) {odd} are not integers")
        known = ~values(null_key_rows(keys))
        return hashing.combine([values(keys[c].fillna(0)).astype(np.int64) for c in self.row_key]), known

    def _resent(self, frame: Any, t: Any) -> Any:
        """Whether each row of ``frame`` (times ``t``) is an event the state already holds: at its last
        second, with a row key among :attr:`last_ids_`."""
        xp = array_module(t)
        if not len(self.last_ids_):
            return xp.zeros(len(t), dtype=bool)
        ids, known = self._row_ids(frame)
        return known & (t == self.t_end_) & xp.isin(ids, xp.asarray(self.last_ids_))

    def _attach(self, frame: Any, feats: dict, targets: list[str], start: int = 0) -> Any:
        prefix = f"{self.prefix}_{self.name}_"
        cols = {f"{prefix}{k}": series_like(frame, v[start:]) for k, v in feats.items()}
        return frame.assign(**{name: cols[name] for name in self.output_names(targets)})

    # ---- partition functions ---------------------------------------------
    def features_partition(self, frame: Any) -> Any:
        """``frame`` (all its keys' events, labels present) with the features from its own rows.

        Stateless: the training-time computation; row order and index are kept.
        """
        targets = self._targets(frame)
        self._check_columns(frame, targets)
        xp = array_module(frame)
        t = self._times(frame)
        pos = {target: self._positive(frame, target) for target in targets}
        last = dict.fromkeys(targets, t)
        g = _alone_if_null(group_ids(frame[self.columns]), frame[self.columns])
        ones = xp.ones(len(t), dtype=np.int64)
        feats = _features(xp, g, t, ones, ones, pos, last, self.windows, self.days, self.rates, self.label_delay)
        return self._attach(frame, feats, targets)

    def state_partition(self, frame: Any, t_end: int) -> Any:
        """The serving-state rows of ``frame`` for a training window ending at ``t_end``."""
        targets = self._targets(frame)
        self._check_columns(frame, targets)
        return self._aggregate(self._event_rows(frame, targets), t_end, targets)

    def _event_rows(self, frame: Any, targets: list[str]) -> Any:
        """One state-format row per keyed event of ``frame``: key, time, 1 event, its positives and
        their times (-1 where none)."""
        xp = array_module(frame)
        t = self._times(frame)
        tmp = frame[self.columns].reset_index(drop=True)
        tmp[self.time_column] = t
        keyed = ~values(null_key_rows(tmp[self.columns]))  # a key with a null is no key: no state
        tmp[N] = xp.ones(len(t), dtype=np.int64)
        for target in targets:
            p = self._positive(frame, target)
            tmp[_pos(target)] = p
            tmp[_last(target)] = xp.where(p > 0, t, -1)
        return tmp[keyed]

    def _aggregate(self, tmp: Any, t_end: int, targets: list[str]) -> Any:
        """State rows of state-format rows ``tmp`` (events, or earlier state rows) for a window ending at
        ``t_end``: per key one row of everything older than any span reaches, and per (key, time)
        the recent rows."""
        cutoff = t_end - self.reach()
        sums = {N: "sum", **{_pos(x): "sum" for x in targets}, **{_last(x): "max" for x in targets}}
        old = tmp[tmp[self.time_column] < cutoff]
        old = old.groupby(self.columns, sort=False, dropna=False).agg({self.time_column: "max", **sums}).reset_index()
        recent = tmp[tmp[self.time_column] >= cutoff]
        recent = recent.groupby([*self.columns, self.time_column], sort=False, dropna=False).agg(sums).reset_index()
        cols = [*self.columns, self.time_column, N, *[_pos(x) for x in targets], *[_last(x) for x in targets]]
        state = frame_library(tmp).concat([old[cols], recent[cols]], ignore_index=True)
        return state.astype({c: "int64" for c in cols[len(self.columns) :]})

    def extend(self, X: Any) -> HistoryEncoder:
        """Fold labelled events that follow the training window (the validation window, or what arrived
        since) into the serving state: rows after them see them as history, labels included, as if
        :meth:`fit` had been given the training window plus ``X``. ``X``: an in-memory frame with the
        key, the time and every target's label; an event before the state's end is an error."""
        self._check_fitted()
        targets = self.targets_
        self._check_columns(X, targets)
        if not len(X):
            return self
        t = self._times(X)
        if int(t.min()) < self.t_end_:
            raise DataError(f"history events ({self.name}) extend the serving state, which ends at {utc(self.t_end_)}: "
                            f"{int((t < self.t_end_).sum()):,} of {len(t):,} events are earlier (the earliest at "
                            f"{utc(int(t.min()))}); pass the events after it")
        unlabelled = [c for c in targets if bool(X[c].isna().any())]
        if unlabelled:
            raise DataError(f"history events ({self.name}) need every label: column(s) {unlabelled} have missing values")
        self._check_columns(X, self.row_key)
        X = X[~self._resent(X, t)]  # events the state holds already (sent again at its last second): not twice
        state = in_memory(self.state_) if is_dask(self.state_) else self.state_
        lib = frame_library(state)
        if is_gpu_object(X) != is_gpu_object(state):  # the events (what the state needs of them) go where the
            X = X[list(dict.fromkeys([*self.columns, self.time_column, *targets, *self.row_key]))]  # state lives, the serving device
            X = lib.from_pandas(X) if is_gpu_object(state) else X.to_pandas()  # (not the state to the events')
        events = self._event_rows(X, targets)
        t_end = max(self.t_end_, int(t.max()))
        last_ids = self.last_ids(X, t_end)
        if t_end == self.t_end_:  # the state's last second goes on: its events and these
            last_ids = np.union1d(self.last_ids_, last_ids)
        merged = lib.concat([state, events.astype({c: state.dtypes[c] for c in events.columns})], ignore_index=True)
        self.set_state(self._aggregate(merged, t_end, targets), t_end, targets, last_ids)
        self.extended_ = True  # the state now ends with the events: messages say so, not "the training window"
        return self

    def positive_rates(self) -> dict[str, float]:
        """target -> positives per keyed event of the serving state (training, and what :meth:`extend` folded in)."""
        self._check_fitted()
        sums = in_memory(self.state_[[N, *[_pos(t) for t in self.targets_]]].sum())
        n = int(sums[N])
        return {t: int(sums[_pos(t)]) / n if n else 0.0 for t in self.targets_}

    def set_state(self, state: Any, t_end: int, targets: list[str], last_ids: Any = None) -> HistoryEncoder:
        """Finish fitting from state rows (e.g. concatenated :meth:`state_partition` outputs) and the
        row-key hashes of the events at ``t_end`` (:meth:`last_ids`; None: none known)."""
        self.state_ = state
        self.last_ids_ = np.asarray([] if last_ids is None else last_ids, dtype=np.uint64)
        self.extended_ = False
        self._index = None  # the key index of transform, rebuilt from this state on first use
        self.t_end_ = int(t_end)
        self.targets_ = list(targets)
        return self

    # ---- sklearn-style API -------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> HistoryEncoder:  # noqa: ARG002 - sklearn signature
        """Learn the serving state from the training window ``X`` (labels present)."""
        self._check_in_memory(X)
        targets = self._targets(X)
        self._check_columns(X, [*targets, *self.row_key])
        if len(X) == 0:
            raise ValueError(f"HistoryEncoder({self.name}): no training rows")
        t_end = int(X[self.time_column].max())
        return self.set_state(self.state_partition(X, t_end), t_end, targets, self.last_ids(X, t_end))

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        """Fit on ``X`` and return it with each row's features from the earlier rows of ``X``."""
        self.fit(X, y)
        return self.features_partition(X)

    def transform(self, X: Any, labels: bool | None = None) -> Any:
        """Features of events at time >= the end of training: fitted history + earlier rows of ``X``.

        ``labels``: use the label columns of ``X`` for positives of its earlier
        rows (``None``: when it has every target's; ``True``: it must;
        ``False``: never, as at serving time). Without them only training
        positives count, and the in-frame rows still count as events. Equals
        ``fit_transform(train + X)`` on the rows of ``X``.
        """
        self._check_fitted()
        self._check_in_memory(X)
        targets = self.targets_
        self._check_columns(X, [*(targets if labels else []), *self.row_key])
        use = labels is not False and all(target in X.columns for target in targets)  # the rates' shared denominator
        xp = array_module(X)
        t_new = self._times(X)
        if len(t_new) and int(t_new.min()) < self.t_end_:
            early = int((t_new < self.t_end_).sum())
            raise DataError(
                f"history features ({self.name}) serve rows at or after the end of {self.window()} "
                f"({utc(self.t_end_)}): {early:,} of {len(t_new):,} rows are earlier (the earliest at "
                f"{utc(int(t_new.min()))}); score rows from after it"
            )
        state, g, m_kept = self._state_rows(X)
        g = xp.concatenate([g[:m_kept], _alone_if_null(g[m_kept:], X[self.columns], int(g.max()) + 1 if len(g) else 0)])

        def stacked(old: Any, new: Any) -> Any:
            return xp.concatenate([old, new])

        fresh = (~self._resent(X, t_new)).astype(np.int64)  # an event the state holds already is none of later rows'
        t = stacked(state[self.time_column], t_new)
        n = stacked(state[N], fresh)
        lab = stacked(state[N], fresh * int(use))
        pos, last = {}, {}
        for target in targets:
            p = self._positive(X, target) * fresh if use else xp.zeros(len(t_new), dtype=np.int64)
            pos[target] = stacked(state[_pos(target)], p)
            last[target] = stacked(state[_last(target)], t_new)
        feats = _features(xp, g, t, n, lab, pos, last, self.windows, self.days, self.rates, self.label_delay)
        return self._attach(X, feats, targets, start=m_kept)

    def window(self) -> str:
        """What the serving state's history spans, for messages: the training window, or that plus the
        events :meth:`extend` folded in (its end is then theirs, not training's)."""
        return "the training window and the history events folded in" if getattr(self, "extended_", False) else "the training window"

    def _state_rows(self, X: Any) -> tuple[dict, Any, int]:
        """The state rows of the keys of ``X``: (column -> array, key ids of those rows then of
        ``X``'s rows, number of state rows). On pandas through a key index built once per encoder
        (a call costs O(rows of X + state rows taken)); on cudf by one pass over the state. A
        partitioned (dask) state is gathered on first use."""
        if is_dask(self.state_):
            self.state_ = in_memory(self.state_)
        if not is_gpu_object(X):
            if getattr(self, "_index", None) is None:
                state = self.state_.to_pandas() if is_gpu_object(self.state_) else self.state_
                self._index = _StateIndex(state, self.columns, self._state_columns())
            return self._index.rows(X[self.columns])
        state = self.state_ if is_gpu_object(self.state_) else frame_library(X).from_pandas(self.state_)
        keys = frame_library(X).concat([state[self.columns], X[self.columns].reset_index(drop=True)], ignore_index=True)
        g = group_ids(keys)
        m = len(state)
        xp = array_module(X)
        present = xp.zeros(int(g.max()) + 1 if len(g) else 0, dtype=bool)
        present[g[m:]] = True
        keep = present[g[:m]]
        rows = {c: values(state[c]).astype(np.int64)[keep] for c in self._state_columns()}
        return rows, xp.concatenate([g[:m][keep], g[m:]]), int(keep.sum())

    def _state_columns(self) -> list[str]:
        return [self.time_column, N, *[_pos(t) for t in self.targets_], *[_last(t) for t in self.targets_]]

    # ---- state -----------------------------------------------------------
    def _check_fitted(self) -> None:
        check_fitted(self, "state_")

    def params(self) -> dict:
        return {
            "columns": self.columns,
            "targets": self.targets,
            "windows": self.windows,
            "time_column": self.time_column,
            "prefix": self.prefix,
            "days": self.days,
            "rates": self.rates,
            "label_delay": self.label_delay,
            "row_key": self.row_key,
        }

    def save(self, directory: str | Path) -> None:
        """Write the fitted state: ``<prefix>_<key>.parquet`` (state rows) and ``.json`` (params, t_end, targets)."""
        self._check_fitted()
        state = {"params": self.params(), "targets": self.targets_, "t_end": self.t_end_, "last_ids": self.last_ids_.tolist()}
        save_state(directory, f"{self.prefix}_{self.name}", self.state_, state)

    @classmethod
    def load(cls, directory: str | Path, name: str, df_lib: Any = None) -> HistoryEncoder:
        """Read state written by :meth:`save` (``name`` = ``hist_<key>``) into ``df_lib`` frames."""
        state, table = load_state(directory, name, df_lib)
        return cls(**state["params"]).set_state(table, state["t_end"], state["targets"], state.get("last_ids"))


def _alone_if_null(g: Any, keys: Any, start: int | None = None) -> Any:
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


class _StateIndex:
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
        """See :meth:`HistoryEncoder._state_rows`."""
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


def _transform_partition(part: Any, encoder: HistoryEncoder, labels: bool | None) -> Any:
    return encoder.transform(part, labels)


def _transform_with_state(part: Any, state: Any, encoder: HistoryEncoder, labels: bool | None) -> Any:
    """:meth:`HistoryEncoder.transform` of a partition with the state partition of the same keys."""
    return HistoryEncoder(**encoder.params()).set_state(state, encoder.t_end_, encoder.targets_, encoder.last_ids_).transform(part, labels)


def history_features(
    frame: Any,
    encoder: HistoryEncoder,
    fit: bool = True,
    labels: bool | None = None,
    checkpoint: Any = None,
    limit: int | None = None,
) -> Any:
    """Dask form: shuffle ``frame`` on the encoder's key, then one partition function per partition.

    ``fit=True``: fit ``encoder`` on ``frame`` and return its rows with
    in-frame features. Its state rows are computed per partition; ``limit``
    None gathers them (an in-memory state), otherwise they are persisted on the
    workers and gathered only when at most ``limit`` rows, else the state stays
    a dask frame partitioned by key (as the key tables of :func:`~.frames.key_tables`).
    ``fit=False``: :meth:`HistoryEncoder.transform` per partition: an in-memory
    state is shipped to every partition; a partitioned one is shuffled like the
    rows, so partition ``i`` of the rows meets the state of its own keys only.
    The output is lazy and partitioned by key, so rows are NOT in the input
    order: join it back on a row key if needed. ``checkpoint`` keeps the
    shuffled frame for its two reads when fitting (default: persisted on the
    workers; see :class:`~.frames.Checkpoints`).
    """
    if not fit:
        return _transform_dask(as_dask(frame), encoder, labels)
    frame = (checkpoint or Checkpoints())(as_dask(frame).shuffle(on=encoder.columns))  # read for the state, then the features
    targets = encoder._targets(frame._meta)
    t_end = int(frame[encoder.time_column].max().compute())
    state_meta = encoder.state_partition(frame._meta, t_end)
    (state,) = key_tables([frame.map_partitions(encoder.state_partition, t_end, meta=state_meta)], limit, [limit is not None])
    last = frame[frame[encoder.time_column] == t_end][list(dict.fromkeys([encoder.time_column, *encoder.row_key]))]
    last_ids = encoder.last_ids(in_memory(last), t_end) if encoder.row_key else None
    encoder.set_state(state if is_dask(state) else state.reset_index(drop=True), t_end, targets, last_ids)
    stateless = HistoryEncoder(**{**encoder.params(), "targets": targets})  # the graph must not carry the state
    return frame.map_partitions(stateless.features_partition, meta=stateless.features_partition(frame._meta))


def _transform_dask(frame: Any, encoder: HistoryEncoder, labels: bool | None) -> Any:
    encoder._check_fitted()
    state, keys = encoder.state_, encoder.columns
    stateless = HistoryEncoder(**encoder.params())
    empty = state._meta if is_dask(state) else state.iloc[:0]
    meta = stateless.set_state(empty, encoder.t_end_, encoder.targets_, encoder.last_ids_).transform(frame._meta, labels)
    if not is_dask(state):
        return frame.shuffle(on=keys).map_partitions(_transform_partition, share(encoder), labels, meta=meta)
    # the same key values and dtypes hash to the same partition in both shuffles
    state = state.astype({c: frame._meta[c].dtype for c in keys}).shuffle(on=keys, npartitions=state.npartitions)
    frame = frame.shuffle(on=keys, npartitions=state.npartitions)
    return dd.map_partitions(_transform_with_state, frame, state, stateless, labels, meta=meta, align_dataframes=False)
