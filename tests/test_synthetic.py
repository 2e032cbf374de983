"""The synthetic RecSys 2021 generator: schema, determinism, chunking, rates, truth, raw format."""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rapids_engage.schema import DTYPES, RAW_COLUMNS, TARGETS, TRUE_PROB_PREFIX, TWEET_TYPES
from rapids_engage.synthetic import (
    TARGET_RATES,
    SyntheticSpec,
    day_sizes,
    generate,
    hex_ids,
    hex_to_ids,
    splitmix64,
    write_raw,
)

SMALL = SyntheticSpec(rows=20_000, days=4, seed=7)
DAY0 = 1612396800  # 2021-02-04 00:00 UTC


def read(root: Path, sub: str = "data") -> pd.DataFrame:
    """All rows of ``root/sub`` in file order, without the hive ``day`` column."""
    files = sorted((root / sub).rglob("*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def rce(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-15, 1 - 1e-15)
    ce = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    m = y.mean()
    return float((1 - ce / -(m * np.log(m) + (1 - m) * np.log(1 - m))) * 100)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("small")
    return out, generate(out, SMALL)


@pytest.fixture(scope="module")
def medium(tmp_path_factory) -> tuple[Path, dict]:
    """200k rows: enough for positive rates and oracle RCE."""
    out = tmp_path_factory.mktemp("medium")
    return out, generate(out, SyntheticSpec(rows=200_000, days=7, seed=3))


def test_splitmix64_reference_value():
    # first output of the reference splitmix64 generator seeded with 0
    assert splitmix64(np.array([0], dtype=np.uint64))[0] == np.uint64(0xE220A8397B1DCDAF)


def test_schema_order_and_dtypes(small):
    out, info = small
    frame = pd.read_parquet(out / "data")
    assert list(frame.columns) == [*RAW_COLUMNS, "day"]
    for col in RAW_COLUMNS:
        assert str(frame[col].dtype) == DTYPES[col], col
    files = sorted((out / "data").rglob("*.parquet"))
    assert all(pq.read_schema(f).names == list(RAW_COLUMNS) for f in files)  # no day column inside
    assert [d.name for d in sorted((out / "data").iterdir())] == [f"day=2021-02-0{d}" for d in range(4, 8)]
    assert len(frame) == info["rows"] == SMALL.rows
    assert json.loads((out / "synthetic.json").read_text()) == info
    assert info["spec"]["rows"] == SMALL.rows and info["format"] == "parquet" and info["version"] == 1


def test_column_contents(small):
    frame = read(small[0])
    for col in ("text_tokens", "hashtags", "present_media", "present_links", "present_domains", "language"):
        assert frame[col].notna().all(), col
    assert frame["tweet_id"].is_unique
    assert set(frame["tweet_type"]) == set(TWEET_TYPES)
    assert frame["language"].str.fullmatch(r"[0-9a-f]{32}").all()
    tags = frame["hashtags"][frame["hashtags"] != ""].str.split("\t").explode()
    assert tags.str.fullmatch(r"[0-9a-f]{32}").all()
    assert (frame["present_links"] == "").equals(frame["present_domains"] == "")
    tokens = frame["text_tokens"].str.split("\t")
    assert tokens.str[0].eq("101").all() and tokens.str[-1].eq("102").all()
    assert tokens.str.len().between(5, 120).all()
    assert 0.6 < (frame["present_media"] == "").mean() < 0.8
    assert 0.2 < frame["engagee_follows_engager"].mean() < 0.4
    ts = frame["tweet_timestamp"]
    assert ts.between(DAY0, DAY0 + 4 * 86400 - 1).all() and ts.is_monotonic_increasing
    for col in TARGETS.values():
        engaged = frame[col].dropna()
        assert (engaged > ts[engaged.index]).all()
    # a user's profile is the same on every row, as engaging user and as creator
    profiles = pd.concat(
        [
            frame[[f"{side}_id", f"{side}_follower_count", f"{side}_account_creation"]].set_axis(["id", "f", "a"], axis=1)
            for side in ("engaging_user", "engaged_with_user")
        ]
    )
    assert (profiles.groupby("id").nunique() == 1).all().all()


def test_day_sizes_and_partitions(small):
    assert day_sizes(SyntheticSpec(rows=10, days=4)) == [2, 2, 3, 3]
    frame = pd.read_parquet(small[0] / "data")
    assert frame.groupby("day", observed=True).size().tolist() == day_sizes(SMALL)
    day_start = (pd.to_datetime(frame["day"].astype(str), utc=True) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    assert ((frame["tweet_timestamp"] - day_start).between(0, 86399)).all()


def test_deterministic_per_seed(small, tmp_path):
    again = generate(tmp_path / "a", SMALL)
    assert again == small[1]
    pd.testing.assert_frame_equal(read(tmp_path / "a"), read(small[0]))
    pd.testing.assert_frame_equal(read(tmp_path / "a", "truth"), read(small[0], "truth"))
    other = generate(tmp_path / "b", SyntheticSpec(rows=SMALL.rows, days=SMALL.days, seed=8))
    a, b = read(small[0]), read(tmp_path / "b")
    assert not np.intersect1d(a["tweet_id"], b["tweet_id"]).size
    assert not np.intersect1d(a["engaging_user_id"], b["engaging_user_id"]).size
    assert other["positive_rates"] != small[1]["positive_rates"]


def test_chunking_keeps_distribution(small, tmp_path):
    calls: list[tuple[int, int]] = []
    spec = SyntheticSpec(rows=SMALL.rows, days=SMALL.days, seed=SMALL.seed, chunk_rows=2_000)
    info = generate(tmp_path, spec, on_chunk=lambda done, total: calls.append((done, total)))
    files = sorted((tmp_path / "data").rglob("*.parquet"))
    assert info["files"] == len(files) == 4 * 3  # 5,000 rows a day in chunks of <= 2,000
    assert all(pq.read_metadata(f).num_rows <= 2_000 for f in files)
    assert [c[0] for c in calls] == sorted({c[0] for c in calls}) and calls[-1] == (SMALL.rows, SMALL.rows)
    assert len(calls) == len(files)
    chunked, whole = read(tmp_path), read(small[0])
    assert chunked["tweet_timestamp"].is_monotonic_increasing  # chunks are consecutive time slices
    assert set(chunked["tweet_id"]) == set(whole["tweet_id"])  # ids depend on the row index only
    for t in TARGETS:
        assert abs(info["positive_rates"][t] - small[1]["positive_rates"][t]) < 0.15 * TARGET_RATES[t] + 0.01
    assert abs(chunked["engagee_follows_engager"].mean() - whole["engagee_follows_engager"].mean()) < 0.03


def test_regenerate_removes_stale_parts(tmp_path):
    spec = SyntheticSpec(rows=6_000, days=2, seed=1, chunk_rows=1_000)
    generate(tmp_path, spec)
    info = generate(tmp_path, SyntheticSpec(rows=6_000, days=2, seed=1))
    assert info["files"] == 2
    assert len(list((tmp_path / "data").rglob("*.parquet"))) == len(list((tmp_path / "truth").rglob("*.parquet"))) == 2
    assert not list(tmp_path.rglob("*.part"))


def test_regenerate_removes_what_a_killed_write_left(tmp_path):
    spec = SyntheticSpec(rows=2_000, days=1, seed=1)
    generate(tmp_path, spec)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    left = tmp_path / "data" / f".part-00000.parquet.{dead}.part"
    ours = tmp_path / "data" / f".part-00001.parquet.{os.getppid()}.part"  # a live process's write in progress
    left.write_bytes(b"PAR1 half")
    ours.write_bytes(b"PAR1 half")
    generate(tmp_path, SyntheticSpec(rows=2_000, days=1, seed=2))
    assert not left.exists() and ours.exists()


def test_positive_rates_near_targets(medium):
    out, info = medium
    frame = read(out)
    for t, col in TARGETS.items():
        rate = frame[col].notna().mean()
        assert rate == pytest.approx(info["positive_rates"][t])
        assert abs(rate - TARGET_RATES[t]) < 0.15 * TARGET_RATES[t], (t, rate)
    assert abs(info["positive_rates"]["like"] - 0.40) < 0.05


def test_truth_aligns_and_oracle_has_signal(medium):
    out, _ = medium
    frame, truth = read(out), read(out, "truth")
    assert list(truth.columns) == ["tweet_id", *(TRUE_PROB_PREFIX + t for t in TARGETS)]
    assert truth.dtypes.astype(str).tolist() == ["int64"] + ["float64"] * 4
    np.testing.assert_array_equal(truth["tweet_id"].to_numpy(), frame["tweet_id"].to_numpy())
    for t, col in TARGETS.items():
        p = truth[TRUE_PROB_PREFIX + t].to_numpy()
        y = frame[col].notna().to_numpy().astype(np.float64)
        assert ((p > 0) & (p < 1)).all()
        assert abs(p.mean() - y.mean()) < 0.1 * y.mean() + 0.002  # calibrated
        assert rce(y, p) > 2.0, t


def test_reply_and_quote_depend_on_tweet_type(medium):
    frame, truth = read(medium[0]), read(medium[0], "truth")
    by_type = truth.groupby(frame["tweet_type"])[[TRUE_PROB_PREFIX + "reply", TRUE_PROB_PREFIX + "quote"]].mean()
    assert by_type.loc["Reply", "p_reply"] > 1.5 * by_type.loc["TopLevel", "p_reply"]
    assert by_type.loc["Quote", "p_quote"] > 1.3 * by_type.loc["TopLevel", "p_quote"]


def test_raw_format(small, tmp_path):
    info = write_raw(tmp_path, SMALL)
    assert info["format"] == "raw" and info["rows"] == SMALL.rows
    files = sorted((tmp_path / "raw").glob("part-*.tsv"))
    assert len(files) == info["files"] == 4 and not (tmp_path / "data").exists()
    text = "".join(f.read_text() for f in files)
    assert text.endswith("\n")
    fields = [line.split("\x01") for line in text[:-1].split("\n")]
    assert len(fields) == SMALL.rows and {len(f) for f in fields} == {24}
    raw = pd.DataFrame(fields, columns=list(RAW_COLUMNS))
    canonical = read(small[0])
    for col in ("tweet_id", "engaged_with_user_id", "engaging_user_id"):
        assert raw[col].str.fullmatch(r"[0-9a-f]{32}").all()
        np.testing.assert_array_equal(hex_to_ids(raw[col].to_numpy()), canonical[col].to_numpy())
    for col, dtype in DTYPES.items():
        if dtype == "bool":
            assert set(raw[col]) <= {"true", "false"}
            np.testing.assert_array_equal(raw[col] == "true", canonical[col].to_numpy())
        elif dtype == "Int64":
            np.testing.assert_array_equal(raw[col] == "", canonical[col].isna().to_numpy())
            engaged = canonical[col].notna().to_numpy()
            np.testing.assert_array_equal(raw[col][engaged].astype(np.int64), canonical[col][engaged].to_numpy())
        elif dtype == "str":
            np.testing.assert_array_equal(raw[col].to_numpy(), canonical[col].to_numpy(dtype=object))
    np.testing.assert_array_equal(raw["tweet_timestamp"].astype(np.int64), canonical["tweet_timestamp"])
    pd.testing.assert_frame_equal(read(tmp_path, "truth"), read(small[0], "truth"))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), min_size=1, max_size=20))
