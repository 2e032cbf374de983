"""Feature groups: the unit a store version reuses from an earlier one.

A group is the content features, or one key of the target encoding, of the
counts or of the history, or the session features, with the parameters its values depend on. Its
signature hashes that definition; two versions built from the same input,
split, targets and layout give a group with the same signature the same
columns, so a changed config recomputes only the groups whose signature is new.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import typing
from dataclasses import asdict, replace

from ..config import FeaturesConfig, HistoryConfig, TargetEncodingConfig
from ..layout import Layout
from .configured_encoders import default_session_key
from .frames import key_name
from .label_times import resolve_label_time
from .sessions import PREFIX as SESSION_GROUP
from .sessions import STATE_FORMAT as SESSION_STATE


def groups(cfg: FeaturesConfig, names: dict[str, list[str]] | None = None) -> dict[str, dict]:
    """Group id (the prefix of its state files: ``te_<key>``, ``cnt_<key>``, ...) -> its definition.

    ``names``: group id -> the feature columns it gives (with this code and these targets), part
    of its definition: a version built before a column was added to a group does not lend it.
    """
    te = {k: v for k, v in asdict(cfg.target_encoding).items() if k != "keys"}
    hist = {k: v for k, v in asdict(cfg.history).items() if k != "keys"}
    if hist["label_time"] == "event":  # the definition before label times had a choice: its versions are reused
        del hist["label_time"]
    out: dict[str, dict] = {"content": {"content": True}} if cfg.content else {}
    out.update({f"te_{key_name(k)}": {"target_encoding": te, "key": list(k)} for k in cfg.target_encoding.keys})
    out.update({f"cnt_{key_name(k)}": {"counts": True, "key": list(k)} | ({} if cfg.daily_counts else {"daily": False})
                for k in cfg.counts})
    out.update({f"hist_{key_name(k)}": {"history": hist, "key": list(k)} for k in cfg.history.keys})
    if cfg.session.enabled:  # (the state's format: a state without the row ids it keeps now is not lent)
        out[SESSION_GROUP] = {"session": {"key": cfg.session.key, "gap": cfg.session.gap}, "state": SESSION_STATE}
    if names is not None:
        out = {g: d | {"names": list(names[g])} for g, d in out.items()}
    return out


def signatures(cfg: FeaturesConfig, names: dict[str, list[str]] | None = None) -> dict[str, str]:
    """Group id -> hash of its definition (see :func:`groups`)."""
    defs = groups(cfg, names)
    return {g: hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16] for g, d in defs.items()}


def only(cfg: FeaturesConfig, wanted: set[str]) -> FeaturesConfig:
    """``cfg`` restricted to the groups in ``wanted`` (same parameters)."""
    sub = copy.deepcopy(cfg)
    sub.content = cfg.content and "content" in wanted
    sub.target_encoding.keys = [k for k in cfg.target_encoding.keys if f"te_{key_name(k)}" in wanted]
    sub.counts = [k for k in cfg.counts if f"cnt_{key_name(k)}" in wanted]
    sub.history.keys = [k for k in cfg.history.keys if f"hist_{key_name(k)}" in wanted]
    sub.session.enabled = cfg.session.enabled and SESSION_GROUP in wanted
    return sub


def values_config(cfg: FeaturesConfig, layout: Layout) -> FeaturesConfig:
    """``cfg`` as a store version's definition and its groups' signatures hold it (a copy): the history's label time
    resolved for ``layout``, the parameters no value depends on at their defaults (those of the target encoding and
    the history when it names no key, the seed of contiguous folds, which draw nothing, ``daily_counts`` without
    count keys), so that changing them builds no other version and recomputes no group; and canonical, so that a
    config built in Python hashes as its YAML does: a float-typed field as a float (``smooth: 20`` -> 20.0, as the
    loader makes it), a session key spelled as the one it defaults to (the data's user column, or empty) as null."""
    te, history, daily = cfg.target_encoding, cfg.history, cfg.daily_counts
    if not te.keys:
        te = TargetEncodingConfig(keys=[])
    elif te.fold_method == "contiguous":
        te = replace(te, seed=TargetEncodingConfig.seed)
    if not history.keys:
        history = HistoryConfig()
    if not cfg.counts:
        daily = FeaturesConfig.daily_counts
    session = cfg.session
    if not session.key or list(session.key) == default_session_key(layout):
        session = replace(session, key=None)
    return _floats(resolve_label_time(replace(cfg, target_encoding=te, history=history, daily_counts=daily,
                                              session=session), layout))


def _floats(section: typing.Any) -> typing.Any:
    """``section`` (a config dataclass, its sections too) with a whole number in a float-typed field as a float."""
    hints = typing.get_type_hints(type(section))
    changes = {}
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if dataclasses.is_dataclass(value):
            changes[f.name] = _floats(value)
        elif type(value) is int and float in (hints[f.name], *typing.get_args(hints[f.name])):
            changes[f.name] = float(value)
    return replace(section, **changes)
