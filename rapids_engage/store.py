"""The materialized, versioned feature store.

A version is the features of one (feature config, input data, split) triple::

    <store>/<version>/train/part.N.parquet   features + labels of the training rows
    <store>/<version>/valid/part.N.parquet   same for the validation rows
    <store>/<version>/state/                 fitted encoders (parquet + JSON): the serving state
    <store>/<version>/manifest.json          written last; a version without it does not exist

``version`` is a hash of the feature definitions, the input fingerprint and the
split, so the same config on the same input is a cache hit. Versions are built
in a temporary directory and renamed into place: a killed run never leaves a
half-written version behind. The manifest lists every file with its size; a
version whose files no longer match (truncated, missing, extra, or a parquet
file without its footer) is treated as absent and rebuilt, never read.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from . import store_builds
from .atomic import DamagedFile, check_fields, replace_dir
from .build_lock import building
from .digests import content_digests
from .failures import naming
from .input_files import walk

MANIFEST = "manifest.json"
FORMAT_VERSION = 2
PARQUET_MAGIC = b"PAR1"
#: The keys of a manifest the store reads, with their types (a key that may be None may be absent; see
#: :func:`.atomic.check_fields`): a manifest of another shape is damaged, never read. ``rows`` (each split's rows,
#: :data:`MANIFEST_ROWS`), which a cache hit reports, is in every manifest a build writes.
MANIFEST_FIELDS = {"version": str, "format": int, "created": (int, float), "files": dict, "features": (list, type(None)),
                   "definition": (dict, type(None)), "rows": dict, "reused": (dict, type(None)),
                   "groups": (dict, type(None))}
MANIFEST_ROWS = {"train": int, "valid": int}


class MissingVersion(KeyError):
    """The store has no intact version of that id; ``problem``: why the version asked for is not intact
    (``"absent"``, or the damage :meth:`FeatureStore.check` found), None when none was asked for."""

    def __init__(self, message: str, problem: str | None = None) -> None:
        super().__init__(message)
        self.problem = problem

    def __str__(self) -> str:  # the message, without KeyError's quotes
        return str(self.args[0]) if self.args else ""


SPLITS = ("train", "valid")


def parquet_files(directory: str | os.PathLike) -> list[Path]:
    """The files under ``directory`` at any depth whose names end in ``.parquet`` (any case: ``B.PARQUET``), sorted by
    path parts; a directory so named (a Spark or dask dataset, ``events.parquet/part-0.parquet``) is searched, not
    listed as a file (that was 'Is a directory'). Listed by :func:`.input_files.walk`, as ``data.path`` directories
    are: linked folders are followed (each real folder once), and names below ``directory`` starting with ``.`` or
    ``_`` are skipped, as pyarrow, dask and Spark skip them (a Spark job's ``_temporary/`` partial files,
    ``_metadata``, editors' hidden files, :func:`.atomic.part_path`'s temporaries). A link to nothing or in a loop is
    listed, for its reader to name."""
    return sorted(Path(f) for f in walk(directory) if f.lower().endswith(".parquet"))


def fingerprint_files(directory: Path, cache: Path | None = None, log: Callable[[str], None] | None = None) -> str:
    """Hash of the relative paths and contents of the parquet files under ``directory`` (where it is or
    when its files were written changes nothing); ``cache``: where file digests are kept (:mod:`.digests`)."""
    files = parquet_files(directory)
    digests = content_digests(files, cache, log)
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.relative_to(directory).as_posix()}|{digests[f]}\n".encode())
    return h.hexdigest()


def is_version_dir(path: Path) -> bool:
    """A version directory: one with a manifest, or named like a version id (16 hex digits: a version
    whose manifest is lost). Any other directory is not the store's, and never deleted."""
    return (path / MANIFEST).exists() or re.fullmatch(r"[0-9a-f]{16}", path.name) is not None


def use_lock(store_path: str | os.PathLike, version: str) -> AbstractContextManager:
    """The lock (``<store>/.<version>.use.lock``) a run holds from marking ``version`` in use to checking it there,
    and a deletion from reading the marks to renaming it away: a run either finds it marked-for and kept, or gone
    (and builds it); never found, then deleted under it (:func:`~.store_admin.remove_unless_in_use`)."""
    return building(Path(store_path) / f"{version}.use")


