"""Property/fuzz test of the raw ingest: a valid synthetic raw file, corrupted at random, must never crash it.

The clean file (a few hundred rows from :func:`rapids_engage.synthetic.write_raw`)
is corrupted with whole-file byte operations (bit flips, inserted / deleted
bytes, invalid UTF-8, NULs, carriage returns, merged / split / truncated /
duplicated / blank lines, dropped / duplicated separators, bad field values,
a truncated file end, compression-magic-like bytes before the first line),
optionally gzipped, and ingested on the CPU (various block sizes), non-strict,
then strict. Properties:

* no exception escapes a non-strict ingest;
* ``input_rows`` == non-empty lines == ``ingested_rows + quarantined_rows``;
* the parquet parts hold exactly ``ingested_rows`` rows, the quarantine file
  exactly ``quarantined_rows`` (and exists iff there are any), no temp files left;
* every line still byte-identical to a clean line is ingested (never quarantined);
* strict mode raises :class:`StrictModeError` (a ``ValueError``) naming
  ``file:line`` of the first quarantined line whenever anything was quarantined,
  and reproduces the non-strict result otherwise.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import itertools
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, example, given, settings
from hypothesis import strategies as st

from rapids_engage.ingest import StrictModeError, hex_id_to_int64, ingest_recsys
from rapids_engage.synthetic import SyntheticSpec, write_raw

ROWS = 300
REASONS = {"field_count", "invalid_utf8", "invalid_id", "invalid_int", "invalid_bool", "invalid_timestamp"}


@functools.lru_cache(maxsize=None)
def clean_lines(n_fields: int) -> tuple[bytes, ...]:
    """``ROWS`` valid raw lines (no newline) of a training (24 fields) or test (20 fields) file."""
    with tempfile.TemporaryDirectory() as tmp:
        write_raw(tmp, SyntheticSpec(rows=ROWS, days=2, seed=5))
        lines = [line for part in sorted((Path(tmp) / "raw").glob("*.tsv")) for line in part.read_bytes().splitlines()]
    assert len(lines) == ROWS and all(line.count(b"\x01") == 23 for line in lines)
    return tuple(b"\x01".join(line.split(b"\x01")[:n_fields]) for line in lines)


# ---------------------------------------------------------------- corruptions

INTERESTING = [b"\x00", b"\x01", b"\x01\x01", b"\n", b"\n\n", b"\r", b"\r\n", b"\t", b" ", b"\xff", b"\xc3\x28", b"\xe2\x82",
               b"\x80", b"\xf0\x9f\x98", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"-", b"9" * 19, b"true", b"\xc3\xa9", b"\\"]
BAD_FIELDS = [b"", b"12a", b"-5", b"1e3", b"9" * 19, b" 1", b"True", b"yes", b"0x1f", b"\xff", b"z" * 32, b"ab", b"\r", b"\x00",
              b"99999999999999999", b"0" * 31, b"A" * 32]
#: Starts of compressed files (magic bytes, not full signatures) a corrupt first line may begin with.
MAGIC_PREFIXES = [b"\x1f\x8b", b"\x1f\x8b\x00", b"BZh", b"BZh9", b"BZh91AY", b"\x28\xb5\x2f", b"\xef\xbb\xbf"]

pos = st.integers(0, 2**31)  # taken modulo the current size
corruption = st.one_of(
    st.tuples(st.just("flip"), pos, st.integers(0, 7)),
    st.tuples(st.just("insert"), pos, st.one_of(st.sampled_from(INTERESTING), st.binary(min_size=1, max_size=8))),
    st.tuples(st.just("delete"), pos, st.integers(1, 600)),
    st.tuples(st.just("drop_sep"), pos),
    st.tuples(st.just("dup_sep"), pos),
    st.tuples(st.just("merge_lines"), pos),  # delete a "\n"
    st.tuples(st.just("truncate_line"), pos, st.floats(0, 1)),
    st.tuples(st.just("truncate_file"), st.floats(0, 1)),
    st.tuples(st.just("blank_lines"), pos, st.sampled_from([b"", b"\r", b" ", b"\t", b"\x01", b"\x00"]), st.integers(1, 3)),
    st.tuples(st.just("dup_line"), pos),
    st.tuples(st.just("crlf"), pos),
    st.tuples(st.just("bad_field"), pos, st.integers(0, 23), st.sampled_from(BAD_FIELDS)),
    st.tuples(st.just("prefix"), st.sampled_from(MAGIC_PREFIXES)),  # bytes before the first line
)


def _line_span(data: bytes, k: int) -> tuple[int, int]:
    """(start, end) of line ``k % lines`` (end: index of its "\\n" or len(data))."""
    starts = [0] + [i + 1 for i, b in enumerate(data) if b == 10 and i + 1 < len(data)]
    start = starts[k % len(starts)]
    end = data.find(b"\n", start)
    return start, len(data) if end < 0 else end


def corrupt(data: bytes, how: tuple) -> bytes:
    kind, *a = how
    n = len(data)
    if kind == "prefix":
        return a[0] + data
    if n == 0:
        return data
    if kind == "flip":
        i = a[0] % n
        return data[:i] + bytes([data[i] ^ (1 << a[1])]) + data[i + 1:]
    if kind == "insert":
        i = a[0] % (n + 1)
        return data[:i] + a[1] + data[i:]
    if kind == "delete":
        i = a[0] % n
        return data[:i] + data[i + a[1]:]
    if kind in ("drop_sep", "dup_sep", "merge_lines"):
        at = [i for i, b in enumerate(data) if b == (10 if kind == "merge_lines" else 1)]
        if not at:
            return data
        i = at[a[0] % len(at)]
        return data[:i] + data[i + 1:] if kind != "dup_sep" else data[:i] + b"\x01" + data[i:]
    if kind == "truncate_file":
        return data[: int(a[0] * n)]
    start, end = _line_span(data, a[0])
    if kind == "truncate_line":
        return data[: start + int(a[1] * (end - start))] + data[end:]
    if kind == "blank_lines":
        return data[:start] + (a[1] + b"\n") * a[2] + data[start:]
    if kind == "dup_line":
        return data[:end] + b"\n" + data[start:end] + data[end:]
    if kind == "crlf":
        return data[:end] + b"\r" + data[end:]
    if kind == "bad_field":
        fields = data[start:end].split(b"\x01")
        fields[a[1] % len(fields)] = a[2]
        return data[:start] + b"\x01".join(fields) + data[end:]
    raise AssertionError(kind)


# ---------------------------------------------------------------- checks


def parquet_rows(out: Path) -> tuple[int, np.ndarray]:
    """(rows, tweet ids) of every data part of an ingest output."""
    parts = sorted((out / "data").rglob("*.parquet"))
    ids = [pq.read_table(p, columns=["tweet_id"])["tweet_id"].to_numpy() for p in parts]
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
    return rows, np.concatenate(ids) if ids else np.zeros(0, np.int64)


def check(data: bytes, n_fields: int, tmp: Path, block_size: int = 64 << 20, gz: bool = False) -> dict:
    """Ingest ``data`` non-strict and strict under ``tmp`` and check every property; returns the counts."""
    tmp.mkdir(parents=True)
    path = tmp / ("in.tsv.gz" if gz else "in.tsv")
    path.write_bytes(gzip.compress(data, 1) if gz else data)
    out = tmp / "out"

    res = ingest_recsys([path], out, block_size=block_size)  # no exception may escape

    data = data.replace(b"\r", b"\n") if cr_line_ends(data, block_size) else data
    physical = data.split(b"\n")
    if data.endswith(b"\n"):
        physical.pop()
    non_empty = [i + 1 for i, line in enumerate(physical) if line]
    assert res.input_rows == len(non_empty)
    assert res.input_rows == res.ingested_rows + res.quarantined_rows
    assert sum(res.quarantine_counts.values()) == res.quarantined_rows
    assert set(res.quarantine_counts) <= REASONS
    rows, tweet_ids = parquet_rows(out)
    assert rows == res.ingested_rows == sum(res.rows_per_day.values())
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["data", "ingest.json", "parts.json"] + (["quarantine.parquet"] if res.quarantined_rows else []))
    assert not [p for p in out.rglob(".*")], "temp / spill files left behind"
    assert [p.name for p in tmp.iterdir() if p.name.startswith(".")] == []

    clean = set(clean_lines(n_fields))
    intact = {i + 1: line for i, line in enumerate(physical) if line in clean}
    quarantined_lines: list[int] = []
    if res.quarantined_rows:
        q = pq.read_table(out / "quarantine.parquet").to_pandas()
        assert len(q) == res.quarantined_rows
        quarantined_lines = q["line"].tolist()
        assert q["file"].eq(str(path)).all()
        assert len(set(quarantined_lines)) == len(quarantined_lines)
        assert set(quarantined_lines) <= set(non_empty)
        assert q["reason"].isin(REASONS).all()
        assert not set(quarantined_lines) & set(intact), "a valid line was quarantined"
    if res.input_rows and len(intact) > res.input_rows // 2:  # the file kind cannot have flipped
        want = hex_id_to_int64([line.split(b"\x01")[2].decode() for line in intact.values()])
        assert np.isin(want, tweet_ids).all(), "a valid line is missing from the output"

    strict_out = tmp / "strict"
    if res.quarantined_rows:
        first = min(quarantined_lines)
        with pytest.raises(StrictModeError) as err:
            ingest_recsys([path], strict_out, block_size=block_size, strict=True)
        assert isinstance(err.value, ValueError)
        assert (err.value.file, err.value.line) == (str(path), first)
        assert str(err.value).startswith(f"{path}:{first}:")
        assert not strict_out.exists()
    else:
        strict = ingest_recsys([path], strict_out, block_size=block_size, strict=True)
        assert (strict.input_rows, strict.ingested_rows, strict.quarantined_rows) == (res.input_rows, res.ingested_rows, 0)
    if currently_in_test_context():
        for reason in res.quarantine_counts:
            event(reason)
    return {"input": res.input_rows, "ingested": res.ingested_rows, "quarantined": res.quarantined_rows}


def cr_line_ends(data: bytes, block_size: int) -> bool:
    """Whether the reader takes ``data`` for a file of old Mac line ends (a bare ``\\r``; ingest.reader._raw_blocks):
    no ``\\n`` in what it has read when it decides: blocks read on until a ``\\n``, the end of the file, or
    ``CR_DETECT_BYTES`` with a ``\\r`` before their last byte (a truncated, corrupted file can be such a file:
    ``\\x1f\\x8b\\r\\x00``; a ``\\r`` in a first line longer than the block is data)."""
    from rapids_engage.ingest.reader import CR_DETECT_BYTES

    size = 0
    while True:
        size = min(len(data), size + block_size)
        first = data[:size]
        if b"\n" in first:
            return False
        if size >= CR_DETECT_BYTES and (b"\r" in first[:-1] or b"\r" not in first):
            return b"\r" in first
        if size == len(data):
            return b"\r" in first


def clean_file(n_fields: int) -> bytes:
    return b"\n".join(clean_lines(n_fields)) + b"\n"


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("n_fields", [24, 20])
def test_clean_file_ingests_fully(tmp_path, n_fields):
    assert check(clean_file(n_fields), n_fields, tmp_path / "x", block_size=4096) == {"input": ROWS, "ingested": ROWS,
                                                                                      "quarantined": 0}


_example_dirs = itertools.count()


@settings(max_examples=35, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    n_fields=st.sampled_from([24, 20]),
    corruptions=st.lists(corruption, min_size=1, max_size=12),
    block_size=st.sampled_from([1000, 4096, 64 << 10, 1 << 20]),  # lines ~400 bytes, file ~120 kB
    gz=st.booleans(),
)
@example(n_fields=24, corruptions=[("truncate_file", 0.5)], block_size=257, gz=False)  # blocks shorter than a line
@example(n_fields=24, corruptions=[("insert", 1000, b"\xff"), ("crlf", 7), ("blank_lines", 3, b"\r", 2)], block_size=4096, gz=False)
@example(n_fields=20, corruptions=[("merge_lines", 5), ("dup_sep", 40), ("insert", 10_000, b"\x00")], block_size=64 << 10, gz=True)
@example(n_fields=24, corruptions=[("prefix", b"BZh")], block_size=4096, gz=False)
@example(n_fields=24, corruptions=[("truncate_file", 0.0), ("prefix", b"\x1f\x8b"), ("crlf", 0), ("insert", 3, b"\x00")],
         block_size=1000, gz=False)  # no newline left, a bare CR mid-file: read as old Mac line ends (two lines)
def test_fuzz_corrupted_file(tmp_path, n_fields, corruptions, block_size, gz):
    data = clean_file(n_fields)
    for how in corruptions:
        data = corrupt(data, how)
    check(data, n_fields, tmp_path / f"ex{next(_example_dirs)}", block_size=block_size, gz=gz)


# ---------------------------------------------------------------- regressions


@pytest.mark.parametrize("prefix", MAGIC_PREFIXES)
def test_plain_file_starting_like_a_compressed_one(tmp_path, prefix):
    """Regression: a plain file whose first line began with ``BZh`` / ``\\x1f\\x8b`` was sniffed as bz2 / gzip by its
    magic bytes alone and the whole ingest failed with "unreadable input"; now it is read as text (the prefix lands in
    the free-text ``text_tokens`` field: line 1 is quarantined only if the prefix is not UTF-8)."""
    bad = 0 if prefix.decode("utf-8", "ignore").encode() == prefix else 1
    counts = check(prefix + clean_file(24), 24, tmp_path / "x", block_size=4096)
    assert counts == {"input": ROWS, "ingested": ROWS - bad, "quarantined": bad}


@pytest.mark.parametrize("codec", ["gzip", "bz2"])
@pytest.mark.parametrize("rows", [0, 5])
def test_compressed_files_still_detected(tmp_path, codec, rows):
    data = b"".join(line + b"\n" for line in clean_lines(24)[:rows])
    path = tmp_path / "in.tsv"  # no telling extension: detected from the content
    path.write_bytes(gzip.compress(data) if codec == "gzip" else bz2.compress(data))
    res = ingest_recsys([path], tmp_path / "out")
    assert (res.input_rows, res.ingested_rows, res.quarantined_rows) == (rows, rows, 0)
