"""Small parquet files read a merged partition per task (:mod:`rapids_engage.grouped_read`): the frame the per-file
read and its merge gave (partitions, rows, order, dtypes), without a task per file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rapids_engage import partition_sizing
from rapids_engage.data import DataError, input_footers, read_events
from rapids_engage.layout import Layout, Target

LAYOUT = Layout("table", ("row_id",), "t", (Target("click", "click", "binary"),))


def _part(i: int, n: int = 10) -> pd.DataFrame:
    start = i * n
    return pd.DataFrame({
        "row_id": np.arange(start, start + n, dtype=np.int64), "t": np.arange(start, start + n, dtype=np.int64),
        "click": np.resize(np.array([0, 1], dtype=np.int8), n), "score": np.linspace(0, 1, n),
        "user": pd.array([None if k % 3 == 0 else start + k for k in range(n)], dtype="Int64"),
        "lang": pd.array([None if k % 4 == 0 else f"l{(start + k) % 5}" for k in range(n)], dtype="string"),
        "flag": np.resize(np.array([True, False]), n), "kind": pd.Categorical([f"k{(start + k) % 3}" for k in range(n)]),
    })


def _write(folder, parts) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(parts):
        part.to_parquet(folder / f"part-{i:03d}.parquet", index=False)


def _per_file(monkeypatch):
    """read_events as before grouped reads: a task per file, then merged."""
    monkeypatch.setattr("rapids_engage.grouped_read.file_groups", lambda *a: None)


def _partitions(frame) -> list[pd.DataFrame]:
    return [p.reset_index(drop=True) for p in frame.to_delayed() for p in [p.compute(scheduler="sync")]]


@pytest.mark.parametrize("kwargs", [dict(min_partition_rows=55), dict(min_partition_rows=40, partition_rows=45, min_partitions=3),
                                    dict(min_partition_rows=55, later_than=200), dict(min_partition_rows=25, later_than=310)])
def test_many_small_files_give_the_per_file_read_s_frame_in_a_task_per_partition(tmp_path, monkeypatch, kwargs):
    _write(tmp_path, [_part(i) for i in range(40)])
    footers = input_footers(tmp_path)
    grouped = read_events(tmp_path, LAYOUT, footers=footers, **kwargs)
    assert len(grouped.__dask_graph__()) <= 2 * grouped.npartitions  # was a read task per file, and the merges
    got = _partitions(grouped)
    _per_file(monkeypatch)
    before = read_events(tmp_path, LAYOUT, footers=footers, **kwargs)
    want = _partitions(before)
    assert grouped.npartitions == before.npartitions and [len(p) for p in got] == [len(p) for p in want]
    pd.testing.assert_series_equal(grouped._meta.dtypes, before._meta.dtypes)
    for g, w in zip(got, want):
        pd.testing.assert_frame_equal(g, w)
    if "later_than" in kwargs:  # files without later rows stand as empty partitions, as before
        assert 0 in [len(p) for p in got]


def test_a_file_lacking_a_column_is_named(tmp_path):
    """Was a KeyError traceback once computed ("['lang'] not in index")."""
    _write(tmp_path, [_part(i).drop(columns=["lang"]) if i == 7 else _part(i) for i in range(12)])
    with pytest.raises(DataError, match=r"part-007\.parquet: missing column\(s\) \['lang'\], which .*part-000\.parquet has"):
        read_events(tmp_path, LAYOUT, min_partition_rows=55)


def test_key_value_directories_are_read_per_file_as_before(tmp_path, monkeypatch):
    """A ``day=`` directory's column (dask's categorical of every day) stays dask's; files in and out of such
    directories are still refused."""
    for d in range(3):
        _write(tmp_path / "data" / f"day=2021-02-0{d + 1}", [_part(d * 4 + i) for i in range(4)])
    got = read_events(tmp_path / "data", LAYOUT, min_partition_rows=30)
    assert str(got._meta.dtypes["day"]) == "category" and got.npartitions == 4
    _per_file(monkeypatch)
    pd.testing.assert_frame_equal(got.compute(), read_events(tmp_path / "data", LAYOUT, min_partition_rows=30).compute())
    _part(99).to_parquet(tmp_path / "data" / "late.parquet", index=False)
    with pytest.raises(DataError, match="parquet files of two layouts"):
        read_events(tmp_path / "data", LAYOUT, min_partition_rows=30)


def test_groups_are_dask_s_merge_of_consecutive_files():
    from rapids_engage.grouped_read import file_groups

    assert file_groups([10] * 8, None, 30, 1) == [range(0, 2), range(2, 5), range(5, 8)]  # ceil(80 / 30) partitions
    assert file_groups([10] * 8, None, None, 1) is None  # no merge: a partition per file
    assert file_groups([10, 50, 10], 40, 30, 1) is None  # a file split: read per file
    assert file_groups([10] * 3, None, 30, 4) is None  # fewer files than partitions wanted


def test_merged_rows_agree_with_the_groups():
    from rapids_engage.grouped_read import file_groups

    rows = [3, 9, 1, 7, 7, 2, 8, 5]
    groups = file_groups(rows, None, 12, 1)
    assert [sum(rows[i] for i in g) for g in groups] == partition_sizing._merged_rows(rows, len(groups))


def _with_file_7(folder, **columns) -> None:
    """12 files of :func:`_part`, file 7's ``columns`` replaced (each a function of its frame)."""
    parts = [_part(i) for i in range(12)]
    parts[7] = parts[7].assign(**{c: f(parts[7]) for c, f in columns.items()})
    _write(folder, parts)


