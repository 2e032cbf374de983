"""The code an existing cluster's workers run, checked against this process's before a run uses them.

The workers of ``--scheduler-address`` compute the features and train the models with their own installation:
tasks name rapids_engage's functions, which each worker imports from its own copy. A worker with another
rapids_engage either failed to load a task and died (dask retried elsewhere; the run said a worker was lost, as
if for memory) or, where the names still matched, could compute other values unseen. :func:`check_same_code`
compares a digest of rapids_engage's source and the versions of the libraries the results depend on.
"""

from __future__ import annotations

from typing import Any

#: Libraries whose version every worker must share with the driver (imported to be read: they are on a CPU worker).
LIBRARIES = ("xgboost", "dask", "distributed", "pandas", "pyarrow", "numpy")
#: GPU libraries, read only where already imported: importing cudf before the backend's setup breaks cuml.
GPU_LIBRARIES = ("cudf", "dask_cudf", "cupy", "cuml", "rmm")


def code_versions(libraries: tuple[str, ...] = LIBRARIES, loaded_only: tuple[str, ...] = GPU_LIBRARIES) -> dict[str, str | None]:
    """``rapids_engage``: a digest of its ``.py`` files (path and bytes); each library: its ``__version__`` (None when
    missing, or for ``loaded_only`` ones not imported)."""
    return _versions_by_value()(libraries, loaded_only)


def _versions_by_value() -> Any:
    """:func:`code_versions`' body as a nested function: pickled by value, so a worker whose rapids_engage lacks this
    module runs it too."""

    def versions(libraries: tuple[str, ...], loaded_only: tuple[str, ...]) -> dict[str, str | None]:
        import hashlib
        import importlib
        import os
        import sys

        import rapids_engage

        root = os.path.dirname(os.path.abspath(rapids_engage.__file__))
        digest = hashlib.sha256()
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(f for f in files if f.endswith(".py")):
                path = os.path.join(folder, name)
                digest.update(os.path.relpath(path, root).replace(os.sep, "/").encode() + b"\0")
                with open(path, "rb") as f:
                    digest.update(f.read() + b"\0")
        out: dict[str, str | None] = {"rapids_engage": f"{rapids_engage.__version__} (source {digest.hexdigest()[:12]})"}
        for name in (*libraries, *loaded_only):
            try:
                module = sys.modules.get(name) if name in loaded_only else importlib.import_module(name)
            except ImportError:
                module = None
            out[name] = getattr(module, "__version__", None) if module is not None else None
        return out

    return versions


def differences(ours: dict[str, str | None], theirs: dict[str, str | None]) -> list[str]:
    """``name THEIRS there, OURS here`` for each package known on both sides whose versions differ."""
    return [f"{name} {theirs[name]} there, {version} here" for name, version in ours.items()
            if version is not None and theirs.get(name) is not None and theirs[name] != version]


def check_same_python(client: Any, address: str) -> None:
    """Fail in one line unless the scheduler and every worker of the cluster at ``address`` run this process's Python
    minor version, as ``client.get_versions()`` says (distributed gathers it with its own code; skipped where it cannot).
    The functions the run ships by value (:func:`check_same_code`'s among them) carry this Python's bytecode: a worker
    on another minor version failed to load the first with a raw error instead of the check's line."""
    import sys

    from .cluster_errors import ClusterError, first_worker

    try:
        found = client.get_versions()
        pythons = {"the scheduler": found["scheduler"]["host"]["python"],
                   **{f"worker {w}": v["host"]["python"] for w, v in found["workers"].items()}}
    except Exception:  # noqa: BLE001 - no answer in this shape: the code check still runs
        return
    ours = "{}.{}".format(*sys.version_info[:2])
    other = {who: python for who, python in pythons.items() if python and ".".join(str(python).split(".")[:2]) != ours}
    if first := first_worker(other):
        who, python, more = first
        raise ClusterError(
            f"{who}{more} of the cluster at {address} runs Python {python}, this process {sys.version.split()[0]}: the run ships "
            f"functions to it, built for this Python, so run the scheduler and every worker on Python {ours} with the same "
            "rapids_engage and libraries, then restart them"
        )


def check_same_code(client: Any, address: str) -> None:
    """Fail in one line unless every worker of the cluster at ``address`` runs this process's rapids_engage source and
    library versions (:func:`code_versions`); run after the backend's setup on the workers."""
    from .cluster_errors import ClusterError, first_worker

    ours = code_versions()
    seen = client.run(_versions_by_value(), LIBRARIES, GPU_LIBRARIES)
    if first := first_worker({worker: differences(ours, theirs) for worker, theirs in seen.items()}):
        worker, diff, more = first
        raise ClusterError(
            f"worker {worker}{more} of the cluster at {address} runs other code than this process ({'; '.join(diff)}): the "
            "workers compute the features and train the models with their own installation, so install the same "
            "rapids_engage and libraries on every worker, then restart them"
        )
