"""One XGBoost model per engagement target, trained on the cluster (:mod:`.train_shared_matrix`: the targets
share each worker's quantile sketch; :mod:`.train_external`: from the store's files).

``device="cuda"`` on GPU workers, ``"cpu"`` otherwise, always ``tree_method="hist"``,
early stopping on the forward-in-time validation window. Models are saved in
XGBoost's own JSON format with their feature list, never pickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .atomic import write_file, write_text
from .backend import Backend
from .config import ConfigError, TrainConfig


@dataclass
class TrainedModel:
    target: str
    booster: Any
    best_iteration: int
    history: dict[str, list[float]] = field(default_factory=dict)  # validation metric(s) per round
    kind: str = "binary"  # the target's kind: count models predict log1p(count)
    objective: str = "binary:logistic"
    train_history: dict[str, list[float]] = field(default_factory=dict)  # the same on the training rows
    params: dict[str, Any] = field(default_factory=dict)  # the XGBoost parameters it was trained with

    @property
    def ranks(self) -> bool:
        """A learning-to-rank model: its predictions are scores, not probabilities."""
        return is_ranking(self.objective)

    def save(self, directory: Path, features: list[str], store: dict | None = None) -> Path:
        """``<target>.json`` (XGBoost JSON) and ``<target>.meta.json`` (features, store version, parameters)."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.target}.json"
        # the bytes save_model writes, written by Python: a full disk is an OSError naming the file (XGBoost's own
        # write failed in a multi-line "FileStream.Write incomplete" with a native stack trace)
        write_file(path, lambda tmp: tmp.write_bytes(bytes(self.booster.save_raw("json"))))
        meta = {"target": self.target, "kind": self.kind, "objective": self.objective, "best_iteration": self.best_iteration,
                "params": self.params, "features": features, "store": store}
        write_text(directory / f"{self.target}.meta.json", json.dumps(meta, indent=1))
        return path


#: Objective and early-stopping metric per target kind (``count`` targets are log1p(count)).
OBJECTIVES = {"present": ("binary:logistic", "logloss"), "binary": ("binary:logistic", "logloss"),
              "count": ("reg:squarederror", "rmse")}


#: Count objectives fitted on raw counts (log-link): labels are expm1(log1p label) for them and
#: their predicted counts go back to log1p, so every other stage sees one scale.
RAW_COUNT_OBJECTIVES = ("count:poisson", "reg:tweedie", "reg:gamma")


def is_ranking(objective: str) -> bool:
    return objective.startswith("rank:")


def to_label_scale(predictions: Any, objective: str) -> Any:
    """Predictions on the scale of the stored label (log1p for count targets of a raw-count objective)."""
    import numpy as np

    return np.log1p(predictions) if objective in RAW_COUNT_OBJECTIVES else predictions


def xgb_params(cfg: TrainConfig, target: str, backend: Backend, kind: str = "binary") -> dict[str, Any]:
    """XGBoost parameters for ``target`` of ``kind``: the shared ones, then ``per_target`` overrides."""
    objective, metric = OBJECTIVES[kind]
    params: dict[str, Any] = {
        "objective": objective,
        "eval_metric": metric,
        "tree_method": "hist",
        "device": backend.xgb_device,
        "max_depth": cfg.max_depth,
        "learning_rate": cfg.learning_rate,
        "subsample": cfg.subsample,
        "colsample_bytree": cfg.colsample_bytree,
        "min_child_weight": cfg.min_child_weight,
        "max_bin": cfg.max_bin,
        "seed": cfg.seed,
    }
    overrides = dict(cfg.per_target.get(target, {}))
    params.update({k: v for k, v in overrides.items() if k not in ("num_boost_round", "early_stopping_rounds")})
    if "objective" in overrides and "eval_metric" not in overrides:
        params.pop("eval_metric")  # the objective's own metric (poisson-nloglik, tweedie-nloglik, ...)
        if is_ranking(params["objective"]):
            params["eval_metric"] = "ndcg@10"
    return params


def matrix_max_bin(params: dict[str, Any]) -> int:
    """The target's ``max_bin`` as the whole number XGBoost's quantile matrices take: its parameters read text
    (``per_target.like.max_bin: '64'``, checked by XGBoost before the data stage), its matrices refused it with a
    native stack trace naming no target."""
    return int(params["max_bin"])


def boosting_rounds(cfg: TrainConfig, target: str) -> tuple[int, int]:
    """(most boosting rounds, early-stopping patience) of a target (``per_target`` overrides)."""
    extra = cfg.per_target.get(target, {})
    return int(extra.get("num_boost_round", cfg.num_boost_round)), int(extra.get("early_stopping_rounds", cfg.early_stopping_rounds))


#: ``scale_pos_weight: balanced``: negatives / positives of the target's training rows, counted at training.
BALANCED = "balanced"


