"""What a run was, to compare and reproduce runs: report.json's ``config`` (the resolved config)
and ``run`` (command, times, host, library versions), and ``<out>/config.yaml``, which reruns it
with ``--config``."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import time
from pathlib import Path

from .atomic import write_text
from .backend import Backend
from .config import PATH_KEYS, Config, to_dict

#: Name of the resolved config a run writes into its output directory.
CONFIG_FILE = "config.yaml"


def library_versions(backend: Backend) -> dict[str, str]:
    """Versions of the libraries that compute a run's numbers on ``backend``."""
    names = ["pandas", "dask", "distributed", "pyarrow", "numpy", "xgboost"] + (["cudf", "dask_cudf"] if backend.is_gpu else [])
    return {n: _version(n) for n in names}


def _version(name: str) -> str:
    """A library's version: its ``__version__`` when imported, else its installed metadata's (importing XGBoost,
    and scikit-learn with it, to read its version cost the ``features`` subcommand's feature stage ~1 s), else
    imported."""
    import importlib
    import importlib.metadata
    import sys

    if name not in sys.modules:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:  # another distribution name (cudf-cu13): import it
            pass
    return getattr(importlib.import_module(name), "__version__", "?")


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat(timespec="seconds")


def run_info(backend: Backend, started: float, command: str | None, finished: float | None = None) -> dict:
    """report.json's ``run``: the command line (None when called as a library), start and end
    (UTC; ``finished`` default: now), host, Python and library versions."""
    return {
        "command": command,
        "started_utc": _iso(started),
        "finished_utc": _iso(time.time() if finished is None else finished),
        "host": platform.node(),
        "python": platform.python_version(),
        "libraries": library_versions(backend),
    }


def absolute_path(path: str | os.PathLike | None) -> str | None:
    """``path`` absolute and normalised (``--out ../x``: ``/cwd/x``, not ``/cwd/sub/../x``), as report.json and
    config.yaml give paths; an empty or missing one as it is."""
    return os.path.abspath(os.path.expanduser(path)) if path else path


def config_data(cfg: Config) -> dict:
    """The resolved config as JSON / YAML data (lists, not tuples), its paths absolute (those relative
    to the directory the run started in: rerun from elsewhere, they would point elsewhere); an existing cluster's
    ``cluster.local_directory`` starting ``~`` is kept so: each worker's home, not this process's."""
    data = json.loads(json.dumps(to_dict(cfg)))
    for section, key in PATH_KEYS:
        where = data if section is None else data[section]
        workers_home = (section, key) == ("cluster", "local_directory") and data["cluster"]["scheduler_address"]
        if not (workers_home and str(where[key] or "").startswith("~")):  # an existing cluster's: each worker's home
            where[key] = absolute_path(where[key])
    for side in (data["data"].get("table") or {}).get("join") or []:
        side["path"] = absolute_path(side["path"])
    return data


def write_config(cfg: Config, directory: Path) -> Path:
    """Write the resolved config as ``<directory>/config.yaml`` (atomically); ``--config`` of that file reruns it."""
    import yaml

    header = "# The resolved config of this run (every key, --set and flags applied): rerun it with --config.\n"
    return write_text(directory / CONFIG_FILE, header + yaml.safe_dump(config_data(cfg), sort_keys=False))