def test_hex_ids_round_trip(ids):
    arr = np.array(ids, dtype=np.int64)
    hexed = hex_ids(arr)
    assert all(len(h) == 32 and h == h.lower() for h in hexed)
    np.testing.assert_array_equal(hex_to_ids(hexed), arr)
    assert [int(h[:16], 16) for h in hexed] == arr.view(np.uint64).tolist()


def test_hex_to_ids_reads_uppercase_ids_and_refuses_what_is_not_an_id():
    """The official files spell ids in uppercase hex: they used to give other ids silently, as did a short
    or non-hex string."""
    hexed = hex_ids(np.array([-1, 123456789], dtype=np.int64))
    np.testing.assert_array_equal(hex_to_ids([h.upper() for h in hexed]), [-1, 123456789])
    for bad in ("abc", "z" * 32):
        with pytest.raises(ValueError, match="invalid hex id"):
            hex_to_ids([bad])


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        generate(tmp_path, SMALL, fmt="csv")
    with pytest.raises(ValueError):
        generate(tmp_path, SyntheticSpec(rows=0))
    with pytest.raises(ValueError, match="seed must be >= 0"):  # was numpy's "expected non-negative integer"
        generate(tmp_path, SyntheticSpec(rows=10, seed=-1))


def test_partition_rows_bounds_the_partitions_and_keeps_every_row(tmp_path):
    from rapids_engage.data import DataError, read_events

    generate(tmp_path, SyntheticSpec(rows=6_000, days=2, seed=5))
    whole = read_events(tmp_path / "data")
    largest = max(pq.ParquetFile(f).metadata.num_rows for f in (tmp_path / "data").rglob("*.parquet"))
    bounded = read_events(tmp_path / "data", partition_rows=largest // 3)
    sizes = bounded.map_partitions(len).compute()
    assert bounded.npartitions > whole.npartitions and sizes.max() <= largest // 3 + 1
    key = ["tweet_id", "engaging_user_id"]
    pd.testing.assert_frame_equal(
        bounded.compute().sort_values(key).reset_index(drop=True), whole.compute().sort_values(key).reset_index(drop=True)
    )
    assert read_events(tmp_path / "data", partition_rows=largest).npartitions == whole.npartitions
    with pytest.raises(DataError, match="partition_rows"):
        read_events(tmp_path / "data", partition_rows=0)


def test_min_partition_rows_merges_small_files_and_keeps_every_row(tmp_path):
    from rapids_engage.data import DataError, read_events

    generate(tmp_path, SyntheticSpec(rows=8_000, days=8, seed=6))
    data = tmp_path / "data"
    whole = read_events(data)
    assert whole.npartitions == 8
    key = ["tweet_id", "engaging_user_id"]

    def rows(frame):
        return frame.compute().sort_values(key).reset_index(drop=True)

    merged = read_events(data, min_partition_rows=3_000)
    assert merged.npartitions == 3  # ceil(8,000 / 3,000)
    pd.testing.assert_frame_equal(rows(merged), rows(whole))
    # consecutive files: every merged partition spans a contiguous range of days
    days = merged.map_partitions(lambda p: pd.Series([p["tweet_timestamp"].min(), p["tweet_timestamp"].max()])).compute()
    assert list(days) == sorted(days)
    assert read_events(data, min_partition_rows=3_000, min_partitions=5).npartitions == 5  # a task per worker thread
    assert read_events(data, min_partition_rows=10**9).npartitions == 1
    assert read_events(data, min_partition_rows=10).npartitions == 8  # files never split to reach it
    # partition_rows caps the merge and still splits larger files
    assert read_events(data, min_partition_rows=3_000, partition_rows=2_000).npartitions == 4
    largest = max(pq.ParquetFile(f).metadata.num_rows for f in data.rglob("*.parquet"))
    assert read_events(data, min_partition_rows=10**9, partition_rows=largest // 2).npartitions == 16
    with pytest.raises(DataError, match="min_partition_rows"):
        read_events(data, min_partition_rows=0)


def test_training_input_reads_each_footer_once(tmp_path, count_footer_reads):
    """Training read a table's first footer for its columns, then every footer again to size the partitions:
    on a network filesystem every footer read of thousands of files costs. Each is read once now."""
    from rapids_engage.data import read_events
    from rapids_engage.layout import Layout, Target

    for i in range(3):
        pd.DataFrame({"row_id": range(i * 10, i * 10 + 10), "t": range(10), "click": [0, 1] * 5, "raw_x": ["a"] * 10}
                     ).to_parquet(tmp_path / f"part-{i}.parquet", index=False)
    layout = Layout("table", ("row_id",), "t", (Target("click", "click", "binary"),), raw_ids=("raw_x",))
    reads = count_footer_reads()
    frame = read_events(tmp_path, layout, min_partition_rows=15)
    assert reads == {f"part-{i}.parquet": 1 for i in range(3)}
    assert frame.npartitions == 2 and list(frame.columns) == ["row_id", "t", "click"]  # raw ids never read to train
    reads.clear()
    unsized = read_events(tmp_path, layout)
    assert reads == {f"part-{i}.parquet": 1 for i in range(3)} and unsized.npartitions == 3  # unsized too: every file's types


def test_the_rows_of_a_split_s_validation_side_read_no_footer_again(tmp_path, count_footer_reads):
    """The validation side's frame (``later_than``: files without later times not read) takes the footers read for the
    whole input's, not read again; its partitions are the whole input's."""
    from rapids_engage.data import input_footers, read_events
    from rapids_engage.layout import Layout, Target

    for i in range(3):
        pd.DataFrame({"row_id": range(i * 10, i * 10 + 10), "t": range(i * 10, i * 10 + 10), "click": [0, 1] * 5}
                     ).to_parquet(tmp_path / f"part-{i}.parquet", index=False)
    layout = Layout("table", ("row_id",), "t", (Target("click", "click", "binary"),))
    reads = count_footer_reads()
    footers = input_footers(tmp_path)
    frame = read_events(tmp_path, layout, min_partition_rows=15, footers=footers)
    later = read_events(tmp_path, layout, min_partition_rows=15, footers=footers, later_than=17)
    assert reads == {f"part-{i}.parquet": 1 for i in range(3)}
    assert later.npartitions == frame.npartitions == 2
    assert [len(p) for p in later.partitions] == [0, 20]  # part-0 not read (its times end at 9): an empty partition
    got = later.compute()
    assert got[got["t"] > 17]["row_id"].tolist() == list(range(18, 30))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 60), min_size=2, max_size=12), st.integers(1, 60), st.integers(1, 200), st.integers(1, 4))
