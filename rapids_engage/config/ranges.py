"""Checks of values their type alone does not check (counts >= 1, memory sizes, feature keys)."""

from __future__ import annotations

import math
import re
from typing import Any

from .sections import (ClusterConfig, Config, DataConfig, FeaturesConfig, HistoryConfig, SessionConfig, SplitConfig,
                       SyntheticConfig, TargetEncodingConfig, TrainConfig)
from .table_spec import EventsSpec, ExplodeSpec, TableConfig


#: The least ``cluster.memory_limit`` in bytes: an idle CPU worker (pandas, pyarrow, xgboost loaded) holds
#: about 225 MiB, and dask pauses a worker at 80 % of its limit, kills it at 95 %. At 256MiB (paused at 205 MiB)
#: a worker was paused before its first task; the 30,000-row demo stalled at 300MB (split) and 400MB
#: (training), and completes at 512MiB.
MIN_MEMORY_LIMIT = 2**29


def _size(value: Any, *, auto: bool, no_limit: bool, least: int) -> bool:
    """A memory size as dask reads it: ``auto`` (where allowed), a fraction of the memory in (0, 1], 0 (no
    limit, where allowed), or a whole number of bytes or a size such as ``8GB`` (``dask.utils.parse_bytes``)
    of at least ``least`` bytes. For ``cluster.memory_limit``, dask took ``2`` as 2 bytes, ``-1GB`` failed in a
    traceback, and a worker below :data:`MIN_MEMORY_LIMIT` died at start, leaving the run waiting for ever."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return True  # the type check names it
    if isinstance(value, str) and value.strip() == "auto":
        return auto
    try:
        number = float(value)
    except ValueError:
        from dask.utils import parse_bytes

        try:
            number = parse_bytes(value)
        except ValueError:
            return False
    return (no_limit and number == 0) or 0 < number <= 1 or least <= number < math.inf and number == int(number)


#: What a feature key list must be (features.counts, target_encoding.keys, history.keys).
KEYS_EXPECTED = "a list of distinct, non-empty lists of distinct columns"


def _keys_ok(keys: list[list[str]]) -> bool:
    """Non-empty keys of distinct columns, no key twice (its columns would be added twice, or not fitted)."""
    distinct = len({tuple(key) for key in keys}) == len(keys)
    return distinct and all(key and all(column.strip() for column in key) and len(set(key)) == len(key) for key in keys)


#: What a float XGBoost reads must be: it trained with ``nan`` or ``inf`` (a learning rate of them predicted NaN for
#: every row; a ``min_child_weight`` of them grew no tree), checking only the ranges of numbers.
FINITE = "a finite number (not nan or inf)"


def finite(value: object) -> bool:
    """Whether ``value`` is no float (or text of one) that is nan or infinite."""
    try:
        return not isinstance(value, (float, str)) or math.isfinite(float(value))
    except ValueError:
        return True  # not a number: the parameter's own check names it


#: Values their type alone does not check: (section, key) -> (test, what is expected). A test sees
#: only a value of the field's type (a wrong type is reported as such first).
VALUE_CHECKS: dict[tuple[type, str], tuple[Any, str]] = {
    (Config, "out"): (lambda v: bool(v.strip()), "a directory path"),  # "": the run wrote into the working directory
    (DataConfig, "cache_dir"): (lambda v: bool(v.strip()), "a directory path"),
    (ClusterConfig, "gpus"): (
        lambda v: str(v).strip().lower() == "auto" or str(v).strip().isdigit(),
        "'auto' or a whole number of GPUs >= 0",
    ),
    (ClusterConfig, "scheduler_address"): (  # distributed's own error named neither the flag nor the form
        lambda v: v is None or re.fullmatch(r"((tcp|tls|ucx|wss?)://)?(\[[0-9a-fA-F:.]+\]|[^\s:/\[\]]+):\d{1,5}", v.strip()) is not None,
        "a scheduler address [tcp://]HOST:PORT (tls, ucx, ws, wss too), e.g. tcp://10.0.0.1:8786",
    ),
    (ClusterConfig, "n_workers"): (lambda v: v is None or v >= 1, "a whole number of workers >= 1 or null"),
    (ClusterConfig, "threads_per_worker"): (lambda v: v is None or v >= 1, "a whole number of threads >= 1 or null"),
    (ClusterConfig, "memory_limit"): (
        lambda v: _size(v, auto=True, no_limit=True, least=MIN_MEMORY_LIMIT),
        f"'auto', a size per worker of at least {MIN_MEMORY_LIMIT >> 20}MiB (e.g. '8GB' or bytes), "
        "a fraction of the machine's memory (0 < f <= 1) or 0 (no limit)",
    ),
    (ClusterConfig, "rmm_pool_size"): (
        lambda v: v is None or _size(v, auto=False, no_limit=False, least=1),
        "null, a size such as '60GB', a fraction of the GPU's memory in (0, 1] or a whole number of bytes",
    ),
    (DataConfig, "partition_rows"): (lambda v: v is None or v >= 1, "a whole number of rows >= 1 or null"),
    (DataConfig, "min_partition_rows"): (
        lambda v: v is None or v == "auto" or v >= 1, "a whole number of rows >= 1, 'auto' or null"),
    (DataConfig, "ingest_workers"): (lambda v: v == "auto" or v >= 1, "a whole number of processes >= 1 or 'auto'"),
    (SyntheticConfig, "rows"): (lambda v: v >= 1, "a whole number of rows >= 1"),
    (SyntheticConfig, "days"): (lambda v: v >= 1, "a whole number of days >= 1"),
    (SyntheticConfig, "seed"): (lambda v: v >= 0, "a whole number >= 0"),
    (SyntheticConfig, "n_users"): (lambda v: v is None or v >= 1, "a whole number of users >= 1 or null"),
    (SyntheticConfig, "chunk_rows"): (lambda v: v >= 1, "a whole number of rows >= 1"),
    (SplitConfig, "valid_hours"): (  # a window rounds to whole seconds (event times): under half a second is none
        lambda v: 0 < float(v) < float("inf") and round(float(v) * 3600) >= 1,
        "a number of hours > 0, at least one second (0.0003)",
    ),
    (SplitConfig, "gap_hours"): (lambda v: 0 <= float(v) < float("inf"), "a number of hours >= 0 (0: no gap)"),
    (TargetEncodingConfig, "n_folds"): (lambda v: 2 <= v <= 127, "a whole number of folds from 2 to 127"),
    (TargetEncodingConfig, "smooth"): (lambda v: 0 <= float(v) < float("inf"), "a number >= 0"),
    (TargetEncodingConfig, "seed"): (lambda v: v >= 0, "a whole number >= 0"),
    (TargetEncodingConfig, "keys"): (_keys_ok, KEYS_EXPECTED),
    (FeaturesConfig, "counts"): (_keys_ok, KEYS_EXPECTED),
    (FeaturesConfig, "broadcast_limit"): (lambda v: v is None or v >= 0, "a whole number of rows >= 0 or null"),
    (DataConfig, "keep_ingests"): (  # 0 would delete the folder the run reads: it is kept, as 1 keeps it
        lambda v: v is None or v >= 1, "a whole number of ingest folders >= 1 (this run's among them) or null (keep all)"),
    (FeaturesConfig, "keep_versions"): (  # 0 would delete the version the run trains on: it is kept, as 1 keeps it
        lambda v: v is None or v >= 1, "a whole number of versions >= 1 (this run's among them) or null (keep all)"),
    (HistoryConfig, "keys"): (_keys_ok, KEYS_EXPECTED),
    (HistoryConfig, "windows"): (lambda v: all(w >= 1 for w in v) and len(set(v)) == len(v), "a list of distinct whole numbers of seconds >= 1"),
    (HistoryConfig, "days"): (lambda v: all(d >= 1 for d in v) and len(set(v)) == len(v), "a list of distinct whole numbers of days >= 1"),
    (HistoryConfig, "label_delay"): (lambda v: v >= 0, "a whole number of seconds >= 0"),
    (SessionConfig, "key"): (lambda v: v is None or (len(v) > 0 and all(c.strip() for c in v)), "a non-empty list of column names, or null (the user)"),
    (SessionConfig, "gap"): (lambda v: v >= 0, "a whole number of seconds >= 0"),
    (TableConfig, "list_sep"): (lambda v: v != "", "a non-empty separator"),
    (ExplodeSpec, "sep"): (lambda v: v != "", "a non-empty separator"),
    (ExplodeSpec, "label_sep"): (lambda v: v != "", "a non-empty separator"),
    (TableConfig, "targets"): (lambda v: all(name.strip() for name in v), "target names that are not blank"),
    (EventsSpec, "column"): (lambda v: bool(v.strip()), "the name of the event-type column"),
    (EventsSpec, "anchor"): (lambda v: bool(v.strip()), "the event type of the rows to score (e.g. view)"),
    (EventsSpec, "horizon_hours"): (  # labels are computed in milliseconds
        lambda v: 0 < float(v) < float("inf") and round(float(v) * 3_600_000) >= 1,
        "a number of hours > 0, at least a millisecond",
    ),
    (EventsSpec, "targets"): (
        lambda v: len(v) > 0 and all(name.strip() and event.strip() for name, event in v.items()),
        "a mapping of target names to event types, e.g. {cart: addtocart, buy: transaction}",
    ),
    (TrainConfig, "targets"): (lambda v: len(v) > 0 and len(set(v)) == len(v) and all(name.strip() for name in v),
                               "a non-empty list of distinct, non-blank target names"),  # '  ' was taken, and trained
    **{(TrainConfig, name): (lambda v: math.isfinite(float(v)), FINITE)  # XGBoost took nan and inf: NaN predictions
       for name in ("learning_rate", "subsample", "colsample_bytree", "min_child_weight")},
    (TrainConfig, "num_boost_round"): (lambda v: v >= 1, "a whole number of rounds >= 1"),
    (TrainConfig, "early_stopping_rounds"): (lambda v: v >= 0, "a whole number of rounds >= 0 (0: no early stopping)"),
}
