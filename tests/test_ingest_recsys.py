"""Raw RecSys 2021 ingest: exact round trip, gzip, test files, id hashing, corruption fuzzing, strict mode."""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from rapids_engage.ingest import (
    IngestError,
    Quarantine,
    StrictModeError,
    hex_id_to_int64,
    ingest_recsys,
    parse_hex_ids,
)
from rapids_engage.schema import DTYPES, RAW_COLUMNS, TEST_COLUMNS

ID_COLUMNS = ("tweet_id", "engaged_with_user_id", "engaging_user_id")
T0 = 1_612_396_800  # 2021-02-04T00:00:00Z


# ---------------------------------------------------------------- helpers


def hex64(values: np.ndarray) -> list[str]:
    """16 lowercase hex chars of each int64's two's-complement bits."""
    return [format(int(v), "016x") for v in np.asarray(values, np.int64).view(np.uint64)]


def canonical_rows(n: int, seed: int = 0, days: int = 3) -> pd.DataFrame:
    """A canonical frame (schema.DTYPES) with unique tweet ids and some null engagements."""
    rng = np.random.default_rng(seed)
    hexes = lambda k: "\t".join(format(int(x), "032x") for x in rng.integers(0, 2**62, k))  # noqa: E731
    eng = {}
    for col in ("reply_timestamp", "retweet_timestamp", "retweet_with_comment_timestamp", "like_timestamp"):
        vals = T0 + rng.integers(0, days * 86_400, n)
        eng[col] = pd.array(np.where(rng.random(n) < 0.4, vals, 0), dtype="Int64")
        eng[col][rng.random(n) >= 0.4] = pd.NA
    frame = pd.DataFrame(
        {
            "text_tokens": ["\t".join(map(str, rng.integers(100, 30_000, rng.integers(1, 8)))) for _ in range(n)],
            "hashtags": [hexes(rng.integers(0, 3)) for _ in range(n)],
            "tweet_id": rng.choice(np.iinfo(np.int64).max, n, replace=False) * rng.choice([-1, 1], n),
            "present_media": rng.choice(["", "Photo", "Photo\tVideo", "GIF"], n),
            "present_links": [hexes(rng.integers(0, 2)) for _ in range(n)],
            "present_domains": [hexes(rng.integers(0, 2)) for _ in range(n)],
            "tweet_type": rng.choice(["TopLevel", "Retweet", "Quote", "Reply"], n),
            "language": [format(int(x), "032X") for x in rng.integers(0, 5, n)],
            "tweet_timestamp": T0 + rng.integers(0, days * 86_400, n),
            "engaged_with_user_id": rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, n),
            "engaged_with_user_follower_count": rng.integers(0, 10**7, n),
            "engaged_with_user_following_count": rng.integers(0, 10**5, n),
            "engaged_with_user_is_verified": rng.random(n) < 0.1,
            "engaged_with_user_account_creation": rng.integers(1_200_000_000, T0, n),
            "engaging_user_id": rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, n),
            "engaging_user_follower_count": rng.integers(0, 10**4, n),
            "engaging_user_following_count": rng.integers(0, 10**4, n),
            "engaging_user_is_verified": rng.random(n) < 0.05,
            "engaging_user_account_creation": rng.integers(1_200_000_000, T0, n),
            "engagee_follows_engager": rng.random(n) < 0.5,
            **eng,
        }
    )
    return frame[list(RAW_COLUMNS)].astype(DTYPES)


def raw_lines(frame: pd.DataFrame, columns: tuple[str, ...] = RAW_COLUMNS, seed: int = 1) -> list[bytes]:
    """The official raw text form of a canonical frame (no trailing newline)."""
    rng = np.random.default_rng(seed)
    cols = {}
    for col in columns:
        s = frame[col]
        if col in ID_COLUMNS:  # 16 hex chars of the key + 16 random ones
            cols[col] = [h + format(int(x), "016x") for h, x in zip(hex64(s.to_numpy()), rng.integers(0, 2**63, len(s)))]
        elif DTYPES[col] == "bool":
            cols[col] = ["true" if v else "false" for v in s]
        elif DTYPES[col] == "Int64":
            cols[col] = ["" if pd.isna(v) else str(int(v)) for v in s]
        else:
            cols[col] = [str(v) for v in s]
    return ["\x01".join(vals).encode() for vals in zip(*cols.values())]