def test_merged_partitions_never_exceed_partition_rows(tmp_path_factory, sizes, max_rows, min_rows, min_partitions):
    """README: small files are merged into partitions of about min_partition_rows rows, never more than
    partition_rows. dask merges consecutive partitions by their count, not their rows: days of 90, 90, 10
    and 10 rows with both at 100 were merged into partitions of 180 and 20 rows, past the memory bound."""
    import dask.dataframe as dd

    from rapids_engage.data import sized_partitions

    root = tmp_path_factory.mktemp("sizes")
    files = []
    for i, n in enumerate(sizes):
        files.append(root / f"part-{i:03d}.parquet")
        pd.DataFrame({"i": np.arange(sum(sizes[:i]), sum(sizes[: i + 1]), dtype=np.int64)}).to_parquet(files[-1])
    frame = sized_partitions(dd.read_parquet([str(f) for f in files], blocksize=None), files, max_rows, min_rows, min_partitions)
    lengths = frame.map_partitions(len).compute().tolist()
    assert frame.compute()["i"].tolist() == list(range(sum(sizes)))  # every row, in order
    assert max(lengths) <= max_rows, (sizes, lengths)
    assert len(lengths) >= min(min_partitions, sum(max(n, 1) for n in sizes)), (sizes, lengths)  # a task per thread
    assert 0 not in lengths or 0 in sizes, (sizes, lengths)  # no empty partition made
    if max(sizes) > max_rows:  # a large file's split leaves the small ones as they were or merged
        assert len(lengths) <= max(sum(-(-n // max_rows) if n > max_rows else 1 for n in sizes), min_partitions), (sizes, lengths)


def test_a_file_over_partition_rows_is_split_alone_and_small_files_beside_it_are_merged(tmp_path):
    """README: files of more than partition_rows are split into partitions of at most that many, consecutive
    smaller ones merged. Every file was split by the largest file's count: days of 100, 3, 3, 3, 3 and 50 rows
    at 10 / 20 became 60 partitions, 28 of them empty, the small days never merged."""
    import dask.dataframe as dd

    from rapids_engage.data import sized_partitions

    sizes, files = [100, 3, 3, 3, 3, 50], []
    for i, n in enumerate(sizes):
        files.append(tmp_path / f"part-{i}.parquet")
        pd.DataFrame({"i": np.arange(sum(sizes[:i]), sum(sizes[: i + 1]), dtype=np.int64)}).to_parquet(files[-1])

    def lengths(max_rows, min_rows, min_partitions):
        frame = sized_partitions(dd.read_parquet([str(f) for f in files], blocksize=None), files, max_rows, min_rows,
                                 min_partitions)
        assert frame.compute()["i"].tolist() == list(range(sum(sizes)))  # every row, in order
        return frame.map_partitions(len).compute().tolist()

    assert lengths(10, 20, 2) == [10] * 10 + [6, 6] + [10] * 5
    assert lengths(60, 20, 6) == [50, 50, 3, 3, 3, 53]
    assert lengths(60, 20, 7) == [50, 50, 3, 3, 3, 3, 50]  # never fewer than the worker threads: not merged then


def test_fewer_files_than_min_partitions_are_split_to_reach_it(tmp_path):
    """README: never fewer partitions than the cluster has worker threads. Two files of 100 rows with 8 threads
    came out as 4 partitions (partition_rows 60: each split in two) or 2 (no file over partition_rows): the files
    with the most rows per partition are split further, never into an empty partition; min_partition_rows null
    keeps a partition per file."""
    import dask.dataframe as dd

    from rapids_engage.data import sized_partitions

    sizes, files = [100, 100, 30, 3], []
    for i, n in enumerate(sizes):
        files.append(tmp_path / f"part-{i}.parquet")
        pd.DataFrame({"i": np.arange(sum(sizes[:i]), sum(sizes[: i + 1]), dtype=np.int64)}).to_parquet(files[-1])

    def lengths(n_files, max_rows, min_rows, min_partitions):
        frame = sized_partitions(dd.read_parquet([str(f) for f in files[:n_files]], blocksize=None), files[:n_files],
                                 max_rows, min_rows, min_partitions)
        assert frame.compute()["i"].tolist() == list(range(sum(sizes[:n_files])))  # every row, in order
        return frame.map_partitions(len).compute().tolist()

    assert lengths(2, 60, 20, 8) == [25] * 8
    assert lengths(2, None, 20, 8) == [25] * 8
    assert lengths(2, 200, 20, 3) == [50, 50, 100]  # the first of the largest split first
    assert lengths(4, None, 500, 7) == [33, 33, 34, 50, 50, 30, 3]  # the most rows per piece first; small files whole
    assert lengths(4, 60, 20, 2) == [50, 50, 50, 50, 30, 3]  # enough already: as before
    assert lengths(1, None, 20, 200) == [1] * 100  # a partition per row at most
    assert lengths(2, None, None, 8) == [100, 100]  # null: a partition per file


def test_splitting_to_min_partitions_keeps_partition_rows_no_empty_partition_and_the_fullest_first(tmp_path):
    """The split to reach min_partitions starts from the files' own split by partition_rows, never makes a
    partition of a file of one row (an empty one), and splits first the file with the most rows per partition,
    not the largest (mutation round 6: a 1,000-row file came out in partitions of 500 at partition_rows 100;
    two files of one row as [0, 1, 0, 1]; a 99-row file stayed whole beside partitions of 84)."""
    import dask.dataframe as dd

    from rapids_engage.data import sized_partitions

    def lengths(sizes, max_rows, min_rows, min_partitions):
        root = tmp_path / "-".join(map(str, sizes))
        root.mkdir()
        files = []
        for i, n in enumerate(sizes):
            files.append(root / f"part-{i:02d}.parquet")
            pd.DataFrame({"i": np.arange(sum(sizes[:i]), sum(sizes[: i + 1]), dtype=np.int64)}).to_parquet(files[-1])
        frame = sized_partitions(dd.read_parquet([str(f) for f in files], blocksize=None), files, max_rows, min_rows,
                                 min_partitions)
        assert frame.compute()["i"].tolist() == list(range(sum(sizes)))  # every row, in order
        return frame.map_partitions(len).compute().tolist()

    assert lengths([1000] + [10] * 15, 100, 1000, 17) == [100] * 10 + [10] * 15  # each file as it was: enough
    assert lengths([1, 1], None, 20, 4) == [1, 1]  # fewer rows than min_partitions: a partition per row
    assert lengths([1010, 99, 5], 100, 1000, 14) == [91, 92, 92, 92, 92, 91, 92, 92, 92, 92, 92, 49, 50, 5]


def test_files_of_exactly_partition_rows_still_merge_the_smaller_ones_into_min_partitions(tmp_path):
    """A largest file of exactly partition_rows is not over it: the small files beside it are merged down
    to min_partitions, not left a partition each (mutation round 3: ``>`` taken for ``>=``)."""
    import dask.dataframe as dd

    from rapids_engage.data import sized_partitions

    sizes, files = [10, 2, 2, 2, 2], []
    for i, n in enumerate(sizes):
        files.append(tmp_path / f"part-{i}.parquet")
        pd.DataFrame({"i": np.arange(sum(sizes[:i]), sum(sizes[: i + 1]), dtype=np.int64)}).to_parquet(files[-1])
    frame = sized_partitions(dd.read_parquet([str(f) for f in files], blocksize=None), files, 10, 10, 4)
    assert frame.map_partitions(len).compute().tolist() == [10, 2, 2, 4]
    assert frame.compute()["i"].tolist() == list(range(sum(sizes)))


def test_chunk_rows_sets_the_files_of_a_day_and_draws_another_sample(tmp_path):
    """README: a day of more than synthetic.chunk_rows rows is written one file per chunk, and another value
    gives another sample (it read as a memory knob only: "rows the generator holds at once")."""
    small, whole = tmp_path / "small", tmp_path / "whole"
    generate(small, SyntheticSpec(rows=6_000, days=2, seed=1, chunk_rows=1_000))
    generate(whole, SyntheticSpec(rows=6_000, days=2, seed=1))
    assert len(list((small / "data").rglob("*.parquet"))) == 6 and len(list((whole / "data").rglob("*.parquet"))) == 2
    a, b = pd.read_parquet(small / "data"), pd.read_parquet(whole / "data")
    assert len(a) == len(b) == 6_000 and not a["engaging_user_id"].equals(b["engaging_user_id"])


def test_the_data_line_says_whether_the_synthetic_data_were_cached_or_generated(tmp_path):
    """A rerun after a kill: data whose synthetic.json (written last) is missing are generated again, and the
    log's data line says which (before: the same line either way)."""
    from rapids_engage.config import load_config
    from rapids_engage.data import synthetic_dataset

    cfg = load_config(None, ["synthetic.rows=300", "synthetic.days=2", f"data.cache_dir={tmp_path}"])
    first = synthetic_dataset(cfg)
    assert "(generated; " in first.description
    assert "(by an earlier run: cached; " in synthetic_dataset(cfg).description
    (first.data_dir.parent / "synthetic.json").unlink()  # a run killed while generating
    assert "(generated; " in synthetic_dataset(cfg).description
    # data of another generator version (a release that changed what it plants) are not reused
    info = first.data_dir.parent / "synthetic.json"
    info.write_text(json.dumps({**json.loads(info.read_text()), "version": 0}))
    assert "(generated; " in synthetic_dataset(cfg).description


@pytest.mark.parametrize("text", ['{"spec": {"rows": 300, ', "", "[1, 2]"])
def test_a_damaged_synthetic_json_is_generated_again(tmp_path, text):
    """The cache's synthetic.json cut short or empty (a killed copy of data.cache_dir) stopped every run with
    'error: Expecting value: line 1 column 1 (char 0)', naming no file; one holding an array, an AttributeError
    traceback. A cache heals itself: the data are generated again, and the data line says why.
    (Found by the damaged-files sweep.)"""
    from rapids_engage.config import load_config
    from rapids_engage.data import synthetic_dataset

    cfg = load_config(None, ["synthetic.rows=300", "synthetic.days=2", f"data.cache_dir={tmp_path}"])
    info = synthetic_dataset(cfg).data_dir.parent / "synthetic.json"
    info.write_text(text)
    assert "(generated, its synthetic.json was damaged (" in synthetic_dataset(cfg).description
    assert "(by an earlier run: cached; " in synthetic_dataset(cfg).description


def _digests(root: Path) -> dict[str, str]:
    import hashlib

    return {f.relative_to(root).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(root.rglob("*")) if f.is_file()}


@pytest.mark.parametrize("spec, fmt", [
    (SyntheticSpec(rows=7_003, days=3, seed=1, chunk_rows=1_000), "parquet"),  # rows not a multiple of chunk_rows
    (SyntheticSpec(rows=5_000, days=1, seed=2, chunk_rows=700), "parquet"),
    (SyntheticSpec(rows=5, days=9, seed=3, n_users=3), "parquet"),  # fewer rows than days: days without rows
    (SyntheticSpec(rows=7_003, days=3, seed=1, chunk_rows=1_000), "raw"),
])
def test_workers_write_the_same_bytes_as_one(tmp_path, monkeypatch, spec, fmt):
    """Several threads make chunks at once (a day's history still reaches the next day in order): every file,
    synthetic.json included, is byte for byte what one worker writes; progress comes in order, and no more
    than ``workers`` chunks are drawn ahead of the one reported (the memory bound)."""
    from rapids_engage.synthetic import calibration as synthetic_calibration, run as synthetic_run
    from rapids_engage.synthetic.spec import plan_chunks

    monkeypatch.setattr(synthetic_calibration, "CALIBRATION_ROWS", 5_000)  # the same for both: only faster
    drawn, draw = [], synthetic_run.draw_chunk
    monkeypatch.setattr(synthetic_run, "draw_chunk", lambda w, s, step, mood: drawn.append(step) or draw(w, s, step, mood))
    seen: list[tuple[int, int]] = []
    generate(tmp_path / "one", spec, fmt=fmt, workers=1)
    generate(tmp_path / "many", spec, fmt=fmt, workers=3, on_chunk=lambda done, total: seen.append((done, len(drawn))))
    one, many = _digests(tmp_path / "one"), _digests(tmp_path / "many")
    plan = plan_chunks(spec)
    assert len(one) == 1 + 2 * len(plan) and many == one
    assert len(drawn) == 2 * len(plan)  # every chunk of both runs drawn through the counting wrapper
    assert [done for done, _ in seen] == [s.first_row + s.rows for s in plan]
    assert all(started - len(plan) <= k + 3 for k, (_, started) in enumerate(seen))  # drawn counts both runs


def test_a_failing_chunk_stops_the_threads_and_leaves_no_synthetic_json(tmp_path, monkeypatch):
    """A chunk's error reaches the caller (chunks waiting for the previous day are released, not left hanging)
    and the dataset is not marked complete."""
    from rapids_engage.synthetic import calibration as synthetic_calibration, run as synthetic_run

    monkeypatch.setattr(synthetic_calibration, "CALIBRATION_ROWS", 5_000)
    draw = synthetic_run.draw_chunk

    def failing(w, s, step, mood):
        if step.day == 1 and step.index == 1:
            raise OSError("disk full")
        return draw(w, s, step, mood)

    monkeypatch.setattr(synthetic_run, "draw_chunk", failing)
    with pytest.raises(OSError, match="disk full"):
        generate(tmp_path, SyntheticSpec(rows=6_000, days=3, seed=1, chunk_rows=1_000), workers=4)
    assert not (tmp_path / "synthetic.json").exists()
    with pytest.raises(ValueError, match="workers must be >= 1"):
        generate(tmp_path, SMALL, workers=0)


def test_the_next_day_engages_while_the_previous_day_is_still_being_written(tmp_path, monkeypatch):
    """A day's engagements wait for the previous day's labels, not for its files: a day's last chunk hands its
    labels over before writing, so on many cores writing is off the day-to-day critical path (it held every day
    until its last file was written)."""
    import threading

    from rapids_engage.synthetic import calibration as synthetic_calibration, run as synthetic_run

    monkeypatch.setattr(synthetic_calibration, "CALIBRATION_ROWS", 5_000)
    engaged_day1, engage, write = threading.Event(), synthetic_run.engage, synthetic_run.write_parquet
    waited: list[bool] = []

    def engage_and_tell(w, d, yesterday):
        if d.ts[0] >= DAY0 + 86400:
            engaged_day1.set()
        return engage(w, d, yesterday)

    def write_after_day1(cols, schema, path):
        if path.name == "part-00000.parquet":
            waited.append(engaged_day1.wait(timeout=60))  # a guard against a hang, not a measurement
        write(cols, schema, path)

    monkeypatch.setattr(synthetic_run, "engage", engage_and_tell)
    monkeypatch.setattr(synthetic_run, "write_parquet", write_after_day1)
    generate(tmp_path, SyntheticSpec(rows=2_000, days=2, seed=1), workers=2)
    assert waited == [True]


def test_default_workers_are_the_cores_up_to_eight(monkeypatch):
    """Threads default to the usable cores, at most 8 (each holds a chunk in memory); 1 is serial."""
    from rapids_engage.synthetic import run as synthetic_run

    monkeypatch.setattr(synthetic_run.os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert synthetic_run.resolve_workers(None) == synthetic_run.MAX_DEFAULT_WORKERS == 8
    monkeypatch.setattr(synthetic_run.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert synthetic_run.resolve_workers(None) == 2 and synthetic_run.resolve_workers(16) == 16
    with pytest.raises(ValueError, match="workers must be >= 1"):
        synthetic_run.resolve_workers(0)
