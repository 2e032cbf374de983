"""YAML file + ``--set`` overrides -> :class:`Config`, checked before dacite builds it."""

from __future__ import annotations

import dataclasses
import difflib
import os
import typing
from pathlib import Path
from typing import Any

import dacite
import yaml

from .errors import ConfigError
from .per_target import check_per_target
from .sections import Config
from .typecheck import problem
from .yaml_text import read_yaml

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent.parent / "configs" / "default.yaml"


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    """Set ``dotted`` in ``data``, each mapping on the way copied first: a mapping YAML shares through an alias
    (``retweet: *like``) keeps its value (``--set train.per_target.like.max_depth=3`` set retweet's too)."""
    node = data
    *parents, last = dotted.split(".")
    for part in parents:
        if node.get(part) is None:  # a section left null (default.yaml's data.table: null) takes keys
            node[part] = {}
        child = node[part]
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: {part!r} is not a section")
        node[part] = node = dict(child)
    node[last] = value


def _get_dotted(data: dict, dotted: str) -> Any:
    """The value at ``dotted`` in ``data``, None where there is none."""
    node: Any = data
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def parse_override(text: str) -> tuple[str, Any]:
    """``section.key=value`` -> (``section.key``, YAML-parsed value)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects section.key=value, got {text!r}")
    try:
        value = read_yaml(raw, key.strip()) if raw.strip() else None
    except ValueError as exc:  # a key given twice in the value's mapping
        raise ConfigError(f"{exc} (from --set {text})") from None
    except yaml.YAMLError as exc:
        escaped = raw.strip().replace('"', '\\"')
        raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML ({exc.__class__.__name__}); to pass it as "
                          f"text, quote it for YAML: --set '{key.strip()}=\"{escaped}\"'") from None
    return key.strip(), value


#: The config's paths (section, key): ``~`` in them is the home directory (expanded as the config loads, for every
#: reader alike), and a run's config.yaml writes them absolute.
PATH_KEYS = ((None, "out"), ("data", "path"), ("data", "cache_dir"), ("features", "store"), ("cluster", "local_directory"))


def _expand_home(config: Config) -> None:
    """``~`` in the config's paths (:data:`PATH_KEYS` and side tables) expanded: some readers (pathlib) took
    ``~/runs`` for a directory ``~`` under the working directory while others (pandas) wrote into the home one. Not
    ``cluster.local_directory`` of an existing cluster: its workers use it, each in its own home (:func:`~.train_external.cache_scratch`)."""
    for section, key in PATH_KEYS:
        if (section, key) == ("cluster", "local_directory") and config.cluster.scheduler_address:
            continue
        holder = config if section is None else getattr(config, section)
        if getattr(holder, key):
            setattr(holder, key, os.path.expanduser(getattr(holder, key)))
    for side in config.data.table.join if config.data.table else ():
        side.path = os.path.expanduser(side.path)


def from_dict(data: dict, source: str = "<dict>", origins: dict[str, str] | None = None) -> Config:
    """Build a :class:`Config` from a nested dict, rejecting unknown keys and wrong types.

    ``origins`` maps a dotted key an override set to how the user gave it (``--set KEY=VALUE``,
    ``--gpus 2``): an error about that key names it.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    config = _build(Config, data, "", source, origins or {})
    check_per_target(config.train, source, origins or {})
    _expand_home(config)
    config._origins = (source, dict(origins or {}))  # not a field: for later errors about a key (sourced)
    return config


def _build(cls: type, data: dict, path: str, source: str, origins: dict[str, str]) -> Any:
    found = problem(cls, data, path)
    if found:
        key, message = found
        given = [(k, label) for k, label in origins.items() if key == k or key.startswith((k + ".", k + "[")) or k.startswith(key + ".")]
        if given and given[-1][0] == key and not given[-1][1].startswith("--set ") and message.startswith(f"{key}: expected "):
            # the value of a flag (--gpus lots): named as the flag
            raise ConfigError(f"{given[-1][1].split()[0]} must be {message.split(': expected ', 1)[1]}")
        if given and given[-1][0] == key and _empty_set(given[-1][1]) and message.endswith(", got null"):
            message = message.removesuffix("null") + "an empty value"  # the null YAML made of it is not what was typed
        raise ConfigError(f"{source}: {message}" + (f" (from {given[-1][1]})" if given else ""))
    try:
        return dacite.from_dict(cls, data, config=dacite.Config(strict=True, cast=[float]))
    except (dacite.DaciteError, ValueError, TypeError) as exc:  # not expected after the check
        raise ConfigError(f"{source}: {exc}") from None


