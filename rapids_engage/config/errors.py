"""The config's error and its wording: the file first, the flag or ``--set`` that gave the key last."""

from __future__ import annotations

import dataclasses
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


def about_a_key(config: Config, message: str) -> bool:
    """Whether ``message`` starts with a ``section.key`` of ``config`` (``data.path /x is not ...``): an error about
    the value of a key, which :func:`sourced` words as the config's errors are."""
    first = re.match(r"([A-Za-z_]\w*)\.([A-Za-z_]\w*)\b", message)
    section = getattr(config, first.group(1), None) if first else None
    return dataclasses.is_dataclass(section) and first.group(2) in {f.name for f in dataclasses.fields(section)}


def source_message(source: str, origins: dict[str, str], message: str) -> str:
    """:func:`sourced` with the config file ``source`` and the ``origins`` of its keys (key -> flag or ``--set``)."""
    named = _named(message)
    given = [label for k, label in origins.items() if any(_within(n, k) or _within(k, n) for n in named)]
    return (f"{source}: " if source else "") + message + (f" (from {given[-1]})" if given else "")


def _named(message: str) -> set[str]:
    """The key ``message`` may start with: to its first space or colon (``train.targets names 'x', ...``), or to
    its first ``": "`` (a target's name, part of a ``per_target`` key, may hold any character: ``n-comments``)."""
    first = re.match(r"[A-Za-z_][^\s:]*", message)
    return {first.group(0).rstrip(".,;"), message.partition(": ")[0]} if first else set()


def _within(key: str, section: str) -> bool:
    """Whether ``key`` is ``section`` or a key of it (``data.table.join`` holds ``data.table.join[0].path``)."""
    return key == section or key.startswith((section + ".", section + "["))
