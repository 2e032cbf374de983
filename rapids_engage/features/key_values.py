"""Key columns that dask's hash shuffles, hash joins and ``split_out`` groupbys route by their values on both backends.

dask routes a row by ``hash_object_dispatch`` of its key columns: pandas hashes a categorical by its categories'
values (``hash_pandas_object``), but dask_cudf's ``hash_object_cudf`` calls cudf's ``hash_values``, which hashes a
categorical column's codes (``ColumnBase.to_pylibcudf`` hands libcudf the codes child). Partitions whose categories
differ (one per parquet file of a user's data, a dictionary each) then sent equal keys to different partitions on a
GPU: rows met no state or another key's, with no error. Every key-based shuffle, hash join and ``split_out``
groupby of the feature build goes through :func:`shuffle_by_key` or :func:`with_key_values`. A key whose categories the
meta does not know (``dd.read_parquet`` of dictionary columns) takes the dtype of its partitions' categories, found by a
pass over the column (:func:`value_dtypes`): the placeholder's text dtype formatted integer keys as ``'25'`` or, in a
partition with a null, ``'25.0'``, so equal keys and their state were routed apart.
"""

from __future__ import annotations

from typing import Any

from .frames import drop_per_partition, free_name, meta_with


def is_categorical(dtype: Any) -> bool:
    return str(dtype) == "category"


def value_dtype(dtype: Any) -> Any:
    """The dtype of a key column's values: its categories' for a categorical, else ``dtype`` itself."""
    return dtype.categories.dtype if is_categorical(dtype) else dtype


def _first_category(series: Any) -> Any:
    return series.cat.categories.to_series().reset_index(drop=True).iloc[:1]


def _categories_dtype(series: Any) -> Any:
    """The dtype of the categories of dask ``series``' partitions (a pass over it: its meta does not know them)."""
    import dask

    firsts = dask.compute(*series.map_partitions(_first_category, meta=_first_category(series._meta)).to_delayed())
    found = [f for f in firsts if len(f)]
    if not found:
        return series._meta.cat.categories.dtype
    from ..backend import frame_library

    return frame_library(found[0]).concat(found, ignore_index=True).dtype  # int32 and int64 files: int64


def value_dtypes(frame: Any, columns: list[str]) -> dict[str, Any]:
    """Categorical ``columns`` of dask ``frame`` -> the dtype of their values: the meta's categories', or where the
    meta does not know them (``dd.read_parquet``'s), the partitions' (computed, a pass over the column)."""
    from dask.dataframe.utils import has_known_categories

    return {c: value_dtype(frame._meta[c].dtype) if has_known_categories(frame[c]) else _categories_dtype(frame[c])
            for c in categorical_keys(frame, columns)}


def with_dtypes(frame: Any, dtypes: dict[str, Any]) -> Any:
    """Dask ``frame`` with ``dtypes``' columns cast to them per partition as :func:`key_values` (nulls kept: a key
    column of state rows, whose partitions may hold a key's values as float64 beside a null, or int64)."""
    if not dtypes:
        return frame
    return frame.map_partitions(_with_values, {c: c for c in dtypes}, dtypes, meta=frame._meta.astype(dtypes))


def categorical_keys(frame: Any, columns: list[str]) -> list[str]:
    """The categorical ones of ``columns`` in ``frame`` (dask: by its meta)."""
    meta = getattr(frame, "_meta", frame)
    return [c for c in columns if is_categorical(meta[c].dtype)]


def key_values(series: Any, dtype: Any) -> Any:
    """A categorical column as its values of ``dtype`` (nulls stay null: pandas integers or booleans with nulls
    take the nullable dtype of that kind, which hashes and compares its values alike)."""
    from ..backend import frame_library

    kind = getattr(dtype, "kind", "O")
    if kind in "iub" and frame_library(series).__name__ == "pandas" and bool(series.isna().any()):
        name = str(dtype)
        dtype = "boolean" if kind == "b" else name.replace("uint", "UInt") if kind == "u" else name.replace("int", "Int")
    return series.astype(dtype)


def _with_values(part: Any, names: dict[str, str], dtypes: dict[str, Any]) -> Any:
    return part.assign(**{names[c]: key_values(part[c], dtypes[c]) for c in names})


def _meta_of_values(meta: Any, names: dict[str, str], dtypes: dict[str, Any]) -> Any:
    return meta_with(meta, {names[c]: dtypes[c] for c in names})


def with_key_values(frame: Any, columns: list[str]) -> Any:
    """Dask ``frame`` with its categorical ``columns`` as their values (:func:`value_dtypes`): for a hash join or
    ``split_out`` groupby whose output keys are internal (their dtype is not the caller's)."""
    return with_dtypes(frame, value_dtypes(frame, columns))


def shuffle_by_key(frame: Any, columns: list[str], npartitions: int | None = None, dtypes: dict[str, Any] | None = None) -> Any:
    """``frame.shuffle(on=columns)`` where equal key values meet in one partition on both backends, whatever each
    partition's categories: a categorical key column routes the rows by a copy of its values (dropped after the
    shuffle), so the rows keep their dtypes. A frame shuffled to meet it (a partitioned state) goes through here
    too, with the same key dtypes or values dtypes (``dtypes``: the categorical keys' :func:`value_dtypes`, found
    already)."""
    categorical = categorical_keys(frame, columns)
    if not categorical:
        return frame.shuffle(on=list(columns), npartitions=npartitions)
    names = {c: free_name(f"_by_value_{c}", frame.columns) for c in categorical}
    dtypes = value_dtypes(frame, columns) if dtypes is None else dtypes
    routed = frame.map_partitions(_with_values, names, dtypes, meta=_meta_of_values(frame._meta, names, dtypes))
    shuffled = routed.shuffle(on=[names.get(c, c) for c in columns], npartitions=npartitions)
    return drop_per_partition(shuffled, list(names.values()))


__all__ = ["categorical_keys", "key_values", "shuffle_by_key", "value_dtype", "value_dtypes", "with_dtypes", "with_key_values"]
