"""Typed run configuration, loaded from YAML (``configs/*.yaml``).

Every section is a dataclass (``sections.py``; ``data.table``'s in ``table_spec.py``); :func:`load_config`
(``loader.py``) turns a YAML file plus ``--set section.key=value`` overrides into a :class:`Config`. Unknown
keys and wrongly typed values (``typecheck.py``) are :class:`ConfigError` naming the file, the key path, what
was expected and what was given (``configs/x.yaml: split.valid_hours: expected a number, got 'three'``), and
the ``--set`` override or flag when the value came from one (``errors.py``); so are values out of their range
(``ranges.py``: ``cluster.n_workers: expected a whole number of workers >= 1 or null, got 0``) and
``train.per_target`` keys against ``train.targets`` (``per_target.py``). dacite does the typed dict ->
dataclass conversion once the data pass.
"""

from .errors import ConfigError, about_a_key, sourced
from .loader import DEFAULT_CONFIG, PATH_KEYS, from_dict, load_config, parse_override, section_from_dict, to_dict
from .ranges import KEYS_EXPECTED, MIN_MEMORY_LIMIT
from .sections import (
    DEFAULT_COUNT_KEYS,
    WINNER_TE_KEYS,
    ClusterConfig,
    Config,
    DataConfig,
    FeaturesConfig,
    HistoryConfig,
    SessionConfig,
    SplitConfig,
    SyntheticConfig,
    TargetEncodingConfig,
    TrainConfig,
)
from .table_spec import EventsSpec, ExplodeSpec, SideTableSpec, TableConfig, TargetSpec

__all__ = [
    "DEFAULT_CONFIG", "DEFAULT_COUNT_KEYS", "KEYS_EXPECTED", "MIN_MEMORY_LIMIT", "PATH_KEYS", "WINNER_TE_KEYS",
    "ClusterConfig", "Config", "ConfigError", "DataConfig", "EventsSpec", "ExplodeSpec", "FeaturesConfig", "HistoryConfig",
    "SessionConfig", "SideTableSpec", "SplitConfig", "SyntheticConfig", "TableConfig", "TargetEncodingConfig", "TargetSpec",
    "TrainConfig", "about_a_key", "from_dict", "load_config", "parse_override", "section_from_dict", "sourced", "to_dict",
]
