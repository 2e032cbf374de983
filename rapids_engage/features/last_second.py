"""The events of a serving state's last second, known by their row keys (history and session states).

A state fitted on events up to ``T`` holds the events at ``T``; rows served from ``T`` on may be new
events of that second or the same ones sent again (a ``time >= T`` filter, a batch repeating one).
With a ``row_key`` (integer columns identifying an event) the state keeps the sorted uint64 hashes of
the row keys of its events at ``T`` (``last_ids_``, saved beside it as ``<stem>.last_ids.parquet``,
their number in its JSON): an event sent again is not counted twice. Only rows at ``T`` are hashed
and looked up; a row without a whole row key is never taken for one sent again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import hashing
from ..backend import array_module, to_host, values
from ..data import DataError
from .estimator_conventions import load_column, save_column
from .frames import null_key_rows

#: The file of the last ids beside a state's (``<stem>.last_ids.parquet``) and its column.
LAST_IDS, ROW_ID = "last_ids", "row_id"


def row_ids(frame: Any, row_key: list[str], what: str) -> tuple[Any, Any]:
    """(uint64 hash of each row's ``row_key``, whether the row has one: no null in it); ``what`` (the
    features, e.g. ``history features (user)``) for the error on a row key that is not integer ids."""
    keys = frame[row_key]
    odd = {c: str(keys.dtypes[c]) for c in row_key if getattr(keys.dtypes[c], "kind", "O") not in "iu"}
    if odd:
        raise DataError(f"{what} identify events by integer row ids; the row key column(s) {odd} are not integers")
    known = ~values(null_key_rows(keys))
    return hashing.combine([values(keys[c].fillna(0)).astype(np.int64) for c in row_key]), known


def sorted_contains(xp: Any, sorted_values: Any, x: Any) -> Any:
    """Whether each value of ``x`` is in ``sorted_values`` (ascending, of ``x``'s module ``xp``): a binary
    search per value, O(len(x) log n), the sorted values neither copied nor sorted again."""
    if not len(sorted_values):
        return xp.zeros(len(x), dtype=bool)
    at = xp.minimum(xp.searchsorted(sorted_values, x), len(sorted_values) - 1)
    return sorted_values[at] == x


def end_rows(frame: Any, time_column: str, row_key: list[str], t_end: int) -> list[Any]:
    """The lazy rows of dask ``frame`` at ``t_end`` (time and row key columns) to compute with a dask fit's
    state, for :meth:`LastSecondIds.last_ids`: none (an empty list) without a row key."""
    if not row_key:
        return []
    return [frame[frame[time_column] == t_end][list(dict.fromkeys([time_column, *row_key]))]]


class LastSecondIds:
    """The row ids of a state's last second, for an encoder with ``row_key``, ``time_column``, ``t_end_``
    and ``last_ids_`` (set by its ``set_state``); :meth:`_what` names its features in messages, :meth:`_times`
    reads a frame's times (:func:`~.history_state.times`, its group named)."""

    row_key: list[str]
    time_column: str
    t_end_: int
    last_ids_: np.ndarray

    def _what(self) -> str:
        raise NotImplementedError

    def _times(self, frame: Any) -> Any:
        raise NotImplementedError

    def last_ids(self, frame: Any, t_end: int) -> np.ndarray:
        """The sorted row-key hashes (host uint64) of the events of ``frame`` at ``t_end`` with a whole row
        key: what :meth:`_resent` recognises (empty without ``row_key``)."""
        if not self.row_key:
            return np.zeros(0, dtype=np.uint64)
        ids, known = row_ids(frame, self.row_key, self._what())
        return np.unique(to_host(ids[known & (self._times(frame) == t_end)]))

    def _resent(self, frame: Any, t: Any) -> Any:
        """Whether each row of ``frame`` (times ``t``) is an event the state already holds: at its last
        second, with a row key among :attr:`last_ids_` (only the rows at that second are hashed and looked
        up, and the ids go to the rows' device only when there are some)."""
        xp = array_module(t)
        resent = xp.zeros(len(t), dtype=bool)
        at_end = t == self.t_end_
        if not len(self.last_ids_) or not bool(at_end.any()):
            return resent
        ids, known = row_ids(frame[self.row_key][at_end], self.row_key, self._what())
        resent[at_end] = known & sorted_contains(xp, xp.asarray(self.last_ids_), ids)
        return resent

    def _ids_after(self, X: Any, t_end: int) -> np.ndarray:
        """The last ids of the state extended by the events ``X`` (none of them sent again) to end at ``t_end``:
        those of ``X`` at ``t_end``, and the state's too while its last second goes on."""
        ids = self.last_ids(X, t_end)
        return np.union1d(self.last_ids_, ids) if t_end == self.t_end_ else ids

    def _save_ids(self, directory: str | Path, stem: str) -> int:
        """Write :attr:`last_ids_` beside the state ``stem`` (with a row key); their number, for its JSON."""
        if self.row_key:
            save_column(Path(directory) / f"{stem}.{LAST_IDS}.parquet", ROW_ID, self.last_ids_)
        return len(self.last_ids_)


def load_ids(directory: str | Path, stem: str, state: dict) -> np.ndarray | None:
    """The sorted last ids of the state ``stem`` whose JSON is ``state``: its ``last_ids`` is their number (the
    file beside it), a list (the ids themselves, as the history's first code wrote them) or absent (a state
    written before it kept them: None, none known)."""
    ids = state.get("last_ids")
    if isinstance(ids, int):
        ids = load_column(Path(directory) / f"{stem}.{LAST_IDS}.parquet", ROW_ID, ids) if ids else None
    return None if ids is None else np.unique(np.asarray(ids, dtype=np.uint64))
