"""The config's sections, one dataclass each, and the defaults they fall back on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .table_spec import TableConfig


@dataclass
class SyntheticConfig:
    """The embedded synthetic RecSys 2021 dataset (``data.source: synthetic``)."""

    rows: int = 1_000_000
    days: int = 28
    seed: int = 42
    n_users: int | None = None
    chunk_rows: int = 1_000_000


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
    # processes that ingest raw input (recsys, table): whole files each when there are as many files or more, else the
    # blocks of the files read and written in the main process; the output is the same whatever their number.
    # auto: the cores this process may use (but one when fewer files than cores), at most one per 1.5 GiB of available
    # memory and per read block; 1: serial
    ingest_workers: int | Literal["auto"] = "auto"
    # at a successful run's end, delete the ingest folders of this data.table / data.strict (the cache key's salt) but
    # this many newest (this run's among them, never deleted) and those a command reads; null: keep all
    keep_ingests: int | None = None


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
    """Forward-in-time split: the last ``valid_hours`` of events are validation; the ``gap_hours`` before them are
    purged (in neither split: no labels, counts or history), so no training label reaches into validation."""

    valid_hours: float = 24.0
    gap_hours: float = 0.0


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
    # when a positive label counts: from its event's time ("event": an impression liked later counts as a like from
    # the impression on, a value from the future), or from its engagement time ("engagement": RecSys data, whose
    # <engagement>_timestamp columns say when, and event logs, whose <target>_time columns do; with label_delay, that
    # time + label_delay). "auto": engagement where the data carry engagement times (RecSys, event logs) and history
    # keys are set, else event; a run resolves it once it knows the
    # data's layout (features.label_times.label_time) and records the value it resolved to
    label_time: Literal["auto", "event", "engagement"] = "auto"


@dataclass
class SessionConfig:
    """Point-in-time session features of a key (default: the user): a session is a run of its events whose
    consecutive times are at most ``gap`` seconds apart; per event its earlier events in the session, the seconds
    since the session started and the sessions before it (``sess_n``, ``sess_age``, ``sess_index``)."""

    enabled: bool = False
    key: list[str] | None = None  # null: the engaging user (RecSys), the table's user column (data.table.user)
    gap: int = 1800  # seconds: a longer pause starts a new session


@dataclass
class FeaturesConfig:
    """Feature groups computed for every row."""

    target_encoding: TargetEncodingConfig = field(default_factory=TargetEncodingConfig)
    counts: list[list[str]] = field(default_factory=lambda: [list(k) for k in DEFAULT_COUNT_KEYS])
    history: HistoryConfig = field(default_factory=HistoryConfig)
    session: SessionConfig = field(default_factory=SessionConfig)
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
    # at the end of a successful run / features: delete all but this many newest intact versions of the store (and
    # the damaged ones), as `store --keep N` does: never this run's version nor one in use (models beside the store,
    # runs, predicts and builds in progress). null: keep all
    keep_versions: int | None = None


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
