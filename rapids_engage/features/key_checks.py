"""The config's feature keys checked against the columns data of a layout will have, before any data is read."""

from __future__ import annotations

import difflib

from ..config import Config, ConfigError, FeaturesConfig
from ..config.sections import DEFAULT_COUNT_KEYS, WINNER_TE_KEYS
from ..layout import Layout
from .configured_encoders import session_key
from .key_columns import derived_key_names, key_columns
from .label_times import engagement_times


def check_keys(config: FeaturesConfig, layout: Layout, changed: dict[str, str] | None = None) -> None:
    """A ConfigError naming the config key, the column and the closest names when a feature key names
    a column data of ``layout`` will not have, or history label times the data do not carry (checked before
    any data is read). ``changed``: column -> why it is gone (:func:`role_changes`), added to its message."""
    if config.history.keys:
        engagement_times(config.history, layout, [t.name for t in layout.targets])
    known = key_columns(layout)
    sessions = [session_key(config.session, layout)] if config.session.enabled else []
    for path, keys in (("features.target_encoding.keys", config.target_encoding.keys), ("features.counts", config.counts),
                       ("features.history.keys", config.history.keys), ("features.session.key", sessions)):
        for key in keys:
            for column in key:
                if column not in known:
                    raise ConfigError(f"{path}: {unknown_column(column, known, layout)}" + _recsys_default_hint(path, keys, layout)
                                      + (f"; {changed[column]}" if column in (changed or {}) else ""))


def role_changes(config: Config) -> dict[str, str]:
    """Column -> a line saying that ``--set data.table.<role>`` changed that role from it, for each role of the config
    file's ``data.table`` an override re-mapped (:func:`~..config.load_config` keeps the file's values): a feature
    key still naming the file's column was refused as the keys' mistake ("no column 'author'")."""
    changes = {}
    for key, old in getattr(config, "_in_file", {}).items():
        role = key.removeprefix("data.table.")
        if role == key or "." in role or not config.data.table:  # no role: another section's key, or one below a role
            continue
        new = getattr(config.data.table, role, None)
        for column in ([old] if isinstance(old, str) else old if isinstance(old, list) else []):
            if isinstance(column, str) and column not in ([new] if isinstance(new, str) else new or []):
                changes[column] = (f"--set data.table.{role} changed it from {old!r} to {new!r}, and the keys still name "
                                   "the old one")
    return changes


def _recsys_default_hint(path: str, keys: list[list[str]], layout: Layout) -> str:
    """For a table whose ``keys`` at ``path`` are the RecSys 2021 defaults (the config names none): what to write
    instead (it said only "no column 'engaging_user_id' in the data", a column the user never named)."""
    if layout.kind == "recsys" or keys not in ([list(k) for k in WINNER_TE_KEYS], [list(k) for k in DEFAULT_COUNT_KEYS]):
        return ""
    roles = [c for c in (layout.user, layout.item, layout.creator, *layout.categorical) if c][:3]
    example = "[" + ", ".join(f"[{c}]" for c in roles) + "]" if roles else "[[COLUMN], ...]"
    return (f"; {path} was not set, and its default is the RecSys 2021 keys: name this table's keys, "
            f"e.g. {path}: {example} (features.target_encoding.keys and features.counts both default to RecSys columns)")


def unknown_column(column: str, known: list[str], layout: Layout) -> str:
    """``column`` is not one of ``known``: the closest names and the derived keys there are."""
    close = difflib.get_close_matches(column, known, n=1, cutoff=0.6)
    derived = derived_key_names(layout)
    return (f"no column {column!r} in the data" + (f": did you mean {close[0]!r}?" if close else "")
            + (f" (derived keys: {', '.join(derived)})" if derived else ""))