@contextmanager
def marked_in_use(store_path: str | os.PathLike, version: str, models: str | os.PathLike,
                  serving: bool = False) -> Iterator[None]:
    """``version`` marked in use (:func:`~.store_builds.in_use`, by ``models``) while the block runs, the mark written
    under :func:`use_lock`: a deletion either read the mark and keeps the version, or renamed it away before the mark
    was written. So a look at the version inside the block (the caller's check) finds it gone, or there until the
    block ends (deleted only by ``store --delete --force``); never found, then deleted under the block."""
    with ExitStack() as mark:
        with use_lock(store_path, version):
            mark.enter_context(store_builds.in_use(Path(store_path), version, Path(models), serving=serving))
        yield


class StoreNotWritable(OSError):
    """A write a run needs refused by the OS in its store (read-only mount or filesystem, no permission): one line."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def unwritable(exc: BaseException) -> bool:
    """Whether ``exc`` is the OS refusing a write: a read-only filesystem or mount, no permission."""
    return isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)


def refused_write(exc: OSError) -> str:
    """``exc`` as what was refused: ``Read-only file system: <file>``."""
    return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")


def not_marked_line(store_path: str | os.PathLike, version: str, exc: OSError) -> str:
    """The log line of a run or predict that uses ``version`` of a store it cannot write, unmarked (``exc``)."""
    return (f"feature store: version {version} is not marked in use: the store {store_path} is read-only for this user "
            f"({refused_write(exc)}), so retention by a user who can write it (store --keep, features.keep_versions) "
            "could delete it meanwhile")


def version_id(definition: dict) -> str:
    return hashlib.sha256(json.dumps(definition, sort_keys=True, default=str).encode()).hexdigest()[:16]


class FeatureStore:
    """A directory of feature versions."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def version_dir(self, version: str) -> Path:
        return self.path / version

    def manifest(self, version: str) -> dict | None:
        """The manifest of a complete, intact version, or None (absent, unreadable or damaged: see :meth:`check`)."""
        return self.check(version)[0]

    def problem(self, version: str) -> str | None:
        """Why ``version`` cannot be used (``None`` when it is complete and its files match the manifest)."""
        return self.check(version)[1]

    def check(self, version: str) -> tuple[dict | None, str | None]:
        """(manifest, None) for an intact version, else (None, why not), reading the manifest once."""
        root = self.version_dir(version)
        if not root.is_dir():
            return None, "absent"
        try:
            manifest = json.loads((root / MANIFEST).read_text())
        except (OSError, ValueError):
            return None, "manifest missing or unreadable"
        try:
            check_fields(manifest, MANIFEST_FIELDS, root / MANIFEST)
            check_fields(manifest["rows"], MANIFEST_ROWS, root / MANIFEST, where="rows")
        except DamagedFile as exc:
            return None, f"manifest of another shape ({exc.why})"
        if manifest.get("version") != version or manifest.get("format") != FORMAT_VERSION:
            return None, "manifest of another version or format"
        problem = check_files(root, manifest.get("files") or {})
        return (None, problem) if problem else (manifest, None)

    def begin(self) -> Path:
        """A fresh temporary directory to build a version in."""
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / f".tmp-{uuid.uuid4().hex[:12]}"
        tmp.mkdir()
        store_builds.claim(tmp)
        return tmp

    def publish(self, tmp: Path, version: str, manifest: dict, replace: bool = True) -> bool:
        """Write the manifest into ``tmp`` and rename it to the version's place; False (``tmp`` discarded)
        when not ``replace`` and the version is there intact: built meanwhile by a concurrent run, which
        may be reading it."""
        if not replace and self.manifest(version) is not None:
            self.discard(tmp)
            return False
        files = list_files(tmp)
        manifest = {**manifest, "version": version, "format": FORMAT_VERSION, "created": time.time(), "files": files}
        part = tmp / (MANIFEST + ".part")
        with naming(part):
            part.write_text(json.dumps(manifest, indent=1, default=str))
        os.replace(part, tmp / MANIFEST)
        # the owner mark stays until the version is in place (unlisted): a publication killed before the rename is
        # told by it as a build's killed earlier is; on another host it is never taken for a killed one (its build
        # lock may be free from here: NFS locking per host); killed after, the mark left in the version goes at a sweep
        placed = False
        if not replace:
            try:  # one step: a version a concurrent run published after the check above is not replaced under its reader
                os.rename(tmp, self.version_dir(version))
                placed = True
            except OSError:  # a directory there: a rename does not replace one holding files
                if self.manifest(version) is not None:  # published meanwhile: theirs is used
                    self.discard(tmp)
                    return False
        if not placed:
            replace_dir(tmp, self.version_dir(version))  # a rebuild, or a damaged version in the way
        store_builds.release(self.version_dir(version))
        return True

    def add_split_counts(self, version: str, counts: dict) -> bool:
        """Record the split's ``counts`` (:meth:`~.split.SplitInfo.counts`, counted by a hit on ``version``, built
        before manifests kept them) in its manifest, so that the next hit takes them from there: True where written;
        False where its manifest has them already (a record :func:`~.split.recorded_split` takes: a damaged one is
        replaced), or cannot be rewritten (a store this user cannot write). Its id,
        files and ``created`` stay. Safe beside readers and builds: the manifest is replaced in one step (a reader
        reads the old one or the new), inside the directory opened (a rebuild renaming its own in place meanwhile is
        never written into), under a lock of its own (``.<version>.counts.lock``: two runs recording at once; not
        recorded where the filesystem does not lock)."""
        from .split import counts_recorded

        def opener(name: str, flags: int) -> int:
            return os.open(name, flags, 0o666, dir_fd=fd)

        try:
            with building(self.path / f"{version}.counts") as locked:
                if not locked:  # two runs writing one part file at once could leave half a manifest: not recorded
                    return False
                fd = os.open(self.version_dir(version), os.O_RDONLY | os.O_DIRECTORY)
                try:
                    with open(MANIFEST, encoding="utf-8", opener=opener) as f:
                        manifest = json.load(f)
                    if not isinstance(manifest, dict) or manifest.get("version") != version or counts_recorded(manifest.get("split_counts")):
                        return False
                    with open(MANIFEST + ".part", "w", encoding="utf-8", opener=opener) as f:
                        f.write(json.dumps({**manifest, "split_counts": counts}, indent=1, default=str))
                    os.replace(MANIFEST + ".part", MANIFEST, src_dir_fd=fd, dst_dir_fd=fd)
                finally:
                    os.close(fd)
        except (OSError, ValueError):  # unwritable, or deleted or damaged meanwhile: counted again next time
            return False
        return True

    def discard(self, tmp: Path) -> None:
        shutil.rmtree(tmp, ignore_errors=True)

    def read_split(self, version: str, split: str) -> Any:
        """Lazy dask frame of one split of a published version."""
        import dask.dataframe as dd

        return dd.read_parquet(str(self.version_dir(version) / split))

    # ---- library API -------------------------------------------------------
    def versions(self) -> list[str]:
        """The intact published versions, oldest first."""
        return [v for v, _ in self.intact()]

    def intact(self) -> list[tuple[str, dict]]:
        """(version, manifest) of the intact published versions, oldest first (each checked once)."""
        found = [d.name for d in self.path.iterdir() if d.is_dir() and not d.name.startswith(".")] if self.path.is_dir() else []
        manifests = {v: m for v, m in ((v, self.manifest(v)) for v in found) if m}
        return [(v, manifests[v]) for v in sorted(manifests, key=lambda v: (manifests[v]["created"], v))]

    def _resolve(self, version: str | None) -> tuple[str, dict]:
        """(version, its manifest): the newest intact version, or ``version`` if it is intact; else KeyError."""
        problem = None
        if version is not None:
            manifest, problem = self.check(version)
            if manifest is not None:
                return version, manifest
        else:
            versions = self.versions()
            if versions:
                return versions[-1], self.manifest(versions[-1])
        have = ", ".join(self.versions()) or "none"
        what = "no intact version" + (f" {version}" if version is not None else "") + (f" ({problem})" if problem not in (None, "absent") else "")
        raise MissingVersion(f"feature store {self.path}: {what} (have: {have}){self._hint(version)}", problem)

    def _hint(self, asked: str | None = None) -> str:
        """Where the store probably is, when :attr:`path` is not one; else its damaged versions (but ``asked``)."""
        if not self.path.exists():
            return "; the directory does not exist"
        if not self.path.is_dir():
            return f"; {self.path} is a file, not a store directory"
        if (self.path / MANIFEST).exists():
            return f"; {self.path} is a version directory, its store is {self.path.parent}"
        if (self.path / "store").is_dir():
            return f"; {self.path} looks like a run directory, its store is {self.path / 'store'}"
        damaged = [f"{d.name} ({problem})" for d in sorted(self.path.iterdir()) if d.is_dir() and not d.name.startswith(".")
                   and d.name != asked and is_version_dir(d) and (problem := self.problem(d.name))]
        return f"; damaged: {', '.join(damaged)}" if damaged else ""

    def materialize(self, config: Any, data_dir: Path, train: Any, valid: Any, targets: list[str], split: dict,
                    backend: Any, layout: Any, rebuild: bool = False) -> Any:
        """Build (or reuse) the version of ``config`` for these splits; see :func:`.features.materialize.materialize`."""
        from .features.materialize import materialize

        return materialize(config, self.path, data_dir, train, valid, targets, split, backend, layout, rebuild, lambda _: None)

    def training_frame(self, version: str | None = None, split: str = "train") -> Any:
        """Features, labels and row identity of a version's ``train`` (out-of-fold) or ``valid`` rows (default: the newest)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return self.read_split(self._resolve(version)[0], split)

    def feature_names(self, version: str | None = None) -> list[str]:
        """The feature columns of a version (default: the newest), in the order the models were trained on."""
        return list(self._resolve(version)[1]["features"])

    def layout(self, version: str | None = None) -> Any:
        """The :class:`~rapids_engage.layout.Layout` of a version's data (default: the newest): what
        :func:`~rapids_engage.features.add_labels` needs for a table's rows."""
        from .layout import RECSYS, Layout

        path = self.version_dir(self._resolve(version)[0]) / "state" / "features.json"
        spec = json.loads(path.read_text())
        return Layout.from_dict(spec["layout"], f"{path}: layout") if "layout" in spec else RECSYS

    def builder(self, version: str | None = None, df_lib: Any = None) -> Any:
        """The fitted :class:`~rapids_engage.features.FeatureBuilder` of a version: its serving state."""
        from .config import FeaturesConfig, section_from_dict
        from .features import VALUES_VERSION, FeatureBuilder
        from .features.build import SERVES_ALIKE

        version, manifest = self._resolve(version)
        source = f"{self.version_dir(version) / MANIFEST}"
        hint = "rerun the pipeline to rebuild the version"
        check_fields(check_fields(manifest, {"definition": dict, "features": list, "broadcast_limit": (int, type(None))},
                                  source, hint)["definition"], {"features": dict}, source, hint, where="definition")
        if (manifest.get("broadcast_limit") or 0) < 0:  # named as the manifest holds it, not as the definition's null
            raise DamagedFile(source, f"key broadcast_limit is {manifest['broadcast_limit']}, not a number of rows >= 0",
                              hint)
        built_by = manifest["definition"].get("values", 1)
        if built_by != VALUES_VERSION and built_by not in SERVES_ALIKE:
            raise ValueError(f"store version {version} holds feature values version {built_by}, and this version of "
                             f"rapids_engage computes version {VALUES_VERSION} (a fix changed some values for the same "
                             "input): served, its models would see other values than they were trained on. Rerun the "
                             "pipeline to rebuild the store and retrain, or serve with the rapids_engage that built it")
        # the definition's broadcast_limit is null (no value changes with it): the build's, kept beside it (versions
        # built before it was kept: the default), so that serving partitions the tables the build would
        features = manifest["definition"]["features"] | {
            "broadcast_limit": manifest["broadcast_limit"] if "broadcast_limit" in manifest else FeaturesConfig.broadcast_limit}
        builder = FeatureBuilder.load(self.version_dir(version) / "state", section_from_dict(FeaturesConfig, features, source), df_lib)
        names, stored = builder.feature_names(), manifest["features"]
        if names != stored:
            new, gone = [n for n in names if n not in stored], [n for n in stored if n not in names]
            diff = "; ".join(part for part in (f"new: {', '.join(new)}" if new else "",
                                                f"gone: {', '.join(gone)}" if gone else "") if part) or "same names, another order"
            raise ValueError(f"store version {version} was built with another feature set than this version of "
                             f"rapids_engage computes ({diff}): rerun the pipeline to rebuild it and retrain")
        return builder

    def transform(self, rows: Any, version: str | None = None, carry: list[str] = ()) -> Any:
        """Features of new ``rows`` (pandas, cudf or dask) from a version's serving state, exactly as its
        validation rows got theirs: a dask frame of the row identity columns (as in
        :meth:`training_frame`), the features (:meth:`feature_names`) and the ``carry`` columns of
        ``rows``. The history features are computed (kept on the workers) during the call, so rows
        they cannot serve are refused at once; the rest stays lazy."""
        from .backend import frame_library

        builder = self.builder(version, frame_library(rows))
        unknown = [c for c in carry if c not in getattr(rows, "columns", ())]  # (not a frame: transform says so)
        if unknown:
            raise ValueError(f"carry names column(s) {unknown} that the rows do not have")
        identity = [c for c in builder.layout.carried() if c in getattr(rows, "columns", ())]  # kept though no feature key
        out = builder.transform(rows, list(dict.fromkeys([*identity, *carry])))
        return out[list(dict.fromkeys([*identity, *builder.feature_names(), *carry]))]


