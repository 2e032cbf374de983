"""The parquet footers of ``predict --input``: each file's read once, its top-level columns' row groups, and one-line
errors for files that are not parquet or whose footer is damaged."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rapids_engage.footers import as_footers, damaged_parquet, read_footer


def test_a_column_is_found_at_the_top_level_not_as_a_nested_field_of_its_name(tmp_path):
    """A struct column with a field ``t`` before the top-level column ``t``: the row groups are the top-level one's
    (the nested leaf's statistics gave the earliest time of another column)."""
    from rapids_engage.predict import earliest_time

    table = pa.table({"s": pa.array([{"t": 1}, {"t": 2}]), "t": pa.array([100, 50], pa.int64())})
    pq.write_table(table, tmp_path / "a.parquet")
    footer = read_footer(tmp_path / "a.parquet")
    assert footer.names == ("s", "t")  # the file's columns, not its leaves
    assert footer.leaf_index("t") == 1 and footer.leaf_index("s") is None  # a struct is no leaf
    assert earliest_time([footer], "t") == 50


def test_row_groups_are_each_group_s_rows_and_statistics_of_the_column(tmp_path):
    pd.DataFrame({"a": [9, 8, 7, 6, 5], "t": [50, 40, 30, 20, 10]}).to_parquet(tmp_path / "a.parquet", row_group_size=2)
    footer = read_footer(tmp_path / "a.parquet")
    assert footer.names == ("a", "t") and footer.num_rows == 5
    assert [(g, n, s.min, s.max) for g, n, s in footer.row_groups("t")] == [(0, 2, 40, 50), (1, 2, 20, 30), (2, 1, 10, 10)]
    assert as_footers([footer, tmp_path / "a.parquet"])[0] is footer


@pytest.mark.parametrize("error, why", [
    (OSError("Couldn't deserialize thrift: TProtocolException: Invalid data\nDeserializing page header failed.\n"),
     "Couldn't deserialize thrift: TProtocolException: Invalid data"),
    (pa.ArrowInvalid("Parquet magic bytes not found in footer. Either the file is corrupted or this is not a parquet file:"),
     "Parquet magic bytes not found in footer. Either the file is corrupted or this is not a parquet file"),
    (OSError(""), "OSError"),
])
def test_a_damaged_footer_s_error_is_pyarrow_s_first_line(error, why):
    message = str(damaged_parquet(Path("/data/rows.parquet"), error))
    assert message.startswith(f"/data/rows.parquet is a damaged parquet file (its footer cannot be read: {why}): "), message


def test_holds_later_is_false_only_when_every_group_s_statistics_end_at_the_cutoff(tmp_path):
    """A file is skipped by a split's validation side only when its statistics prove it holds no later time: without
    statistics, with a null-only group, with a timestamp column, or without the column, it may hold one."""
    from rapids_engage.footers import holds_later

    pd.DataFrame({"t": [50, 40, 30, 20, 10]}).to_parquet(tmp_path / "a.parquet", row_group_size=2)
    footer = read_footer(tmp_path / "a.parquet")
    assert not holds_later(footer, "t", 50) and holds_later(footer, "t", 49)
    pq.write_table(pa.table({"t": pa.array([10, 20], pa.int64())}), tmp_path / "b.parquet", write_statistics=False)
    pq.write_table(pa.table({"t": pa.array([None, None], pa.int64())}), tmp_path / "c.parquet")
    pd.DataFrame({"t": pd.to_datetime([10, 20], unit="s")}).to_parquet(tmp_path / "d.parquet")
    pd.DataFrame({"u": [10, 20]}).to_parquet(tmp_path / "e.parquet")
    for name in "bcde":
        assert holds_later(read_footer(tmp_path / f"{name}.parquet"), "t", 10**12), name
    pd.DataFrame({"t": pd.Series([], dtype="int64")}).to_parquet(tmp_path / "f.parquet")  # no rows: none later
    assert not holds_later(read_footer(tmp_path / "f.parquet"), "t", 0)
