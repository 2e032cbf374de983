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

When a positive counts (``features.history.label_time``; encoder parameter
``engagement``: target -> the column of its engagement times). ``event`` (the
default): from its event's time, as above, so an impression at t0 < t liked at
t1 > t counts as a like for the event at t, a value from the future (only
``label_delay`` bounds it). ``engagement``: from the time it became known, its
engagement time e (never before its own event's time; the event's time where
the column is null), and with ``label_delay = d`` from e + d:

* a positive counts for an event at t only when e < t - d (strict, so e = t
  does not count); ``hist_<key>_<target>`` counts those;
* windows and calendar spans take positives by e: ``_<w>`` those with e in
  [t - w, t - d), ``_prev<d>d`` those with e in the span's days (and < t - d):
  "likes in the last 24 h". Chosen over "events of the span by their time,
  engaged before t" because it is the same prefix-sum count with each positive
  placed at e (a row of its own, no event), so it streams by key as before;
  the other is a 2-d count (event time in the span, e < t) per row;
* ``dt_prev_<target>``: t - the latest e < t - d;
* rates: those positives / labelled earlier events of the span by their event
  time (< t - d), as in ``event``: at t every earlier labelled event is either
  engaged by then or (so far) not, so it is in the denominator, and served
  rows' batch rows, unlabelled, are in neither. The whole-history rate is at
  most 1; a window's or a calendar span's may exceed 1 (an engagement in the
  window of an event before it): engagements per labelled event of the span.

The events (``n``, ``dt_prev``) are as in ``event``. Serving: training positives
of events before the end of training ``T`` engaged after ``T`` (pending) stay in
the state as rows at their engagement times, so rows served after those count
them, as one frame of training and served rows would.

Modules: :mod:`.history_spans` (the streaming computation: prefix sums of
weighted events per span), :mod:`.history_state` (the serving state's rows and
lookups), :mod:`.history_encoder` (:class:`HistoryEncoder`); this module adds the
dask form, :func:`history_features`.

:meth:`HistoryEncoder.transform` serves events at time >= ``T``, the end of
training (a time split puts validation strictly after training); earlier events
would see "future" training events in the state's summaries and are refused.
Events AT ``T`` may be new or ones the state already holds (sent again, e.g. by a
``time >= T`` filter): with a ``row_key``, the state also keeps the row-key hashes
of its events at ``T`` (``last_ids_``), and an event sent again is known by its
row key and not counted twice (:meth:`HistoryEncoder.extend` skips it;
:meth:`HistoryEncoder.transform` gives it its features but does not count it as
an event of later rows).
"""

from __future__ import annotations

from typing import Any

import dask
import dask.dataframe as dd

from .frames import Checkpoints, as_dask, is_dask, key_tables, share
from .history_encoder import HistoryEncoder
from .history_spans import window_label
from .key_values import shuffle_by_key, value_dtypes, with_dtypes
from .last_second import end_rows

__all__ = ["HistoryEncoder", "fit_history", "history_features", "window_label"]


def _transform_partition(part: Any, encoder: HistoryEncoder, labels: bool | None) -> Any:
    return encoder.features(part, labels)


def _transform_with_state(part: Any, state: Any, encoder: HistoryEncoder, last_ids: Any, labels: bool | None) -> Any:
    """:meth:`HistoryEncoder.transform` of a partition with the state partition of the same keys
    (``encoder``: params, end and targets; ``last_ids``: the state's, shipped once, not in every task)."""
    return HistoryEncoder(**encoder.params()).set_state(state, encoder.t_end_, encoder.targets_, last_ids).features(part, labels)


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
    rows, so partition ``i`` of the rows meets the state of its own keys only (and the state's
    last ids, :attr:`HistoryEncoder.last_ids_`, go to the workers once, not in every task).
    The output is lazy and partitioned by key, so rows are NOT in the input
    order: join it back on a row key if needed. ``checkpoint`` keeps the
    shuffled frame for its two reads when fitting (default: persisted on the
    workers; see :class:`~.frames.Checkpoints`).
    """
    if not fit:
        return _transform_dask(as_dask(frame), encoder, labels)
    return fit_history(frame, encoder, checkpoint, limit)[0]


def fit_history(frame: Any, encoder: HistoryEncoder, checkpoint: Any = None, limit: int | None = None) -> tuple[Any, Any]:
    """:func:`history_features` with ``fit=True``: (the rows with their in-frame features, lazy; the kept
    shuffled rows they are computed from, without them). Both have the same partitions, rows and row order
    (:meth:`HistoryEncoder.features_partition` keeps them): what reads the rows' other columns again reads the
    kept rows instead of computing the features again or keeping the frame with them too."""
    encoder.check_params()
    frame = (checkpoint or Checkpoints())(shuffle_by_key(as_dask(frame), encoder.columns))  # read for the state, then the features
    targets = encoder._targets(frame._meta)
    t_end, rows = dask.compute(frame[encoder.time_column].max(), frame.map_partitions(len).sum())
    t_end = int(t_end)
    state_meta = encoder.state_partition(frame._meta, t_end)
    # a state has at most a row per event (and per positive, with engagement label times): within the limit when
    # those are, then reduced straight into memory; the rows at t_end come in the same pass (one round trip, not three)
    partitioned = limit is not None and rows * (1 + len(targets) if encoder.engagement else 1) > limit
    state, *last = key_tables([frame.map_partitions(encoder.state_partition, t_end, meta=state_meta)], limit, [partitioned],
                              also=end_rows(frame, encoder.time_column, encoder.row_key, t_end))
    last_ids = encoder.last_ids(last[0], t_end) if last else None
    encoder.set_state(state if is_dask(state) else state.reset_index(drop=True), t_end, targets, last_ids)
    stateless = HistoryEncoder(**{**encoder.params(), "targets": targets})  # the graph must not carry the state
    return frame.map_partitions(stateless.features_partition, meta=stateless.features_partition(frame._meta)), frame


def _transform_dask(frame: Any, encoder: HistoryEncoder, labels: bool | None) -> Any:
    encoder._check_fitted()
    state, keys = encoder.state_, encoder.columns
    stateless = HistoryEncoder(**encoder.params())
    empty = state._meta if is_dask(state) else state.iloc[:0]
    meta = stateless.set_state(empty, encoder.t_end_, encoder.targets_).features(frame._meta, labels)
    if not is_dask(state):  # the state and its last ids go to the workers once
        return shuffle_by_key(frame, keys).map_partitions(_transform_partition, share(encoder), labels, meta=meta)
    # the same key values and dtypes hash to the same partition in both shuffles: the state's keys take the rows' value
    # dtypes (not a categorical's: its categories are each partition's own, and a cast to the meta's nulled the rest)
    values = value_dtypes(frame, keys)  # categorical keys: their values' dtypes (a pass where the meta lacks categories)
    state = shuffle_by_key(with_dtypes(state, {c: values.get(c, frame._meta[c].dtype) for c in keys}), keys, state.npartitions)
    frame = shuffle_by_key(frame, keys, state.npartitions, values)
    return dd.map_partitions(_transform_with_state, frame, state, stateless, share(encoder.last_ids_), labels, meta=meta,
                             align_dataframes=False)