def write_raw(path: Path, lines: list[bytes], gz: bool = False) -> Path:
    data = b"\n".join(lines) + (b"\n" if lines else b"")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def read_output(out: Path) -> pd.DataFrame:
    """Every ingested row (files read one by one: no hive `day` column), sorted by tweet_id."""
    files = sorted((out / "data").rglob("*.parquet"))
    frames = []
    for f in files:
        part = pd.read_parquet(f)
        assert "day" not in part.columns
        days = pd.to_datetime(part["tweet_timestamp"], unit="s").dt.strftime("%Y-%m-%d")
        assert (days == f.parent.name.removeprefix("day=")).all()
        frames.append(part)
    if not frames:
        return canonical_rows(0)
    return pd.concat(frames, ignore_index=True).sort_values("tweet_id", ignore_index=True)


def expected(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("tweet_id", ignore_index=True)


# ---------------------------------------------------------------- ids


def test_hex_id_round_trip_random_ids_including_negatives():
    rng = np.random.default_rng(7)
    ids = np.concatenate([rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, 5000, dtype=np.int64),
                          np.array([0, -1, 1, np.iinfo(np.int64).min, np.iinfo(np.int64).max])])
    strings = [h + format(int(x), "016x") for h, x in zip(hex64(ids), rng.integers(0, 2**63, len(ids)))]
    np.testing.assert_array_equal(hex_id_to_int64(strings), ids)
    upper = pd.Series([s.upper() for s in strings], index=np.arange(len(ids)) * 3)
    got = hex_id_to_int64(upper)
    assert got.dtype == np.int64 and (got.index == upper.index).all()
    np.testing.assert_array_equal(got.to_numpy(), ids)
    np.testing.assert_array_equal(hex_id_to_int64(np.array(strings, dtype="S32")), ids)


def test_hex_id_invalid_detected():
    good = "0123456789abcdef" * 2
    keys, ok = parse_hex_ids([good, good[:-1], good + "0", "g" + good[1:], good[:-1] + " ", "", None])
    assert ok.tolist() == [True, False, False, False, False, False, False]
    assert keys[0] == 0x0123456789ABCDEF
    with pytest.raises(ValueError, match="position 1"):
        hex_id_to_int64([good, "z" * 32])


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("block_size", [300, 64 << 20])
def test_round_trip_exact(tmp_path, gz, block_size):
    frames = [canonical_rows(150, seed=s) for s in (1, 2)]
    inputs = [write_raw(tmp_path / f"part-{i}.tsv{'.gz' if gz else ''}", raw_lines(f, seed=i), gz) for i, f in enumerate(frames)]
    progress = []
    res = ingest_recsys([str(p) for p in inputs], tmp_path / "out", block_size=block_size,
                        on_progress=lambda d, t: progress.append((d, t)))
    assert (res.input_rows, res.ingested_rows, res.quarantined_rows, res.files) == (300, 300, 0, 2)
    assert res.quarantine_counts == {} and res.empty_files == [] and res.test_files == []
    assert progress and progress[-1][0] == progress[-1][1]
    want = expected(pd.concat(frames, ignore_index=True))
    pd.testing.assert_frame_equal(read_output(tmp_path / "out"), want, check_exact=True)
    assert not (tmp_path / "out" / "quarantine.parquet").exists()
    info = json.loads((tmp_path / "out" / "ingest.json").read_text())
    assert info["ingested_rows"] == 300 and sum(info["rows_per_day"].values()) == 300
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "part-0.tsv" + (".gz" if gz else ""), "part-1.tsv" + (".gz" if gz else "")]