def _read_new_rows(folder, **kwargs):
    from rapids_engage.predict import input_footers as predict_footers, read_new_rows

    return read_new_rows(folder, predict_footers(folder), LAYOUT, **kwargs)


#: Every read path of a parquet input: merged groups, a file per partition, split files, a split's validation side
#: (files without later rows not read), predict --input's per-file and merged reads.
READS = {
    "grouped": lambda folder: read_events(folder, LAYOUT, min_partition_rows=55),
    "per_file": lambda folder: read_events(folder, LAYOUT),
    "split": lambda folder: read_events(folder, LAYOUT, partition_rows=4, min_partition_rows=None),
    "split_and_merged": lambda folder: read_events(folder, LAYOUT, partition_rows=4, min_partition_rows=3),
    "later_than": lambda folder: read_events(folder, LAYOUT, later_than=35),  # files 0-2 not read
    "predict_per_file": lambda folder: _read_new_rows(folder),
    "predict_grouped": lambda folder: _read_new_rows(folder, min_partition_rows=55),
}


@pytest.mark.parametrize("read", READS)
@pytest.mark.parametrize("column, value, got", [
    ("t", lambda p: p["t"] + 0.5, "double"),  # was truncated to 70, 71, ... (or an ArrowInvalid once computed)
    ("t", lambda p: p["t"].astype(str), "large_string"),  # was parsed into numbers
    ("t", lambda p: pd.to_datetime(p["t"], unit="s"), r"timestamp\[.*\]"),  # was its microseconds
    ("row_id", lambda p: p["row_id"].astype(np.uint64) + np.uint64(2**63), "uint64"),  # was an ArrowInvalid
])
def test_a_file_whose_column_type_would_change_its_values_is_named(tmp_path, column, value, got, read):
    """On every read path alike: a file per partition read file 7 in its own type (floats, text, timestamps in a
    partition of a frame of int64 ``t``), without a word, whether it errors depending on the partition settings."""
    _with_file_7(tmp_path, **{column: value})
    with pytest.raises(DataError, match=rf"part-007\.parquet: column '{column}' is {got}, but .*part-000\.parquet has it as "
                                        r"int64: a cast would change or lose its values"):
        READS[read](tmp_path)


def test_a_first_file_unlike_all_the_others_is_the_one_named(tmp_path):
    """Only the first file holding text: the second file was named (``part-001 ... is double, but part-000 has it as
    large_string``), a file with nothing wrong."""
    parts = [_part(i) for i in range(12)]
    parts[0] = parts[0].assign(score=parts[0]["score"].astype(str))
    _write(tmp_path, parts)
    with pytest.raises(DataError, match=r"part-000\.parquet: column 'score' is large_string, but the 11 other files have "
                                        r"it as double \(every file is read into the first file's types\)"):
        read_events(tmp_path, LAYOUT, min_partition_rows=55)


