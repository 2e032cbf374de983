"""Many small input files: each day's parts merged into one file at ingest (:mod:`rapids_engage.ingest.compact`),
the rows in input order; a part too large to merge is kept, the runs of small parts either side of it merged."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rapids_engage.config import TableConfig, TargetSpec
from rapids_engage.ingest import compact, ingest_table, recsys

DAY = 86_400
START = 1_600_000_000 - 1_600_000_000 % DAY  # midnight UTC
SPEC = TableConfig(format="csv", time="ts", time_format="unix", row_id=["id"], user="user", item="item",
                   targets={"click": TargetSpec("clicked", "binary")})


def inputs(tmp_path: Path, files: int = 30, big: int | None = None, big_rows: int = 0) -> dict[str, list[str]]:
    """``files`` CSVs of a row or two per day over 3 days (file ``big``: ``big_rows`` rows on the second day too);
    the ids each day's rows should have, in input order."""
    expected: dict[str, list[str]] = {}
    for f in range(files):
        rows = [(f"f{f}-d{d}-{k}", START + d * DAY + f * 60 + k) for d in range(3) for k in range(1 + (f + d) % 2)]
        rows += [(f"f{f}-big-{k}", START + DAY + 30_000 + k) for k in range(big_rows if f == big else 0)]
        lines = ["id,user,item,ts,clicked", *(f"{i},u{f % 4},i{k % 5},{t},{k % 2}" for k, (i, t) in enumerate(rows))]
        (tmp_path / f"in-{f:03d}.csv").write_text("\n".join(lines) + "\n")
        for i, t in rows:
            expected.setdefault(f"day=2020-09-{13 + (t - START) // DAY:02d}", []).append(i)
    return expected


def day_files(out: Path) -> dict[str, list[str]]:
    """Each day's parquet files by input file (``part-<file>-<k>.parquet``: the file's prefix)."""
    days = sorted((out / "data").glob("day=*"))
    return {d.name: sorted(p.name.rsplit("-", 1)[0] for p in d.glob("*.parquet")) for d in days}


def ids_of(day_dir: Path) -> list[str]:
    """The ids of the rows in ``day_dir``, its files in name order."""
    files = sorted(day_dir.glob("*.parquet"))
    return pa.concat_tables(pq.ParquetFile(p).read(columns=["raw_id"]) for p in files)["raw_id"].to_pylist()


def test_thirty_small_files_leave_one_parquet_file_per_day_in_input_order(tmp_path):
    expected = inputs(tmp_path)
    result = ingest_table(sorted(tmp_path.glob("in-*.csv")), tmp_path / "out", SPEC)
    assert day_files(tmp_path / "out") == {d: ["part-00000"] for d in expected} and len(expected) == 3
    assert result.output_files == 3 and result.output_rows == sum(map(len, expected.values()))
    for day, ids in expected.items():
        assert ids_of(tmp_path / "out" / "data" / day) == ids


def test_a_large_part_is_kept_and_the_small_runs_around_it_merged(tmp_path, monkeypatch):
    expected = inputs(tmp_path, big=12, big_rows=60)
    monkeypatch.setattr(recsys, "compact_parts", partial(compact.compact_parts, max_rows=50))
    result = ingest_table(sorted(tmp_path.glob("in-*.csv")), tmp_path / "out", SPEC)
    files = day_files(tmp_path / "out")
    assert files["day=2020-09-14"] == ["part-00000", "part-00012", "part-00013"]
    assert files["day=2020-09-13"] == files["day=2020-09-15"] == ["part-00000"]
    assert result.output_files == 5
    (big,) = (tmp_path / "out" / "data" / "day=2020-09-14").glob("part-00012-*.parquet")
    assert pq.read_metadata(big).num_rows == 62
    for day, ids in expected.items():
        assert ids_of(tmp_path / "out" / "data" / day) == ids


def test_runs_merge_consecutive_small_parts_under_the_limit():
    assert compact.runs([1, 1, 10, 1, 1, 1], max_rows=10) == [(0, 2), (3, 6)]
    assert compact.runs([6, 6, 6], max_rows=10) == []
    assert compact.runs([4, 4, 4, 4], max_rows=10) == [(0, 2), (2, 4)]
    assert compact.runs([5], max_rows=10) == []


def test_parts_of_other_column_types_are_left_as_they_are(tmp_path):
    """A run of parts whose schemas differ (a column typed otherwise in one part) is left as it is, read as before:
    concatenating them raised and failed the ingest."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rapids_engage.ingest.compact import compact_day

    day = tmp_path / "day=0"
    day.mkdir()
    pq.write_table(pa.table({"a": pa.array([1, 2], pa.int64())}), day / "part-00000.parquet")
    pq.write_table(pa.table({"a": pa.array([None, None], pa.null())}), day / "part-00001.parquet")
    pq.write_table(pa.table({"a": pa.array([3], pa.int64())}), day / "part-00002.parquet")
    pq.write_table(pa.table({"a": pa.array([4], pa.int64())}), day / "part-00003.parquet")
    assert compact_day(day, max_rows=100) == 4
    assert [pq.read_table(p).column("a").to_pylist() for p in sorted(day.glob("*.parquet"))] == [[1, 2], [None, None], [3], [4]]
