"""Typed run configuration, loaded from YAML (``configs/*.yaml``).

Every section is a dataclass; :func:`load_config` turns a YAML file plus
``--set section.key=value`` overrides into a :class:`Config`. Unknown keys and
wrongly typed values are :class:`ConfigError` naming the key and the file.
dacite does the typed dict -> dataclass conversion (strict: no unknown keys).
"""

from __future__ import annotations

import dataclasses
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
    kind: str = "binary"


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
    format: str = "tsv"
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

    format: str = "csv"
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

    source: str = "synthetic"
    path: str | None = None
    cache_dir: str = "~/.cache/rapids_engage"
    strict: bool = False
    table: TableConfig | None = None
    # at most this many rows per partition (input files with more are split): what one task holds,
    # so the lever on worker memory when files are large. null: no split
    partition_rows: int | None = None
    # consecutive input files with fewer rows are merged into partitions of about this many (never
    # more than partition_rows, never fewer partitions than the cluster has worker threads): tiny
    # partitions cost a task's overhead each. auto: 250,000 rows on CPU, 2,000,000 on GPU; null: a
    # partition per file
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
    fold_method: str = "hash"
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


def _unknown_keys(cls: type, data: Any, prefix: str = "") -> list[str]:
    """Dotted names of keys in ``data`` that ``cls`` has no field for (recursively)."""
    if not isinstance(data, dict) or not dataclasses.is_dataclass(cls):
        return []
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = _type_hints(cls)
    bad: list[str] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key not in fields:
            bad.append(name)
            continue
        inner = _section_type(hints[key])
        if dataclasses.is_dataclass(inner):
            bad += _unknown_keys(inner, value, name + ".")
        elif isinstance(value, dict) and _dict_value_type(hints[key]) is not None:
            for sub, item in value.items():
                bad += _unknown_keys(_dict_value_type(hints[key]), item, f"{name}.{sub}.")
        elif isinstance(value, list) and _list_item_type(hints[key]) is not None:
            for i, item in enumerate(value):
                bad += _unknown_keys(_list_item_type(hints[key]), item, f"{name}[{i}].")
    return bad


def _section_type(hint: Any) -> Any:
    """``X`` for ``X`` or ``X | None`` when X is a dataclass, else ``hint``."""
    import types
    import typing

    if typing.get_origin(hint) not in (typing.Union, types.UnionType):
        return hint
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if len(args) == 1 and dataclasses.is_dataclass(args[0]) else hint


def _dict_value_type(hint: Any) -> Any:
    """The dataclass ``V`` of ``dict[str, V]``, else None."""
    import typing

    args = typing.get_args(hint)
    return args[1] if typing.get_origin(hint) is dict and len(args) == 2 and dataclasses.is_dataclass(args[1]) else None


def _list_item_type(hint: Any) -> Any:
    """The dataclass ``V`` of ``list[V]``, else None."""
    import typing

    args = typing.get_args(hint)
    return args[0] if typing.get_origin(hint) is list and len(args) == 1 and dataclasses.is_dataclass(args[0]) else None


def _type_hints(cls: type) -> dict[str, Any]:
    import typing

    return typing.get_type_hints(cls)


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    node = data
    *parents, last = dotted.split(".")
    for part in parents:
        child = node.setdefault(part, {})
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
        raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML ({exc.__class__.__name__})") from None
    return key.strip(), value


def from_dict(data: dict, source: str = "<dict>") -> Config:
    """Build a :class:`Config` from a nested dict, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    bad = _unknown_keys(Config, data)
    if bad:
        known = ", ".join(f.name for f in dataclasses.fields(Config))
        raise ConfigError(f"{source}: unknown config key {bad[0]!r} (top-level sections: {known})")
    try:
        return dacite.from_dict(Config, data, config=dacite.Config(strict=True, cast=[float]))
    except dacite.DaciteError as exc:
        raise ConfigError(f"{source}: {_dacite_message(exc)}") from None


def _dacite_message(exc: Exception) -> str:
    """dacite's message, with the allowed values when a field takes one of a few (``Literal``)."""
    import typing

    hint = getattr(exc, "field_type", None)
    if isinstance(exc, dacite.WrongTypeError) and typing.get_origin(hint) is typing.Literal:
        allowed = ", ".join(repr(a) for a in typing.get_args(hint))
        return f"field {exc.field_path!r} is {exc.value!r}; allowed: {allowed}"
    return str(exc)


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load ``path`` (default ``configs/default.yaml``) and apply ``--set`` overrides."""
    path = Path(path) if path else DEFAULT_CONFIG
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    source = str(path)
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(data, key, value)
        source = f"{path} (with --set overrides)"
    return from_dict(data, source)


def to_dict(config: Config) -> dict:
    """The config as plain data (for manifests and report.json)."""
    return dataclasses.asdict(config)


def section_from_dict(cls: type, data: dict, source: str) -> Any:
    """One config section (e.g. :class:`FeaturesConfig`) from a stored dict, strictly typed."""
    try:
        return dacite.from_dict(cls, data, config=dacite.Config(strict=True, cast=[float]))
    except dacite.DaciteError as exc:
        raise ConfigError(f"{source}: {_dacite_message(exc)}") from None
