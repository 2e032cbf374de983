"""Out-of-fold K-fold target encoding, one (possibly multi-column) key, all targets at once.

For a training row of fold f with key k and target t::

    te = (sum_t(k, not f) + s * prior_t(not f)) / (count(k, not f) + s)

where ``not f`` means the training rows outside fold f and ``prior_t(not f)``
is their mean of t (over every such row, whether its key is null or not): a
training row's value never uses its own label or any label of its fold.
Validation, test and new rows use the full-training statistics with the
full-training prior ``prior_``; keys never seen in training get the prior. A row
whose key has a null gets the prior too: its fold's prior in training, ``prior_``
elsewhere (null is not a key value). Missing labels are an error. The fitted
state (``stats_``: per key the row count and the target sums; ``prior_``) is
exactly what :meth:`transform` needs, and is saved as parquet + JSON
(:meth:`save` / :meth:`load`).

Output columns are ``<prefix>_<key>_<target>``, a multi-column key's names joined
by ``__`` (``te_engaging_user_id__language_like``); :meth:`output_names` lists them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..backend import array_module, bincount, float_values, series_like, to_host, values
from .folds import FOLD, assign_folds
from .estimator_conventions import EstimatorParams, FrameOutput, Param, column_names, check_columns, check_fitted, check_label_dtypes, check_key_dtypes, load_state, save_state
from .frames import Join, apply_joins, as_dask, computed_like, is_dask, key_name, keys_of_ids, null_key_rows, without

N = "_n"


def _sum(t: str) -> str:
    return f"{t}__sum"


def _check_labels(part: Any, targets: list[str], name: str) -> Any:
    """``part`` unchanged; a ValueError naming the column when a label is missing (NaN / null)."""
    missing = part[targets].isna().sum()
    bad = {t: int(missing[t]) for t in targets if int(missing[t])}
    if bad:
        raise ValueError(f"TargetEncoder({name}): missing label values {bad} (column: rows); "
                         "drop those rows or fill the labels before encoding")
    return part


class TargetEncoder(FrameOutput, EstimatorParams):
    """sklearn-style out-of-fold target encoder for one key over several targets.

    ``columns``: the key (one column name or a list); the targets are given to
    :meth:`fit` / :meth:`fit_transform` as ``y`` and encoded at once; ``row_key``:
    the fold key: rows with equal values share a fold under every ``fold_method``
    (``hash``, the default, hashes it, so that folds do not depend on partitioning);
    the group column for rows of ranking groups; ``()``: ``contiguous`` and
    ``random`` folds per row (see :mod:`.folds`); ``smooth``: the
    prior's weight ``s``; ``n_folds``: 2 to 127; ``keep_input``: return ``X`` with the encodings
    added (the default) or, ``False``, the encodings alone (a step before a model in a scikit-learn
    ``Pipeline`` / ``ColumnTransformer``, whose model must not see the raw keys).
    """

    _fitted = "targets_"
    columns = Param(column_names)
    smooth = Param(float)
    row_key = Param(column_names)

    def __init__(
        self,
        columns: str | list[str],
        n_folds: int = 5,
        smooth: float = 20.0,
        fold_method: str = "hash",
        seed: int = 0,
        row_key: tuple[str, ...] = ("tweet_id", "engaging_user_id"),
        prefix: str = "te",
        keep_input: bool = True,
    ) -> None:
        self.columns = columns
        self.n_folds = n_folds
        self.smooth = smooth
        self.fold_method = fold_method
        self.seed = seed
        self.row_key = row_key
        self.prefix = prefix
        self.keep_input = keep_input

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's estimator tags (``check_is_fitted``, ``Pipeline``): a transformer that needs y."""
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags

        return Tags(estimator_type="transformer", target_tags=TargetTags(required=True), transformer_tags=TransformerTags(),
                    input_tags=InputTags(categorical=True, string=True, allow_nan=True))

    # ---- names -----------------------------------------------------------
    @property
    def name(self) -> str:
        return key_name(self.columns)

    def output_name(self, target: str) -> str:
        return f"{self.prefix}_{self.name}_{target}"

    def output_names(self) -> list[str]:
        """The encoding columns :meth:`transform` adds, one per fitted target."""
        check_fitted(self, "targets_")
        return [self.output_name(t) for t in self.targets_]

    # ---- fitting ---------------------------------------------------------
    def _with_targets(self, X: Any, y: Any) -> tuple[Any, list[str]]:
        """(``X`` with the label columns, their names). ``y``: column name(s) of ``X``, or labels taken
        by position as scikit-learn does: a Series or DataFrame (named after their columns, replacing
        a column of ``X`` of that name), an unnamed Series or 1-d array (named ``y``), a 2-d array
        (``y0``, ``y1``, ...)."""
        if y is None:
            raise ValueError("TargetEncoder needs targets: y as column name(s) of X, or labels (Series, DataFrame, array)")
        if isinstance(y, str):
            return X, [y]
        if isinstance(y, (list, tuple)) and y and all(isinstance(c, str) for c in y):
            return X, list(y)
        if is_dask(X) or is_dask(y):
            raise ValueError(f"TargetEncoder({self.name}): with a dask frame pass y as column name(s) of X (labels taken by "
                             "position need an in-memory X and y): X.assign(label=...) first, or X.compute()")
        if hasattr(y, "columns"):
            labels = {str(c): y[c] for c in y.columns}
        elif getattr(y, "name", None) is not None:
            labels = {str(y.name): y}
        else:
            arr = np.asarray(to_host(y))
            if arr.ndim not in (1, 2):
                raise ValueError(f"TargetEncoder: y must be 1-d or 2-d labels, got shape {arr.shape}")
            labels = {"y": arr} if arr.ndim == 1 else {f"y{i}": arr[:, i] for i in range(arr.shape[1])}
        lengths = {len(v) for v in labels.values()}
        if lengths != {len(X)}:
            raise ValueError(f"TargetEncoder: y has {lengths.pop()} rows, X has {len(X)}")
        keys = {*self.columns, *self.row_key}
        clash = [c for c in labels if c in keys]
        if clash:
            raise ValueError(f"TargetEncoder({self.name}): the labels y are named {clash[0]!r}, a key column of X; "
                             "name them apart, e.g. y.rename('label')")
        return X.assign(**{c: series_like(X, np.asarray(to_host(v)) if hasattr(v, "index") else v) for c, v in labels.items()}), list(labels)

    def prepare(self, X: Any, y: Any = None) -> tuple[Any, list[str]]:
        """``X`` as a dask frame with the fold column and the label columns, and the label names
        (fitting: sets ``feature_names_in_``, ``X``'s columns). Encoding columns already in ``X``
        (an earlier output) are replaced."""
        if not hasattr(X, "columns"):
            raise TypeError(f"TargetEncoder: X must be a DataFrame (pandas, cudf or dask), got {type(X).__name__}")
        if not 0 <= self.smooth < np.inf:  # nan and inf gave NaN encodings
            raise ValueError(f"TargetEncoder({self.name}): smooth must be a finite number >= 0, got {self.smooth}")
        if not self.columns or len(set(self.columns)) < len(self.columns):
            raise ValueError(f"TargetEncoder: columns must name one or more distinct key columns, got {self.columns}")
        if FOLD in X.columns:
            raise ValueError(f"TargetEncoder({self.name}): the column name {FOLD!r} is reserved for the fold ids; rename it")
        self._remember_input(X)
        X, targets = self._with_targets(X, y)
        check_columns(self, X, self.columns + targets)
        self._check_internal_names(targets)
        check_label_dtypes(self, X, targets)
        X = as_dask(X)
        X = without(X, [self.output_name(t) for t in targets])
        return assign_folds(X, self.row_key, self.n_folds, self.fold_method, self.seed), targets

    def _check_internal_names(self, targets: list[str]) -> None:
        """A ValueError naming a key or label column named like a column of the fitted statistics (the row count
        ``_n``, a label's ``<label>__sum``, the fold ``_fold``): pandas failed on it with an error about neither."""
        internal = {FOLD, N, *(_sum(t) for t in targets)}
        clash = [c for c in self.columns if c in internal] + [t for t in targets if t == FOLD]
        if clash:
            raise ValueError(f"TargetEncoder({self.name}): the column name {clash[0]!r} is reserved for the encoder's "
                             f"statistics ({', '.join(repr(c) for c in sorted(internal))}); rename it")

    def stats_graph(self, frame: Any, targets: list[str]) -> Any:
        """Lazy per (key, fold) row counts and label sums of a prepared frame, reduced into one table
        (keys too many to broadcast are fitted by key instead: :func:`~.by_key.encode_by_key`)."""
        cols = self.columns + [FOLD]
        part = self._label_sums(frame[cols + targets], targets)
        return part.groupby(cols, sort=False, dropna=False).sum().reset_index()  # null keys: for the priors

    def _label_sums(self, rows: Any, targets: list[str]) -> Any:
        """``rows`` (dask) checked for missing labels, the labels as float64 sum columns, plus ``N`` = 1."""
        rows = rows.map_partitions(_check_labels, targets, self.name, meta=rows._meta)
        rows = rows.astype({t: "float64" for t in targets}).rename(columns={t: _sum(t) for t in targets})
        return rows.assign(**{N: 1})

    def set_stats(self, fold_stats: Any, targets: list[str]) -> TargetEncoder:
        """Finish fitting from the in-memory (key, fold) statistics of :meth:`stats_graph` (whose
        null-key rows count towards the priors only)."""
        sums = [_sum(t) for t in targets]
        self.set_fold_totals(fold_stats.groupby(FOLD)[[N] + sums].sum().reset_index(), targets)
        self.stats_ = fold_stats.groupby(self.columns)[[N] + sums].sum().reset_index()  # dropna: keys only
        self._fold_stats = fold_stats
        return self

    def fold_totals_graph(self, frame: Any, targets: list[str]) -> Any:
        """Lazy per-fold row counts and label sums of every row: what :meth:`set_fold_totals` needs
        before :meth:`partition_oof` can run."""
        part = self._label_sums(frame[[FOLD] + targets], targets)
        return part.groupby(FOLD)[[N] + [_sum(t) for t in targets]].sum().reset_index()

    def set_fold_totals(self, per_fold: Any, targets: list[str]) -> TargetEncoder:
        """Start fitting from per-fold totals (in memory, :meth:`fold_totals_graph`): the priors. The
        key statistics ``stats_`` come from :meth:`set_stats` or :meth:`partition_oof`'s tables (set by
        the caller). Raises before changing any state when there are no rows."""
        sums = [_sum(t) for t in targets]
        per_fold = to_host(per_fold).set_index(FOLD)[[N] + sums]
        total = per_fold.sum()
        self._set_prior(total, targets)
        folds = per_fold.reindex(range(self.n_folds)).fillna(0.0)  # as _oof_table's prior: the rows outside the fold
        rest = total[N] - folds[N]
        self._fold_prior = {  # a fold holding every row has no rows outside it: the full prior
            t: ((total[_sum(t)] - folds[_sum(t)]) / rest.where(rest > 0)).fillna(self.prior_[t]).to_numpy() for t in targets
        }
        return self

    def oof_state(self) -> TargetEncoder:
        """A copy holding only what :meth:`partition_oof` needs (params, targets, fold priors):
        small enough to travel in a task graph."""
        copy = TargetEncoder(**self.params())
        copy.targets_, copy._fold_prior = self.targets_, self._fold_prior
        return copy

    def _set_prior(self, total: Any, targets: list[str]) -> None:
        n_rows = float(total[N])
        if n_rows == 0:
            raise ValueError(f"TargetEncoder({self.name}): no training rows")
        self.targets_ = list(targets)
        self.n_rows_ = int(n_rows)
        self.prior_ = {t: float(total[_sum(t)]) / n_rows for t in targets}

    def _partition_sums(self, frame: Any, ids: Any) -> tuple[Any, dict[str, tuple[Any, Any]]]:
        """(each row's (key, fold) cell, per target (or ``N``): its sums per cell and per key) of the
        keyed rows of an in-memory frame (``ids``: :func:`~.frames.key_ids`)."""
        xp = array_module(ids)
        keyed = ids >= 0
        n_keys, k = (int(ids.max()) + 1 if len(ids) else 0), self.n_folds
        cell = xp.where(keyed, ids, 0) * k + values(frame[FOLD]).astype(np.int64)
        sums = {}
        for name in [N, *self.targets_]:
            weights = xp.ones(len(ids)) if name == N else values(frame[name]).astype(np.float64)
            weights = xp.where(keyed & ~xp.isnan(weights), weights, 0.0)
            per_cell = bincount(cell, weights=weights, minlength=max(n_keys * k, 1))
            sums[name] = per_cell, per_cell[: n_keys * k].reshape(n_keys, k).sum(axis=1)
        return cell, sums

    def partition_stats(self, frame: Any, ids: Any) -> Any:
        """The key -> statistics table (``stats_``'s rows) of an in-memory frame that holds every
        training row of its keys (``ids``: their :func:`~.frames.key_ids`)."""
        _, sums = self._partition_sums(frame, ids)
        table = keys_of_ids(frame, self.columns, ids).assign(**{N: sums[N][1].astype(np.int64)})
        return table.assign(**{_sum(t): sums[t][1] for t in self.targets_})

    def partition_oof(self, frame: Any, ids: Any) -> dict[str, Any]:
        """Out-of-fold encodings (arrays) of the rows of an in-memory frame that holds every training
        row of its keys (``ids``: their :func:`~.frames.key_ids`, -1 for a null key, whose rows get
        NaN as in :meth:`oof_join`), after :meth:`set_fold_totals`: :meth:`_oof_table`'s formula,
        from this frame alone."""
        xp = array_module(ids)
        keyed = ids >= 0
        own = xp.where(keyed, ids, 0)
        cell, sums = self._partition_sums(frame, ids)
        folds = values(frame[FOLD]).astype(np.int64)

        def rest(name: str) -> Any:  # the sum over the row's key outside its fold
            per_cell, per_key = sums[name]
            return per_key[own] - per_cell[cell] if len(per_key) else xp.zeros(len(ids))

        rest_n = rest(N)
        encoded = {}
        for t in self.targets_:
            prior = xp.asarray(self._fold_prior[t])[folds]
            with np.errstate(divide="ignore", invalid="ignore"):  # where nothing is left: the prior
                value = xp.where(rest_n + self.smooth > 0, self._encode(rest(t), rest_n, prior), prior)
            encoded[self.output_name(t)] = xp.where(keyed, value, prior)  # a null key: the fold's prior
        return encoded

    def fill_unkeyed(self, part: Any) -> Any:
        """``part`` (in memory, with the fold column and the key) after :meth:`oof_join`: a row whose
        key has a null, which the join left without an encoding, gets its fold's prior (as
        :meth:`partition_oof` gives it). Partitions without such rows pass as they are."""
        null = values(null_key_rows(part[self.columns]))
        if not bool(null.any()):
            return part
        folds = values(part[FOLD]).astype(np.int64)
        xp = array_module(folds)
        new = {}
        for t in self.targets_:
            name = self.output_name(t)
            prior = xp.asarray(self._fold_prior[t])[folds]
            new[name] = series_like(part, xp.where(null, prior, float_values(part[name])))
        return part.assign(**new)

    def fit(self, X: Any, y: Any = None) -> TargetEncoder:
        """Learn the full-training statistics (what :meth:`transform` uses)."""
        frame, targets = self.prepare(X, y)
        return self.set_stats(self.stats_graph(frame, targets).compute(), targets)

    def oof_join(self) -> Join:
        """The (key, fold) -> out-of-fold encoding join for the rows the encoder was fitted on."""
        return Join(self._oof_table(self._fold_stats), self.columns + [FOLD], dict.fromkeys(self.output_names(), "float64"))

    def full_join(self) -> Join:
        """The key -> full-training encoding join (unseen keys get the prior)."""
        fill = {self.output_name(t): self.prior_[t] for t in self.targets_}
        return Join(self.full_table(), self.columns, dict.fromkeys(fill, "float64"), fill)

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        """Fit, and return ``X`` with out-of-fold encodings for its (training) rows: the columns
        :meth:`transform` gives (labels passed as ``y`` are not added to them)."""
        frame, targets = self.prepare(X, y)
        self.set_stats(self.stats_graph(frame, targets).compute(), targets)
        added = [t for t in targets if t not in X.columns]
        out = fill_unkeyed(apply_joins(frame, [self.oof_join()]), [self]).drop(columns=[FOLD, *added])
        out = out if self.keep_input else out[self.output_names()]
        if is_dask(X):
            return out
        by_name = isinstance(y, str) or (isinstance(y, (list, tuple)) and all(isinstance(c, str) for c in y))
        replaced = [] if by_name or not self.keep_input else [t for t in targets if t in X.columns]  # X's own column back
        out = computed_like(out, X)
        return out.assign(**{c: X[c] for c in replaced}) if replaced else out

    def transform(self, X: Any) -> Any:
        """``X`` with full-training encodings (unseen and null keys get the prior; encoding columns already
        in ``X`` are replaced, last as in :meth:`get_feature_names_out`)."""
        self._check_fitted()
        if not hasattr(X, "columns"):
            raise TypeError(f"TargetEncoder: X must be a DataFrame (pandas, cudf or dask), got {type(X).__name__}")
        check_columns(self, X, self.columns)
        check_key_dtypes(self, self.stats_, X, self.columns)
        out = apply_joins(without(as_dask(X), self.output_names()), [self.full_join()])
        out = out if self.keep_input else out[self.output_names()]
        return computed_like(out, X)

    # ---- tables ----------------------------------------------------------
    def _encode(self, sums: Any, counts: Any, prior: Any) -> Any:
        return (sums + self.smooth * prior) / (counts + self.smooth)

    def full_table(self) -> Any:
        """Key -> full-training encoding per target (the serving table)."""
        self._check_fitted()
        stats = self.stats_
        encoded = {self.output_name(t): self._encode(stats[_sum(t)], stats[N], self.prior_[t]) for t in self.targets_}
        return stats[self.columns].assign(**encoded)

    def _oof_table(self, fold_stats: Any) -> Any:
        """(key, fold) -> encoding from the training rows outside that fold."""
        sums = [_sum(t) for t in self.targets_]
        per_fold = fold_stats.groupby(FOLD)[[N] + sums].sum()
        total = per_fold.sum()
        rest = (total[N] - per_fold[N]).where(total[N] - per_fold[N] > 0)  # column by column: cudf's DataFrame.div has no axis=0
        prior = per_fold.assign(**{  # a fold holding every row has no rows outside it: the full prior, as set_fold_totals
            f"{s}__prior": ((total[s] - per_fold[s]) / rest).fillna(self.prior_[t]) for t, s in zip(self.targets_, sums)
        })
        prior = prior[[f"{s}__prior" for s in sums]].reset_index()
        merged = fold_stats.merge(self.stats_, on=self.columns, suffixes=("", "__all"))
        merged = merged.merge(prior, on=FOLD)
        counts = merged[f"{N}__all"] - merged[N]
        encoded = {}
        for t, s in zip(self.targets_, sums):
            value = self._encode(merged[f"{s}__all"] - merged[s], counts, merged[f"{s}__prior"])
            encoded[self.output_name(t)] = value.where(counts + self.smooth > 0, merged[f"{s}__prior"])
        return merged[self.columns + [FOLD]].assign(**encoded)

    # ---- state -----------------------------------------------------------
    def _check_fitted(self) -> None:
        check_fitted(self, "stats_")

    def save(self, directory: str | Path) -> None:
        """Write the fitted state: ``<name>.parquet`` (stats) and ``<name>.json`` (params, prior)."""
        self._check_fitted()
        state = {"params": self.params(), "targets": self.targets_, "prior": self.prior_, "n_rows": self.n_rows_,
                 **self._input_state()}
        save_state(directory, f"{self.prefix}_{self.name}", self.stats_, state)

    @classmethod
    def load(cls, directory: str | Path, name: str, df_lib: Any = None) -> TargetEncoder:
        """Read state written by :meth:`save` (``name`` = ``te_<key>``) into ``df_lib`` frames."""
        state, table = load_state(directory, name, df_lib)
        enc = cls.from_params(state["params"])
        enc.stats_, enc.targets_, enc.prior_, enc.n_rows_ = table, state["targets"], state["prior"], state["n_rows"]
        return enc._load_input(state)


def _fill_unkeyed(part: Any, encoders: list[TargetEncoder]) -> Any:
    for enc in encoders:
        part = enc.fill_unkeyed(part)
    return part


def fill_unkeyed(frame: Any, encoders: list[TargetEncoder]) -> Any:
    """``frame`` (dask, with the fold column) after the encoders' :meth:`~TargetEncoder.oof_join`:
    the rows whose key has a null get their fold's prior (:meth:`~TargetEncoder.fill_unkeyed`)."""
    if not encoders:
        return frame
    return frame.map_partitions(_fill_unkeyed, [enc.oof_state() for enc in encoders], meta=frame._meta)
