"""What the encoders share as scikit-learn-style estimators: the params API (:class:`EstimatorParams`),
the not-fitted and input checks, and their fitted state's files (JSON + parquet)."""

from __future__ import annotations

import functools
import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import write_file, write_text
from ..data import DataError
from ..failures import naming
from .frames import is_dask


def column_names(columns: str | list[str] | tuple[str, ...]) -> list[str]:
    """Column name(s) as a list (a :class:`Param`'s normalisation of an encoder's key columns)."""
    return [columns] if isinstance(columns, str) else list(columns)


class ParamError(ValueError):
    """A parameter refused by its normalization in words that name the encoder and the parameter already
    (``HistoryEncoder windows must be distinct ...``): :class:`Param` raises it as it is."""


class Param:
    """A constructor parameter kept exactly as given (what ``get_params``, ``clone`` and ``set_params`` see,
    scikit-learn's rule) and read through ``normalize`` (e.g. a column name as a list) wherever the encoder
    uses it: a value set later (``enc.columns = "b"``) is normalized, and checked, when it is next used. A value it
    cannot normalize is a ValueError naming the encoder and the parameter (``TargetEncoder: parameter smooth='x':
    could not convert string to float: 'x'``; a :class:`ParamError` as it is), not Python's or pandas' words alone."""

    def __init__(self, normalize: Any) -> None:
        self.normalize = normalize

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        if obj is None:
            return self
        try:
            given = obj.__dict__[self.name]
        except KeyError:
            raise AttributeError(f"{type(obj).__name__} has no {self.name!r} set") from None
        try:
            return self.normalize(given)
        except ParamError:
            raise
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{type(obj).__name__}: parameter {self.name}={given!r}: {exc}") from exc

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.name] = value


class EstimatorParams:
    """scikit-learn's estimator API from an encoder's constructor parameters: ``get_params`` (as given),
    ``set_params``, ``sklearn.base.clone`` and a repr; the constructor only stores them (scikit-learn's rule),
    ``fit`` checks them (:meth:`check_params`); :meth:`params` (normalized) is what saved states hold."""

    def _param_names(self) -> list[str]:
        return list(inspect.signature(type(self).__init__).parameters)[1:]  # after self

    def params(self) -> dict:
        """The constructor's parameters in its order, each normalized as the encoder uses it (its attribute of
        that name, e.g. ``columns`` as a list): what the saved state's ``params`` holds and the constructor takes back."""
        return {name: getattr(self, name) for name in self._param_names()}

    def check_params(self) -> None:
        """A ValueError naming the first parameter its normalization refuses (what ``fit`` calls first)."""
        self.params()

    def get_params(self, deep: bool = True) -> dict:
        """The constructor's parameters as given (``deep`` has nothing to recurse into)."""
        given = vars(self)
        return {name: given[name] if name in given else getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Any:
        """Set constructor parameters, kept as given (checked by the next ``fit``); refit afterwards. An unknown
        name is a ValueError and changes nothing."""
        unknown = sorted(set(params) - set(self.get_params()))
        if unknown:
            raise ValueError(f"{type(self).__name__} has no parameter(s) {unknown}; it has {sorted(self.get_params())}")
        type(self).__init__(self, **{**self.get_params(), **params})
        return self

    @classmethod
    def from_params(cls, params: dict) -> Any:
        """An encoder of saved :meth:`params`: a JSON list is given back as a tuple where the constructor's default
        is a tuple (JSON has none), so a loaded encoder's ``get_params`` equals one made with the defaults' types."""
        defaults = {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()}
        return cls(**{name: tuple(value) if isinstance(value, list) and isinstance(defaults.get(name), tuple) else value
                      for name, value in params.items()})

    def __sklearn_clone__(self) -> Any:
        """An unfitted copy with the same parameters (what ``sklearn.base.clone`` and ``GridSearchCV`` make)."""
        import copy

        return type(self)(**copy.deepcopy(self.get_params()))

    def __repr__(self) -> str:
        """The key and the parameters set to other than their defaults, as scikit-learn shows estimators (normalized;
        a value its normalization refuses, accepted by ``set_params`` and refused at ``fit``, shown as given)."""
        given = self.get_params()
        fresh = type(self)(given["columns"])  # the defaults
        changed = {k: _shown(self, k, v) for k, v in given.items()}
        changed = {k: v for k, v in changed.items() if k == "columns" or v != _shown(fresh, k, v)}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"


class FrameOutput:
    """scikit-learn's output API of an encoder returning frames (what a ``ColumnTransformer`` with ``set_output``
    asks): ``keep_input`` (``X`` with the features added, the default, or, ``False``, the features alone: a step
    before a model that must not see the raw columns), ``feature_names_in_`` / ``n_features_in_`` (set by ``fit``),
    :meth:`get_feature_names_out` and :meth:`set_output`. An encoder sets ``_fitted`` (its fitted attribute) and has
    ``output_names()`` (its feature columns, once fitted)."""

    _fitted = "state_"

    def set_output(self, *, transform: str | None = None) -> Any:
        """scikit-learn's output API: the encoder returns frames of its input's kind (pandas, cudf or dask)
        already, which is what ``"pandas"`` / ``"default"`` ask of a pandas input."""
        if transform not in (None, "default", "pandas"):
            raise ValueError(f"{type(self).__name__} returns frames of its input's kind (pandas, cudf, dask), not {transform!r}")
        return self

    def _remember_input(self, X: Any) -> None:
        """``feature_names_in_`` and ``n_features_in_`` of the frame ``X`` being fitted."""
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)

    def get_feature_names_out(self, input_features: Any = None) -> Any:
        """The columns :meth:`transform` returns for a frame of ``input_features`` (default: those seen in ``fit``):
        they (``keep_input``; a feature's own name replaced), then the features."""
        check_fitted(self, self._fitted)
        if input_features is None and getattr(self, "feature_names_in_", None) is None:
            raise ValueError(f"{type(self).__name__}({self.name}): pass input_features (this encoder was not fitted on a frame here)")
        names = [str(c) for c in (self.feature_names_in_ if input_features is None else input_features)]
        added = list(self.output_names())
        kept = [n for n in names if n not in added] if self.keep_input else []
        return np.asarray(kept + added, dtype=object)

    def _output(self, out: Any, X: Any) -> Any:
        """``out`` (``X`` with the features) as :meth:`get_feature_names_out` says: the features alone without
        ``keep_input``, and a feature ``X`` held already moved last (as it is replaced); ``out`` itself when so."""
        added = list(self.output_names())
        wanted = [*([c for c in X.columns if c not in added] if self.keep_input else []), *added]
        return out if list(out.columns) == wanted else out[wanted]

    def _input_state(self) -> dict:
        """What a saved state keeps of the input (``feature_names_in``, where fitted on a frame here)."""
        names = getattr(self, "feature_names_in_", None)
        return {} if names is None else {"feature_names_in": [str(c) for c in names]}

    def _load_input(self, state: dict) -> Any:
        """The encoder with the ``feature_names_in_`` a saved state (:meth:`_input_state`) kept."""
        if "feature_names_in" in state:
            self.feature_names_in_ = np.asarray(state["feature_names_in"], dtype=object)
            self.n_features_in_ = len(self.feature_names_in_)
        return self


