"""Forward-in-time split: the last ``valid_hours`` of events are validation (as the RecSys 2021 winners did), the
``gap_hours`` before them purged (as scikit-learn's ``TimeSeriesSplit(gap=)``): a label that reaches into the
validation window (a view labelled by a cart up to 24 h later) stays out of training."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .data import DataError
from .schema import DAY_SECONDS, EVENT_TIME, utc


@dataclass(frozen=True)
class SplitInfo:
    cutoff: int  # training rows have event time <= cutoff - gap; validation rows > cutoff
    min_time: int
    max_time: int
    gap: int = 0  # seconds before the cut-off whose rows are in neither split (split.gap_hours)
    purged: int = 0  # rows in the gap: time in (cutoff - gap, cutoff]
    rows: int | None = None  # every row of the input; None: not counted
    valid_rows: int | None = None  # rows later than the cut-off

    @property
    def train_end(self) -> int:
        """The latest time a training row may have: the cut-off less the gap."""
        return self.cutoff - self.gap

    def counts(self) -> dict | None:
        """The split's counts as a store version's manifest keeps them (:func:`recorded_split` reads them back),
        None when they were not counted."""
        if self.rows is None or self.valid_rows is None:
            return None
        return {"rows": self.rows, "valid": self.valid_rows, "purged": self.purged}


def recorded_split(counts: Any, span: tuple[int, int], cutoff: int, gap: int) -> SplitInfo | None:
    """The :class:`SplitInfo` of a split counted before (:meth:`SplitInfo.counts`, from the manifest of the store
    version built from the same input and split, whose time span is ``span``), or None when ``counts`` is no such
    record (absent: a version built before they were kept; an edit): the split is counted again."""
    if not counts_recorded(counts):
        return None
    return SplitInfo(cutoff, int(span[0]), int(span[1]), gap, counts["purged"], counts["rows"], counts["valid"])


def counts_recorded(counts: Any) -> bool:
    """Whether ``counts`` (a manifest's ``split_counts``) is a record :func:`recorded_split` takes."""
    return isinstance(counts, dict) and all(type(counts.get(k)) is int and counts[k] >= 0 for k in ("rows", "valid", "purged"))


def whole_seconds(hours: float) -> int:
    """``split.valid_hours`` or ``split.gap_hours`` in whole seconds, as event times are."""
    return int(round(hours * 3600))


def training_end(split: dict) -> int:
    """The latest training time of a report's ``split`` record: its cut-off less its gap (none before gaps were)."""
    return int(split["cutoff"]) - whole_seconds(float(split.get("gap_hours") or 0))


#: The smallest share of the rows either side of the cut-off may hold (a stray far-future time).
MIN_SIDE_SHARE = 0.001


def time_split(
    frame: Any, valid_hours: float, time_column: str = EVENT_TIME, targets: list[str] = (), later: Callable[[int], Any] | None = None,
    gap_hours: float = 0, span: tuple[int, int] | None = None,
) -> tuple[Any, Any, SplitInfo]:
    """(train, valid, info) of a dask frame; the cutoff is ``max(time) - valid_hours``: validation rows are later,
    training rows at most ``cutoff - gap_hours``; the rows between (``info.purged``) are in neither. ``later``: the
    cutoff -> a frame of ``frame``'s partitions holding at least its rows later than the cutoff
    (``read_events(later_than=)``, which reads no file without such rows), to take the validation rows from.
    ``span``: the earliest and latest time of ``frame``'s rows, none null, known already (the input files' footer
    statistics: :func:`~.footers.null_free_int_range`): the pass over the data that finds them is skipped.

    Refuses (``DataError``) rows without a time, events that all have one time, a split whose training or
    validation side holds under :data:`MIN_SIDE_SHARE` of the rows (one mistyped far-future time makes the
    validation window nearly empty), a gap that leaves no such share for training, and a target whose training
    labels are all the same value (nothing to learn: e.g. every positive row was quarantined).
    """
    import dask

    if valid_hours <= 0:
        raise ValueError(f"split.valid_hours must be > 0, got {valid_hours}")
    window = whole_seconds(valid_hours)
    if window < 1:  # not 'the validation side holds 0 rows ... a far-off time in the data'
        raise ValueError(f"split.valid_hours={valid_hours:g} is {valid_hours * 3600:.2g} s, which rounds to no window "
                         "(event times are whole seconds): give at least 0.0003 (one second)")
    if not 0 <= gap_hours < float("inf"):
        raise ValueError(f"split.gap_hours must be a number of hours >= 0, got {gap_hours}")
    gap = whole_seconds(gap_hours)
    times = frame[time_column]
    lo, hi, nulls = (*span, 0) if span is not None else dask.compute(times.min(), times.max(), times.isna().sum())
    if nulls:  # on neither side of a cut-off: the rows would be lost without a word
        raise DataError(f"{int(nulls):,} row(s) have no {time_column} (null): a split by time cannot place them; "
                        "drop them or fill the time in (an ingest quarantines them)")
    lo, hi = int(lo), int(hi)
    cutoff = check_window(lo, hi, valid_hours, gap_hours, time_column)
    train, valid = split_frames(frame, cutoff, gap, time_column, later)
    targets = list(targets)
    # per column: a frame's min() on dask-cudf fails on its empty meta ("cannot convert float NaN to integer", int8)
    stats = [train[t].min() for t in targets] + [train[t].max() for t in targets]
    in_gap = ((times > cutoff - gap) & (times <= cutoff)).sum() if gap else 0
    n_valid, n_rows, purged, *low_high = dask.compute((times > cutoff).sum(), times.size, in_gap, *stats)
    n_valid, n_rows, purged = int(n_valid), int(n_rows), int(purged)
    _check_sides(n_valid, n_rows, purged, valid_hours, gap_hours, hi, time_column)
    if targets:
        k = len(targets)
        _check_labels(targets, dict(zip(targets, low_high[:k])), dict(zip(targets, low_high[k:])), n_rows - n_valid - purged)
    return train, valid, SplitInfo(cutoff, lo, hi, gap, purged, n_rows, n_valid)


def split_frames(frame: Any, cutoff: int, gap: int, time_column: str = EVENT_TIME,
                 later: Callable[[int], Any] | None = None) -> tuple[Any, Any]:
    """(train, valid) of ``frame`` split at ``cutoff`` with ``gap`` seconds before it purged, lazily: nothing counted
    or checked (:func:`time_split` does; ``later`` as there)."""
    train = frame[frame[time_column] <= cutoff - gap]
    source = frame if later is None else later(cutoff)
    return train, source[source[time_column] > cutoff]


def check_window(lo: int, hi: int, valid_hours: float, gap_hours: float, time_column: str = EVENT_TIME) -> int:
    """The cut-off of events from ``lo`` to ``hi`` (the earliest and latest time); refuses (as :func:`time_split`)
    events that all have one time, a validation window covering them all, and a gap purging every training row.
    Also run on the input files' footer statistics before the cluster starts (:func:`~.footers.int_range`)."""
    cutoff = hi - whole_seconds(valid_hours)
    if hi == lo:
        raise DataError(f"every row has the same {time_column}, {utc(hi)}: a split by time needs events at different "
                        "times (check the time column and its format)")
    if cutoff < lo:
        raise ValueError(
            f"split.valid_hours={valid_hours} covers the whole data ({(hi - lo) / 3600:.1f} h); "
            "lower it so some events are left for training"
        )
    if cutoff - whole_seconds(gap_hours) < lo:
        raise ValueError(
            f"split.gap_hours={gap_hours:g} purges every training row: the training rows would end {gap_hours:g} h before "
            f"the validation window's cut-off ({utc(cutoff)}), before the first event ({utc(lo)}); lower split.gap_hours "
            "(or split.valid_hours)"
        )
    return cutoff


def _check_sides(n_valid: int, n_rows: int, purged: int, valid_hours: float, gap_hours: float, latest: int, time_column: str) -> None:
    least = MIN_SIDE_SHARE * n_rows
    n_train = n_rows - n_valid - purged
    if purged and n_train < least <= n_train + purged:  # the gap took them
        raise DataError(f"split.gap_hours={gap_hours:g} purges {purged:,} of the {n_train + purged:,} rows before the "
                        f"validation window, leaving {n_train:,} of {n_rows:,} rows for training; lower split.gap_hours")
    for side, n in (("validation", n_valid), ("training", n_train)):
        if n < least:
            raise DataError(
                f"the {side} side of the split holds {n:,} of {n_rows:,} rows: the validation window is the last "
                f"{valid_hours:g} h before the latest {time_column} ({utc(latest)}). A far-off time in the data "
                f"(check {time_column} for outliers) or split.valid_hours may be wrong"
            )


def _check_labels(targets: list[str], low: Any, high: Any, n_train: int) -> None:
    for t in targets:
        if float(low[t]) == float(high[t]):
            raise DataError(f"target {t!r} is {float(low[t]):g} on all {n_train:,} training rows: nothing to learn. "
                            "Check its column (and the ingest quarantine, where bad labels go)")


def _permute(part: Any, targets: list[str], seed: int, time_column: str, partition_info: dict | None = None) -> Any:
    """``part`` with each target's labels permuted among the rows of each UTC day (by ``time_column``). The columns
    are taken by position (``take``), their dtypes and nulls kept: not through their arrays, which cudf refuses for a
    column with nulls (an engagement time where the row has no positive, an unlabelled row) and pandas turns from a
    nullable ``Int64`` into float64."""
    import numpy as np

    from .backend import argsort_stable, array_module, values

    rng = np.random.default_rng([seed, (partition_info or {}).get("number", 0)])
    xp = array_module(part)
    day = values(part[time_column]) // DAY_SECONDS
    in_order = argsort_stable(day)  # the rows by day, in row order within a day
    drawn = xp.argsort(day + xp.asarray(rng.random(len(part))))  # the rows by day, in a random order within a day
    order = xp.empty_like(in_order)
    order[in_order] = drawn  # each row takes the label of a row of its own day
    rows = part.reset_index(drop=True)  # both on a range index: no realignment by labels (cudf refuses repeated ones)
    moved = rows[list(targets)].take(order).reset_index(drop=True)
    out = rows.assign(**{t: moved[t] for t in targets})
    out.index = part.index
    return out


def shuffle_labels(frame: Any, targets: list[str], seed: int, time_column: str = EVENT_TIME) -> Any:
    """``frame`` with its label columns (``targets``, and any column moving with them: engagement times) permuted
    within each UTC day (of each partition), all by one permutation: the leakage control. A day keeps its positives,
    so a trend of the positive rate over days is kept too."""
    return frame.map_partitions(_permute, targets, seed, time_column, meta=frame._meta)
