"""The training settings checked against the data before any data is read: every target's XGBoost
parameters validated by XGBoost itself, and the settings it cannot judge (an objective that does not fit the target's
kind, ranking without a group, balanced weights of a count target), each error naming its config key."""

from __future__ import annotations

import contextlib
import ctypes
import difflib
import json
import re
import warnings
from dataclasses import fields
from typing import Any, Iterator

from .backend import Backend
from .config import ConfigError, TrainConfig
from .layout import Layout
from .train import BALANCED, fits_raw_counts, is_ranking, xgb_params


#: The boosters a run trains: training builds XGBoost ``QuantileDMatrix`` (in memory and ``ExtMemQuantileDMatrix``), whose
#: binned features gblinear cannot train on ("Not implemented for `QuantileDMatrix`", after the features were built);
#: the pre-data check used to name the first tree parameter it ignores instead.
TREE_BOOSTERS = ("gbtree", "dart")


def check_params(cfg: TrainConfig, layout: Layout, backend: Backend) -> None:
    """Each target's XGBoost parameters, checked before any feature is built: a parameter XGBoost
    would ignore (a typo, ``max_dept``), a value it refuses, an objective that does not fit the target's kind (a
    0/1 target needs probabilities or a ranking, a count target no class objective) or a ranking objective without
    a group, or a booster other than a tree booster (gblinear), is a :class:`ConfigError` naming the config key.

    XGBoost validates them on a two-row CPU booster in this process (no GPU context, milliseconds).
    A ``per_target`` entry of a target the data do not define is an error too.
    """
    names = [t.name for t in layout.targets]
    for name in cfg.per_target:
        if name not in names:
            close = difflib.get_close_matches(str(name), names, n=1, cutoff=0.6)
            raise ConfigError(f"train.per_target.{name}: the data define no target {name!r}"
                              + (f": did you mean {close[0]!r}?" if close else "") + f" (targets: {', '.join(names)})")
    for target in cfg.targets:
        _device_fits(cfg.per_target.get(target, {}).get("device"), target, backend)
        kind = layout.target(target).kind
        params = xgb_params(cfg, target, backend, kind)
        try:
            if params.get("booster", "gbtree") not in TREE_BOOSTERS:  # before XGBoost, which names a tree parameter
                raise ValueError(f"booster {params['booster']!r}: a run trains tree boosters ({', '.join(TREE_BOOSTERS)}) on "
                                 "XGBoost's QuantileDMatrix, whose binned features gblinear cannot train on")
            if params.get("scale_pos_weight") == BALANCED:
                if kind == "count" or is_ranking(params["objective"]):
                    raise ValueError(f"{BALANCED} weighs the classes of a 0/1 target; {target!r} is "
                                     + ("ranked" if kind != "count" else "a count target"))
                params["scale_pos_weight"] = 1.0  # any number: XGBoost checks the rest
            _xgboost_validates({**params, "device": "cpu"})
            _fits_kind(params, target, kind)  # a known objective (XGBoost named an unknown one)
            if is_ranking(params["objective"]) and layout.group is None:
                raise ValueError(f"objective {params['objective']} ranks the rows of a group: set data.table.group")
            if is_ranking(params["objective"]) and cfg.external_memory:
                raise ValueError(f"objective {params['objective']} needs xgboost.dask: set train.external_memory: false")
        except ValueError as exc:
            message = str(exc).removeprefix("train: ")
            raise ConfigError(f"{_config_key(cfg, target, message)}: {message}") from None


def _device_fits(device: Any, target: str, backend: Backend) -> None:
    """A :class:`ConfigError` naming ``train.per_target.<target>.device`` when it contradicts the backend, which
    picks the device (``--gpus``): a GPU device on a CPU run (XGBoost trained on the CPU anyway, with a warning, where
    no GPU is visible, and took a GPU the run was told to leave alone where one is), ``cpu`` on a GPU run (trained
    on the CPU from the workers' device memory) or a GPU ordinal (``cuda:0``: dask-cuda gives each worker its GPU,
    and xgboost.dask refuses it mid-training). The backend's own device is accepted."""
    if device is None or str(device) == backend.xgb_device:
        return
    key, text = f"train.per_target.{target}.device", str(device)
    flag = f"--gpus {backend.n_gpus}"
    if backend.is_gpu and text.startswith(("cuda:", "gpu:")):
        raise ConfigError(f"{key}: {text!r} names a GPU, and dask-cuda gives each worker its own: "
                          "drop the setting (--gpus picks the device)")
    if backend.is_gpu and text in ("cuda", "gpu"):
        return
    where = "on a GPU" if text.startswith(("cuda", "gpu")) else "on the CPU" if text == "cpu" else f"on {text!r}"
    runs = "runs on GPUs" if backend.is_gpu else "runs on the CPU"
    raise ConfigError(f"{key}: {text!r} would train {where}, and {flag} {runs}: drop the setting "
                      "(--gpus picks the device of every stage)")


