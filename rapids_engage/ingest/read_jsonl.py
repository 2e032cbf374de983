"""JSONL reader: one JSON object per line, each declared column's value as the text a CSV field would hold."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .read_parquet import float_text
from .reader import iter_line_blocks
from .table_chunk import Bad, Chunk, Source, close_names


def read_jsonl(path: Path, src: Source, block_size: int) -> Iterator[Chunk]:
    """JSONL chunks, one per line block; blank lines are skipped, other non-objects quarantined.

    The first chunk's ``missing``: the required keys none of the first block's records has, and the
    other declared keys none has while they have one named like it (``userid`` for ``user_id``: a
    misspelt config, which would read as a null in every row).
    """
    first, checked = True, False
    for block in iter_line_blocks(path, block_size):
        objs, lines, raws, bad = [], [], [], []
        for i, text in enumerate(block.lines.to_pylist()):
            line = int(block.line_no[i])
            if i in block.bad_utf8:
                bad.append(Bad(line, None, "invalid_utf8", "invalid UTF-8", block.bad_utf8[i]))
                continue
            text = text.rstrip("\r\n")
            if first:
                text, first = text.removeprefix("\ufeff"), False
            if not text.strip():
                continue
            obj, problem = _json_object(text)
            if problem:
                bad.append(Bad(line, None, "bad_json", problem, text))
                continue
            repeated = _repeated_column(obj, src.needed)
            if repeated:
                bad.append(Bad(line, repeated[0], "duplicate_key", f"key {repeated[0]!r} appears {repeated[1]} times in the "
                               "object: which value is meant is unknown", text))
                continue
            objs.append(obj)
            lines.append(line)
            raws.append(text)
        missing, names = (), ()
        if objs and not checked:
            checked, names = True, tuple(dict.fromkeys(k for o in objs for k in o))
            missing = tuple(c for c in src.needed if c not in names and (c in src.required or close_names(c, names)))
        chunk = objects_chunk(objs, lines, raws, src.needed, src.scalars, src.list_seps)
        chunk.bad[:0], chunk.missing, chunk.bytes_done, chunk.names = bad, missing, block.bytes_done, names
        yield chunk


def objects_chunk(objs: list[dict], lines: list[int], raws: list[str], needed: tuple[str, ...], scalars: dict[str, str],
                  list_seps: dict[str, str]) -> Chunk:
    """The :class:`Chunk` of JSON objects (their ``needed`` values as the text a CSV field would hold,
    lists joined by their separator); an object with a list / object in one of the ``scalars`` columns
    is a bad row (the column's reason) instead."""
    keep, bad = [], []
    for i, obj in enumerate(objs):
        nested = next((c for c in scalars if isinstance(obj.get(c), (list, dict))), None)
        if nested:
            bad.append(Bad(lines[i], nested, scalars[nested], _nested(obj[nested]), raws[i]))
        else:
            keep.append(i)
    frame = pd.DataFrame({c: pd.Series(_column_text([objs[i].get(c) for i in keep], list_seps.get(c, " ")), dtype="str")
                          for c in needed}, index=range(len(keep)))
    kept_raws = [raws[i] for i in keep]
    return Chunk(frame, np.asarray([lines[i] for i in keep], np.int64), lambda rows: [kept_raws[i] for i in rows], bad)


def _column_text(values: list[Any], sep: str) -> list[str]:
    """A column's JSON values as text; its floats and its lists' float items as the parquet ingest reads
    them (:func:`.read_parquet.float_text`: ``123.0`` as ``123``, the key of the same id written ``123``)."""
    floats: list[float] = []
    for v in values:
        if isinstance(v, (float, np.floating, list)):
            _collect_floats(v, floats)
    texts = iter(float_text(pa.array(floats, pa.float64())).to_pylist() if floats else ())
    return [_json_text(v, sep, texts) for v in values]


def _collect_floats(value: Any, into: list[float]) -> None:
    """Append the floats of ``value`` (a list's items, in the order :func:`_json_text` meets them)."""
    if isinstance(value, list):
        for v in value:
            _collect_floats(v, into)
    elif isinstance(value, (float, np.floating)):
        into.append(float(value))


def _json_text(value: Any, sep: str, floats: Iterator[str]) -> str:
    """A JSON value as the text a CSV field would hold (lists joined by ``sep``); its floats are the
    next texts of ``floats`` (:func:`_column_text`)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        return next(floats)
    if isinstance(value, list):
        return sep.join(_json_text(v, sep, floats) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _nested(value: Any) -> str:
    """The detail of a JSON list / object where one value is expected."""
    kind = "list" if isinstance(value, list) else "object"
    return f"a JSON {kind} where one value is expected: {json.dumps(value, ensure_ascii=False)[:100]}"


class _Repeated(dict):
    """A JSON object that gives keys more than once (its values: the last, as ``json.loads``'); ``counts``: how often."""

    counts: dict[str, int]


def _object(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object from its ``pairs``: a :class:`_Repeated` when a key repeats, else a dict."""
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    obj = _Repeated(obj)
    obj.counts = {k: n for k, n in Counter(k for k, _ in pairs).items() if n > 1}
    return obj


#: JSON text to Python, each object through :func:`_object` (built once: ``json.loads`` with a hook builds a decoder a call).
_DECODER = json.JSONDecoder(object_pairs_hook=_object)


def _repeated_column(obj: dict, needed: tuple[str, ...]) -> tuple[str, int] | None:
    """(the first column of ``needed`` that ``obj`` gives more than once, how often) or None: which value is meant is
    unknown (``json.loads`` kept the last); a repeated field the table does not read is ignored, as the field is."""
    counts = getattr(obj, "counts", None)
    return next(((k, n) for k, n in counts.items() if k in needed), None) if counts else None


def _json_object(text: str) -> tuple[dict, str]:
    """(the object, "") or ({}, why the line is not a JSON object)."""
    try:
        obj = _DECODER.decode(text)
    except ValueError as exc:
        return {}, f"bad_json: {exc}"
    return (obj, "") if isinstance(obj, dict) else ({}, f"bad_json: a JSON {_JSON_TYPES[type(obj)]}, not an object")


#: The JSON name of each type json.loads gives.
_JSON_TYPES = {list: "list", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}
