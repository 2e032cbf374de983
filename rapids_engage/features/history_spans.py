"""The history features' streaming computation: counts per span of weighted events by prefix sums.

Written once against the numpy/cupy API, no Python per-group code: rows are
numbered by key and sorted by (key, time) on one int64 composite (key id * time
span + time offset; time ranks replace offsets when that could overflow). Counts
are differences of prefix sums taken at the start of the row's key (or of its
window: a ``searchsorted`` of (key, t - w) in the composite) and at the start of
its (key, time) tie block. Every row is a weighted event (``n`` events,
per-target positives, last positive time), so the same code serves training rows
(weight 1) and the serving state's rows followed by new rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..schema import DAY_SECONDS


def window_label(seconds: int) -> str:
    """``86400`` -> ``24h``; windows that are not whole hours keep seconds (``90s``)."""
    return f"{seconds // 3600}h" if seconds % 3600 == 0 else f"{seconds}s"


def span_features(
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
    rows: tuple[int, int] | None = None,
) -> dict:
    """History features of weighted events, returned in input order: of the rows ``rows`` = (start, stop)
    of the input (default all), the others only events the counts see (serving-state rows, positives at their
    engagement times): computed only where they are returned.

    ``g`` key ids, ``t`` times, ``n`` events a row stands for, ``lab`` of them
    labelled, ``pos[target]`` positives it stands for, ``last[target]`` its
    last positive time (used where ``pos > 0``). Rows of the same (key, time)
    never see each other; labels (positives, labelled events, last positive
    times) only of rows with time < t - ``label_delay``. A row with ``n`` 0
    is no event (``dt_prev`` skips it): positives placed at the time they
    became known (:func:`~.history_state.at_engagement`).
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
    start, stop = (0, size) if rows is None else rows
    gq, tq, dest = gs, ts, order
    if (start, stop) != (0, size):  # the returned rows alone, still in sorted order (gathers stay in order)
        picked = xp.flatnonzero((order >= start) & (order < stop))
        group_start, block_start, gq, tq, dest = (a[picked] for a in (group_start, block_start, gs, ts, order))

    def prefix(a: Any) -> Any:  # prefix[i] = a[:i].sum()
        out = xp.zeros(size + 1, dtype=np.int64)
        out[1:] = xp.cumsum(a)
        return out

    counts = {"n": prefix(n[order]), "_lab": prefix(lab[order])}
    for target, p in pos.items():
        counts[target] = prefix(p[order])

    def first_at(x: Any) -> Any:  # position of the row's key's first event at time >= x (x <= t)
        return xp.searchsorted(c, gq * span + time_code(x), side="left")

    known_end = first_at(tq - label_delay) if label_delay else block_start  # labels of rows before it are known
    spans = {"": (group_start, block_start)}
    for w in windows:
        spans[f"_{window_label(w)}"] = (first_at(tq - w), block_start)
    day_start = (tq // DAY_SECONDS) * DAY_SECONDS
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

    event = n[order] > 0  # rows that are only positives (known at their engagement) are no event
    n_events = prefix(event)
    k = n_events[block_start]
    event_time = xp.concatenate([xp.full(1, -1, dtype=np.int64), ts[event]])
    feats["dt_prev"] = xp.where(k > n_events[group_start], tq - event_time[k], -1)
    for target, p in pos.items():
        positive = p[order] > 0
        n_positive = prefix(positive)  # positive rows before each position
        last_time = xp.concatenate([xp.full(1, -1, dtype=np.int64), last[target][order][positive]])
        k = n_positive[known_end]
        has = k > n_positive[group_start]
        feats[f"dt_prev_{target}"] = xp.where(has, tq - last_time[k], -1)

    out = {}
    dest = dest - start if start else dest
    for name, sorted_values in feats.items():
        col = xp.empty(stop - start, dtype=sorted_values.dtype)
        col[dest] = sorted_values
        out[name] = col
    return out