def list_files(root: Path) -> dict[str, int]:
    """Relative path -> size in bytes of every file under ``root`` (the manifest and a build's owner mark excluded)."""
    return {
        f.relative_to(root).as_posix(): f.stat().st_size
        for f in sorted(root.rglob("*"))
        if f.is_file() and f.name not in (MANIFEST, MANIFEST + ".part") and f != root / store_builds.OWNER
    }


def check_files(root: Path, files: dict[str, int]) -> str | None:
    """The first mismatch between ``root`` and its listing (missing, resized, extra, footer-less parquet), or None.

    Costs a ``stat`` per file and 4 bytes read per parquet file: cheap enough for every cache hit.
    """
    if not files:
        return "manifest lists no files"
    on_disk = list_files(root)
    for rel, size in files.items():
        if rel not in on_disk:
            return f"file {rel} is missing"
        if on_disk[rel] != size:
            return f"file {rel} has {on_disk[rel]} bytes, the manifest says {size}"
        if rel.endswith(".parquet") and not has_parquet_footer(root / rel):
            return f"file {rel} has no parquet footer"
    extra = sorted(set(on_disk) - set(files))
    return f"file {extra[0]} is not in the manifest" if extra else None


def has_parquet_footer(path: Path) -> bool:
    """Whether ``path`` ends with parquet's magic bytes: a whole parquet file does, a cut one or another format not."""
    with open(path, "rb") as f:
        return ends_with_parquet_magic(f)


def ends_with_parquet_magic(f: BinaryIO) -> bool:
    """Whether the open binary file ``f`` ends with parquet's magic bytes (its position is left anywhere)."""
    if f.seek(0, os.SEEK_END) < len(PARQUET_MAGIC):
        return False
    f.seek(-len(PARQUET_MAGIC), os.SEEK_END)
    return f.read(len(PARQUET_MAGIC)) == PARQUET_MAGIC


def write_split(frame: Any, directory: Path) -> None:
    """Write a dask frame as parquet, one file per partition."""
    with naming(directory):  # a worker's write error (a full disk) names no file
        frame.to_parquet(str(directory), write_index=False, overwrite=False)
