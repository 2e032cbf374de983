"""The materialized, versioned feature store.

A version is the features of one (feature config, input data, split) triple::

    <store>/<version>/train/part.N.parquet   features + labels of the training rows
    <store>/<version>/valid/part.N.parquet   same for the validation rows
    <store>/<version>/state/                 fitted encoders (parquet + JSON): the serving state
    <store>/<version>/manifest.json          written last; a version without it does not exist

``version`` is a hash of the feature definitions, the input fingerprint and the
split, so the same config on the same input is a cache hit. Versions are built
in a temporary directory and renamed into place: a killed run never leaves a
half-written version behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def fingerprint_files(directory: Path) -> str:
    """Hash of the relative paths, sizes and modification times of the parquet files under ``directory``."""
    h = hashlib.sha256()
    for f in sorted(directory.rglob("*.parquet")):
        st = f.stat()
        h.update(f"{f.relative_to(directory)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def version_id(definition: dict) -> str:
    return hashlib.sha256(json.dumps(definition, sort_keys=True, default=str).encode()).hexdigest()[:16]


class FeatureStore:
    """A directory of feature versions."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def version_dir(self, version: str) -> Path:
        return self.path / version

    def manifest(self, version: str) -> dict | None:
        """The manifest of a complete version, or None (absent or unreadable)."""
        path = self.version_dir(version) / MANIFEST
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return manifest if manifest.get("version") == version else None

    def begin(self) -> Path:
        """A fresh temporary directory to build a version in."""
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / f".tmp-{uuid.uuid4().hex[:12]}"
        tmp.mkdir()
        return tmp

    def publish(self, tmp: Path, version: str, manifest: dict) -> Path:
        """Write the manifest into ``tmp`` and rename it to the version's place."""
        manifest = {**manifest, "version": version, "format": FORMAT_VERSION, "created": time.time()}
        part = tmp / (MANIFEST + ".part")
        part.write_text(json.dumps(manifest, indent=1, default=str))
        os.replace(part, tmp / MANIFEST)
        final = self.version_dir(version)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        return final

    def discard(self, tmp: Path) -> None:
        shutil.rmtree(tmp, ignore_errors=True)

    def read_split(self, version: str, split: str) -> Any:
        """Lazy dask frame of one split of a published version."""
        import dask.dataframe as dd

        return dd.read_parquet(str(self.version_dir(version) / split))


def write_split(frame: Any, directory: Path) -> None:
    """Write a dask frame as parquet, one file per partition."""
    frame.to_parquet(str(directory), write_index=False, overwrite=False)
