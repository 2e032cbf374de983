"""Build the features of a run into the versioned store, or reuse a cached version.

Same definition -> cache hit. Otherwise, when an intact version of the same
input, split, targets and layout exists, only the feature groups whose
signature it lacks are computed (:mod:`.groups`); the others are read back from
that version and joined on the row key, and their serving state is copied.
"""

from __future__ import annotations

import contextlib
import json
import platform
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from ..backend import Backend
from ..build_lock import building, look_again_or_build
from ..config import FeaturesConfig
from ..digests import CACHE_FILE
from ..layout import Layout
from ..progress import byte_size
from ..provenance import library_versions
from ..store_builds import dir_size, in_use, sweep
from ..store import (FORMAT_VERSION, FeatureStore, StoreNotWritable, fingerprint_files, not_marked_line, refused_write,
                     unwritable, use_lock, version_id, write_split)
from .build import VALUES_VERSION, FeatureBuilder
from .groups import groups, only, signatures, values_config
from .label_times import resolve_label_time


@dataclass(frozen=True)
class Materialized:
    store: FeatureStore
    version: str
    features: list[str]
    rows: dict[str, int]
    cache_hit: bool
    reused: dict[str, list[str]] | None = None  # {"from": [version], "groups": [...]} when built incrementally


def _rows(directory: Path) -> int:
    """Rows of a written split, from the parquet footers (no data read back)."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in directory.rglob("*.parquet"))


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
    digests: Path | None = None,
    hold: Callable[[str], None] | None = None,
    definition: dict | None = None,
    split_counts: dict | None = None,
) -> Materialized:
    """Compute train (out-of-fold) and validation features into a store version.

    Besides the features and labels, the layout's identity, time, grouping and
    popularity columns are kept (:meth:`Layout.carried`). ``digests``: the cache of the input
    files' digests (default: the store's own; the pipeline shares ``data.cache_dir``'s). ``hold``: called with
    the version's id before it is looked up or built, and with a version found for more targets before it is
    used (a run marks it in use there: ``store --keep`` deleted it between this and the run's training).
    ``definition``: :func:`store_definition` of these arguments when computed already. ``split_counts``: the split's
    counts (:meth:`~..split.SplitInfo.counts`), kept in the manifest of a version built here, so that a later run
    finding it takes them from there instead of counting them again.
    """
    hold = hold or (lambda _: None)
    cfg = resolve_label_time(cfg, layout)  # the definition holds the value used (a run has resolved it already)
    store = FeatureStore(store_path)
    _sweep(store, log)
    builder = FeatureBuilder(cfg, targets, layout)
    names = builder.feature_names()
    if definition is None:
        definition = store_definition(cfg, store.path, data_dir, targets, split, layout, digests, log)
    version = version_id(definition)
    manifest, problem, refused = _marked_and_checked(store, version, hold)
    damaged = None if problem in (None, "absent") else f"feature store: version {version} is damaged ({problem})"
    if manifest and not rebuild:
        log(f"feature store: cache hit, version {version} ({store.version_dir(version)})")
        if refused is not None:
            log(not_marked_line(store.path, version, refused))
        return Materialized(store, version, manifest["features"], manifest["rows"], True)
    earlier = None if rebuild or manifest else earlier_release_version(store, cfg, definition, layout)
    if earlier is not None:  # built by a release that hashed parameters no value depends on: the same values
        found, _, refused_earlier = _marked_and_checked(store, earlier, hold)
        if found is not None:
            if damaged:
                log(f"{damaged}; not used")
            log(f"feature store: cache hit, version {earlier} ({store.version_dir(earlier)}; an earlier release's id "
                "of this definition)")
            if refused_earlier is not None:
                log(not_marked_line(store.path, earlier, refused_earlier))
            return Materialized(store, earlier, found["features"], found["rows"], True)
    wider = None if rebuild else wider_version(store, definition)
    if wider is not None:  # a run of some of a version's targets: its features, those this run would build
        found, _, refused = _marked_and_checked(store, wider[0], hold)
        if found is None:  # deleted (or damaged) since it was chosen, before the mark: this run's is built
            log(f"feature store: version {wider[0]} is gone; building version {version}")
        else:
            if damaged:
                log(f"{damaged}; not used")
            log(f"feature store: cache hit, version {wider[0]} (built for {', '.join(found['definition']['targets'])}; "
                f"this run's {len(names)} features of {', '.join(targets)} are among its)")
            if refused is not None:
                log(not_marked_line(store.path, wider[0], refused))
            return Materialized(store, wider[0], names, found["rows"], True)
    if damaged:
        log(f"{damaged}; rebuilding it")
    if refused is not None:  # to be built in a store this user cannot write: said before any work, not as a traceback
        what = "is to be rebuilt (--rebuild)" if manifest else "is not in it"
        raise StoreNotWritable(refused.errno, f"feature store {store.path} is not writable ({refused_write(refused)}): "
                               f"version {version} of this run's features {what}, and a run builds it in its store; "
                               "set features.store to a directory you can write (or have the store's maintainers build "
                               "it)", str(store.path))

    def built_meanwhile() -> tuple[Materialized | None, None]:
        manifest = None if rebuild else store.manifest(version)
        return (None if manifest is None else _built_meanwhile(store, version, log, manifest)), None

    def build(_damaged: str | None) -> Materialized:
        keep = list(dict.fromkeys([*layout.carried(), *targets, *names]))
        sigs = group_signatures(cfg, targets, layout)
        base = None if rebuild else _base_version(store, definition, sigs)
        tmp = store.begin()
        scratch = _scratch(cfg, backend, tmp)
        reused = None
        try:
            if base is not None:
                # the base is read during the build: marked in use until then (`store --keep` deleted it mid-build)
                with contextlib.ExitStack() as reading:
                    with use_lock(store.path, base[0]):
                        reading.enter_context(in_use(store.path, base[0], tmp, building=version))
                        intact = store.check(base[0])[0] is not None
                    if not intact:  # deleted or damaged since it was chosen, before the mark
                        log(f"feature store: version {base[0]} is gone; building in full")
                    else:
                        reused = _build_reusing(store, base, cfg, builder, sigs, train, valid, targets, layout, keep, tmp,
                                                scratch, log)
                if reused is None:  # the base did not line up row for row (or is gone): start over
                    store.discard(tmp)
                    tmp = store.begin()
                    scratch = _scratch(cfg, backend, tmp)
            if reused is None:
                write_split(builder.fit_transform(train, keep, _under(scratch, "train"))[keep], tmp / "train")
                _log_partitioned(builder, cfg, log)
                write_split(builder.transform(valid, keep, _under(scratch, "valid"))[keep], tmp / "valid")
                builder.save(tmp / "state")
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
            rows = {s: _rows(tmp / s) for s in ("train", "valid")}
            manifest = {
                "definition": definition,
                "features": names,
                "groups": {g: {"signature": sig} for g, sig in sigs.items()},
                "reused": reused,
                "rows": rows,
                "split_counts": split_counts,
                # out of the definition (no value changes with it), and what serving the version keeps to (predict,
                # FeatureStore.transform): the definition's null would gather every batch's per-day count tables
                "broadcast_limit": cfg.broadcast_limit,
                "backend": backend.kind,
                "libraries": library_versions(backend),
                "python": platform.python_version(),
            }
            published = store.publish(tmp, version, manifest, replace=rebuild)
        except BaseException:
            store.discard(tmp)
            raise
        if not published:  # another run published it while this one built: use theirs, replacing it would pull it from under them
            return _built_meanwhile(store, version, log)
        how = f", {len(reused['groups'])} of {len(sigs)} feature groups reused from version {reused['from']}" if reused else ""
        log(f"feature store: built version {version} ({rows['train']:,} train / {rows['valid']:,} valid rows{how})")
        return Materialized(store, version, names, rows, False, reused)

    # runs sharing the store build it once; the others wait, then reuse it
    return look_again_or_build(building(store.version_dir(version), log), built_meanwhile, build)[0]


def store_definition(cfg: FeaturesConfig, store_path: Path, data_dir: Path, targets: list[str], split: dict, layout: Layout,
                     digests: Path | None = None, log: Callable[[str], None] = print) -> dict:
    """What a store version is the hash of (:func:`~..store.version_id`): the features, targets, layout, input
    fingerprint, split and code versions of :func:`materialize`'s arguments (parameters no value depends on at their
    defaults: :func:`~.groups.values_config`)."""
    cfg = values_config(cfg, layout)
    return {
        "features": _features_entry(cfg),
        "targets": targets,
        "layout": layout.to_dict(),
        "input": fingerprint_files(data_dir, digests or Path(store_path) / CACHE_FILE, log),
        "split": split,
        "format": FORMAT_VERSION,
        "values": VALUES_VERSION,  # code that computes other values for the same input builds another version
        "names": FeatureBuilder(cfg, targets, layout).feature_names(),  # a feature added to a group is a new version
    }


def _features_entry(cfg: FeaturesConfig) -> dict:
    """The definition's ``features``: where the store, key tables and intermediates live, and how many versions are
    kept, change no value (session features off: not named, so versions built before they existed keep being found)."""
    return ({k: v for k, v in asdict(cfg).items() if k not in ("intermediates", "keep_versions")
             and (k != "session" or v["enabled"])} | {"store": None, "broadcast_limit": None})


def earlier_release_version(store: FeatureStore, cfg: FeaturesConfig, definition: dict,
                            layout: Layout) -> str | None:
    """The id of ``definition``'s version as releases before 2026-12-05 named it, when it differs and the store has
    it: they hashed the config as given (label time resolved), not :func:`~.groups.values_config`'s (parameters no
    value depends on at their defaults, floats canonical), so a config setting such a parameter (the seed of
    contiguous folds, history windows without history keys, ...) finds the version it built then."""
    earlier = earlier_release_id(cfg, definition, layout)
    return earlier if earlier != version_id(definition) and store.manifest(earlier) is not None else None


def earlier_release_id(cfg: FeaturesConfig, definition: dict, layout: Layout) -> str:
    """The id releases before 2026-12-05 gave ``definition`` (of ``cfg``): :func:`earlier_release_version`."""
    return version_id({**definition, "features": _features_entry(resolve_label_time(cfg, layout))})


def group_signatures(cfg: FeaturesConfig, targets: list[str], layout: Layout) -> dict[str, str]:
    """Group id -> signature (:func:`~.groups.signatures`, with the columns each group gives), of the config as the
    definition holds it (:func:`~.groups.values_config`): a parameter no value depends on recomputes no group."""
    cfg = values_config(cfg, layout)
    return signatures(cfg, {g: FeatureBuilder(only(cfg, {g}), targets, layout).feature_names() for g in groups(cfg)})


def _marked_and_checked(store: FeatureStore, version: str,
                        hold: Callable[[str], None]) -> tuple[dict | None, str | None, OSError | None]:
    """(:meth:`~..store.FeatureStore.check` of ``version``, None) marked in use first (``hold``), under its use lock:
    a deletion selecting it meanwhile keeps it (retention). In a store this user cannot write (read-only mount or
    permissions: nothing of this user's can delete it either) checked unmarked: (its check, the write refused)."""
    try:
        with use_lock(store.path, version):
            hold(version)
            return (*store.check(version), None)
    except OSError as exc:
        if not unwritable(exc):
            raise
        return (*store.check(version), exc)


def _built_meanwhile(store: FeatureStore, version: str, log: Callable[[str], None],
                     manifest: dict | None = None) -> Materialized:
    """The version another run built while this one waited, or built too: theirs, used (its ``manifest`` read
    again when not given: replaced or deleted since, a MissingVersion naming it, not a TypeError)."""
    log(f"feature store: version {version} was built by another run meanwhile; using it ({store.version_dir(version)})")
    manifest = manifest or store._resolve(version)[1]
    return Materialized(store, version, manifest["features"], manifest["rows"], True)


SCRATCH = "_scratch"


def _log_partitioned(builder: FeatureBuilder, cfg: FeaturesConfig, log: Callable[[str], None]) -> None:
    """Name the key tables the build kept partitioned (estimated above ``features.broadcast_limit`` rows):
    which path a table took was said nowhere, so a limit that changed nothing looked ignored."""
    if builder.partitioned:
        log(f"feature store: {len(builder.partitioned)} key table(s) estimated above features.broadcast_limit "
            f"{cfg.broadcast_limit:,} rows kept partitioned: {', '.join(builder.partitioned)}; the others broadcast")


def _sweep(store: FeatureStore, log: Callable[[str], None]) -> None:
    """Delete what killed builds left in the store; name what is left (builds in progress, or unknown)."""
    deleted, freed, left, stuck = sweep(store.path)
    if deleted:
        log(f"feature store: deleted {deleted} temporary dir(s) of killed builds ({byte_size(freed)})")
    if stuck:  # a store this user cannot write (read-only mount): said as not deleted, with why
        log(f"feature store: {len(stuck)} temporary dir(s) of killed builds or deletions could not be deleted "
            f"({byte_size(sum(dir_size(d) for d in stuck))}; {next(iter(stuck.values()))}): `python -m "
            f"rapids_engage.pipeline store {store.path} --tmp` as a user who may write the store deletes them")
    if left:
        log(f"feature store: {len(left)} temporary dir(s) of builds in progress or of another host "
            f"({byte_size(sum(dir_size(d) for d in left))}); `python -m rapids_engage.pipeline store {store.path}` "
            "says which")


def _scratch(cfg: FeaturesConfig, backend: Backend, tmp: Path) -> Path | None:
    """Where the build's intermediate frames go when they go to disk (removed before publishing):
    ``intermediates: disk``, or ``auto`` on CPU; None keeps them on the workers."""
    on_disk = cfg.intermediates == "disk" or (cfg.intermediates == "auto" and not backend.is_gpu)
    return tmp / SCRATCH if on_disk else None


def _under(scratch: Path | None, split: str) -> Path | None:
    return None if scratch is None else scratch / split


def _same(a: object, b: object) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def wider_version(store: FeatureStore, definition: dict) -> tuple[str, dict] | None:
    """The newest intact version of the same definition but for more targets, holding every feature
    of ``definition`` (each target's encodings are computed on their own: the same values)."""
    for version, manifest in reversed(store.intact()):
        theirs = manifest.get("definition") or {}
        if (all(_same(theirs.get(k), v) for k, v in definition.items() if k not in ("targets", "names"))
                and set(definition["targets"]) < set(theirs.get("targets") or ())
                and set(definition["names"]) <= set(manifest.get("features") or ())):
            return version, manifest
    return None


def _base_version(store: FeatureStore, definition: dict, sigs: dict[str, str]) -> tuple[str, dict, set[str]] | None:
    """The intact version of the same input, split, targets and layout sharing the most groups, if any.
    A version recording no definition or groups (absent or null: an older build's, an edit) is none; a group
    whose entry is no object with its signature (an edit) is not shared."""
    best = None
    for version, manifest in store.intact():
        theirs, groups = manifest.get("definition"), manifest.get("groups")
        if theirs is None or groups is None:
            continue
        if not all(_same(theirs.get(k), v) for k, v in definition.items() if k not in ("features", "names")):
            continue
        shared = {g for g, sig in sigs.items() if isinstance(info := groups.get(g), dict) and info.get("signature") == sig}
        if shared and (best is None or len(shared) >= len(best[2])):
            best = (version, manifest, shared)
    return best


def _build_reusing(
    store: FeatureStore,
    base: tuple[str, dict, set[str]],
    cfg: FeaturesConfig,
    builder: FeatureBuilder,
    sigs: dict[str, str],
    train: Any,
    valid: Any,
    targets: list[str],
    layout: Layout,
    keep: list[str],
    tmp: Path,
    scratch: Path | None,
    log: Callable[[str], None],
) -> dict | None:
    """Write the splits and state into ``tmp`` from the base version's shared groups plus the new
    groups computed here; None (nothing to keep) when the row counts do not match the base."""
    import dask.dataframe as dd

    version, manifest, shared = base
    fresh = FeatureBuilder(only(cfg, set(sigs) - shared), targets, layout)
    computed = fresh.feature_names()
    log(f"feature store: reusing {len(shared)} feature groups of version {version}; computing {len(sigs) - len(shared)}")
    row_key = list(layout.row_key)
    base_dir = store.version_dir(version)
    for split, frame, build in (("train", train, fresh.fit_transform), ("valid", valid, fresh.transform)):
        old = dd.read_parquet(str(base_dir / split), columns=[c for c in keep if c not in computed])
        if computed:
            new = build(frame, row_key, _under(scratch, split))[[*row_key, *computed]]
            old = old.merge(new, on=row_key, how="inner")
        write_split(old[keep], tmp / split)
        joined = _rows(tmp / split)
        if joined != manifest["rows"][split]:
            more = " (a row key shared by several rows pairs each with each)" if joined > manifest["rows"][split] else ""
            log(f"feature store: the {split} rows do not line up with version {version} on {row_key}: {joined:,} joined, "
                f"{manifest['rows'][split]:,} stored{more}; building in full")
            return None
    fresh.save(tmp / "state")
    for group in shared - {"content"}:
        for src in (base_dir / "state").glob(f"{group}.*"):
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp / "state" / src.name)
    builder.write_spec(tmp / "state")
    return {"from": version, "groups": sorted(shared)}
