"""Typing of a chunk's text columns by their roles in a table spec.

:func:`typed` parses the event time, hashes the ids (:func:`hash_strings`), types the targets
and numbers and marks each row's first bad value in an :class:`Errors`; :func:`explode`
makes one row per list token and :func:`row_ids` hashes the row ids. Side tables are :mod:`.side_tables`'.
"""

from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..config import ExplodeSpec
from ..layout import TABLE_TIME
from ..schema import PLAUSIBLE_TIMES
from .reader import IngestError
from .table_read import PER_SECOND

if TYPE_CHECKING:
    from .table_plan import Plan

#: Plausible event times (unix seconds): from 1990-01-01T00:00:00Z up to (not including) 2100-01-01T00:00:00Z.
MIN_TIME, MAX_TIME = PLAUSIBLE_TIMES
#: Ticks per second of the units a unix time may be in, and the time_format that reads each.
_UNITS = {"seconds": (1, "set time_format: unix"), "milliseconds": (1_000, "set time_format: unix_ms"),
          "microseconds": (1_000_000, "convert them to seconds or milliseconds"),
          "nanoseconds": (1_000_000_000, "convert them to seconds or milliseconds")}
#: The staging column of an event log's times in milliseconds, the labels' clock (:mod:`.event_labels`).
EVENT_MS = "_event_ms"
#: Largest count target: every integer up to it is exact in float64.
MAX_COUNT = 2.0**53
#: The named time formats (else a strptime pattern).
TIME_FORMATS = ("unix", "unix_ms", "iso")
_SEP = "\x1f"
_TRUE, _FALSE = ("1", "true", "1.0"), ("0", "false", "0.0")


def hash_strings(values: Any) -> np.ndarray:
    """int64 hash of each string (pandas' SipHash with its fixed key: the same in every run).

    Missing values hash like ``""``; use this to hash raw ids the way the ingest did (which
    writes a null, not this hash, for an empty or blank id).
    """
    arr = pd.Series(values, dtype="str").fillna("").to_numpy(dtype=object)
    return pd.util.hash_array(arr).view(np.int64)


# ---------------------------------------------------------------- typing


class Errors:
    """The first error of each row: reason ("" where none), column and detail."""

    def __init__(self, n: int) -> None:
        self.reason = np.full(n, "", dtype=object)
        self.column = np.full(n, None, dtype=object)
        self.detail = np.full(n, "", dtype=object)

    @property
    def bad(self) -> np.ndarray:
        return self.reason != ""

    def add(self, mask: np.ndarray, reason: str, column: str | None, values: pd.Series | None = None,
            what: str = "") -> None:
        """Mark the rows of ``mask`` that have no error yet.

        Detail: ``what`` (or ``reason``) and the value, or ``what`` with the value in place of ``{v}``
        (``{v!r}``: its repr).
        """
        new = np.flatnonzero(np.asarray(mask, bool) & ~self.bad)
        if not len(new):
            return
        self.reason[new], self.column[new] = reason, column
        shown = values.iloc[new].tolist() if values is not None else [None] * len(new)
        self.detail[new] = [(what.format(v=v) if "{v" in what else f"{what or reason}: {v!r}")[:200]
                            if v is not None else (what or reason) for v in shown]

    def lift(self, rows: Errors, src: np.ndarray) -> None:
        """Give each source row (``src``: source of each row) the first error of its rows."""
        bad = np.flatnonzero(rows.bad)
        if not len(bad):
            return
        s, first = np.unique(src[bad], return_index=True)
        at = bad[first]
        new = ~self.bad[s]
        s, at = s[new], at[new]
        self.reason[s], self.column[s], self.detail[s] = rows.reason[at], rows.column[at], rows.detail[at]


def check_time_format(fmt: str, key: str = "data.table.time_format") -> None:
    """An IngestError naming ``key`` when ``fmt`` is not a time format :func:`parse_time` reads."""
    if fmt in TIME_FORMATS:
        return
    if "%" not in fmt:
        near = difflib.get_close_matches(fmt.strip().lower(), TIME_FORMATS, n=1, cutoff=0.6)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise IngestError(f"{key} must be unix, unix_ms, iso or a strptime pattern, got {fmt!r}{hint}")
    try:
        pd.to_datetime(pd.Series(["x"]), format=fmt, errors="coerce", utc=True)
    except ValueError as exc:
        raise IngestError(f"{key} {fmt!r} is not a valid strptime pattern: {exc}") from None