def _shown(encoder: Any, name: str, given: Any) -> Any:
    """``encoder``'s parameter ``name`` normalized as it uses it, or ``given`` where that normalization raises."""
    try:
        return getattr(encoder, name)
    except (TypeError, ValueError):
        return given


class NotFittedError(ValueError, AttributeError):
    """An encoder used before it was fitted (as scikit-learn's: a ValueError and an AttributeError).

    What :func:`check_fitted` raises is also scikit-learn's ``NotFittedError`` (``except`` of either
    catches it), without importing scikit-learn before an encoder is misused."""


@functools.cache
def _not_fitted_class() -> type:
    try:
        from sklearn.exceptions import NotFittedError as SklearnNotFitted
    except ImportError:
        return NotFittedError
    return type("NotFittedError", (NotFittedError, SklearnNotFitted), {"__module__": __name__})


def check_fitted(encoder: Any, attribute: str) -> None:
    """:class:`NotFittedError` unless ``encoder`` has its fitted ``attribute``."""
    if not hasattr(encoder, attribute):
        raise _not_fitted_class()(f"{type(encoder).__name__}({encoder.name}) is not fitted: call fit or fit_transform first")


def check_columns(encoder: Any, frame: Any, columns: list[str]) -> None:
    """A ValueError naming the ``columns`` an encoder needs that ``frame`` lacks (not a pandas / dask KeyError)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{type(encoder).__name__}({encoder.name}): columns {missing} are not in the frame")


def check_time_column(encoder: Any, frame: Any, column: str) -> None:
    """A TypeError naming a time column that does not hold numbers (seconds since 1970, UTC): a datetime or
    text column failed deep inside pandas (``cannot perform __floordiv__ ...``, ``int() argument ...``)."""
    dtype = frame[column].dtype
    if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        raise TypeError(f"{type(encoder).__name__}({encoder.name}): the time column {column!r} holds {dtype}; it must "
                        f"hold seconds since 1970 (UTC) as numbers, e.g. X.assign({column}=X[{column!r}]"
                        ".astype('datetime64[s]').astype('int64')) for UTC datetimes")


def check_label_dtypes(encoder: Any, frame: Any, labels: list[str]) -> None:
    """A TypeError naming the ``labels`` columns of ``frame`` that do not hold numbers or booleans ("1"/"0" strings
    were read as numbers, "yes"/"no" failed deep in a cast or a comparison)."""
    texts = {t: str(frame[t].dtype) for t in labels if not (pd.api.types.is_numeric_dtype(frame[t].dtype)
                                                            or pd.api.types.is_bool_dtype(frame[t].dtype))}
    if texts:
        raise TypeError(f"{type(encoder).__name__}({encoder.name}): labels must be numbers (0/1 for a binary target), got "
                        f"{', '.join(f'{t!r} of dtype {d}' for t, d in texts.items())}; map them first, e.g. "
                        "y.map({'no': 0, 'yes': 1})")


def _key_kind(dtype: Any, gpu: bool = False) -> str | None:
    """``"numbers"``, ``"text"`` or None (another kind, or unknown: pandas object columns) of a key column's
    dtype; ``gpu``: a cudf column's, whose strings are of dtype object (its only object columns)."""
    dtype = getattr(getattr(dtype, "categories", None), "dtype", dtype)  # a categorical: its categories' kind
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        return "numbers"
    text = isinstance(dtype, pd.StringDtype) or getattr(dtype, "kind", None) == "U" or (gpu and dtype == object)
    return "text" if text else None


