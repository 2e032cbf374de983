"""Input handling shared by the metrics: numpy / cupy arrays, checks naming the caller's row, segment helpers."""

from __future__ import annotations

from collections.abc import Callable

from types import ModuleType
from typing import Any

import numpy as np

from ..backend import float_values, to_host

ArrayLike = Any  # numpy / cupy array, pandas / cudf Series, or a sequence
Metric = Callable[[ArrayLike, ArrayLike], float]

# --------------------------------------------------------------------------- arrays


def _on_gpu(a: Any) -> bool:
    return type(a).__module__.split(".")[0] in ("cupy", "cudf")


def _xp(*arrays: Any) -> ModuleType:
    """numpy, or cupy when any of ``arrays`` lives on the GPU (cupy imported lazily)."""
    if any(_on_gpu(a) for a in arrays):
        import cupy

        return cupy
    return np


def _raw(a: Any) -> Any:
    """The array behind a Series (cudf -> cupy, pandas -> numpy); arrays pass through."""
    if type(a).__module__.split(".")[0] == "cudf":
        return a.values
    if hasattr(a, "to_numpy"):
        return a.to_numpy()
    return a


def _one_column(a: Any, name: str) -> None:
    """``a`` must hold one value a row (1-d, or a single row or column): the two columns of ``predict_proba``
    made twice the rows, and a (n, 2) ``y`` and ``p`` were pooled into one 2n-row metric."""
    shape = tuple(getattr(a, "shape", ()))
    if sum(d > 1 for d in shape) > 1:
        raise ValueError(f"{name} has shape {shape}: one value a row expected (a 1-d array, a column or a Series; "
                         "of predict_proba's (n, 2), the positive class is [:, 1])")


def _in_memory(a: Any, name: str) -> None:
    """A one-line TypeError for a dask collection (a column of ``FeatureStore.training_frame``): its lazy
    length and shape failed deep inside dask; the metrics read in-memory arrays and do not compute graphs."""
    if type(a).__module__.split(".")[0] in ("dask", "dask_cudf", "dask_expr"):
        raise TypeError(f"{name} is a dask {type(a).__name__}: the metrics take in-memory arrays; "
                        f"pass {name}.compute() (or compute the frame once and take its columns)")


#: What pandas' ``infer_dtype`` says of an object column of numbers, booleans and missing values.
_NUMBER_OBJECTS = frozenset({"integer", "floating", "mixed-integer-float", "boolean", "decimal", "empty"})


def _text_row(a: Any) -> int | None:
    """The first row of ``a`` (an array or Series) that holds text (str / bytes), None when none does."""
    dtype = a.dtype
    dtype = getattr(getattr(dtype, "categories", None), "dtype", dtype)  # a categorical: its categories'
    if dtype.kind not in "OUS":
        return None
    if dtype.kind == "O" and not _on_gpu(a):  # (a cudf object column is text)
        import pandas as pd

        if pd.api.types.infer_dtype(a, skipna=True) in _NUMBER_OBJECTS:
            return None
    cells = np.asarray(to_host(a), dtype=object).ravel()
    return next((i for i, v in enumerate(cells) if isinstance(v, (str, bytes))), None)


def _f64(a: Any, xp: ModuleType, name: str) -> Any:
    """``a`` as a 1-d float64 array of module ``xp`` (nulls as NaN); text is an error (:func:`_text_row`):
    scikit-learn refuses text scores and reads text labels as class names ("10" < "9"), and float("1.0")
    would take " 1", "1.0" and "nan" as well."""
    _in_memory(a, name)
    if not hasattr(a, "dtype"):  # a list / tuple / scalar / DataFrame
        cells = np.asarray(a)
        a = cells if cells.dtype.kind not in "US" else np.asarray(a, dtype=object)  # numpy makes [0, "1"] all text
    _one_column(a, name)
    row = _text_row(a)
    if row is not None:
        value = np.asarray(to_host(a), dtype=object).ravel()[row]
        raise RowError(f"{name} holds text ({value!r} at row {{row}}): labels, scores and keys must be numbers or booleans "
                       "(convert them first, e.g. with pandas.to_numeric)", row)
    if hasattr(a, "to_numpy"):  # a pandas / cudf Series (also pandas nullable dtypes)
        a = float_values(a)
    return xp.asarray(_raw(a), dtype=xp.float64).ravel()


