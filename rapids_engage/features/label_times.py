"""When the history counts a label: ``features.history.label_time`` resolved for a layout, and the columns of the
targets' engagement times."""

from __future__ import annotations

from dataclasses import replace

from ..config import ConfigError, FeaturesConfig, HistoryConfig
from ..layout import Layout


def label_time(cfg: HistoryConfig, layout: Layout) -> str:
    """``features.history.label_time`` resolved for data of ``layout``: ``auto`` is ``engagement`` where the data
    carry engagement times (:func:`carries_engagement_times`: RecSys, event logs; a positive then counts once it
    happened, no value from the future) and history keys are set, else ``event`` (a plain table's targets hold labels
    only; without history keys it changes nothing, and ``event`` keeps the store versions built before label times
    had a choice); ``event`` / ``engagement`` as given."""
    if cfg.label_time != "auto":
        return cfg.label_time
    return "engagement" if carries_engagement_times(layout) and cfg.keys else "event"


def carries_engagement_times(layout: Layout) -> bool:
    """Whether every target of ``layout`` has its positives' engagement times: RecSys (its ``<engagement>_timestamp``
    columns are the targets), an event log (each target's ``<target>_time``: :attr:`.Target.time`)."""
    return layout.kind == "recsys" or (bool(layout.targets) and all(t.time for t in layout.targets))


def resolve_label_time(config: FeaturesConfig, layout: Layout) -> FeaturesConfig:
    """``config`` with its history's ``label_time`` resolved (:func:`label_time`; a copy, ``config`` unchanged): what
    a run records (the store's definition and group signatures, report.json, config.yaml, the serving state)."""
    return replace(config, history=replace(config.history, label_time=label_time(config.history, layout)))


def engagement_times(cfg: HistoryConfig, layout: Layout, targets: list[str]) -> dict[str, str] | None:
    """Target -> the column of its engagement times with ``label_time: engagement`` (RecSys: the
    ``<engagement>_timestamp`` column its label is derived from; an event log: ``<target>_time``, the labelling
    event's; ``auto``: :func:`label_time`), None with ``event``; a ConfigError naming the key for data without such
    times (a plain table's target columns hold labels only)."""
    if label_time(cfg, layout) == "event":
        return None
    if not carries_engagement_times(layout):
        raise ConfigError("features.history.label_time: engagement counts a positive from its engagement time, which only "
                          "RecSys data (<engagement>_timestamp columns) and event logs (data.table.events: <target>_time "
                          "columns) carry; a plain table's targets hold labels only: use label_time: event, with "
                          "label_delay for labels that arrive later")
    if layout.kind == "recsys":
        return {t: layout.target(t).column for t in targets}
    return {t: layout.target(t).time for t in targets}
