"""The config's error and its wording: the file first, the flag or ``--set`` that gave the key last."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sections import Config


class ConfigError(ValueError):
    """A configuration file or override is invalid."""


def sourced(config: Config, message: str) -> str:
    """``message``, an error about the key it starts with (``train.per_target.like.max_dept: ...``),
    prefixed by the config file and followed by the flag or ``--set`` that gave the key, as the errors
    of :func:`load_config` are."""
    return source_message(*getattr(config, "_origins", ("", {})), message)


def source_message(source: str, origins: dict[str, str], message: str) -> str:
    """:func:`sourced` with the config file ``source`` and the ``origins`` of its keys (key -> flag or ``--set``)."""
    key = re.match(r"[A-Za-z_][\w.]*", message)
    named = key.group(0) if key else None
    given = [label for k, label in origins.items() if named and (named == k or named.startswith(k + ".") or k.startswith(named + "."))]
    return (f"{source}: " if source else "") + message + (f" (from {given[-1]})" if given else "")
