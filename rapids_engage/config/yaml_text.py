"""YAML text -> data, refusing what PyYAML would silently drop: a key given twice in one mapping."""

from __future__ import annotations

from typing import Any

import yaml

_MERGE = "tag:yaml.org,2002:merge"


def read_yaml(text: str, path: str = "") -> Any:
    """``text`` parsed as YAML (safe), or ``ValueError`` naming a key given twice in one mapping by its dotted
    path and lines: PyYAML keeps the last value silently, so the first one a user edited did nothing.
    Keys brought in by a merge key (``<<: *base``) may be overridden; that is what merging is for.
    ``path``: the dotted key the text is the value of (a ``--set`` override's)."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if node is None:
        return None
    _check_unique(node, path, yaml.SafeLoader(""), set())
    return yaml.safe_load(text)


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
