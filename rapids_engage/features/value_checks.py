"""Checks of a partition's values before features are computed: the time, required and count columns, the labels
(a DataError naming the column, the value and the row's index label)."""

from __future__ import annotations

from typing import Any

from ..data import DataError
from ..schema import PLAUSIBLE_TIMES


def check_values(part: Any, column: str, required: tuple[str, ...] = (), counts: tuple[str, ...] = ()) -> Any:
    """``part`` unchanged; a DataError naming the column and the first row's index label when the time
    ``column`` or a ``required`` column has a null, naming the column when the time ``column`` holds times
    outside :data:`~..schema.PLAUSIBLE_TIMES` as epoch seconds (milliseconds, say) or a ``counts`` column
    a negative number."""
    from ..backend import values

    for name in (column, *required):
        null = part[name].isna()
        if bool(null.any()):
            first = plain(part.index[int(values(null).argmax())])
            raise DataError(f"column {name!r} has {int(null.sum())} null value(s), the first at index {first!r}: "
                            "the features need a value there")
    if len(part):
        lo, hi = int(part[column].min()), int(part[column].max())
        if lo < PLAUSIBLE_TIMES[0] or hi >= PLAUSIBLE_TIMES[1]:
            bad = lo if lo < PLAUSIBLE_TIMES[0] else hi
            hint = "; milliseconds? divide by 1000" if bad >= PLAUSIBLE_TIMES[1] * 100 else ""
            raise DataError(f"column {column!r} holds {bad}, not an epoch-seconds time from 1990 to 2100{hint}")
    for name in counts:  # a ratio's denominator is count + 1: -1 made it infinite (which XGBoost refuses)
        if bool(part[name].lt(0).any()):
            raise DataError(f"column {name!r} holds {int(part[name].min())}, not a count (>= 0)")
    return part


def check_labels(part: Any, bounds: dict[str, tuple[int, int | None]]) -> Any:
    """``part`` unchanged; a DataError naming the column, the value and its row's index label for the first value
    of a target column outside its :func:`~.labels.label_bounds` (a missing label is allowed: its row is unlabelled)."""
    from ..backend import values

    for name, (low, high) in bounds.items():
        column = part[name]
        bad = column.lt(low) | (column.gt(high) if high is not None else False)
        if bool(bad.fillna(False).any()):
            at = int(values(bad.fillna(False)).argmax())
            kind = "a 0/1 label" if high is not None else "a count (>= 0)"
            raise DataError(f"target column {name!r} holds {plain(column.iloc[at])!r} at index {plain(part.index[at])!r}, "
                            f"not {kind}")
    return part


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value (its repr is ``np.int64(11)``)."""
    return value.item() if hasattr(value, "item") else value
