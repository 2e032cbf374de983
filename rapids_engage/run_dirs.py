"""The directories a run writes (``out``, ``data.cache_dir``, ``features.store``), checked at its start: one that
cannot be made or written is a config error naming its key and the flag that set it, before any work. So is an
``out`` holding what the command would replace: files no run wrote in ``models/`` / ``plots/`` (and in predict's
``predictions/``: :func:`foreign_files`), or, for ``features``, the config.yaml of a run of another config."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .atomic import DamagedFile, read_json
from .config import Config, ConfigError, sourced


def store_path(cfg: Config) -> Path:
    """The run's feature store: ``features.store``, else ``<out>/store``."""
    return Path(cfg.features.store) if cfg.features.store else Path(cfg.out) / "store"


def check_dir(cfg: Config, key: str, path: str | Path, what: str) -> None:
    """Directory ``path`` of config ``key`` can be made and written, checked without making it (a run whose config
    fails its later checks leaves nothing behind); else a :func:`refusal`."""
    problem = unusable_dir(path)
    if problem:
        raise refusal(cfg, key, path, what, problem)


def unusable_dir(path: str | Path) -> str | None:
    """Why directory ``path`` cannot be made and written (``File exists``, ``Not a directory``, ``Permission
    denied``: as ``mkdir`` says), found without making anything; None when it can."""
    where = Path(path).absolute()
    for place in (where, *where.parents):  # the nearest that exists decides
        if place.exists():
            if not place.is_dir():
                return "File exists" if place == where else "Not a directory"
            if os.access(place, os.W_OK | os.X_OK):
                return None
            return "Read-only file system" if _read_only_mount(place) else "Permission denied"
    return None


def _read_only_mount(path: Path) -> bool:
    """Whether ``path`` lies on a filesystem mounted read-only (``os.access`` refuses it without saying why)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check_store(cfg: Config, rebuild: bool) -> None:
    """The run's feature store (:func:`store_path`) as :func:`check_dir` checks a directory, except that a store which
    is there and which this user cannot write (another team's, mounted read-only) passes: a run training from a version
    in it writes nothing there (a miss is :class:`~.store.StoreNotWritable` once the version is known); with
    ``rebuild``, which builds this run's version in it whatever it holds, it is refused here, before any work."""
    path = store_path(cfg)
    if not path.is_dir():
        check_dir(cfg, "features.store", path, "feature store")
    elif rebuild and (problem := unusable_dir(path)):
        raise ConfigError(sourced(cfg, f"features.store: the feature store {str(path)!r} is not writable ({problem}), and "
                                       "--rebuild builds this run's version in it: set features.store to a directory you "
                                       "can write, or leave out --rebuild to train from the version it holds"))


def check_run_outputs(cfg: Config, out: Path) -> None:
    """``<out>/models`` and ``<out>/plots``, which a run replaces whole (or removes: ``--no-plots``), hold only
    what a run writes there (``<target>.json`` / ``.meta.json``, the PNGs of :data:`~.plots.PLOT_FILES`): an
    ``--out`` of the user's own files (``--out .``) is a :class:`ConfigError` naming them, not their deletion."""
    from .plots import PLOT_FILES

    ours = {"models": lambda p: p.is_file() and p.suffix == ".json",
            "plots": lambda p: p.is_file() and f"plots/{p.name}" in PLOT_FILES.values()}
    for name, is_ours in ours.items():
        problem = foreign_files(out / name, is_ours, "a run")
        if problem:
            raise ConfigError(sourced(cfg, f"out: {problem}"))


def foreign_files(where: Path, is_ours: Callable[[Path], bool], writer: str) -> str | None:
    """Why directory ``where``, which ``writer`` (``a run``, ``predict``) replaces whole, may not be replaced: it
    holds entries ``is_ours`` says it did not write (``<where> holds files no run wrote (mine.pkl), ...``); None
    when it holds none (or is not there)."""
    foreign = sorted(p.name for p in where.iterdir() if not is_ours(p)) if where.is_dir() else []
    if not foreign:
        return None
    who = writer.split()[-1]
    return (f"{where} holds files no {who} wrote ({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}), "
            f"and {writer} replaces it whole: choose another --out or move them")


def check_features_out(cfg: Config, out: Path) -> None:
    """``features --out`` into the directory of a run (``report.json``) of another config is a :class:`ConfigError`
    naming a setting that differs: its config.yaml, which the subcommand writes, would no longer be the run's
    (``--config <out>/config.yaml`` would rerun another run, ``predict`` of a table run reads data.table there). A
    report.json that cannot be read, or is damaged (:func:`.atomic.read_json`: no JSON, no ``config`` object), is
    refused too; the run's own config passes (config.yaml stays the same). A run records the config resolved for its
    data's layout (``label_time: auto`` as what it resolved to), and its layout: ours is resolved for that layout."""
    from dataclasses import replace

    from .features.label_times import resolve_label_time
    from .layout import Layout
    from .provenance import config_data

    path = out / "report.json"
    if not path.is_file():
        return
    hint = "choose another --out (features would replace the config.yaml of the run it records)"
    try:
        report = read_json(path, {"config": dict, "layout": (dict, type(None))}, hint)
        if report.get("layout") is not None:  # recorded by every run since label_time exists
            layout = Layout.from_dict(report["layout"], f"{path}: layout", hint)
            cfg = replace(cfg, features=resolve_label_time(cfg.features, layout))
    except DamagedFile as exc:
        raise ConfigError(sourced(cfg, f"out: {exc}")) from None
    except ValueError as exc:  # a layout field this release does not know
        raise ConfigError(sourced(cfg, f"out: {exc}; {hint}")) from None
    except OSError as exc:
        raise ConfigError(sourced(cfg, f"out: {out} holds a report.json that cannot be read ({exc}), whose run's "
                                       "config.yaml features would replace: choose another --out")) from None
    ours, theirs = config_data(cfg), report["config"]
    recorded = theirs.get("features")
    if not ours["features"]["session"]["enabled"] and isinstance(recorded, dict) and "session" not in recorded:
        del ours["features"]["session"]  # a run from before session features: off builds what it built
    differ = _first_difference(ours, theirs)
    if differ is not None:
        key, ours, there = differ
        raise ConfigError(sourced(cfg, f"out: {out} holds a run (report.json) of another config ({key}: {ours} here, {there} "
                                       "there), whose config.yaml features would replace: choose another --out"))


def _first_difference(ours: object, theirs: object, key: str = "") -> tuple[str, str, str] | None:
    """(dotted key, our value, their value) of the first setting where two config dicts differ; None when equal."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for k in [*ours, *(k for k in theirs if k not in ours)]:
            found = _first_difference(ours.get(k, "(none)"), theirs.get(k, "(none)"), f"{key}.{k}" if key else str(k))
            if found is not None:
                return found
        return None
    return None if ours == theirs else (key, _shown(ours), _shown(theirs))


def _shown(value: object) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)


def refusal(cfg: Config, key: str, path: str | Path, what: str, problem: str | None) -> ConfigError:
    """``<key>: cannot create the <what> '<path>': <problem> (from --flag ...)``."""
    return ConfigError(sourced(cfg, f"{key}: cannot create the {what} {str(path)!r}: {problem}"))


__all__ = ["check_dir", "check_features_out", "check_store", "check_run_outputs", "foreign_files", "store_path", "unusable_dir"]
