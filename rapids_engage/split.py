"""Forward-in-time split: the last ``valid_hours`` of events are validation (as the RecSys 2021 winners did)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .schema import EVENT_TIME


@dataclass(frozen=True)
class SplitInfo:
    cutoff: int  # training rows have event time <= cutoff < validation rows
    min_time: int
    max_time: int


def time_split(frame: Any, valid_hours: float, time_column: str = EVENT_TIME) -> tuple[Any, Any, SplitInfo]:
    """(train, valid, info) of a dask frame; the cutoff is ``max(time) - valid_hours``."""
    if valid_hours <= 0:
        raise ValueError(f"split.valid_hours must be > 0, got {valid_hours}")
    lo, hi = (int(v) for v in _min_max(frame[time_column]))
    cutoff = hi - int(round(valid_hours * 3600))
    if cutoff < lo:
        raise ValueError(
            f"split.valid_hours={valid_hours} covers the whole data ({(hi - lo) / 3600:.1f} h); "
            "lower it so some events are left for training"
        )
    train = frame[frame[time_column] <= cutoff]
    valid = frame[frame[time_column] > cutoff]
    return train, valid, SplitInfo(cutoff, lo, hi)


def _min_max(column: Any) -> tuple[Any, Any]:
    import dask

    return dask.compute(column.min(), column.max())


def _permute(part: Any, targets: list[str], seed: int, partition_info: dict | None = None) -> Any:
    import numpy as np

    from .backend import array_module, series_like, values

    rng = np.random.default_rng([seed, (partition_info or {}).get("number", 0)])
    order = array_module(part).asarray(rng.permutation(len(part)))
    return part.assign(**{t: series_like(part, values(part[t])[order]) for t in targets})


def shuffle_labels(frame: Any, targets: list[str], seed: int) -> Any:
    """``frame`` with its label columns permuted within each partition (a few consecutive days of the
    training window): the leakage control."""
    return frame.map_partitions(_permute, targets, seed, meta=frame._meta)