#: The objectives whose predictions are probabilities: a 0/1 target's RCE, log loss and calibration need them.
PROBABILITY_OBJECTIVES = ("binary:logistic", "reg:logistic")
#: Objectives of classes or survival times: XGBoost refuses a count target's log1p labels (``base_score must be in
#: (0,1)``, ``label must be discrete values``) mid-training, or reads them as something else.
CLASS_OBJECTIVES = ("binary:", "multi:", "survival:", "reg:logistic")


def _fits_kind(params: dict[str, Any], target: str, kind: str) -> None:
    """ValueError when the objective of ``params`` cannot model a target of ``kind`` as training and the evaluation
    read it: a raw-count objective of a 0/1 target, a ranking or class objective of a count target, an objective
    predicting no probabilities of a 0/1 target."""
    fits_raw_counts(params, target, kind)
    objective = params["objective"]
    if is_ranking(objective) and kind == "count":  # XGBoost's rank objectives / NDCG take 0/1 or whole relevance
        raise ValueError(f"objective {objective} ranks the rows of a group by a 0/1 target; {target!r} is a "
                         "count target (its label is log1p(count)): leave it to the count objectives")
    if is_ranking(objective):
        return
    if kind == "count" and objective.startswith(CLASS_OBJECTIVES):
        raise ValueError(f"objective {objective} models classes, and {target!r} is a count target (its label is "
                         "log1p(count)): reg:squarederror, count:poisson, reg:tweedie or reg:gamma")
    if kind != "count" and objective not in PROBABILITY_OBJECTIVES:
        raise ValueError(f"objective {objective} does not predict probabilities, which the metrics of the 0/1 target "
                         f"{target!r} need (RCE, log loss): binary:logistic, or rank:ndcg / rank:pairwise / rank:map "
                         "to rank the rows of a group")


def _xgboost_validates(params: dict[str, Any]) -> None:
    """ValueError with XGBoost's own words when it refuses ``params`` or would not use one of them."""
    import numpy as np
    import xgboost as xgb

    rows = xgb.DMatrix(np.zeros((2, 1), dtype=np.float32), label=np.array([0.0, 1.0]))
    # XGBoost says "not used" at verbosity >= 1 only: a quiet process (a worker's setup in this process, a user's
    # set_config) or verbosity 0 in the parameters let a misspelt parameter through unseen
    if params.get("verbosity") == 0:
        params = {**params, "verbosity": 1}
    try:
        with _xgboost_log_lines() as lines, xgb.config_context(verbosity=1):
            booster = xgb.Booster(params, [rows])
            known = _config_keys(json.loads(booster.save_config()))
    except xgb.core.XGBoostError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ValueError("XGBoost: " + re.sub(r"^\[[\d:]+\] \S+: ", "", first)) from None
    for line in lines:
        unused = re.search(r"Parameters: \{(.*?)\} are not used", line, re.S)
        if unused:
            name = unused.group(1).split(",")[0].strip().strip('"')
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
            raise ValueError(f"XGBoost has no parameter {name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))


@contextlib.contextmanager
def _xgboost_log_lines() -> Iterator[list[str]]:
    """XGBoost's log lines of this thread while the block runs, then its own Python callback registered again.

    Its native log reaches Python (as warnings) through the callback ``import xgboost`` registers, per thread; after an
    xgboost.dask training on in-process workers, this thread's lines went to stderr instead, so a misspelt parameter
    passed unseen. Where the library lacks the hook, the warnings its callback raises are read instead."""
    from xgboost import core

    lib = core._LIB
    if not (hasattr(lib, "XGBRegisterLogCallback") and hasattr(lib, "callback")):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            lines: list[str] = []
            yield lines
        lines.extend(str(w.message) for w in caught)
        return
    lines = []
    collect = ctypes.CFUNCTYPE(None, ctypes.c_char_p)(lambda message: lines.append(message.decode("utf-8", "replace")))
    lib.XGBRegisterLogCallback(collect)
    try:
        yield lines
    finally:
        lib.XGBRegisterLogCallback(lib.callback)


def config_key(cfg: TrainConfig, target: str, message: str) -> str:
    """The config key a parameter problem of ``target`` comes from (:func:`_config_key`)."""
    return _config_key(cfg, target, message)


def _config_keys(config: Any) -> set[str]:
    """Every parameter name in a booster's saved configuration."""
    if not isinstance(config, dict):
        return set()
    return {k for k, v in config.items() if not isinstance(v, dict)} | {k for v in config.values() for k in _config_keys(v)}


def _config_key(cfg: TrainConfig, target: str, message: str) -> str:
    """The config key a parameter problem comes from: the ``per_target`` entry whose name or value the
    message holds, else the shared setting it names."""

    def said(word: Any) -> bool:
        return re.search(rf"(?<![\w:]){re.escape(str(word))}(?![\w:])", message) is not None

    overrides = cfg.per_target.get(target, {})
    named = [k for k in overrides if said(k)] or [k for k, v in overrides.items() if said(v)]
    if named:
        return f"train.per_target.{target}.{named[0]}"
    shared = [f.name for f in fields(cfg) if said(f.name)]
    return f"train.{shared[0]}" if shared else f"train (target {target!r})"