def _empty_set(label: str) -> bool:
    """Whether ``label`` (how the user gave a key) is a ``--set KEY=`` with nothing after the ``=`` (null to YAML)."""
    return label.startswith("--set ") and not label.partition("=")[2].strip()


def _closest_config(path: Path) -> str:
    """`` (did you mean configs/mind.yaml?)`` for a YAML file beside ``path`` named like it, else ``""``."""
    try:
        files = [p for p in path.parent.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()]
    except OSError:  # no such directory
        return ""
    names = {**{p.stem: p.name for p in files}, **{p.name: p.name for p in files}}  # configs/hn: hn.yaml
    close = difflib.get_close_matches(path.name, names, n=1, cutoff=0.7)
    return f" (did you mean {path.parent / names[close[0]]}?)" if close else ""


def load_config(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), labels: dict[str, str] | None = None
) -> Config:
    """Load ``path`` (default ``configs/default.yaml``) and apply ``--set`` overrides.

    ``labels``: how the user gave an override, by its text (``cluster.gpus=2`` -> ``--gpus 2``;
    default ``--set TEXT``), for errors about the value it set.
    """
    path = Path(path) if path else DEFAULT_CONFIG
    if not path.exists() or path.is_dir():  # a pipe is read too: --config <(...) is /dev/fd/63
        raise ConfigError(f"config file {path} is a directory" if path.is_dir() else f"config file not found: {path}"
                          f"{_closest_config(path)}")
    text = ""
    try:
        text = path.read_text(encoding="utf-8")
        data = read_yaml(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML{_yaml_problem(exc, text)}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid YAML: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except ValueError as exc:  # a key given twice
        raise ConfigError(f"{path}: {exc}") from None
    if not isinstance(data, dict):  # before the overrides, which take sections (a flag is one)
        return from_dict(data, str(path))  # refused: the top level must be a mapping
    origins: dict[str, str] = {}
    in_file: dict[str, Any] = {}
    for text in overrides:
        key, value = parse_override(text)
        if key not in in_file:
            in_file[key] = _get_dotted(data, key)
        _set_dotted(data, key, value)
        origins.pop(key, None)
        origins[key] = (labels or {}).get(text, f"--set {text}")
    config = from_dict(data, str(path), origins)
    config._in_file = in_file  # not a field: the file's values of the keys an override set (role_changes)
    return config


def _yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    """PyYAML's error in one line, at the file's line and column, and its context's where that is elsewhere (where an
    unclosed list or quote opened): its own text took five lines, quoted the line and named the file
    ``<unicode string>``; a character YAML does not allow (a control character, NUL) was an error at a ``position``
    of ``<unicode string>``."""
    if isinstance(exc, yaml.reader.ReaderError):
        before = text[:exc.position]
        line, column = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
        return f" at line {line}, column {column}: character #x{exc.character:04x} is not allowed in YAML ({exc.reason})"
    mark = getattr(exc, "problem_mark", None)
    if mark is None or not getattr(exc, "problem", None):
        return ": " + " ".join(str(exc).split())
    near = getattr(exc, "context_mark", None)  # where an unclosed list or quote opened, a first anchor
    elsewhere = near is not None and (near.line, near.column) != (mark.line, mark.column)
    at = f" at line {near.line + 1}, column {near.column + 1}" if elsewhere else ""
    context = f" ({exc.context}{at})" if getattr(exc, "context", None) else ""
    tabs = "; indent with spaces, not tabs" if "'\\t'" in exc.problem else ""  # PyYAML shows the tab as '\t'
    return f" at line {mark.line + 1}, column {mark.column + 1}: {exc.problem}{context}{tabs}"


def to_dict(config: Config) -> dict:
    """The config as plain data (for manifests and report.json)."""
    return dataclasses.asdict(config)


def section_from_dict(cls: type, data: dict, source: str, origins: dict[str, str] | None = None) -> Any:
    """One config section (e.g. :class:`FeaturesConfig`) from a stored dict, strictly typed.

    Errors name keys by their full path (``cluster.n_workers``) when ``cls`` is a top-level section;
    ``origins``: full key -> how the user gave it (``--gpus 2``, ``--set cluster.x=1``), as :func:`load_config`'s.
    """
    path = next((name for name, hint in typing.get_type_hints(Config).items() if hint is cls), "")
    return _build(cls, data, path, source, origins or {})