def weigh_classes(params: dict[str, Any], label_totals: Callable[[], tuple[float, float]]) -> None:
    """Replace ``scale_pos_weight: balanced`` in ``params`` by negatives / positives, from
    ``label_totals()`` = (sum of the 0/1 labels, rows); 1 when a class is missing."""
    if params.get("scale_pos_weight") != BALANCED:
        return
    positives, rows = (float(v) for v in label_totals())
    params["scale_pos_weight"] = (rows - positives) / positives if 0 < positives < rows else 1.0


#: Raw-count objectives whose labels must be above 0 (XGBoost: "label must be positive for gamma regression").
POSITIVE_COUNT_OBJECTIVES = ("reg:gamma",)


def check_lowest_label(params: dict[str, Any], target: str, lowest: Callable[[], float]) -> None:
    """A :class:`ConfigError` naming the setting when ``target``'s objective needs counts above 0 and ``lowest()``,
    the smallest stored (log1p) training label, says a count of 0 is there: XGBoost would stop mid-training with
    its own stack trace. ``lowest`` is only called for such an objective."""
    objective = params["objective"]
    if objective in POSITIVE_COUNT_OBJECTIVES and not float(lowest()) > 0:
        raise ConfigError(f"train.per_target.{target}.objective: {objective} needs counts above 0, and {target!r} has "
                          "counts of 0 in the training rows; count:poisson or reg:tweedie fit counts with zeros")


def fits_raw_counts(params: dict[str, Any], target: str, kind: str) -> bool:
    """Whether the objective fits raw counts (labels are log1p: expm1 them); only count targets may."""
    raw = params["objective"] in RAW_COUNT_OBJECTIVES
    if raw and kind != "count":
        raise ValueError(f"train: objective {params['objective']} needs a count target; {target!r} is a 0/1 target")
    return raw


#: What the models are evaluated on each round: early stopping watches the last, the validation rows.
EVAL_SETS = ("train", "valid")


def loaded_booster(raw: bytes, params: dict[str, Any]) -> Any:
    """A booster from the UBJ bytes a worker saved, on the device it was trained for: the bytes keep no
    ``device``, and a CPU booster given GPU rows warns and copies them to the host to predict (seen on an H200)."""
    import xgboost as xgb

    booster = xgb.Booster(model_file=bytearray(raw))
    if params.get("device"):
        booster.set_param({"device": params["device"]})
    return booster


def best_model(booster: Any, evals_result: dict, patience: int) -> tuple[Any, int, dict[str, dict[str, list[float]]]]:
    """(booster cut at its best round when early stopping, that round, the metric(s) per round of
    each of :data:`EVAL_SETS`)."""
    best = booster.best_iteration if patience > 0 and hasattr(booster, "best_iteration") else booster.num_boosted_rounds() - 1
    if patience > 0:
        booster = booster[: best + 1]
    per_round = {s: {name: list(values) for name, values in evals_result.get(s, {}).items()} for s in EVAL_SETS}
    return booster, int(best), per_round


def as_float32(frame: Any, features: list[str]) -> Any:
    """``frame`` with its feature columns as float32, the precision XGBoost trains and predicts in:
    the same models and predictions with half the worker memory of int64 / float64 columns."""
    return frame.astype({c: "float32" for c in features})


def query_ids(group: Any) -> Any:
    """XGBoost query ids (uint32) of int64 group keys: their top 31 bits, so sorting by group sorts them too.

    Two groups share an id only when their 64-bit hashes share the top 31 bits (about n^2 / 2^32 pairs
    among n groups: 2 among 100,000, about 230 among a million); being neighbours in the sort, XGBoost
    then takes such a pair for one query. The evaluation's ranking metrics use the whole 64-bit group.
    """
    return group // (1 << 33) + (1 << 30)


def by_group(frame: Any, group: str, row_key: Sequence[str] = ()) -> Any:
    """``frame`` sorted by group across partitions, each group in one partition (what XGBoost's ``qid``
    needs), and by ``row_key`` within a group, so the row order XGBoost sees does not depend on the
    partitioning. A worker's partitions, concatenated in order, are then already sorted: XGBoost
    does not concatenate and re-sort them itself (a copy of the worker's data)."""
    by = [group, *row_key]
    if frame.npartitions > 1:
        return frame.sort_values(by).optimize()  # its divisions computed here, not in XGBoost's async persist
    return frame.map_partitions(lambda part: part.sort_values(by), meta=frame._meta)


def uses_rmm(backend: Backend) -> bool:
    """Whether XGBoost allocates GPU memory through RMM (an RMM pool, cuDF spilling on demand): only a
    GPU run with an XGBoost built with RMM (the RAPIDS conda packages; pip wheels are not)."""
    import xgboost as xgb

    return backend.is_gpu and bool(xgb.build_info().get("USE_RMM"))


def predict(client: Any, model: TrainedModel, frame: Any, features: list[str]) -> Any:
    """Lazy dask predictions of ``model`` for the rows of ``frame``."""
    import xgboost as xgb
    import xgboost.dask  # noqa: F401 - registers xgb.dask

    return to_label_scale(xgb.dask.inplace_predict(client, model.booster, frame[features]), model.objective)