@pytest.mark.parametrize("read", READS)
def test_types_that_widen_to_the_first_file_s_are_read_exactly(tmp_path, read):
    """int32 into int64, float32 into float64, an all-null column and an integer / bool column with nulls (this
    file's pandas nullable types; a null-typed column was an IntCastingNaNError once computed, as were nulls in a
    numpy int64 column of the first file), on every read path alike (a file per partition read file 7 as int32,
    float32, ... in a frame of int64, float64)."""
    _with_file_7(tmp_path, row_id=lambda p: p["row_id"].astype(np.int32), score=lambda p: p["score"].astype(np.float32),
                 lang=lambda p: pd.Series([None] * len(p), dtype=object), flag=lambda p: pd.array([None] + [True] * 9, dtype="boolean"),
                 click=lambda p: pd.array([None] + [1] * 9, dtype="Int8"))
    frame = READS[read](tmp_path)
    parts = _partitions(frame)
    assert all(p["row_id"].dtype == np.int64 and p["score"].dtype == np.float64 for p in parts)
    got = pd.concat(parts, ignore_index=True)
    skipped = 3 if read == "later_than" else 0  # files of no row above 35: empty partitions
    want = pd.concat([pd.read_parquet(f) for f in sorted(tmp_path.glob("*.parquet"))[skipped:]], ignore_index=True)
    seven = range(70 - 10 * skipped, 80 - 10 * skipped)
    assert got["row_id"].tolist() == list(range(10 * skipped, 120))
    np.testing.assert_array_equal(got["score"].to_numpy(), want["score"].to_numpy())
    assert got["lang"][seven].isna().all() and got["lang"].drop(seven).equals(want["lang"].drop(seven).astype(got["lang"].dtype))
    for column in ("flag", "click"):
        assert got[column].isna().tolist() == [i == seven[0] for i in range(len(want))]
        assert got[column].dropna().astype(int).tolist() == want[column].dropna().astype(int).tolist()
    if not skipped and read != "grouped":  # the same frame as the merged groups' read
        pd.testing.assert_frame_equal(got, pd.concat(_partitions(READS["grouped"](tmp_path)), ignore_index=True))


@pytest.mark.parametrize("read", ["per_file", "split", "later_than"])
def test_a_file_lacking_a_column_is_named_on_every_path(tmp_path, read):
    """A file per partition was a KeyError traceback once computed (predict reads the columns all files share)."""
    _write(tmp_path, [_part(i).drop(columns=["lang"]) if i == 7 else _part(i) for i in range(12)])
    with pytest.raises(DataError, match=r"part-007\.parquet: .*\['lang'\]"):
        READS[read](tmp_path)


def test_whole_numbers_in_int64_read_into_the_first_file_s_float64_exactly(tmp_path):
    """A day written as int64 where the others are float64 (pandas writes an int column with a missing value as
    float64) was refused as 'a cast would change or lose its values': its statistics show it holds none above
    2**53, so it reads exactly; one holding a larger value is still refused."""
    _with_file_7(tmp_path / "whole", score=lambda p: (p["score"] * 0 + p["t"]).astype(np.int64))
    got = read_events(tmp_path / "whole", LAYOUT, min_partition_rows=55).compute().reset_index(drop=True)
    assert got["score"].dtype == np.float64 and got["score"][70:80].tolist() == list(range(70, 80))
    _with_file_7(tmp_path / "large", score=lambda p: pd.Series([2**53 + 1] * len(p), dtype=np.int64))
    with pytest.raises(DataError, match=r"part-007\.parquet: column 'score' is int64, but .* has it as double"):
        read_events(tmp_path / "large", LAYOUT, min_partition_rows=55)


def test_only_files_of_the_first_s_schema_are_read_as_one_list(tmp_path):
    """cudf's reader refuses a list of files of other schemas: those groups are read a file at a time."""
    from rapids_engage.file_types import check_types

    _write(tmp_path / "same", [_part(i) for i in range(3)])
    _with_file_7(tmp_path / "wider", row_id=lambda p: p["row_id"].astype(np.int32))
    columns = list(_part(0).columns)
    assert check_types(input_footers(tmp_path / "same"), columns) is True
    assert check_types(input_footers(tmp_path / "wider"), columns) is False