def test_test_files_have_20_columns_and_null_engagements(tmp_path):
    frame = canonical_rows(80, seed=3)
    path = write_raw(tmp_path / "test.tsv", raw_lines(frame, TEST_COLUMNS))
    res = ingest_recsys(str(tmp_path / "*.tsv"), tmp_path / "out")
    assert res.ingested_rows == 80 and res.test_files == [str(path)]
    want = frame.copy()
    for col in RAW_COLUMNS[20:]:
        want[col] = pd.array([pd.NA] * len(want), dtype="Int64")
    got = read_output(tmp_path / "out")
    assert list(got.columns) == list(RAW_COLUMNS)
    pd.testing.assert_frame_equal(got, expected(want), check_exact=True)


def test_carriage_return_and_blank_lines(tmp_path):
    """A "\\r" inside a field is data (the fallback field splitter), blank lines are skipped."""
    frame = canonical_rows(20, seed=8)
    frame.loc[3, "text_tokens"] = "101\r\t102"
    lines = raw_lines(frame)
    lines.insert(5, b"")
    res = ingest_recsys([write_raw(tmp_path / "cr.tsv", lines)], tmp_path / "out", block_size=1000)
    assert (res.input_rows, res.ingested_rows) == (20, 20)
    pd.testing.assert_frame_equal(read_output(tmp_path / "out"), expected(frame), check_exact=True)


@pytest.mark.parametrize("columns", [RAW_COLUMNS, TEST_COLUMNS])
def test_windows_line_ends_are_line_ends(tmp_path, columns):
    """A file with "\\r\\n" line ends (written on Windows) had every row quarantined: the last field kept the
    "\\r" (a training file's like_timestamp '\\r', a test file's engaging_user_follows 'false\\r')."""
    frame = canonical_rows(20, seed=9)
    lines = [line + b"\r" for line in raw_lines(frame, columns)]
    res = ingest_recsys([write_raw(tmp_path / "crlf.tsv", lines)], tmp_path / "out", block_size=1000)
    assert (res.input_rows, res.ingested_rows) == (20, 20)
    for col in RAW_COLUMNS[len(columns):]:  # a test file's engagements: null
        frame[col] = pd.array([pd.NA] * len(frame), dtype="Int64")
    pd.testing.assert_frame_equal(read_output(tmp_path / "out"), expected(frame), check_exact=True)


def test_a_windows_file_whose_first_block_ends_in_its_carriage_return_is_read_by_lines(tmp_path):
    """The first block of a "\\r\\n" file that ended between the "\\r" and the "\\n" of its first line (a
    first line of block_size - 1 bytes) held a "\\r" and no "\\n": taken for old Mac line ends, every "\\r\\n"
    became two (found by mutation round 3)."""
    frame = canonical_rows(20, seed=13)
    short = len(raw_lines(frame.iloc[:1])[0])
    frame.loc[0, "text_tokens"] += "\t" + "1" * (999 - short - 1)  # the first line: 999 bytes, its "\\r" the 1000th
    lines = [line + b"\r" for line in raw_lines(frame)]
    assert len(lines[0]) == 1000
    lines[5] = lines[5].replace(b"\x01", b"\x01xyz\x01", 1)  # a bad row on line 6: 25 fields
    res = ingest_recsys([write_raw(tmp_path / "crlf.tsv", lines)], tmp_path / "out", block_size=1000)
    assert (res.input_rows, res.ingested_rows) == (20, 19)
    assert pd.read_parquet(tmp_path / "out" / "quarantine.parquet")["line"].tolist() == [6]  # said 11: lines doubled
    pd.testing.assert_frame_equal(read_output(tmp_path / "out"), expected(frame.drop(index=5)), check_exact=True)


