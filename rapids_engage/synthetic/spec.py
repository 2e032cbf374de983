"""What to generate (:class:`SyntheticSpec`) and the chunks it makes: rows per day, each day's consecutive time
slices of at most ``chunk_rows`` rows, in the order they are written."""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from typing import NamedTuple


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate: ``rows`` rows over ``days`` days from ``start`` (UTC), per ``seed``."""

    rows: int = 1_000_000
    days: int = 28
    seed: int = 42
    start: str = "2021-02-04"
    n_users: int | None = None  # default: max(1000, rows // 20)
    chunk_rows: int = 1_000_000  # rows per chunk (a file); each worker thread holds one chunk at once

    @property
    def users(self) -> int:
        return self.n_users if self.n_users is not None else max(1000, self.rows // 20)

    @property
    def start_ts(self) -> int:
        """Unix seconds of day 0, 00:00 UTC."""
        return calendar.timegm(dt.date.fromisoformat(self.start).timetuple())


def day_sizes(spec: SyntheticSpec) -> list[int]:
    """Rows per day: ``rows // days`` each, the remainder one each on the last days."""
    base, extra = divmod(spec.rows, spec.days)
    return [base + (1 if d >= spec.days - extra else 0) for d in range(spec.days)]


def _chunks(size: int, limit: int) -> list[int]:
    """Split ``size`` rows into the fewest near-equal chunks of at most ``limit`` rows."""
    k = -(-size // limit)
    return [size // k + (1 if i < size % k else 0) for i in range(k)]


class Step(NamedTuple):
    """One chunk of the plan: its day, date, index in the day, rows, first row, [t0, t1) timestamp window and
    turn (how many days with rows come before its own: the history and mood it sees)."""

    day: int
    date: str
    index: int
    rows: int
    first_row: int
    window: tuple[int, int]
    turn: int


def plan_chunks(spec: SyntheticSpec) -> list[Step]:
    """Every chunk, in order. A day's chunks are consecutive time slices of it, so the files are in time order."""
    plan: list[Step] = []
    first_row, turn = 0, 0
    for day, size in enumerate(day_sizes(spec)):
        date = (dt.date.fromisoformat(spec.start) + dt.timedelta(days=day)).isoformat()
        t0, start = spec.start_ts + day * 86400, 0
        for i, n in enumerate(_chunks(size, spec.chunk_rows) if size else []):
            lo, hi = t0 + start * 86400 // size, t0 + (start + n) * 86400 // size
            plan.append(Step(day, date, i, n, first_row, (lo, max(hi, lo + 1)), turn))
            start, first_row = start + n, first_row + n
        turn += size > 0
    return plan