@pytest.mark.parametrize("same", [True, False])
def test_a_categorical_read_as_its_values_is_a_categorical_of_the_meta_s_kind(tmp_path, monkeypatch, same):
    """cudf's parquet reader has no categorical type (cudf#12497): a dictionary column comes back as its values, here
    simulated on pandas. The frame's meta says categorical, so such partitions were text under a categorical meta, and
    the key handling's ``.cat`` failed ('Can only use .cat accessor'); now each is a categorical of its file's values,
    as the per-file read gives; with files of one schema and of two."""
    from rapids_engage import backend, grouped_read
    from rapids_engage.features.key_values import value_dtypes, with_key_values

    def values_only(like, paths, columns, schema=None):  # what cudf.read_parquet gives a dictionary column
        frame = backend.read_parquet_files(like, paths, columns, schema)
        return frame.astype({c: frame[c].cat.categories.dtype for c in frame.columns if str(frame[c].dtype) == "category"})

    _with_file_7(tmp_path, **({} if same else {"row_id": lambda p: p["row_id"].astype(np.int32)}))
    monkeypatch.setattr(grouped_read, "read_parquet_files", values_only)
    frame = read_events(tmp_path, LAYOUT, min_partition_rows=55)
    assert str(frame._meta.dtypes["kind"]) == "category"
    parts = _partitions(frame)
    assert all(str(p["kind"].dtype) == "category" for p in parts)
    want = pd.concat([pd.read_parquet(f) for f in sorted(tmp_path.glob("*.parquet"))], ignore_index=True)
    assert pd.concat(parts, ignore_index=True)["kind"].astype(str).tolist() == want["kind"].astype(str).tolist()
    assert str(value_dtypes(frame, ["kind"])["kind"]) == "str"
    assert sorted(with_key_values(frame, ["kind"])["kind"].compute().unique()) == ["k0", "k1", "k2"]


def test_predict_input_of_many_small_files_is_read_a_task_per_merged_partition(tmp_path, monkeypatch):
    """``predict --input``'s reader read a task per file, then merged them."""
    from rapids_engage.predict import input_footers as predict_footers, read_new_rows

    _write(tmp_path, [_part(i).drop(columns=["click"]) for i in range(40)])
    footers = predict_footers(tmp_path)
    grouped = read_new_rows(tmp_path, footers, LAYOUT, min_partition_rows=55)
    assert len(grouped.__dask_graph__()) <= 2 * grouped.npartitions
    _per_file(monkeypatch)
    before = read_new_rows(tmp_path, footers, LAYOUT, min_partition_rows=55)
    assert grouped.npartitions == before.npartitions < 40
    pd.testing.assert_series_equal(grouped._meta.dtypes, before._meta.dtypes)
    for g, w in zip(_partitions(grouped), _partitions(before)):
        pd.testing.assert_frame_equal(g, w)


def test_widening_types():
    """Only types whose every value the first file's type holds exactly; a list of strings is not a categorical's
    strings (a dictionary's and a list's ``value_type`` were compared)."""
    import pyarrow as pa

    from rapids_engage.file_types import widens

    categorical = pa.dictionary(pa.int8(), pa.string())
    assert all(widens(got, want) for got, want in [
        (pa.int32(), pa.int64()), (pa.uint32(), pa.int64()), (pa.int32(), pa.float64()), (pa.float32(), pa.float64()),
        (pa.null(), pa.int64()), (pa.string(), categorical), (categorical, pa.large_string()),
        (pa.timestamp("ms"), pa.timestamp("us")), (pa.date32(), pa.date64())])
    assert not any(widens(got, want) for got, want in [
        (pa.int64(), pa.int32()), (pa.uint64(), pa.int64()), (pa.int64(), pa.float64()), (pa.float64(), pa.int64()),
        (pa.string(), pa.int64()), (pa.list_(pa.string()), categorical), (categorical, pa.list_(pa.string())),
        (pa.timestamp("ns"), pa.timestamp("us")), (pa.timestamp("us", "UTC"), pa.timestamp("us")), (pa.int64(), pa.null())])
