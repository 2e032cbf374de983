"""Grouped parquet reads on cudf / dask_cudf against the pandas read of the same files (``gpu`` marker: skipped
without a GPU and RAPIDS; run with ``python -m pytest -m gpu``).

GPU-unverified paths (reviewed against cudf / dask_cudf source only): ``backend.read_parquet_files``'
``cudf.read_parquet`` of a list of files of one schema; ``grouped_read.read_group``'s read of files of other schemas
a file at a time, cast to the meta (int32 into int64, a null-typed column, nulls in an integer column) and
concatenated; a dictionary column, which cudf's reader gives as its values (cudf#12497), as a categorical per
partition; ``dd.from_map`` of those reads under dask_cudf's meta; ``key_values`` on the categorical it gives.
"""

from __future__ import annotations

import dask
import numpy as np
import pandas as pd
import pytest

from rapids_engage.backend import host_frame, resolve
from rapids_engage.data import read_events
from rapids_engage.layout import Layout, Target
from test_grouped_read import _part as grouped_part

pytestmark = pytest.mark.gpu

LAYOUT = Layout("table", ("row_id",), "t", (Target("click", "click", "binary"),))


@pytest.fixture(scope="module", autouse=True)
def gpu_backend():
    """The GPU backend initialised as the pipeline does it; dask's dataframe backend put back afterwards."""
    with dask.config.set({"dataframe.backend": dask.config.get("dataframe.backend")}):
        yield resolve("1").init()


def _part(i: int) -> pd.DataFrame:
    """``tests/test_grouped_read.py``'s part ``i`` (ids, times, a label, floats, nullable ints, strings with nulls,
    a categorical), less its boolean column."""
    return grouped_part(i).drop(columns="flag")


def _write(folder, file_7: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(12):
        part = _part(i)
        part = part.assign(**{c: f(part) for c, f in file_7.items()}) if i == 7 else part
        part.to_parquet(folder / f"part-{i:03d}.parquet", index=False)


def _cpu_frame(folder, **kwargs) -> pd.DataFrame:
    with dask.config.set({"dataframe.backend": "pandas"}):
        return read_events(folder, LAYOUT, **kwargs).compute().reset_index(drop=True)


@pytest.mark.parametrize("file_7", ["same", "other_types"])
def test_grouped_read_on_gpu_gives_the_cpu_frame(tmp_path, file_7):
    """One schema: a list read; other types in file 7 (int32 ids, a null-typed column): a file at a time."""
    import cudf

    from rapids_engage.features.key_values import value_dtypes, with_key_values

    changes = {} if file_7 == "same" else {"row_id": lambda p: p["row_id"].astype(np.int32),
                                           "lang": lambda p: pd.Series([None] * len(p), dtype=object)}
    _write(tmp_path, changes)
    frame = read_events(tmp_path, LAYOUT, min_partition_rows=55)
    assert isinstance(frame._meta, cudf.DataFrame) and frame.npartitions < 12
    parts = [p.compute() for p in frame.to_delayed()]
    for part in parts:
        assert isinstance(part, cudf.DataFrame)
        for column, want in frame._meta.dtypes.items():
            assert str(part[column].dtype) == str(want), (column, part[column].dtype, want)
    got = host_frame(cudf.concat(parts, ignore_index=True))
    want = _cpu_frame(tmp_path, min_partition_rows=55)
    for column in want.columns:  # values and nulls alike (dtypes: cudf's own, not pandas' nullable ones)
        assert got[column].isna().tolist() == want[column].isna().tolist(), column
        assert got[column].dropna().astype(str).tolist() == want[column].dropna().astype(str).tolist(), column
    assert str(value_dtypes(frame, ["kind"])["kind"]) in ("object", "str")
    assert sorted(with_key_values(frame, ["kind"])["kind"].compute().to_pandas().unique()) == ["k0", "k1", "k2"]


def test_per_file_read_on_gpu_gives_the_cpu_frame(tmp_path):
    """A partition per file (no merging) is dask_cudf's own reader: a dictionary column's arrow type went through
    ``cudf_dtype_from_pa_type``, NotImplementedError in dask-cudf 24.10 (cudf#9179). Should this fail, route the
    per-file read through ``grouped_read`` (a group per file) instead of dask_cudf's reader."""
    import cudf

    _write(tmp_path, {})
    frame = read_events(tmp_path, LAYOUT)
    assert isinstance(frame._meta, cudf.DataFrame) and frame.npartitions == 12
    got = host_frame(frame.compute()).reset_index(drop=True)
    want = _cpu_frame(tmp_path)
    for column in want.columns:
        assert got[column].isna().tolist() == want[column].isna().tolist(), column
        assert got[column].dropna().astype(str).tolist() == want[column].dropna().astype(str).tolist(), column
