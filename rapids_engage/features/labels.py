"""The label of each target: its values from the target column (binary flag, count) and the range they may take."""

from __future__ import annotations

from typing import Any, Sequence

from ..layout import RECSYS, Layout


def label(column: Any, kind: str, missing: bool = False) -> Any:
    """The label of a target column: ``present`` -> int8 non-null flag, ``binary`` -> int8, ``count`` -> log1p float64.
    ``missing``: labels may be missing (rows to score, whose metrics leave such rows out): a binary label is then
    float64, missing where the column is (int8 cannot hold one on pandas, where the cast raised; cudf casts NaN to
    an arbitrary integer)."""
    if kind == "present":
        return column.notnull().astype("int8")
    if kind == "binary":
        return column.astype("float64" if missing else "int8")
    import numpy as np

    return np.log1p(column.astype("float64"))


def add_labels(frame: Any, targets: str | list[str], layout: Layout = RECSYS, missing: bool = False) -> Any:
    """One label column per target, named after it (see :func:`label`, also for ``missing``); ``layout``: the data's
    (``FeatureStore(path).layout()`` for a run's)."""
    targets = [targets] if isinstance(targets, str) else targets
    return frame.assign(**{t: label(frame[layout.target(t).column], layout.target(t).kind, missing) for t in targets})


def label_bounds(layout: Layout, names: Sequence[str] = ()) -> dict[str, tuple[int, int | None]]:
    """Target column -> the (lowest, highest or None) value its labels may take: 0..1 for a binary target,
    0.. for a count (a ``present`` target takes any value); ``names``: only the columns among them."""
    return {t.column: (0, 1 if t.kind == "binary" else None) for t in layout.targets
            if t.kind != "present" and (not names or t.column in names)}