def test_mixed_line_ends_keep_the_last_field_of_each_line(tmp_path):
    """A file whose lines end some in "\\r\\n", some in "\\n" (appended to on two systems): only the lines
    that have a "\\r" lose it (mutation round 3: every last field cut by one when any line had one)."""
    frame = canonical_rows(20, seed=11)
    lines = [line + b"\r" if i % 2 else line for i, line in enumerate(raw_lines(frame))]
    res = ingest_recsys([write_raw(tmp_path / "mixed.tsv", lines)], tmp_path / "out", block_size=1000)
    assert (res.input_rows, res.ingested_rows) == (20, 20)
    pd.testing.assert_frame_equal(read_output(tmp_path / "out"), expected(frame), check_exact=True)


def test_a_first_line_longer_than_the_block_does_not_make_a_carriage_return_a_line_end(tmp_path):
    """Old Mac line ends are told by the first block alone, and only when it holds a "\\r": a first line longer
    than the block, with a "\\r" in a field past it, is a line of a "\\n" file, the "\\r" data (mutation round 3)."""
    frame = canonical_rows(20, seed=12)
    frame.loc[0, "text_tokens"] = "\t".join(["101"] * 375) + "\r\t" + "\t".join(["102"] * 375)
    res = ingest_recsys([write_raw(tmp_path / "long.tsv", raw_lines(frame))], tmp_path / "out", block_size=1000)
    assert (res.input_rows, res.ingested_rows) == (20, 20)
    pd.testing.assert_frame_equal(read_output(tmp_path / "out"), expected(frame), check_exact=True)


def test_bad_rows_quarantined_with_location(tmp_path):
    frame = canonical_rows(10, seed=4)
    lines = raw_lines(frame)
    fields = [line.split(b"\x01") for line in lines]
    fields[1][2] = b"xyz"  # bad id
    fields[2][10] = b"12a"  # bad int
    fields[3][12] = b"yes"  # bad bool
    fields[4][8] = b""  # missing tweet timestamp
    fields[5][23] = b"1.5"  # bad engagement timestamp
    fields[6][0] = b"\xff\xfe"  # invalid UTF-8
    fields[7] = fields[7][:-1]  # 23 fields
    lines = [b"\x01".join(f) for f in fields]
    lines.insert(3, b"")  # an empty line: not a row, but counts for line numbers
    path = write_raw(tmp_path / "bad.tsv", lines)
    out = tmp_path / "out"
    res = ingest_recsys([path], out)
    assert (res.input_rows, res.ingested_rows, res.quarantined_rows) == (10, 3, 7)
    assert res.quarantine_counts == {"field_count": 1, "invalid_bool": 1, "invalid_id": 1, "invalid_int": 1,
                                     "invalid_timestamp": 2, "invalid_utf8": 1}
    q = pd.read_parquet(out / "quarantine.parquet").sort_values("line", ignore_index=True)
    assert q["file"].eq(str(path)).all()
    assert q["line"].tolist() == [2, 3, 5, 6, 7, 8, 9]
    assert q["column"].fillna("-").tolist() == ["tweet_id", "engaged_with_user_follower_count", "engaged_with_user_is_verified",
                                                "tweet_timestamp", "like_timestamp", "text_tokens", "-"]
    assert q["raw"].str.len().max() <= 1000 and "\\xff" in q["raw"][5]
    keep = [0, 8, 9]
    pd.testing.assert_frame_equal(read_output(out), expected(frame.iloc[keep]), check_exact=True)


def test_strict_mode_raises_file_line_column(tmp_path):
    lines = raw_lines(canonical_rows(5, seed=5))
    fields = lines[3].split(b"\x01")
    fields[17] = b"maybe"
    lines[3] = b"\x01".join(fields)
    path = write_raw(tmp_path / "s.tsv", lines)
    with pytest.raises(StrictModeError, match=rf"^{path}:4:engaging_user_is_verified: invalid_bool"):
        ingest_recsys([path], tmp_path / "out", strict=True)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["s.tsv"]  # the temp dir is gone too


