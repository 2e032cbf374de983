"""Cross-field check of ``train.per_target``: its keys against ``train.targets``, its rounds as ``train``'s own."""

from __future__ import annotations

import difflib

from .errors import ConfigError, source_message
from .ranges import FINITE, VALUE_CHECKS, finite
from .sections import TrainConfig
from .typecheck import problem, show


def check_per_target(train: TrainConfig, source: str, origins: dict[str, str]) -> None:
    """A ``train.per_target`` key that is no target but close to one is a typo: an error naming it.
    (A key of a target left out of ``train.targets`` is fine: one config, runs of some targets.)
    Its ``num_boost_round`` and ``early_stopping_rounds`` are checked as ``train``'s own, the parameters the run
    sets itself (``objective``, ``device``) take no null or other type, and no value is nan or infinite."""
    for name, overrides in train.per_target.items():
        _check_run_set(name, overrides, source, origins)
        for rounds in ("num_boost_round", "early_stopping_rounds"):
            if rounds in overrides:
                key, (test, expected) = f"train.per_target.{name}.{rounds}", VALUE_CHECKS[(TrainConfig, rounds)]
                value = overrides[rounds]
                if problem(int, value, key) or not test(value):
                    raise ConfigError(source_message(source, origins, f"{key}: expected {expected}, got {show(value)}"))
        if name in train.targets:
            continue
        close = difflib.get_close_matches(str(name), list(train.targets), n=1, cutoff=0.75)
        if close:
            key = f"train.per_target.{name}"
            raise ConfigError(source_message(source, origins, f"{key}: no target {name!r}: did you mean {close[0]!r}? "
                                                              f"(train.targets: {', '.join(train.targets)})"))


def _check_run_set(name: str, overrides: dict, source: str, origins: dict[str, str]) -> None:
    """``objective`` a name, ``device`` no null: the run sets both (by the target's kind, by ``--gpus``), and
    ``objective: null`` or a number was a traceback (AttributeError) before the data stage, ``device: null`` one
    after the features were built (``train.external_memory``) or left XGBoost's default device (the CPU) on a GPU run."""
    key = f"train.per_target.{name}"
    if "objective" in overrides and not isinstance(overrides["objective"], str):
        raise ConfigError(source_message(source, origins, f"{key}.objective: expected an XGBoost objective name "
                                                          f"(e.g. binary:logistic), got {show(overrides['objective'])}"))
    for param, value in overrides.items():
        if not finite(value):
            raise ConfigError(source_message(source, origins, f"{key}.{param}: expected {FINITE}, got {show(value)}"))
    if "device" in overrides and overrides["device"] is None:
        raise ConfigError(source_message(source, origins, f"{key}.device: null would leave XGBoost's default device: "
                                                          "drop the setting (--gpus picks the device of every stage)"))
