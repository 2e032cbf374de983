"""Out-of-fold K-fold target encoding, one (possibly multi-column) key, all targets at once.

For a training row of fold f with key k and target t::

    te = (sum_t(k, not f) + s * prior_t(not f)) / (count(k, not f) + s)

where ``not f`` means the training rows outside fold f and ``prior_t(not f)``
is their mean of t: a training row's value never uses its own label or any
label of its fold. Validation, test and new rows use the full-training
statistics with the full-training prior; keys never seen in training get the
prior. The fitted state (``stats_``: per key the row count and the target sums;
``prior_``) is exactly what :meth:`transform` needs, and is saved as parquet +
JSON (:meth:`save` / :meth:`load`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..backend import array_module, bincount, to_host, values
from .folds import FOLD, assign_folds
from .frames import Join, apply_joins, as_dask, is_dask, key_name, keys_of_ids, load_state, save_state

N = "_n"


def _sum(t: str) -> str:
    return f"{t}__sum"


class TargetEncoder:
    """sklearn-style out-of-fold target encoder for one key over several targets.

    ``columns``: the key (one column name or a list); ``targets``: label columns
    of ``X`` encoded at once (or pass ``y`` to :meth:`fit`); ``row_key``: the
    columns whose hash picks a row's fold (``fold_method="hash"``).
    """

    def __init__(
        self,
        columns: str | list[str],
        n_folds: int = 5,
        smooth: float = 20.0,
        fold_method: str = "hash",
        seed: int = 0,
        row_key: tuple[str, ...] = ("tweet_id", "engaging_user_id"),
        prefix: str = "te",
    ) -> None:
        self.columns = [columns] if isinstance(columns, str) else list(columns)
        self.n_folds = n_folds
        self.smooth = float(smooth)
        self.fold_method = fold_method
        self.seed = seed
        self.row_key = list(row_key)
        self.prefix = prefix

    # ---- names -----------------------------------------------------------
    @property
    def name(self) -> str:
        return key_name(self.columns)

    def output_name(self, target: str) -> str:
        return f"{self.prefix}_{self.name}_{target}"

    def output_names(self) -> list[str]:
        return [self.output_name(t) for t in self.targets_]

    # ---- fitting ---------------------------------------------------------
    def _with_targets(self, X: Any, y: Any) -> tuple[Any, list[str]]:
        if y is None:
            raise ValueError("TargetEncoder needs targets: y as column name(s) of X, or a Series/DataFrame")
        if isinstance(y, str):
            return X, [y]
        if isinstance(y, (list, tuple)):
            return X, list(y)
        if is_dask(X) or is_dask(y):
            raise ValueError("with dask frames pass y as column name(s) of X")
        frame = y.to_frame() if getattr(y, "ndim", 2) == 1 else y
        return X.assign(**{c: frame[c].values for c in frame.columns}), list(frame.columns)

    def prepare(self, X: Any, y: Any = None) -> tuple[Any, list[str]]:
        """``X`` as a dask frame with the fold column and the label columns, and the label names."""
        X, targets = self._with_targets(X, y)
        missing = [c for c in self.columns + targets if c not in X.columns]
        if missing:
            raise ValueError(f"TargetEncoder({self.name}): columns {missing} are not in the frame")
        if FOLD not in X.columns:
            X = assign_folds(as_dask(X), self.row_key, self.n_folds, self.fold_method, self.seed)
        return as_dask(X), targets

    def stats_graph(self, frame: Any, targets: list[str]) -> Any:
        """Lazy per (key, fold) row counts and label sums of a prepared frame, reduced into one table
        (keys too many to broadcast are fitted by key instead: :func:`~.by_key.encode_by_key`)."""
        cols = self.columns + [FOLD]
        part = frame[cols + targets].astype({t: "float64" for t in targets})
        part = part.rename(columns={t: _sum(t) for t in targets}).assign(**{N: 1})
        return part.groupby(cols, sort=False).sum().reset_index()

    def set_stats(self, fold_stats: Any, targets: list[str]) -> TargetEncoder:
        """Finish fitting from the in-memory (key, fold) statistics of :meth:`stats_graph`."""
        sums = [_sum(t) for t in targets]
        self.stats_ = fold_stats.groupby(self.columns)[[N] + sums].sum().reset_index()
        self._set_prior(self.stats_[[N] + sums].sum(), targets)
        self._fold_stats = fold_stats
        return self

    def fold_totals_graph(self, frame: Any, targets: list[str]) -> Any:
        """Lazy per-fold row counts and label sums of the rows with a (non-null) key: what
        :meth:`set_fold_totals` needs before :meth:`partition_oof` can run."""
        rows = frame[self.columns + [FOLD] + targets]
        keyed = rows[self.columns[0]].notnull()
        for c in self.columns[1:]:
            keyed = keyed & rows[c].notnull()
        part = rows[keyed].astype({t: "float64" for t in targets}).rename(columns={t: _sum(t) for t in targets})
        return part.assign(**{N: 1}).groupby(FOLD)[[N] + [_sum(t) for t in targets]].sum().reset_index()

    def set_fold_totals(self, per_fold: Any, targets: list[str]) -> TargetEncoder:
        """Start fitting from per-fold totals (in memory, :meth:`fold_totals_graph`): the priors. The
        key statistics ``stats_`` come from :meth:`partition_oof`'s tables (set by the caller)."""
        sums = [_sum(t) for t in targets]
        per_fold = to_host(per_fold).set_index(FOLD)[[N] + sums]
        total = per_fold.sum()
        self._set_prior(total, targets)
        folds = per_fold.reindex(range(self.n_folds))  # as _oof_table's prior: the rows outside the fold
        self._fold_prior = {t: ((total[_sum(t)] - folds[_sum(t)]) / (total[N] - folds[N])).to_numpy() for t in targets}
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
            encoded[self.output_name(t)] = xp.where(keyed, value, np.nan)
        return encoded

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
        """Fit, and return ``X`` with out-of-fold encodings for its (training) rows."""
        frame, targets = self.prepare(X, y)
        self.set_stats(self.stats_graph(frame, targets).compute(), targets)
        out = apply_joins(frame, [self.oof_join()]).drop(columns=[FOLD])
        return out if is_dask(X) else out.compute()

    def transform(self, X: Any) -> Any:
        """``X`` with full-training encodings (unseen keys get the prior)."""
        self._check_fitted()
        missing = [c for c in self.columns if c not in X.columns]
        if missing:
            raise ValueError(f"TargetEncoder({self.name}): columns {missing} are not in the frame")
        out = apply_joins(as_dask(X), [self.full_join()])
        return out if is_dask(X) else out.compute()

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
        rest = total[N] - per_fold[N]  # column by column: cudf's DataFrame.div has no axis=0
        prior = per_fold.assign(**{f"{s}__prior": (total[s] - per_fold[s]) / rest for s in sums})
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
        if not hasattr(self, "stats_"):
            raise RuntimeError(f"TargetEncoder({self.name}) is not fitted")

    def params(self) -> dict:
        return {
            "columns": self.columns,
            "n_folds": self.n_folds,
            "smooth": self.smooth,
            "fold_method": self.fold_method,
            "seed": self.seed,
            "row_key": self.row_key,
            "prefix": self.prefix,
        }

    def save(self, directory: str | Path) -> None:
        """Write the fitted state: ``<name>.parquet`` (stats) and ``<name>.json`` (params, prior)."""
        self._check_fitted()
        state = {"params": self.params(), "targets": self.targets_, "prior": self.prior_, "n_rows": self.n_rows_}
        save_state(directory, f"{self.prefix}_{self.name}", self.stats_, state)

    @classmethod
    def load(cls, directory: str | Path, name: str, df_lib: Any = None) -> TargetEncoder:
        """Read state written by :meth:`save` (``name`` = ``te_<key>``) into ``df_lib`` frames."""
        state, table = load_state(directory, name, df_lib)
        enc = cls(**state["params"])
        enc.stats_, enc.targets_, enc.prior_, enc.n_rows_ = table, state["targets"], state["prior"], state["n_rows"]
        return enc