def test_empty_and_missing_files(tmp_path):
    empty = write_raw(tmp_path / "empty.tsv", [])
    blank = tmp_path / "blank.tsv"
    blank.write_bytes(b"\n\n")
    good = write_raw(tmp_path / "good.tsv.gz", raw_lines(canonical_rows(5, seed=6)), gz=True)
    res = ingest_recsys([empty, blank, good], tmp_path / "out")
    assert res.files == 3 and res.input_rows == res.ingested_rows == 5
    assert res.empty_files == [str(empty), str(blank)]
    with pytest.raises(IngestError, match="nope.tsv"):
        ingest_recsys([good, tmp_path / "nope.tsv"], tmp_path / "out2")
    with pytest.raises(IngestError, match="no input files match"):
        ingest_recsys(str(tmp_path / "*.csv"), tmp_path / "out2")
    broken = tmp_path / "broken.tsv.gz"
    broken.write_bytes(gzip.compress(b"\n".join(raw_lines(canonical_rows(50, seed=6))))[:-40])
    with pytest.raises(IngestError, match="broken.tsv.gz: unreadable"):
        ingest_recsys([good, broken], tmp_path / "out2")
    assert not (tmp_path / "out2").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left
    # re-ingest over an earlier output replaces it; a foreign directory is refused
    res = ingest_recsys([good], tmp_path / "out")
    assert res.input_rows == 5
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "keep.txt").write_text("x")
    with pytest.raises(IngestError, match="refusing"):
        ingest_recsys([good], tmp_path / "foreign")


def test_quarantine_spills_and_writes_jsonl(tmp_path):
    q = Quarantine(spill_dir=tmp_path, spill_rows=3)
    for i in range(7):
        q.add("f.tsv", i + 1, None if i % 2 else "tweet_id", "invalid_id" if i % 2 else "field_count", b"\xff" + b"x" * 2000)
    assert q.total == 7 and q.counts == {"field_count": 4, "invalid_id": 3}
    q.write(tmp_path / "q.parquet")
    q.write(tmp_path / "q.jsonl")
    table = pd.read_parquet(tmp_path / "q.parquet")
    assert table["line"].tolist() == list(range(1, 8)) and table["raw"].str.len().max() == 1000
    rows = [json.loads(x) for x in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rows] == list(range(1, 8)) and rows[1]["column"] is None
    assert rows[0]["raw"].startswith("\\xffxxx")
    q.cleanup()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.jsonl", "q.parquet"]



def test_day_writer_keeps_every_row_through_row_groups_rollovers_and_a_full_buffer(tmp_path):
    """Days flushed many times (row groups of 2 rows, a buffer limit of 1 byte) and rolled over to a new part
    every 3 rows: every row is written once, and rows_per_day counts them all."""
    import pyarrow as pa

    from rapids_engage.ingest.writer import DayWriter

    schema = pa.schema([("t", pa.int64()), ("v", pa.int64())])
    writer = DayWriter(tmp_path / "d", schema, rows_per_file=3, row_group_rows=2, max_buffer_bytes=1, time_column="t")
    times = [10, 86_400 + 5, 20, 30, 86_400 + 7, 40, 50, 60, 70]
    for start in range(0, len(times), 2):
        part = times[start : start + 2]
        writer.write(pa.table({"t": part, "v": list(range(start, start + len(part)))}, schema=schema))
    writer.close()
    parts = sorted((tmp_path / "d").rglob("*.parquet"))
    assert writer.rows_per_day == {"1970-01-01": 7, "1970-01-02": 2} and writer.files == len(parts) == 4
    assert all(pq.read_metadata(p).num_rows <= 3 for p in parts)
    assert sorted(pd.concat([pd.read_parquet(p) for p in parts]).v) == list(range(len(times)))
    assert not [p for p in (tmp_path / "d").rglob("*") if p.name.endswith(".tmp")]


# ---------------------------------------------------------------- fuzzing

BASE = canonical_rows(12, seed=11)
BASE_LINES = {24: raw_lines(BASE), 20: raw_lines(BASE, TEST_COLUMNS)}
BAD_VALUES = [b"", b"12a", b"-5", b"1e3", b"9" * 19, b" 1", b"True", b"yes", b"0x1f", b"\xff", b"\xc3\x28", b"z" * 32, b"ab"]

