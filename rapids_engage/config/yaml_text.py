"""YAML text -> data, refusing what PyYAML would silently drop or turn into another number: a key given twice in
one mapping, YAML 1.1's base-60 (``1:30`` = 90) and leading-zero octal (``010`` = 8) numbers."""

from __future__ import annotations

import re
from typing import Any

import yaml

_MERGE = "tag:yaml.org,2002:merge"
_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader without YAML 1.1's base-60 numbers and octal ``0``-prefixed ints (YAML 1.2 dropped both,
    reading ``010`` as 10 and ``0o17`` as octal): ``valid_hours: 1:30`` was 90 hours, ``seed: 010`` was 8. Such text
    (``0o17`` too) stays text, which a number key refuses by name and a name key keeps as written (a column ``007``)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
# a digit after 0b / 0x: PyYAML's own pattern took ``0x_`` for a number, and its constructor failed ("invalid literal
# for int() with base 16: ''", the only words of the error)
_Loader.add_implicit_resolver(_INT, re.compile(r"^(?:[-+]?0b[0-1_]*[0-1][0-1_]*|[-+]?0x[0-9a-fA-F_]*[0-9a-fA-F][0-9a-fA-F_]*"
                                               r"|[-+]?(?:0|[1-9][0-9_]*))$"), list("-+0123456789"))
_Loader.add_implicit_resolver(_FLOAT, re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
    |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X), list("-+0123456789."))


def read_yaml(text: str, path: str = "") -> Any:
    """``text`` parsed as YAML (safe), or ``ValueError`` naming a key given twice in one mapping by its dotted
    path and lines: PyYAML keeps the last value silently, so the first one a user edited did nothing.
    Keys brought in by a merge key (``<<: *base``) may be overridden; that is what merging is for.
    ``path``: the dotted key the text is the value of (a ``--set`` override's)."""
    node = yaml.compose(text, Loader=_Loader)
    if node is None:
        return None
    _check_unique(node, path, _Loader(""), set())
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader


def _check_unique(node: yaml.Node, path: str, loader: yaml.SafeLoader, seen: set[int]) -> None:
    if id(node) in seen:  # an alias: its node was checked where it was anchored
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_unique(item, f"{path}[{i}]", loader, seen)
    elif isinstance(node, yaml.MappingNode):
        lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                _check_unique(value_node, path, loader, seen)
                continue
            key = loader.construct_object(key_node, deep=True)
            name = f"{path}.{key}" if path else str(key)
            line = key_node.start_mark.line + 1
            if _hashable(key) and key in lines:
                raise ValueError(f"{name}: given twice in one mapping (lines {lines[key]} and {line}); "
                                 "YAML would keep the last value silently")
            if _hashable(key):
                lines[key] = line
            _check_unique(value_node, name, loader, seen)


def _hashable(key: Any) -> bool:
    try:
        hash(key)
    except TypeError:
        return False
    return True