def _arrays(*arrays: Any, others: tuple = (), names: tuple[str, ...] = ("y", "p", "key")) -> tuple[ModuleType, list[Any]]:
    """(module, float64 arrays of equal length); ``others`` only take part in picking the module."""
    xp = _xp(*arrays, *others)
    out = [_f64(a, xp, name) for a, name in zip(arrays, names)]
    if len({len(a) for a in out}) > 1:
        raise ValueError(f"arrays of different lengths: {[len(a) for a in out]}")
    return xp, out


class RowError(ValueError):
    """Bad input at one row: the message names ``row``; :meth:`at` names another (the caller's row of a
    group's row, when a metric runs on a subset such as :func:`grouped_by_quantile`'s groups)."""

    def __init__(self, template: str, row: int) -> None:
        self.template, self.row = template, row
        super().__init__(template.format(row=row))

    def at(self, row: int, context: str = "") -> RowError:
        """The same error at the caller's ``row``, ``context`` appended to the message."""
        return RowError(self.template + context.replace("{", "{{").replace("}", "}}"), row)


def _checked(y: ArrayLike, p: ArrayLike, binary: bool, others: tuple = (), probabilities: bool = False) -> tuple[ModuleType, Any, Any]:
    """(module, y, p) as :func:`_arrays`, refusing NaN or infinite values (they would be ranked or
    averaged into a plausible number), when ``binary`` labels other than 0/1 and, when ``probabilities``,
    scores outside [0, 1] (a model's margins: log loss clipped them into a number that looked like one)."""
    xp, (y, p) = _arrays(y, p, others=others)
    for name, a in (("y", y), ("p", p)):
        bad = ~xp.isfinite(a)
        if bool(bad.any()):
            raise RowError(f"{name} has {int(bad.sum())} NaN or infinite value(s), the first at row {{row}}", int(xp.argmax(bad)))
    if probabilities:
        bad = (p < 0) | (p > 1)
        if bool(bad.any()):
            row = int(xp.argmax(bad))
            raise RowError(f"p must hold probabilities in [0, 1]; row {{row}} holds {float(p[row]):g} (scores of another "
                           "scale: average_precision, roc_auc and the ranking metrics take them)", row)
    if binary:
        bad = (y != 0) & (y != 1)
        if bool(bad.any()):
            row = int(xp.argmax(bad))
            raise RowError(f"y must hold 0/1 labels; row {{row}} holds {float(y[row]):g}", row)
    return xp, y, p


def _concat0(a: Any, xp: ModuleType) -> Any:
    """``a`` with a leading 0."""
    return xp.concatenate([xp.zeros(1, dtype=a.dtype), a])


def _block_starts(sorted_values: Any, xp: ModuleType) -> Any:
    """True where a run of equal values starts in a sorted array."""
    new = xp.ones(len(sorted_values), dtype=bool)
    new[1:] = sorted_values[1:] != sorted_values[:-1]
    return new


def _mean(a: Any) -> float:
    """Mean as a Python float; nan for no rows."""
    return float(a.mean()) if len(a) else float("nan")


def _mean_defined(values: list[float]) -> float:
    """Mean of the non-nan values (nan when there are none)."""
    v = np.asarray(values, dtype=np.float64)
    return _mean(v[~np.isnan(v)])

def _check_whole(name: str, value: int) -> None:
    """``value`` (``k``, ``n_bins``) must be a whole number >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