corruption = st.one_of(
    st.tuples(st.just("drop_sep"), st.integers(0, 30)),
    st.tuples(st.just("dup_sep"), st.integers(0, 30)),
    st.tuples(st.just("junk"), st.integers(0, 10**6), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("bad_utf8"), st.integers(0, 10**6), st.sampled_from([b"\xff", b"\xc3\x28", b"\xe2\x82", b"\x80"])),
    st.tuples(st.just("truncate"), st.integers(0, 10**6)),
    st.tuples(st.just("bad_field"), st.integers(0, 23), st.sampled_from(BAD_VALUES)),
)


def corrupt(line: bytes, how: tuple) -> bytes:
    kind = how[0]
    if kind in ("drop_sep", "dup_sep"):
        seps = [i for i, b in enumerate(line) if b == 1]
        i = seps[how[1] % len(seps)]
        return line[:i] + line[i + 1:] if kind == "drop_sep" else line[:i] + b"\x01" + line[i:]
    if kind == "junk":
        i = how[1] % len(line)
        return line[:i] + how[2] + line[i + len(how[2]):]
    if kind == "bad_utf8":
        i = how[1] % len(line)
        return line[:i] + how[2] + line[i:]
    if kind == "truncate":
        return line[: how[1] % len(line)]
    fields = line.split(b"\x01")
    fields[how[1] % len(fields)] = how[2]
    return b"\x01".join(fields)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_fields=st.sampled_from([24, 20]),
    corruptions=st.dictionaries(st.integers(0, len(BASE) - 1), corruption, max_size=(len(BASE) - 1) // 2),
    block_size=st.sampled_from([1, 200, 1 << 20]),
    gz=st.booleans(),
    blank_lines=st.booleans(),
)
@example(n_fields=24, corruptions={0: ("junk", 1, b"\r")}, block_size=200, gz=False, blank_lines=False)  # a "\r" in
# the first line, longer than the block: data of a "\n" file, not an old Mac line end (13 rows were read of 12)
def test_fuzz_corrupted_files(n_fields, corruptions, block_size, gz, blank_lines):
    lines = list(BASE_LINES[n_fields])
    for i, how in corruptions.items():
        lines[i] = corrupt(lines[i], how)
    if blank_lines:
        lines = [x for line in lines for x in (line, b"")]
    with tempfile.TemporaryDirectory() as tmp:
        path = write_raw(Path(tmp) / "in.tsv", lines, gz)
        res = ingest_recsys([path], Path(tmp) / "out", block_size=block_size)
        non_empty = sum(1 for part in b"\n".join(lines).split(b"\n") if part)
        assert res.input_rows == non_empty
        assert res.input_rows == res.ingested_rows + res.quarantined_rows
        assert sum(res.quarantine_counts.values()) == res.quarantined_rows
        got = read_output(Path(tmp) / "out")
        assert len(got) == res.ingested_rows
        untouched = [i for i in range(len(BASE)) if i not in corruptions]
        want = BASE.iloc[untouched].copy()
        if n_fields == 20:
            for col in RAW_COLUMNS[20:]:
                want[col] = pd.array([pd.NA] * len(want), dtype="Int64")
        merged = got[got["tweet_id"].isin(want["tweet_id"])].drop_duplicates("tweet_id")
        pd.testing.assert_frame_equal(merged.reset_index(drop=True), expected(want), check_exact=True)
        for reason in res.quarantine_counts:
            event(reason)
        if res.quarantined_rows:
            q = pq.read_table(Path(tmp) / "out" / "quarantine.parquet").to_pandas()
            assert len(q) == res.quarantined_rows
            assert q["file"].eq(str(path)).all() and q["line"].between(1, len(b"\n".join(lines).split(b"\n"))).all()
            assert q["reason"].isin(["field_count", "invalid_utf8", "invalid_id", "invalid_int", "invalid_bool",
                                     "invalid_timestamp"]).all()