def parse_time(s: pd.Series, fmt: str, column: str, err: Errors) -> tuple[np.ndarray, np.ndarray]:
    """(unix seconds, unix milliseconds) of each value (naive times are UTC; fractions of a second are dropped
    from the seconds, of a millisecond from the milliseconds).

    Unparsable times and times outside [MIN_TIME, MAX_TIME) are marked ``bad_time``
    in ``err``; a unix time that would fit in another unit says so.
    """
    s = s.str.strip()
    if fmt in ("unix", "unix_ms"):
        raw = pd.to_numeric(s, errors="coerce").to_numpy(np.float64)
        secs = np.floor(raw / (1000 if fmt == "unix_ms" else 1))
        ms = np.floor(raw if fmt == "unix_ms" else raw * 1000)
    else:
        dt = pd.to_datetime(s, format="ISO8601" if fmt == "iso" else fmt, utc=True, errors="coerce")
        arr = dt.dt.tz_convert(None).to_numpy()
        per_s = PER_SECOND[np.datetime_data(arr.dtype)[0]]
        ticks = arr.view(np.int64)
        secs = np.where(np.isnat(arr), np.nan, ticks // per_s)
        ms = np.where(np.isnat(arr), np.nan, ticks // (per_s // 1000) if per_s >= 1000 else ticks * (1000 // per_s))
    with np.errstate(invalid="ignore"):
        parsed, ok = np.isfinite(secs), (secs >= MIN_TIME) & (secs < MAX_TIME)
        err.add((s == "").to_numpy(bool), "bad_time", column, None, "missing time")
        err.add(~parsed, "bad_time", column, s, f"{{v!r}} is not time_format {fmt}")
        if fmt in ("unix", "unix_ms"):
            unit = "seconds" if fmt == "unix" else "milliseconds"
            for guess, (per_s, hint) in _UNITS.items():
                fits = (raw / per_s >= MIN_TIME) & (raw / per_s < MAX_TIME)
                err.add(~ok & fits, "bad_time", column, s, f"{{v}} is out of range as {unit}; {guess}? {hint}")
    err.add(~ok, "bad_time", column, s, "{v} is out of range (event times must be in 1990-01-01 .. 2099-12-31 UTC)")
    return np.where(ok, secs, 0).astype(np.int64), np.where(ok, ms, 0).astype(np.int64)


def _numbers(s: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(float values, empty, unparsable or infinite) of text values ("nan" parses as NaN)."""
    s = s.str.strip()
    empty = (s == "").to_numpy(bool)
    v = pd.to_numeric(s, errors="coerce").to_numpy(np.float64)
    literal_nan = s.str.lower().isin(["nan", "+nan", "-nan"]).to_numpy(bool)
    bad = ~empty & ((np.isnan(v) & ~literal_nan) | np.isinf(v))
    return v, empty, bad


def _numeric(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(float values, unparsable or infinite) of a numeric column: numbers, and ``true`` / ``false`` (any case: a
    flag column, a JSON or parquet boolean) as 1 / 0."""
    v, _, bad = _numbers(s)
    flag = s.str.strip().str.lower()
    true, false = (flag == "true").to_numpy(bool), (flag == "false").to_numpy(bool)
    return np.where(true, 1.0, np.where(false, 0.0, v)), bad & ~(true | false)


#: The detail of a binary target's text value: a column of event types ('view', 'addtocart') is not a label.
EVENT_TYPE_HINT = ("not 0/1/true/false (a label is 0/1 per row: map yes/no text to 0/1; a column of event types, "
                   "view / addtocart: label the views by later events with data.table.events, README \"Event logs\"): {v!r}")

#: The texts a ``present`` target reads as absent (lower-cased): empty and the usual spellings of missing.
ABSENT = ("", "nan", "nat", "null", "none", "na", "n/a")


def _target(s: pd.Series, kind: str, column: str, err: Errors) -> np.ndarray:
    """Typed values of a target column; bad values marked in ``err``."""
    if kind == "present":  # a value, not a written-out missing one ("NaN" from pandas, "null", ...)
        return (~s.str.strip().str.lower().isin(ABSENT)).to_numpy(bool).astype(np.int8)
    if kind == "binary":
        v = s.str.strip().str.lower()
        one, zero = v.isin(_TRUE).to_numpy(bool), v.isin(_FALSE).to_numpy(bool)
        err.add((v == "").to_numpy(bool), "bad_target", column, s, "missing target value")
        bad = ~(one | zero)
        words = bad & np.isnan(pd.to_numeric(v, errors="coerce").to_numpy(np.float64))  # 'view', 'yes': not a number
        err.add(words, "bad_target", column, s, EVENT_TYPE_HINT)
        err.add(bad, "bad_target", column, s, "not 0/1/true/false")
        return one.astype(np.int8)
    values, empty, bad = _numbers(s)
    err.add(empty, "bad_target", column, s, "missing target value")
    err.add(bad, "bad_target", column, s, "a target must be a finite number: {v!r}")
    err.add(np.isnan(values), "bad_target", column, s, "a target must be a finite number")
    with np.errstate(invalid="ignore"):
        count = (values >= 0) & (values <= MAX_COUNT) & (np.floor(values) == values)
    err.add(~count, "bad_target", column, s, "a count must be a non-negative integer (at most 2**53)")
    return values + 0.0  # -0.0 -> 0.0


def _keys(s: pd.Series) -> pd.arrays.IntegerArray:
    """Hashed ids (:func:`hash_strings`), null where the value is empty or blank (no key)."""
    return pd.arrays.IntegerArray(hash_strings(s), blank(s))


def blank(s: pd.Series) -> np.ndarray:
    return (s.fillna("").str.strip() == "").to_numpy(bool)


def row_times(frame: pd.DataFrame, plan: Plan) -> tuple[np.ndarray, np.ndarray, Errors]:
    """(unix seconds, unix milliseconds, errors: ``bad_time`` marked) of ``frame``'s event times (:func:`parse_time`)."""
    err = Errors(len(frame))
    secs, ms = parse_time(frame[plan.time], plan.time_format, plan.time, err)
    return secs, ms, err


def typed(frame: pd.DataFrame, plan: Plan,
          times: tuple[np.ndarray, np.ndarray, Errors] | None = None) -> tuple[dict[str, Any], Errors]:
    """The output columns (but row_id) of ``frame``'s rows, and each row's first bad value (``times``: the
    rows' :func:`row_times`, when parsed already).

    A blank row key or ranking group value is a bad row (``missing_key``); a blank id or
    categorical value is null (no key).
    """
    out: dict[str, Any] = {}
    out[TABLE_TIME], ms, err = times if times is not None else row_times(frame, plan)
    if plan.events:
        _event_types(frame, plan, ms, out, err)
    for c in plan.row_id:
        err.add(blank(frame[c]), "missing_key", c, None, "missing row key value")
    if plan.group:  # ranking and per-group metrics need every row in a group
        err.add(blank(frame[plan.group]), "missing_key", plan.group, None, "missing ranking group value")
    for c in plan.ids:
        out[c] = _keys(frame[c])
    for c, kind in plan.targets:
        out[c] = _target(frame[c], kind, c, err)
    for c in plan.numeric:
        out[c], bad = _numeric(frame[c])
        err.add(bad, "bad_number", c, frame[c])
    for c in plan.strings:
        out[c] = frame[c].fillna("")
    for c in plan.categorical:
        out[c] = out[c].mask(blank(frame[c]))
    return out, err


def _event_types(frame: pd.DataFrame, plan: Plan, ms: np.ndarray, out: dict[str, Any], err: Errors) -> None:
    """An event log's checks: a row without its user, item or event type is bad (``missing_key``: labels are
    per user and item); rows to be labelled keep their type and time in ms (:data:`EVENT_MS`), rows to score
    must be anchors (else ``not_anchor``)."""
    ev = plan.events
    for c in plan.event_keys:
        err.add(blank(frame[c]), "missing_key", c, None, "missing user / item of an event log row (labels are per user and item)")
    kind = frame[ev.column].fillna("")
    err.add(blank(kind), "missing_key", ev.column, None, "missing event type")
    if plan.keep_events:
        out[ev.column], out[EVENT_MS] = kind, ms
    else:
        err.add((kind != ev.anchor).to_numpy(bool), "not_anchor", ev.column, kind,
                f"{{v!r}} is not the anchor event {ev.anchor!r}: rows to score are anchors (data.table.events.anchor)")


def row_ids(frame: pd.DataFrame, cols: tuple[str, ...], key: str, line: np.ndarray, pos: np.ndarray) -> np.ndarray:
    if cols:
        text = frame[cols[0]] if len(cols) == 1 else frame[cols[0]].str.cat([frame[c] for c in cols[1:]], sep=_SEP)
    else:
        line_text, pos_text = pd.Series(line, dtype="int64").astype("str"), pd.Series(pos, dtype="int64").astype("str")
        text = (key + _SEP) + line_text + _SEP + pos_text
    return hash_strings(text)


# ---------------------------------------------------------------- explode


def explode(frame: pd.DataFrame, ex: ExplodeSpec, err: Errors,
            keep_list: bool, unlabelled_sep: str | None = None) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """One row per token of ``ex.column`` (source rows with no or a malformed token marked in ``err``).

    Returns the rows, the source row of each and its token position; the
    list column itself is dropped unless ``keep_list``.
    """
    lists = pc.split_pattern(arrow_strings(frame[ex.column]), ex.sep)
    tokens = pc.list_flatten(lists)
    parent = pc.list_parent_indices(lists).to_numpy()
    nonempty = pc.not_equal(tokens, "").to_numpy(zero_copy_only=False)
    tokens, parent = tokens.filter(pa.array(nonempty)), parent[nonempty]
    pos = np.arange(len(parent)) - np.searchsorted(parent, parent, side="left")
    items, labels, bad = _split_tokens(tokens, ex)
    n = len(frame)

    def bad_tokens(mask: np.ndarray, detail: str) -> None:  # their source rows, each shown by its first such token
        at = np.flatnonzero(mask)
        sources, first = np.unique(parent[at], return_index=True)
        rows, shown = np.zeros(n, bool), pd.Series([""] * n, dtype="str")
        rows[sources] = True
        shown.iloc[sources] = tokens.take(pa.array(at[first])).to_pylist()
        err.add(rows, "bad_explode_token", ex.column, shown, detail)

    if unlabelled_sep is not None:  # rows to score: a token with a label would be read as an unseen item
        labelled = pc.match_substring_regex(tokens, re.escape(unlabelled_sep) + "[01]$").to_numpy(zero_copy_only=False)
        if labelled.any():
            bad_tokens(labelled, "a token with a label in rows without labels (send the item alone)")
    err.add(np.bincount(parent, minlength=n) == 0, "bad_explode_token", ex.column, None, "empty list")
    if bad.any():
        unsplit = bad & ~pc.match_substring(tokens, ex.label_sep).to_numpy(zero_copy_only=False)
        if unsplit.any():  # no label at all: rows to score, read as training rows
            bad_tokens(unsplit, f"a token without its label: {{v!r}}, not ITEM{ex.label_sep}LABEL (rows without labels "
                                "are for `ingest --unlabelled`, then `predict`)")
        if (bad & ~unsplit).any():
            bad_tokens(bad & ~unsplit, "malformed token")
    keep = np.flatnonzero(~err.bad[parent])
    parent = parent[keep]
    out = (frame if keep_list else frame.drop(columns=[ex.column])).iloc[parent].reset_index(drop=True)
    out[ex.item] = pd.Series(items.take(pa.array(keep)).to_pandas(), dtype="str")
    if ex.label:
        out[ex.label] = pd.Series(labels[keep], dtype="str")
    return out, parent, pos[keep]


def arrow_strings(s: pd.Series) -> pa.Array:
    arr = pa.array(s, pa.large_string())
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _split_tokens(tokens: pa.Array, ex: ExplodeSpec) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """(items, labels, malformed) of ``ITEM<label_sep>LABEL`` tokens (labels "" without ``ex.label``)."""
    n = len(tokens)
    if not ex.label:
        return tokens, np.full(n, "", dtype=object), np.zeros(n, bool)
    parts = pc.split_pattern(tokens, ex.label_sep, max_splits=1, reverse=True)
    two = (pc.list_value_length(parts).to_numpy(zero_copy_only=False) == 2)
    items = pc.list_element(parts, 0)
    labels = np.full(n, "", dtype=object)
    labels[two] = pc.list_flatten(pc.list_slice(parts, 1, 2)).to_numpy(zero_copy_only=False)
    bad = ~two | (pc.equal(items, "").to_numpy(zero_copy_only=False))
    return items, labels, bad


__all__ = ["TIME_FORMATS", "Errors", "arrow_strings", "blank", "check_time_format", "explode", "hash_strings",
           "parse_time", "row_ids", "row_times", "typed"]
