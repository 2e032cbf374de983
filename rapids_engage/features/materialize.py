"""Build the features of a run into the versioned store, or reuse a cached version."""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from ..backend import Backend
from ..config import FeaturesConfig
from ..layout import Layout
from ..store import FORMAT_VERSION, FeatureStore, fingerprint_files, version_id, write_split
from .build import FeatureBuilder


@dataclass(frozen=True)
class Materialized:
    store: FeatureStore
    version: str
    features: list[str]
    rows: dict[str, int]
    cache_hit: bool


def _rows(directory: Path) -> int:
    """Rows of a written split, from the parquet footers (no data read back)."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in directory.rglob("*.parquet"))


def _library_versions(backend: Backend) -> dict[str, str]:
    import importlib

    names = ["pandas", "dask", "pyarrow", "xgboost"] + (["cudf", "dask_cudf"] if backend.is_gpu else [])
    return {n: getattr(importlib.import_module(n), "__version__", "?") for n in names}


def materialize(
    cfg: FeaturesConfig,
    store_path: Path,
    data_dir: Path,
    train: Any,
    valid: Any,
    targets: list[str],
    split: dict,
    backend: Backend,
    layout: Layout,
    rebuild: bool = False,
    log: Callable[[str], None] = print,
) -> Materialized:
    """Compute train (out-of-fold) and validation features into a store version.

    Besides the features and labels, the layout's identity, time, grouping and
    popularity columns are kept (:meth:`Layout.carried`).
    """
    store = FeatureStore(store_path)
    definition = {
        "features": asdict(cfg) | {"store": None},
        "targets": targets,
        "layout": layout.to_dict(),
        "input": fingerprint_files(data_dir),
        "split": split,
        "format": FORMAT_VERSION,
    }
    version = version_id(definition)
    builder = FeatureBuilder(cfg, targets, layout)
    names = builder.feature_names()
    manifest, problem = store.check(version)
    if problem not in (None, "absent"):
        log(f"feature store: version {version} is damaged ({problem}); rebuilding it")
    if manifest and not rebuild:
        log(f"feature store: cache hit, version {version} ({store.version_dir(version)})")
        return Materialized(store, version, manifest["features"], manifest["rows"], True)
    keep = list(dict.fromkeys([*layout.carried(), *targets, *names]))
    tmp = store.begin()
    try:
        write_split(builder.fit_transform(train, keep)[keep], tmp / "train")
        write_split(builder.transform(valid, keep)[keep], tmp / "valid")
        builder.save(tmp / "state")
        rows = {s: _rows(tmp / s) for s in ("train", "valid")}
        manifest = {
            "definition": definition,
            "features": names,
            "rows": rows,
            "backend": backend.kind,
            "libraries": _library_versions(backend),
            "python": platform.python_version(),
        }
        store.publish(tmp, version, manifest)
    except BaseException:
        store.discard(tmp)
        raise
    log(f"feature store: built version {version} ({rows['train']:,} train / {rows['valid']:,} valid rows)")
    return Materialized(store, version, names, rows, False)