def test_hex_ids_parse_from_a_multi_chunk_arrow_series():
    import pandas as pd

    from rapids_engage.ingest import hex_id_to_int64

    parts = [pd.Series(["00" * 16] * 3, dtype="string[pyarrow]"), pd.Series(["ab" * 16] * 2, dtype="string[pyarrow]")]
    joined = pd.concat(parts, ignore_index=True)  # backed by a chunked arrow array
    assert list(hex_id_to_int64(joined)) == list(hex_id_to_int64(pd.Series(list(joined), dtype="string[pyarrow]")))


def test_records_in_process_give_the_canonical_rows_of_the_file_ingest(tmp_path):
    from rapids_engage.ingest.recsys_records import RecsysRecordReader

    frame = canonical_rows(30, seed=4)
    lines = raw_lines(frame)  # 24 fields: labelled rows
    ingest_recsys(write_raw(tmp_path / "a.tsv", lines), tmp_path / "out")
    want = read_output(tmp_path / "out")
    rows, rejected = RecsysRecordReader().read([line.decode() for line in lines])
    assert rejected.empty and rows.index.tolist() == list(range(30))
    got = rows.sort_values("tweet_id", ignore_index=True)
    pd.testing.assert_frame_equal(got[want.columns], want, check_dtype=True)
    # bytes lines, and a DataFrame of the raw fields, read alike; unknown fields and a lone dict are errors
    as_bytes, _ = RecsysRecordReader().read(lines)
    pd.testing.assert_frame_equal(as_bytes, rows)
    fields = pd.DataFrame([dict(zip(RAW_COLUMNS, line.decode().split("\x01"))) for line in lines])
    from_frame, _ = RecsysRecordReader().read(fields)
    pd.testing.assert_frame_equal(from_frame, rows)
    with pytest.raises(TypeError, match=r"field\(s\) \['tweet'\] are not RecSys 2021 fields"):
        RecsysRecordReader().read([{"tweet": "x"}])
    with pytest.raises(TypeError, match="wrap one in a list"):
        RecsysRecordReader().read({"tweet_id": "x"})
    # bad records come back with their position and the ingest's reason; the others are rows
    short = lines[1].decode().rsplit("\x01", 5)[0]
    rows, rejected = RecsysRecordReader().read([lines[0].decode(), short, "  ", lines[2].decode()])
    assert rows.index.tolist() == [0, 3]
    assert rejected[["record", "reason"]].values.tolist() == [[1, "field_count"], [2, "field_count"]]


def test_records_of_test_rows_and_labelled_rows_read_in_one_batch():
    """A batch of raw lines was read as a file is, of one kind by majority: a test row (20 fields) among labelled
    ones (24) was rejected (`field_count`, "expected 24 fields, got 20"), and a labelled one among test rows, though
    the README says predict_records takes either, and a batch of dicts mixed them."""
    from rapids_engage.ingest.recsys_records import RecsysRecordReader

    lines = [line.decode() for line in raw_lines(canonical_rows(3, seed=5))]
    test = [line.split("\x01", len(TEST_COLUMNS))[: len(TEST_COLUMNS)] for line in lines]
    test = ["\x01".join(fields) for fields in test]
    alone = pd.concat([RecsysRecordReader().read([line])[0] for line in (lines[0], test[1], lines[2])], ignore_index=True)
    for batch in ([lines[0], test[1], lines[2]], [test[0], lines[1], test[2]]):
        rows, rejected = RecsysRecordReader().read(batch)
        assert rejected.empty and rows.index.tolist() == [0, 1, 2]
        want = pd.concat([RecsysRecordReader().read([line])[0] for line in batch], ignore_index=True)
        pd.testing.assert_frame_equal(rows.reset_index(drop=True), want)
    assert alone["like_timestamp"].isna().tolist()[1]  # a test row's engagements are null
