"""What the configured history and session encoders are built from: a history encoder of one key, the session key."""

from __future__ import annotations

from ..config import ConfigError, HistoryConfig, SessionConfig
from ..layout import Layout
from .history import HistoryEncoder


def history_encoder(cfg: HistoryConfig, key: list[str], targets: list[str], time_column: str,
                    row_key: tuple[str, ...] = (), engagement: dict[str, str] | None = None) -> HistoryEncoder:
    """The history encoder of one key as configured (``row_key``: what tells an event sent again;
    ``engagement``: :func:`~.label_times.engagement_times`)."""
    return HistoryEncoder(
        key, targets, tuple(cfg.windows), time_column, days=tuple(cfg.days), rates=cfg.rates, label_delay=cfg.label_delay,
        row_key=row_key, engagement=engagement,
    )


def session_key(cfg: SessionConfig, layout: Layout) -> list[str]:
    """The key of the session features: ``features.session.key``, else the data's user (the engaging user on RecSys
    data, a table's ``data.table.user``); a ConfigError when neither names one."""
    if cfg.key:
        return list(cfg.key)
    default = default_session_key(layout)
    if default is None:
        roles = [c for c in (layout.creator, *layout.categorical) if c]  # keys a session may follow
        raise ConfigError("features.session.key: not set and the data name no user column (data.table.user): name the key, "
                          f"e.g. features.session.key: [{roles[0] if roles else 'COLUMN'}], or set data.table.user")
    return default


def default_session_key(layout: Layout) -> list[str] | None:
    """The key ``features.session.key: null`` stands for: the data's user column (None where the data name none)."""
    return None if layout.user is None else [layout.user]
