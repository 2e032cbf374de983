"""Generic check of YAML data against a dataclass's type hints: the first problem, worded for the user."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any

from .ranges import VALUE_CHECKS


#: The list[list[str]] fields are all column keys (features.counts, target_encoding.keys, history.keys).
_KEY_LISTS = "a list of column lists, e.g. [[engaging_user_id], [creator_id, language]]"
_WORDS = {int: "a whole number", float: "a number", str: "a string", bool: "true or false", type(None): "null"}
_PLURALS = {int: "whole numbers", float: "numbers", str: "strings", bool: "true/false values"}


def problem(hint: Any, value: Any, path: str) -> tuple[str, str] | None:
    """The first (key path, message) where ``value`` does not fit the type ``hint``; None if it fits.

    Unknown keys name the section's own keys (a close match first), wrong values what was expected.
    """
    if dataclasses.is_dataclass(hint):
        return section_problem(hint, value, path) if isinstance(value, dict) else _expected(hint, value, path)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if any(problem(a, value, path) is None for a in args):
            return None
        # a mapping or a list where one member takes one: that member's (possibly deeper) problem
        shaped = [a for a in args if (typing.get_origin(a) or (dict if dataclasses.is_dataclass(a) else a)) is type(value)]
        return problem(shaped[0], value, path) if len(shaped) == 1 and type(value) in (dict, list) else _expected(hint, value, path)
    if origin is typing.Literal:
        return None if any(value == a and type(value) is type(a) for a in args) else _expected(hint, value, path)
    if origin is list:
        if not isinstance(value, list):
            return _expected(hint, value, path)
        for i, item in enumerate(value):
            found = problem(args[0], item, f"{path}[{i}]")
            if found:  # a wrong item is shown with its whole list; a deeper problem keeps its own path
                return _expected(hint, value, path) if found[0] == f"{path}[{i}]" else found
        return None
    if origin is dict:
        if not isinstance(value, dict):
            return _expected(hint, value, path)
        named = next((key for key in value if not isinstance(key, str)), None) if args[0] is str else None
        if named is not None or any(key is None for key in value):
            return f"{path}.{named}", f"{path}: expected names as keys, got {show(named)}{_yaml_words(named)}"
        return next(filter(None, (problem(args[1], item, f"{path}.{key}") for key, item in value.items())), None)
    if hint is Any:
        return None
    if hint is float:  # dacite casts ints and numeric strings
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) or isinstance(value, str) and _is_float(value)
    else:
        ok = type(value) is hint  # bool is no int here
    return None if ok else _expected(hint, value, path)


def section_problem(cls: type, data: dict, path: str) -> tuple[str, str] | None:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    prefix = f"{path}." if path else ""
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            guess = f": did you mean {prefix + close[0]!r}?" if close else ""
            known = f"keys of {path}" if path else "top-level sections"
            return name, f"unknown config key {name!r}{guess}{_yaml_words(key)} ({known}: {', '.join(fields)})"
        found = problem(hints[key], value, name)
        if found:
            return found
        check = VALUE_CHECKS.get((cls, key))
        if check and not check[0](value):
            return name, f"{name}: expected {check[1]}, got {show(value)}"
    for f in fields.values():
        if f.name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            return prefix + f.name, f"{prefix}{f.name}: missing, expected {_describe(hints[f.name])}"
    return None


def _expected(hint: Any, value: Any, path: str) -> tuple[str, str]:
    words = _yaml_words(True) if _wants_text(hint) and any(isinstance(v, bool) for v in _items(value)) else ""
    return path, f"{path}: expected {_describe(hint)}, got {show(value)}{words}{_as_list(hint, value)}"


def _as_list(hint: Any, value: Any) -> str:
    """For a name where ``hint`` takes a list of names (or of keys: lists of names), how to write it as one."""
    lists = [a for a in (hint, *typing.get_args(hint)) if typing.get_origin(a) is list]
    if not isinstance(value, str) and not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
        return ""
    names = [value] if isinstance(value, str) else value
    if any(typing.get_args(a)[0] == list[str] for a in lists):  # column keys: each a list of columns
        return f" (each key a list of columns: {_flow([[n] for n in names])})"
    if isinstance(value, str) and any(typing.get_args(a)[0] is str for a in lists):
        return f" (a list of one: {_flow(names)})"
    return ""


def _flow(value: Any) -> str:
    """``value`` (names, lists of them) as YAML flow text: ``[[a], [b]]``."""
    return f"[{', '.join(_flow(v) for v in value)}]" if isinstance(value, list) else str(value)


def _wants_text(hint: Any) -> bool:
    """Whether ``hint`` takes strings (itself, a member of a union, the items of its lists)."""
    return hint is str or any(_wants_text(a) for a in typing.get_args(hint))


def _items(value: Any) -> list:
    """``value`` and, for a list, its items (nested lists too: ``[[no]]``)."""
    return [value] + [v for item in value for v in _items(item)] if isinstance(value, list) else [value]


def _describe(hint: Any) -> str:
    """What a value of type ``hint`` looks like, in YAML terms."""
    if dataclasses.is_dataclass(hint):
        return f"a section with keys {', '.join(f.name for f in dataclasses.fields(hint))}"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        words = list(dict.fromkeys(_describe(a) for a in args if not (a is int and float in args)))
        return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
    if origin is typing.Literal:
        return repr(args[0]) if len(args) == 1 else "one of " + ", ".join(repr(a) for a in args)
    if origin is list:
        if args[0] == list[str]:
            return _KEY_LISTS
        return f"a list of {_PLURALS[args[0]]}" if args[0] in _PLURALS else f"a list, each item {_describe(args[0])}"
    if origin is dict:
        return "a mapping" if args[1] is Any else f"a mapping of names, each to {_describe(args[1])}"
    return _WORDS.get(hint, "any value" if hint is Any else getattr(hint, "__name__", str(hint)))


def _yaml_words(key: Any) -> str:
    """A hint for a key YAML 1.1 read as a boolean or null (``on``, ``no``, ``~``): quoted, it is a name."""
    if isinstance(key, bool) or key is None:
        return " (YAML reads on/off, yes/no, true/false as booleans and ~ as null: quote a name, 'no')"
    return ""


def show(value: Any) -> str:
    text = "null" if value is None else repr(value)
    return text if len(text) <= 100 else text[:97] + "..."


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
