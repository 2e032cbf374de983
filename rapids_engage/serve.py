"""In-process scoring of in-memory batches: the low-latency serving path, no Dask cluster.

``Scorer(model_dir)`` loads a run's boosters and the fitted serving state of
the feature-store version they were trained on, once. ``scorer.predict(rows)``
computes the rows' features with :meth:`FeatureBuilder.transform_frame` and
scores every target, giving what ``python -m rapids_engage.pipeline predict``
writes for the same rows (the row key, a table's raw ids and ``pred_<target>``: probabilities,
counts for count targets, scores for ranking targets).

The boosters get a dense float32 matrix (numpy on CPU, cupy on GPU), built once
per feature list: XGBoost converts a data frame column by column on every call,
which costs more than scoring one row with all the models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .backend import CPU, Backend, array_module, is_gpu_object
from .features.frames import is_dask
from .predict import PRED_PREFIX, ModelError, id_columns, load_booster, load_builder, load_models, run_directory
from .schema import utc


class Scorer:
    """A run's serving state and boosters: ``features(rows)``, ``scores(features)``, ``predict(rows)``.

    ``backend``: where features and boosters run (default: CPU). ``nthread``:
    XGBoost threads per prediction (default: XGBoost's own choice). ``store``: the feature store
    holding the models' version (default: where they were trained, else the run's ``store/``).
    """

    def __init__(self, model_dir: str | Path, backend: Backend | None = None, nthread: int | None = None,
                 store: str | Path | None = None) -> None:
        self.backend = (backend or CPU).init()
        self.model_dir = Path(model_dir)
        self.metas, self.store = load_models(self.model_dir)
        self.builder = load_builder(self.store, self.backend, self.model_dir, store)
        self.layout = self.builder.layout
        self.boosters = {target: load_booster(meta, self.backend, nthread) for target, meta in self.metas.items()}

    @property
    def targets(self) -> list[str]:
        return list(self.metas)

    def extend_history(self, events: Any) -> Scorer:
        """Fold labelled events that follow the training window (the validation window, what arrived
        since) into the history features' serving state: rows after them see them as history
        (:meth:`FeatureBuilder.extend_history`; ``predict --history``)."""
        self.builder.extend_history(self._on_device(events))
        return self

    def _on_device(self, frame: Any) -> Any:
        """``frame`` moved to the scorer's device when it is on the other one (the fitted tables live there). A dask
        frame on the other device is gathered first: ``cudf.from_pandas`` and ``to_pandas`` take in-memory frames
        only (the builder gathers a dask frame anyway); one on the scorer's device passes as it is."""
        if is_gpu_object(frame) != self.backend.is_gpu:
            frame = frame.compute() if is_dask(frame) else frame
            return self.backend.from_pandas(frame) if self.backend.is_gpu else frame.to_pandas()
        return frame

    def features(self, rows: Any) -> Any:
        """The model features of ``rows`` (a pandas or cudf frame of canonical input columns; moved to
        the scorer's device first when they are on the other one)."""
        if is_dask(rows):
            raise TypeError("Scorer scores in-memory rows (pandas or cudf); for a dask frame use FeatureStore.transform "
                            "or `python -m rapids_engage.pipeline predict`")
        rows = self._on_device(rows)
        carry = [*self.layout.carried(), *id_columns(self.layout, getattr(rows, "columns", ()))]  # not a frame: refused below
        return self.builder.transform_frame(rows, list(dict.fromkeys(carry)))

    def scores(self, features: Any) -> dict[str, Any]:
        """target -> predictions (numpy or cupy) for a frame from :meth:`features`."""
        from .train import to_label_scale

        xp = array_module(features)
        matrices: dict[tuple[str, ...], Any] = {}  # targets usually share their feature list
        out = {}
        for target, booster in self.boosters.items():
            names = tuple(self.metas[target]["features"])
            if names not in matrices:
                matrices[names] = _matrix(features, list(names))
            pred = to_label_scale(booster.inplace_predict(matrices[names]), self.metas[target].get("objective", ""))
            out[target] = xp.expm1(xp.clip(pred, 0, None).astype(np.float64)) if self.layout.target(target).is_regression else pred
        return out

    def predict(self, rows: Any) -> Any:
        """The row key of ``rows`` (and a table's raw ids: ``raw_<row_id column>``, when the rows have them)
        with ``pred_<target>`` for every target, in the rows' order."""
        feats = self.features(rows)
        preds = self.scores(feats)
        return feats[id_columns(self.layout, feats.columns)].assign(**{PRED_PREFIX + t: p for t, p in preds.items()})

    def predict_records(self, records: Any) -> tuple[Any, Any]:
        """(predictions, rejected records) of raw records: a list of dicts as a service receives them
        (JSON objects), or a pandas frame of the file's columns, typed as ``ingest`` types the run's
        files — a table run's ``config.yaml`` says how (ids hashed, times parsed, side tables joined);
        a RecSys run also takes raw ``\x01``-separated lines. A record ``ingest`` would quarantine is not
        scored: ``rejected`` has its position, column, reason and detail. The predictions' index is the
        position of their record (a DataFrame's own index label; a table's ``raw_<row_id column>``
        columns name it too). Both are pandas frames on either device. A record lacking a column of the table but holding a field named like
        it (``autor``, ``Author``) is rejected as ``unknown_field``; other fields are ignored."""
        import pandas as pd

        reader = self._record_reader()
        rows, rejected = reader.read(records)  # indexed by record position until the stale ones are out
        end = self.builder.history_end()
        early = rows[self.layout.time] < end if end is not None else pd.Series(False, index=rows.index)
        if early.any():  # one stale record must not fail the batch: rejected, as ingest would reject a bad one
            first = rows.loc[early].groupby(level=0)[self.layout.time].min()
            stale = pd.DataFrame({"record": first.index, "column": reader.time_column, "reason": "before_training_end",
                                  "detail": [f"{utc(int(t))} is before the end of {self.builder.history_window()} "
                                             f"({utc(end)}): {self.builder.state_groups()} would see the future" for t in first]})
            rejected = pd.concat([rejected, stale], ignore_index=True).sort_values("record", kind="stable", ignore_index=True)
            rows = rows.loc[~rows.index.isin(first.index)]
        if isinstance(records, pd.DataFrame) and not records.index.equals(pd.RangeIndex(len(records))):  # its own labels
            rows.index = pd.Index(records.index[rows.index.to_numpy()], name="record")  # (labels may repeat: positions
            rejected["record"] = records.index[rejected["record"].to_numpy(dtype="int64")]  # picked the stale rows)
        if not len(rows):
            ids = id_columns(self.layout, rows.columns)
            dtypes = {t: "float64" if self.layout.target(t).is_regression else "float32" for t in self.targets}  # as scores'
            return pd.DataFrame({c: rows[c] for c in ids} | {PRED_PREFIX + t: pd.Series([], dtype=d) for t, d in dtypes.items()}), rejected
        preds = self.predict(rows.reset_index(drop=True))
        preds = preds.to_pandas() if is_gpu_object(preds) else preds  # records come from the host, answers go back there
        preds.index = rows.index  # the record of each row
        return preds, rejected

    def _record_reader(self) -> Any:
        """The raw-record reader of the run's table (built on first use: side tables are read once)."""
        if getattr(self, "_reader", None) is None:
            from .config import load_config
            from .ingest.records import RecordReader

            if self.layout.kind == "recsys":
                from .ingest.recsys_records import RecsysRecordReader

                self._reader = RecsysRecordReader()
                return self._reader
            config = run_directory(self.model_dir) / "config.yaml"
            if not config.is_file():
                raise ModelError(f"{config} is missing: predict_records types records as the run's data.table says "
                                 "(runs write it since 2026-12-02; rerun the pipeline)")
            self._reader = RecordReader(load_config(config).data.table)
        return self._reader


def _matrix(features: Any, names: list[str]) -> Any:
    """The booster input for ``names``: a float32 numpy or cupy matrix, nulls as NaN. Cast first, then filled: cudf's
    ``to_cupy(na_value=)`` fills a column's nulls in its own dtype, which an integer or bool column with nulls (a
    numeric input column passed through) refuses for NaN (TypeError: cannot safely cast)."""
    floats = features[names].astype(np.float32)
    if is_gpu_object(features):
        return floats.to_cupy(dtype=np.float32, na_value=np.nan)
    return floats.to_numpy(dtype=np.float32, na_value=np.nan)
