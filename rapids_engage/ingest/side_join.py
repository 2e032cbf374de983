"""Side tables held as Arrow arrays and numpy views of them, joined to a chunk's rows (``data.table.join``).

A :class:`SideTable` joins the first side row of each key; an :class:`AsOfSide`, per key, the latest side row strictly
earlier than each row's own time. Both look keys up in a :class:`KeyIndex` (sorted 64-bit hashes of the key texts,
each hit checked against the text itself): blank keys, null ones and a float NaN's text (``nan``) are no key, on either
side, so they never match. Everything is a column of a :class:`pyarrow.Table` (numbers, strings, dictionaries), so a
side table written once as Arrow IPC files (:mod:`.side_share`) is memory-mapped by every ingest worker, its pages shared.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .reader import IngestError
from .table_types import hash_strings

#: Key texts that are no key (besides blank ones): a float NaN's text, as the readers write it.
NO_KEY_TEXTS = ("nan",)


def no_key(keys: pd.Series) -> np.ndarray:
    """Whether each key text is no key: null, empty, blank, or a float NaN's text (``nan``, any case)."""
    text = keys.fillna("").str.strip()
    return ((text == "") | text.str.lower().isin(NO_KEY_TEXTS)).to_numpy(bool)


def _numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A numeric column as numpy (a view of its buffer where it is one chunk: of a mapped file, no copy)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column.to_numpy(zero_copy_only=False)


def _array(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column


@dataclass(frozen=True)
class KeyIndex:
    """A side table's distinct keys (none of them :func:`no_key`) by their hash: ``table`` has ``hash`` (int64,
    ascending) and ``key`` (the text); a key's code is its position."""

    table: pa.Table

    @classmethod
    def of(cls, keys: np.ndarray, where: str) -> tuple[KeyIndex, np.ndarray]:
        """The index of the distinct key texts ``keys`` and each one's code (IngestError naming ``where`` if two
        distinct keys hash alike: never met, 64-bit hashes)."""
        hashes = hash_strings(keys)
        order = np.argsort(hashes, kind="stable")
        sorted_hashes = hashes[order]
        twice = np.flatnonzero(np.diff(sorted_hashes) == 0)
        if len(twice):
            a, b = keys[order[twice[0]]], keys[order[twice[0] + 1]]
            raise IngestError(f"{where}: keys {a!r} and {b!r} have the same 64-bit hash; rename one of them")
        codes = np.empty(len(keys), np.int64)
        codes[order] = np.arange(len(keys))
        table = pa.table({"hash": pa.array(sorted_hashes, pa.int64()),
                          "key": pa.array(np.asarray(keys, dtype=object)[order], pa.large_string())})
        return cls(table), codes

    def __len__(self) -> int:
        return self.table.num_rows

    def codes(self, keys: pd.Series) -> np.ndarray:
        """The code of each key text (-1: not a side key, or no key)."""
        text = pd.Series(keys, dtype="str").fillna("")
        hashes = _numpy(self.table.column("hash"))
        wanted = hash_strings(text)
        at = np.minimum(np.searchsorted(hashes, wanted), max(len(hashes) - 1, 0))
        hit = (hashes[at] == wanted) & ~no_key(text) if len(hashes) else np.zeros(len(text), bool)
        if hit.any():  # the text too, not only its hash
            side_keys = _array(self.table.column("key")).take(pa.array(at[hit]))
            hit[hit] = pc.equal(side_keys, pa.array(text.to_numpy(object)[hit], pa.large_string())).to_numpy(
                zero_copy_only=False)
        return np.where(hit, at, -1)


class _Mappable:
    """Pickled as the names of its files when memory-mapped (:func:`.side_share.open_mapped`), else as its data."""

    def __reduce__(self) -> tuple:
        mapped = self.__dict__.get("_mapped")
        if mapped is None:
            return type(self), tuple(getattr(self, f.name) for f in fields(self))
        from .side_share import open_mapped

        return open_mapped, mapped


def _texts(values: pa.Array, codes: np.ndarray) -> pd.Series:
    """``values`` at ``codes`` ("" where a code is -1) as a str Series."""
    taken = values.take(pa.array(codes, mask=codes < 0)).to_numpy(zero_copy_only=False)
    return pd.Series(taken, dtype="str").fillna("")


@dataclass(frozen=True)
class SideTable(_Mappable):
    """A side table's kept columns (``values``, as ``names`` in the rows) for each key of ``keys`` (its first row)."""

    on: str
    keys: KeyIndex
    values: pa.Table
    names: tuple[str, ...]

    @property
    def keep(self) -> tuple[str, ...]:
        return self.names

    def join(self, frame: pd.DataFrame, ms: np.ndarray | None = None) -> pd.DataFrame:  # noqa: ARG002 - AsOfSide's
        """``frame`` with the kept columns of the side row matching its ``on`` value ("" where none does)."""
        codes = self.keys.codes(frame[self.on])
        return frame.assign(**{name: _texts(_array(self.values.column(i)), codes).set_axis(frame.index)
                                for i, name in enumerate(self.names)})


@dataclass(frozen=True)
class AsOfSide(_Mappable):
    """A side table joined point-in-time: per key, the values of the latest side row strictly earlier than the row's
    time (of equal side times, the later row of the file); "" where none is. ``times``: the side rows' distinct times
    (unix ms, ascending); per kept column (as named in the rows), its side rows sorted by (key, time, file order):
    ``order`` = key code * (distinct times + 1) + time rank, ascending, and ``value`` (dictionary: the texts)."""

    on: str
    keys: KeyIndex
    times: pa.Table  # "ms"
    columns: dict[str, pa.Table]  # "order", "value"

    @property
    def keep(self) -> tuple[str, ...]:
        return tuple(self.columns)

    def join(self, frame: pd.DataFrame, ms: np.ndarray | None = None) -> pd.DataFrame:
        """``frame`` with the kept columns as of each row's time ``ms`` (unix milliseconds)."""
        if ms is None:
            raise ValueError("a point-in-time side table joins rows by their times")
        code = self.keys.codes(frame[self.on])
        times = _numpy(self.times.column("ms"))
        span = len(times) + 1
        want = code * span + _search(times, ms)  # below: earlier times of the same key
        ahead = np.argsort(want, kind="stable")  # the needles searched in order (the cache), sorted once
        known = code >= 0
        out = {}
        for name, col in self.columns.items():
            order, value = _numpy(col.column("order")), _array(col.column("value"))
            at = _search(order, want, ahead) - 1
            hit = known & (at >= 0)
            hit[hit] = order[at[hit]] // span == code[hit]
            picked = np.full(len(frame), -1, np.int64)
            picked[hit] = value.indices.to_numpy(zero_copy_only=False)[at[hit]]
            out[name] = _texts(value.dictionary, picked).set_axis(frame.index)
        return frame.assign(**out)


def _search(sorted_values: np.ndarray, needles: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """``np.searchsorted(sorted_values, needles, side="left")``, the needles searched in order (4x faster on 200k
    random needles in 400k values: the cache; ``order``: their argsort, if known)."""
    order = np.argsort(needles, kind="stable") if order is None else order
    found = np.empty(len(needles), np.int64)
    found[order] = np.searchsorted(sorted_values, needles[order], side="left")
    return found


__all__ = ["AsOfSide", "KeyIndex", "NO_KEY_TEXTS", "SideTable", "no_key"]