def check_key_dtypes(encoder: Any, table: Any, frame: Any, columns: list[str]) -> None:
    """A TypeError naming a key column that holds numbers in the fitted ``table`` and text in ``frame`` (or
    the reverse): no key would match, and every row would silently get the value of an unseen key."""
    from ..backend import is_gpu_object

    for c in columns:
        fitted, here = _key_kind(table[c].dtype, is_gpu_object(table)), _key_kind(frame[c].dtype, is_gpu_object(frame))
        if fitted and here and fitted != here:
            raise TypeError(f"{type(encoder).__name__}({encoder.name}): the key column {c!r} holds {here} "
                            f"({frame[c].dtype}) but held {fitted} ({table[c].dtype}) when fitted, so no key would "
                            f"match; cast it first, e.g. X.astype({{{c!r}: '{table[c].dtype}'}})")


def save_state(directory: str | Path, stem: str, table: Any, state: dict) -> None:
    """An encoder's fitted state: ``<stem>.parquet`` (its table) and ``<stem>.json`` (params and scalars)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = str(directory / f"{stem}.parquet")  # a str: what cudf's to_parquet documents
    with naming(path):  # a write error (a full disk) names no file
        if is_dask(table):  # a partitioned table: a directory of parquet parts, written by the workers
            table.to_parquet(path, write_index=False)
        else:
            table.to_parquet(path, index=False)
    write_text(directory / f"{stem}.json", json.dumps(state, indent=1))


def load_state(directory: str | Path, stem: str, df_lib: Any = None) -> tuple[dict, Any]:
    """(JSON state, table as a ``df_lib`` frame; pandas by default) written by :func:`save_state`
    (a partitioned table's directory of parts is read as one frame)."""
    directory = Path(directory)
    state = json.loads((directory / f"{stem}.json").read_text())
    return state, (df_lib or pd).read_parquet(str(directory / f"{stem}.parquet"))


def save_column(path: str | Path, name: str, array: Any) -> None:
    """A host array of an encoder's fitted state as a one-column parquet file (written atomically):
    what would make its JSON large (an id per row) goes beside it, as its tables do."""
    write_file(path, lambda tmp: pq.write_table(pa.table({name: np.asarray(array)}), tmp))


def load_column(path: str | Path, name: str, rows: int) -> np.ndarray:
    """The column ``name`` of a file :func:`save_column` wrote (host numpy), which must hold ``rows``
    values (the count its encoder's JSON recorded): else a DataError naming the file."""
    try:
        array = pq.read_table(str(path), columns=[name]).column(name).to_numpy()
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the column {name!r} of the fitted state ({exc})") from exc
    if len(array) != rows:
        raise DataError(f"{path}: {len(array):,} values of {name!r}, the state's JSON says {rows:,}: the file is not this state's")
    return array
