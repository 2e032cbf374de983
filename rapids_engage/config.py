"""Typed run configuration, loaded from YAML (``configs/*.yaml``).

Every section is a dataclass; :func:`load_config` turns a YAML file plus
``--set section.key=value`` overrides into a :class:`Config`. Unknown keys and
wrongly typed values are :class:`ConfigError` naming the file, the key path, what
was expected and what was given (``configs/x.yaml: split.valid_hours: expected a
number, got 'three'``), and the ``--set`` override or flag when the value came
from one; so are values out of their range (``_VALUE_CHECKS``: ``cluster.n_workers: expected a whole
number of workers >= 1 or null, got 0``). dacite does the typed dict -> dataclass conversion once the data pass.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import dacite
import yaml

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"


class ConfigError(ValueError):
    """A configuration file or override is invalid."""


@dataclass
class SyntheticConfig:
    """The embedded synthetic RecSys 2021 dataset (``data.source: synthetic``)."""

    rows: int = 1_000_000
    days: int = 28
    seed: int = 42
    n_users: int | None = None
    chunk_rows: int = 1_000_000


@dataclass
class TargetSpec:
    """One engagement target of a table: its source column and kind.

    ``binary``: 0/1 (also true/false); ``count``: a non-negative count, modelled
    as log1p(count) by regression; ``present``: 1 where the column is non-empty
    (e.g. an engagement timestamp).
    """

    column: str
    kind: Literal["binary", "count", "present"] = "binary"


@dataclass
class ExplodeSpec:
    """Turn one row into one row per token of a list column (e.g. MIND impressions).

    Each ``sep``-separated token of ``column`` becomes a row whose ``item``
    column holds the token; with ``label`` set, a token is ``ITEM<label_sep>LABEL``
    and the part after the last ``label_sep`` becomes the ``label`` column.
    """

    column: str
    item: str
    label: str | None = None
    sep: str = " "
    label_sep: str = "-"


@dataclass
class SideTableSpec:
    """A small metadata table (e.g. MIND news.tsv) left-joined on its ``key`` column before typing."""

    path: str
    key: str
    keep: list[str] = field(default_factory=list)
    format: Literal["csv", "tsv", "jsonl", "parquet"] = "tsv"
    header: bool = False
    columns: list[str] = field(default_factory=list)


@dataclass
class TableConfig:
    """A generic event table (``data.source: table``): the format and the role of each column.

    ``format``: csv | tsv | jsonl | parquet (gzip/bz2/zstd detected from the
    bytes); ``columns`` names the fields of header-less files. ``time_format``:
    ``unix`` (seconds), ``unix_ms``, ``iso`` or a strptime pattern. ``row_id``:
    columns that identify a row (after ``explode``; default: file and line).
    ``user`` / ``item`` / ``creator`` / ``group`` and ``row_id`` are hashed to
    int64; ``categorical``, ``text``, ``url`` and ``lists`` stay strings;
    ``numeric`` becomes float64. ``group`` is the ranking group (e.g. impression).
    """

    format: Literal["csv", "tsv", "jsonl", "parquet"] = "csv"
    header: bool = True
    columns: list[str] = field(default_factory=list)
    time: str = ""
    time_format: str = "unix"
    row_id: list[str] = field(default_factory=list)
    user: str | None = None
    item: str | None = None
    creator: str | None = None
    group: str | None = None
    targets: dict[str, TargetSpec] = field(default_factory=dict)
    categorical: list[str] = field(default_factory=list)
    numeric: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    url: list[str] = field(default_factory=list)
    lists: list[str] = field(default_factory=list)
    list_sep: str = " "
    explode: ExplodeSpec | None = None
    join: list[SideTableSpec] = field(default_factory=list)


@dataclass
class DataConfig:
    """Where the events come from.

    ``synthetic``: the generator (section ``synthetic``); ``parquet``: a canonical
    day-partitioned store at ``path``; ``recsys``: raw RecSys 2021 files (``path``
    is a glob, gzip allowed), ingested once into ``cache_dir`` with bad rows
    quarantined (``strict``: fail at the first bad row instead); ``table``: any
    CSV/TSV/JSONL/parquet files (``path`` glob) described by ``table``.
    """

    source: Literal["synthetic", "parquet", "recsys", "table"] = "synthetic"
    path: str | None = None
    cache_dir: str = "~/.cache/rapids_engage"
    strict: bool = False
    table: TableConfig | None = None
    # at most this many rows per partition (input files with more are split): what one task holds,
    # so the lever on worker memory when files are large. null: no split
    partition_rows: int | None = None
    # consecutive input files with fewer rows are merged into partitions of about this many (never
    # more than partition_rows, never fewer partitions than the cluster has worker threads: fewer
    # files are split): tiny partitions cost a task's overhead each. auto: 250,000 rows on CPU,
    # 2,000,000 on GPU; null: a partition per file
    min_partition_rows: int | Literal["auto"] | None = "auto"


@dataclass
class ClusterConfig:
    """Dask cluster: local CPU processes, one worker per GPU, or an existing scheduler."""

    gpus: str | int = "auto"
    scheduler_address: str | None = None
    n_workers: int | None = None
    threads_per_worker: int | None = None
    memory_limit: str | float | int = "auto"  # "8GB", a fraction of the machine (0.5) or bytes
    rmm_pool_size: str | float | int | None = None  # "60GB" or a fraction of the GPU (0.8)
    spill: bool = True
    local_directory: str | None = None


@dataclass
class SplitConfig:
    """Forward-in-time split: the last ``valid_hours`` of events are validation."""

    valid_hours: float = 24.0


#: Target-encoding keys of the RecSys 2021 winners: the default when a config names none.
WINNER_TE_KEYS = [
    ["engaging_user_id"], ["engaged_with_user_id"], ["language"], ["tweet_type"], ["present_media"],
    ["first_hashtag"], ["first_domain"], ["engaging_user_id", "language", "tweet_type"],
    ["engaged_with_user_id", "language", "tweet_type"], ["engaging_user_id", "engaged_with_user_id"],
    ["language", "tweet_type", "present_media"],
]
#: Count-encoding keys used when a config names none.
DEFAULT_COUNT_KEYS = [
    ["engaging_user_id"], ["engaged_with_user_id"], ["engaging_user_id", "engaged_with_user_id"],
    ["language"], ["first_hashtag"], ["first_domain"],
]


@dataclass
class TargetEncodingConfig:
    """Out-of-fold K-fold target encoding of single- and multi-column keys."""

    keys: list[list[str]] = field(default_factory=lambda: [list(k) for k in WINNER_TE_KEYS])
    n_folds: int = 5
    smooth: float = 20.0
    fold_method: Literal["hash", "contiguous", "random"] = "hash"
    seed: int = 0


@dataclass
class HistoryConfig:
    """Point-in-time history of keys: earlier events and engagements, overall, per rolling window
    (seconds) and per calendar span (the ``days`` whole UTC days before the event's day), with
    engagement rates over labelled events when ``rates``."""

    keys: list[list[str]] = field(default_factory=list)
    windows: list[int] = field(default_factory=lambda: [86400, 604800])
    days: list[int] = field(default_factory=lambda: [1])
    rates: bool = True
    label_delay: int = 0  # seconds before an event's label may be used (e.g. the validation window)


@dataclass
class FeaturesConfig:
    """Feature groups computed for every row."""

    target_encoding: TargetEncodingConfig = field(default_factory=TargetEncodingConfig)
    counts: list[list[str]] = field(default_factory=lambda: [list(k) for k in DEFAULT_COUNT_KEYS])
    history: HistoryConfig = field(default_factory=HistoryConfig)
    content: bool = True
    # cnt_day_<key>: rows of the key on the same UTC day in the batch being transformed. Strong on a
    # whole day scored at once (as in RecSys 2021), but a row served alone counts only itself:
    # false when serving row by row
    daily_counts: bool = True
    store: str | None = None  # default: <out>/store
    # key tables (statistics per key) estimated to have more rows stay partitioned on the workers
    # and are shuffle-joined (keys only); smaller ones are gathered and broadcast. null: always broadcast.
    broadcast_limit: int | None = 2_000_000
    # where frames read more than once during the build live: "memory" (persisted on the workers,
    # spilled under cluster.memory_limit), "disk" (parquet in the store's staging directory, read
    # back a partition at a time: worker memory stays bounded whatever the data size) or "auto"
    # (disk on CPU, where it costs nothing measurable; memory on GPU)
    intermediates: Literal["auto", "memory", "disk"] = "auto"


@dataclass
class TrainConfig:
    """XGBoost parameters shared by all targets; ``per_target`` overrides by target name."""

    targets: list[str] = field(default_factory=lambda: ["like", "retweet", "reply", "quote"])
    max_depth: int = 8
    learning_rate: float = 0.1
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    min_child_weight: float = 1.0
    max_bin: int = 256
    num_boost_round: int = 1000
    early_stopping_rounds: int = 25
    seed: int = 0
    per_target: dict[str, dict[str, Any]] = field(default_factory=dict)
    # true: one booster per target from the store's files through XGBoost's external memory
    # (one worker, a disk cache), for training splits larger than the workers' memory
    external_memory: bool = False


@dataclass
class Config:
    """A whole run."""

    out: str = "runs/default"
    data: DataConfig = field(default_factory=DataConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


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


#: Values their type alone does not check: (section, key) -> (test, what is expected). A test sees
#: only a value of the field's type (a wrong type is reported as such first).
_VALUE_CHECKS: dict[tuple[type, str], tuple[Any, str]] = {
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
    (SyntheticConfig, "rows"): (lambda v: v >= 1, "a whole number of rows >= 1"),
    (SyntheticConfig, "days"): (lambda v: v >= 1, "a whole number of days >= 1"),
    (SyntheticConfig, "seed"): (lambda v: v >= 0, "a whole number >= 0"),
    (SyntheticConfig, "n_users"): (lambda v: v is None or v >= 1, "a whole number of users >= 1 or null"),
    (SyntheticConfig, "chunk_rows"): (lambda v: v >= 1, "a whole number of rows >= 1"),
    (SplitConfig, "valid_hours"): (lambda v: 0 < float(v) < float("inf"), "a number of hours > 0"),
    (TargetEncodingConfig, "n_folds"): (lambda v: 2 <= v <= 127, "a whole number of folds from 2 to 127"),
    (TargetEncodingConfig, "smooth"): (lambda v: 0 <= float(v) < float("inf"), "a number >= 0"),
    (TargetEncodingConfig, "seed"): (lambda v: v >= 0, "a whole number >= 0"),
    (TargetEncodingConfig, "keys"): (_keys_ok, KEYS_EXPECTED),
    (FeaturesConfig, "counts"): (_keys_ok, KEYS_EXPECTED),
    (FeaturesConfig, "broadcast_limit"): (lambda v: v is None or v >= 0, "a whole number of rows >= 0 or null"),
    (HistoryConfig, "keys"): (_keys_ok, KEYS_EXPECTED),
    (HistoryConfig, "windows"): (lambda v: all(w >= 1 for w in v) and len(set(v)) == len(v), "a list of distinct whole numbers of seconds >= 1"),
    (HistoryConfig, "days"): (lambda v: all(d >= 1 for d in v) and len(set(v)) == len(v), "a list of distinct whole numbers of days >= 1"),
    (HistoryConfig, "label_delay"): (lambda v: v >= 0, "a whole number of seconds >= 0"),
    (TableConfig, "list_sep"): (lambda v: v != "", "a non-empty separator"),
    (ExplodeSpec, "sep"): (lambda v: v != "", "a non-empty separator"),
    (ExplodeSpec, "label_sep"): (lambda v: v != "", "a non-empty separator"),
    (TrainConfig, "targets"): (lambda v: len(v) > 0 and len(set(v)) == len(v), "a non-empty list of distinct target names"),
    (TrainConfig, "num_boost_round"): (lambda v: v >= 1, "a whole number of rounds >= 1"),
    (TrainConfig, "early_stopping_rounds"): (lambda v: v >= 0, "a whole number of rounds >= 0 (0: no early stopping)"),
}
#: The list[list[str]] fields are all column keys (features.counts, target_encoding.keys, history.keys).
_KEY_LISTS = "a list of column lists, e.g. [[engaging_user_id], [creator_id, language]]"
_WORDS = {int: "a whole number", float: "a number", str: "a string", bool: "true or false", type(None): "null"}
_PLURALS = {int: "whole numbers", float: "numbers", str: "strings", bool: "true/false values"}


def _problem(hint: Any, value: Any, path: str) -> tuple[str, str] | None:
    """The first (key path, message) where ``value`` does not fit the type ``hint``; None if it fits.

    Unknown keys name the section's own keys (a close match first), wrong values what was expected.
    """
    if dataclasses.is_dataclass(hint):
        return _section_problem(hint, value, path) if isinstance(value, dict) else _expected(hint, value, path)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if any(_problem(a, value, path) is None for a in args):
            return None
        # a mapping or a list where one member takes one: that member's (possibly deeper) problem
        shaped = [a for a in args if (typing.get_origin(a) or (dict if dataclasses.is_dataclass(a) else a)) is type(value)]
        return _problem(shaped[0], value, path) if len(shaped) == 1 and type(value) in (dict, list) else _expected(hint, value, path)
    if origin is typing.Literal:
        return None if any(value == a and type(value) is type(a) for a in args) else _expected(hint, value, path)
    if origin is list:
        if not isinstance(value, list):
            return _expected(hint, value, path)
        for i, item in enumerate(value):
            found = _problem(args[0], item, f"{path}[{i}]")
            if found:  # a wrong item is shown with its whole list; a deeper problem keeps its own path
                return _expected(hint, value, path) if found[0] == f"{path}[{i}]" else found
        return None
    if origin is dict:
        if not isinstance(value, dict):
            return _expected(hint, value, path)
        return next(filter(None, (_problem(args[1], item, f"{path}.{key}") for key, item in value.items())), None)
    if hint is Any:
        return None
    if hint is float:  # dacite casts ints and numeric strings
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) or isinstance(value, str) and _is_float(value)
    else:
        ok = type(value) is hint  # bool is no int here
    return None if ok else _expected(hint, value, path)


def _section_problem(cls: type, data: dict, path: str) -> tuple[str, str] | None:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    prefix = f"{path}." if path else ""
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            guess = f": did you mean {prefix + close[0]!r}?" if close else ""
            known = f"keys of {path}" if path else "top-level sections"
            return name, f"unknown config key {name!r}{guess} ({known}: {', '.join(fields)})"
        found = _problem(hints[key], value, name)
        if found:
            return found
        check = _VALUE_CHECKS.get((cls, key))
        if check and not check[0](value):
            return name, f"{name}: expected {check[1]}, got {_show(value)}"
    for f in fields.values():
        if f.name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            return prefix + f.name, f"{prefix}{f.name}: missing, expected {_describe(hints[f.name])}"
    return None


def _expected(hint: Any, value: Any, path: str) -> tuple[str, str]:
    return path, f"{path}: expected {_describe(hint)}, got {_show(value)}"


def _describe(hint: Any) -> str:
    """What a value of type ``hint`` looks like, in YAML terms."""
    if dataclasses.is_dataclass(hint):
        return f"a section with keys {', '.join(f.name for f in dataclasses.fields(hint))}"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        words = list(dict.fromkeys(_describe(a) for a in args if not (a is int and float in args)))
        return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
    if origin is typing.Literal:
        return repr(args[0]) if len(args) == 1 else "one of " + ", ".join(repr(a) for a in args)
    if origin is list:
        if args[0] == list[str]:
            return _KEY_LISTS
        return f"a list of {_PLURALS[args[0]]}" if args[0] in _PLURALS else f"a list, each item {_describe(args[0])}"
    if origin is dict:
        return "a mapping" if args[1] is Any else f"a mapping of names, each to {_describe(args[1])}"
    return _WORDS.get(hint, "any value" if hint is Any else getattr(hint, "__name__", str(hint)))


def _show(value: Any) -> str:
    text = "null" if value is None else repr(value)
    return text if len(text) <= 100 else text[:97] + "..."


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    node = data
    *parents, last = dotted.split(".")
    for part in parents:
        if node.get(part) is None:  # a section left null (default.yaml's data.table: null) takes keys
            node[part] = {}
        child = node[part]
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: {part!r} is not a section")
        node = child
    node[last] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``section.key=value`` -> (``section.key``, YAML-parsed value)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects section.key=value, got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        escaped = raw.strip().replace('"', '\\"')
        raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML ({exc.__class__.__name__}); to pass it as "
                          f"text, quote it for YAML: --set '{key.strip()}=\"{escaped}\"'") from None
    return key.strip(), value


#: The config's paths (section, key): ``~`` in them is the home directory (expanded as the config loads, for every
#: reader alike), and a run's config.yaml writes them absolute.
PATH_KEYS = ((None, "out"), ("data", "path"), ("data", "cache_dir"), ("features", "store"), ("cluster", "local_directory"))


def _expand_home(config: Config) -> None:
    """``~`` in the config's paths (:data:`PATH_KEYS` and side tables) expanded: some readers (pathlib) took
    ``~/runs`` for a directory ``~`` under the working directory while others (pandas) wrote into the home one."""
    for section, key in PATH_KEYS:
        holder = config if section is None else getattr(config, section)
        if getattr(holder, key):
            setattr(holder, key, os.path.expanduser(getattr(holder, key)))
    for side in config.data.table.join if config.data.table else ():
        side.path = os.path.expanduser(side.path)


def from_dict(data: dict, source: str = "<dict>", origins: dict[str, str] | None = None) -> Config:
    """Build a :class:`Config` from a nested dict, rejecting unknown keys and wrong types.

    ``origins`` maps a dotted key an override set to how the user gave it (``--set KEY=VALUE``,
    ``--gpus 2``): an error about that key names it.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    config = _build(Config, data, "", source, origins or {})
    _check_per_target(config.train, source, origins or {})
    _expand_home(config)
    config._origins = (source, dict(origins or {}))  # not a field: for later errors about a key (sourced)
    return config


def sourced(config: Config, message: str) -> str:
    """``message``, an error about the key it starts with (``train.per_target.like.max_dept: ...``),
    prefixed by the config file and followed by the flag or ``--set`` that gave the key, as the errors
    of :func:`load_config` are."""
    return _sourced(*getattr(config, "_origins", ("", {})), message)


def _sourced(source: str, origins: dict[str, str], message: str) -> str:
    """:func:`sourced` with the config file ``source`` and the ``origins`` of its keys (key -> flag or ``--set``)."""
    key = re.match(r"[A-Za-z_][\w.]*", message)
    named = key.group(0) if key else None
    given = [label for k, label in origins.items() if named and (named == k or named.startswith(k + ".") or k.startswith(named + "."))]
    return (f"{source}: " if source else "") + message + (f" (from {given[-1]})" if given else "")


def _check_per_target(train: TrainConfig, source: str, origins: dict[str, str]) -> None:
    """A ``train.per_target`` key that is no target but close to one is a typo: an error naming it.
    (A key of a target left out of ``train.targets`` is fine: one config, runs of some targets.)
    Its ``num_boost_round`` and ``early_stopping_rounds`` are checked as ``train``'s own."""
    for name, overrides in train.per_target.items():
        for rounds in ("num_boost_round", "early_stopping_rounds"):
            if rounds in overrides:
                key, (test, expected) = f"train.per_target.{name}.{rounds}", _VALUE_CHECKS[(TrainConfig, rounds)]
                value = overrides[rounds]
                if _problem(int, value, key) or not test(value):
                    raise ConfigError(_sourced(source, origins, f"{key}: expected {expected}, got {_show(value)}"))
        if name in train.targets:
            continue
        close = difflib.get_close_matches(str(name), list(train.targets), n=1, cutoff=0.75)
        if close:
            key = f"train.per_target.{name}"
            raise ConfigError(_sourced(source, origins, f"{key}: no target {name!r}: did you mean {close[0]!r}? "
                                                        f"(train.targets: {', '.join(train.targets)})"))


def _build(cls: type, data: dict, path: str, source: str, origins: dict[str, str]) -> Any:
    found = _problem(cls, data, path)
    if found:
        key, message = found
        given = [(k, label) for k, label in origins.items() if key == k or key.startswith((k + ".", k + "[")) or k.startswith(key + ".")]
        if given and given[-1][0] == key and not given[-1][1].startswith("--set ") and message.startswith(f"{key}: expected "):
            # the value of a flag (--gpus lots): named as the flag
            raise ConfigError(f"{given[-1][1].split()[0]} must be {message.split(': expected ', 1)[1]}")
        if given and given[-1][0] == key and _empty_set(given[-1][1]) and message.endswith(", got null"):
            message = message.removesuffix("null") + "an empty value"  # the null YAML made of it is not what was typed
        raise ConfigError(f"{source}: {message}" + (f" (from {given[-1][1]})" if given else ""))
    try:
        return dacite.from_dict(cls, data, config=dacite.Config(strict=True, cast=[float]))
    except (dacite.DaciteError, ValueError, TypeError) as exc:  # not expected after _problem
        raise ConfigError(f"{source}: {exc}") from None


def _empty_set(label: str) -> bool:
    """Whether ``label`` (how the user gave a key) is a ``--set KEY=`` with nothing after the ``=`` (null to YAML)."""
    return label.startswith("--set ") and not label.partition("=")[2].strip()


def load_config(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), labels: dict[str, str] | None = None
) -> Config:
    """Load ``path`` (default ``configs/default.yaml``) and apply ``--set`` overrides.

    ``labels``: how the user gave an override, by its text (``cluster.gpus=2`` -> ``--gpus 2``;
    default ``--set TEXT``), for errors about the value it set.
    """
    path = Path(path) if path else DEFAULT_CONFIG
    if not path.is_file():
        raise ConfigError(f"config file {path} is a directory" if path.is_dir() else f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid YAML: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not isinstance(data, dict):  # before the overrides, which take sections (a flag is one)
        return from_dict(data, str(path))  # refused: the top level must be a mapping
    origins: dict[str, str] = {}
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(data, key, value)
        origins.pop(key, None)
        origins[key] = (labels or {}).get(text, f"--set {text}")
    return from_dict(data, str(path), origins)


def to_dict(config: Config) -> dict:
    """The config as plain data (for manifests and report.json)."""
    return dataclasses.asdict(config)


def section_from_dict(cls: type, data: dict, source: str, origins: dict[str, str] | None = None) -> Any:
    """One config section (e.g. :class:`FeaturesConfig`) from a stored dict, strictly typed.

    Errors name keys by their full path (``cluster.n_workers``) when ``cls`` is a top-level section;
    ``origins``: full key -> how the user gave it (``--gpus 2``, ``--set cluster.x=1``), as :func:`load_config`'s.
    """
    path = next((name for name, hint in typing.get_type_hints(Config).items() if hint is cls), "")
    return _build(cls, data, path, source, origins or {})
