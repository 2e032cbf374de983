"""The stages of a run on a started cluster: split and feature store, train, evaluate (``pipeline.run`` wires
them together with the data stage before and the report after)."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

from .backend import Backend
from .baselines import Scores, baseline_scores, scored, te_columns
from .cluster import ClusterInfo, ignored_settings, spilled_bytes, while_workers_live, worker_addresses
from .config import ClusterConfig, Config
from .data import Dataset, input_footers, read_events, resolve_min_partition_rows
from .digests import CACHE_FILE
from .evaluate import evaluate_targets, gather, oracle_probabilities
from .existing_cluster import check_shared_paths
from .features import add_labels
from .features.label_times import engagement_times
from .features.frames import drop_empty_partitions
from .features.materialize import Materialized, earlier_release_version, materialize, store_definition, wider_version
from .footers import null_free_int_range
from .layout import Layout
from .progress import StageProgress, byte_size
from .run_dirs import store_path
from .skew import skew_report
from .split import SplitInfo, check_window, recorded_split, shuffle_labels, split_frames, time_split, whole_seconds
from .store import MANIFEST, FeatureStore, version_id
from .train import RAW_COUNT_OBJECTIVES, as_float32, predict
from .train_external import train_target_external
from .train_shared_matrix import train_targets
from .worker_order import pin_partitions


def spilled_line(spilled: int, cluster: ClusterConfig) -> str:
    """The run's line on the bytes dask spilled, in MiB below a GiB (a few MiB said "0.00 GiB": nothing)."""
    return (f"dask spilled {byte_size(spilled)} to disk so far (above 60 % of cluster.memory_limit {cluster.memory_limit} per worker; "
            f"under {cluster.local_directory or tempfile.gettempdir()})")


def store_stages(
    cfg: Config, backend: Backend, prog: StageProgress, cluster: ClusterInfo, dataset: Dataset, rebuild: bool, shuffle_seed: int | None,
    hold: Callable[[str], None] | None = None,
) -> tuple[SplitInfo, Materialized]:
    """The split and feature-store stages on a started cluster: (the time split, the store version built or reused).
    ``hold``: called with the store version as soon as it is known (:func:`~.features.materialize.materialize`)."""
    layout, targets, client = dataset.layout, list(cfg.train.targets), cluster.client
    prog.log(cluster.describe(backend))
    for line in ignored_settings(cfg.cluster, backend, cluster.n_gpus):
        prog.log(line)
    if cluster.kind == "external":  # its workers read the input and write the store: they must see both
        check_shared_paths(client, cfg.cluster.scheduler_address, read=[dataset.data_dir], write=[store_path(cfg)])
    digests = Path(cfg.data.cache_dir).expanduser() / CACHE_FILE
    with prog.stage("split"):
        footers = list(dataset.footers) if dataset.footers is not None else input_footers(dataset.data_dir)
        read = partial(read_events, dataset.data_dir, layout, partition_rows=cfg.data.partition_rows,
                       min_partition_rows=resolve_min_partition_rows(cfg.data, backend),
                       min_partitions=sum(client.nthreads().values()), footers=footers)
        span = null_free_int_range(footers, layout.time)  # the split's earliest and latest time: no pass over the data

        def later(cutoff: int) -> Any:
            return add_labels(read(later_than=cutoff), targets, layout)

        known, definition = (None, None) if rebuild or span is None else _split_known(cfg, dataset, span, shuffle_seed,
                                                                                      digests, prog.log)
        if known is None:  # counted and checked: a pass over the data
            train, valid, split = time_split(add_labels(read(), targets, layout), cfg.split.valid_hours, layout.time, targets,
                                             later=later, gap_hours=cfg.split.gap_hours, span=span)
        else:  # the version built from this input and split is in the store: its counts, checked when it was built
            split = known
            train, valid = split_frames(add_labels(read(), targets, layout), split.cutoff, split.gap, layout.time, later)
        split_def = _split_def(cfg, split.cutoff, shuffle_seed)
        if split.purged:
            prog.log(f"split: {split.purged:,} rows in the {cfg.split.gap_hours:g} h gap before the validation window "
                     "purged (split.gap_hours): in neither split")
        if shuffle_seed is not None:
            # each label moves with its engagement time (label_time engagement), else a shuffled positive counts in
            # history features from the time of the real one of its row, and a real negative's from its event's
            times = engagement_times(cfg.features.history, layout, targets) if cfg.features.history.keys else None
            train = shuffle_labels(train, [*targets, *dict.fromkeys((times or {}).values())], shuffle_seed, layout.time)
    with prog.stage("features", client=client):
        built = materialize(cfg.features, store_path(cfg), dataset.data_dir, train, valid, targets, split_def, backend, layout, rebuild,
                            prog.log, digests, hold, definition, split.counts())
        if built.cache_hit and known is None and split.counts() is not None:  # a version built before manifests kept them
            built.store.add_split_counts(built.version, split.counts())
    spilled = spilled_bytes(client)
    if spilled:  # the memory limit was reached: the run is slower than in memory, and the disk must hold it
        prog.log(spilled_line(spilled, cfg.cluster))
    lost = cluster.workers_lost()
    if lost:
        prog.log(f"{lost} dask worker(s) of the start left the cluster by now (died and restarted, or retired); dask "
                 "recomputed their tasks (if they were killed for memory: a larger cluster.memory_limit or more workers)")
    return split, built


def _split_def(cfg: Config, cutoff: int, shuffle_seed: int | None) -> dict:
    """The split as a store version's definition holds it: the validation window and its cut-off, the gap (none
    without one: the versions built before gaps), the labels' shuffle seed (another training split)."""
    split_def = {"valid_hours": cfg.split.valid_hours, "cutoff": cutoff}
    if whole_seconds(cfg.split.gap_hours):
        split_def["gap_hours"] = cfg.split.gap_hours
    if shuffle_seed is not None:
        split_def["shuffled_labels_seed"] = shuffle_seed
    return split_def


def _split_known(cfg: Config, dataset: Dataset, span: tuple[int, int], shuffle_seed: int | None, digests: Path,
                 log: Callable[[str], None]) -> tuple[SplitInfo | None, dict | None]:
    """(the split, the store definition of this input and split, its cut-off from the footers' ``span``); the split
    is None unless the store holds the version a build would serve (this definition's, else an earlier release's id
    of it, else one of more targets:
    :func:`~.features.materialize.wider_version`) intact with the split's counts in its manifest (they were counted
    and checked when it was built from the same input, by its fingerprint, and split: the rows, valid and purged
    counts do not depend on the targets, and its check of each target's labels covered this run's, among its
    targets); else (a miss, or a version built before manifests kept them) the split counts them. (None, None) when
    no version records this split and these targets or more: the input is not hashed before the pass (a first run's
    split errors came after hashing all of it)."""
    cutoff = check_window(*span, cfg.split.valid_hours, cfg.split.gap_hours, dataset.layout.time)
    store, split_def, targets = FeatureStore(store_path(cfg)), _split_def(cfg, cutoff, shuffle_seed), list(cfg.train.targets)
    if not _recorded(store, split_def, targets):  # a miss: the input is hashed after the pass (materialize), as before
        return None, None
    definition = store_definition(cfg.features, store.path, dataset.data_dir, targets, split_def, dataset.layout, digests, log)
    manifest = store.manifest(version_id(definition))
    if manifest is None:  # served by the version an earlier release named otherwise (materialize's order)
        earlier = earlier_release_version(store, cfg.features, definition, dataset.layout)
        manifest = None if earlier is None else store.manifest(earlier)
    if manifest is None:  # served by a version of more targets, when one is intact (materialize's order)
        manifest = (wider_version(store, definition) or (None, None))[1]
    return recorded_split((manifest or {}).get("split_counts"), span, cutoff, whole_seconds(cfg.split.gap_hours)), definition


def _recorded(store: FeatureStore, split_def: dict, targets: list[str]) -> bool:
    """Whether a version in ``store`` records this split and these targets, or more (a version a run of some of its
    targets is served), in its manifest's definition (read, not checked: a cheap test before hashing the input; no
    such version, no version this run's definition is served)."""
    for manifest_path in store.path.glob(f"*/{MANIFEST}"):
        try:
            definition = json.loads(manifest_path.read_text()).get("definition")
        except (OSError, ValueError, AttributeError):  # unreadable or of another shape: not intact, never a hit
            continue
        if not isinstance(definition, dict) or definition.get("split") != split_def:
            continue
        theirs = definition.get("targets")
        if theirs == targets or (isinstance(theirs, list) and set(targets) < set(map(str, theirs))):
            return True
    return False


@dataclass(frozen=True)
class Trained:
    """The train stage's models and kinds by target, and the store's split frames, pinned to ``workers`` (``train``
    not, when training read it from the store's files: ``train.external_memory``)."""

    models: dict[str, Any]
    kinds: dict[str, str]
    train: Any
    valid: Any
    workers: Any


def pinned_splits(client: Any, splits: dict[str, Any], workers: set[str] | None, external: bool) -> tuple[Any, Any]:
    """The store's ``train`` and ``valid`` frames pinned to ``workers`` (:func:`~.worker_order.pin_partitions`), their
    empty partitions dropped; ``train`` left unpinned when ``external`` (external memory reads its files: the
    workers never hold it). A worker lost meanwhile ends it (:class:`~.cluster_errors.WorkerLostError`): its partitions
    cannot be recomputed elsewhere, and counting their rows waited for it forever."""
    def pin() -> tuple[Any, Any]:
        valid = drop_empty_partitions(pin_partitions(client, splits["valid"]))
        return splits["train"] if external else drop_empty_partitions(pin_partitions(client, splits["train"])), valid

    return while_workers_live(client, pin, workers=workers)


def training_detail(done: int, total: int, names: str) -> str:
    """The train stage's detail: ``0/4 targets done; training like, reply, retweet, comment`` (a group of targets
    sharing a matrix trains at once: its bar stays at 0 until the group is done; the detail says why)."""
    return f"{done}/{total} targets done; training {names}"


def train_stage(cfg: Config, backend: Backend, prog: StageProgress, client: Any, built: Materialized, layout: Layout,
                 model_dir: Path) -> Trained:
    """One model per target on the store version's training split, early-stopped on its validation split, each
    saved into ``model_dir`` as it is trained (in memory: the targets sharing a quantile sketch train together,
    :mod:`.train_shared_matrix`; progress counts their group's targets at once)."""
    targets, external = list(cfg.train.targets), cfg.train.external_memory
    kinds = {t: layout.target(t).kind for t in targets}
    models = {}
    with prog.stage("train", total=len(targets)):
        splits = {s: as_float32(built.store.read_split(built.version, s), built.features) for s in ("train", "valid")}
        pinned = worker_addresses(client)  # a lost one takes pinned partitions with it: the run ends (one line)
        train_f, valid_f = pinned_splits(client, splits, pinned, external)
        split_dir = built.store.version_dir(built.version)
        store = {"path": str(built.store.path.resolve()), "version": built.version}

        def save(model: Any) -> None:
            model.save(model_dir, built.features, store)

        def training(done: int, total: int, names: str) -> None:  # the targets alone read as a count of nothing
            prog.update(done, total, training_detail(done, total, names))

        if external:
            for i, t in enumerate(targets):
                training(i, len(targets), t)
                models[t] = train_target_external(client, backend, cfg.train, t, split_dir / "train", split_dir / "valid",
                                                  built.features, kinds[t], cfg.cluster.local_directory, log=prog.log)
                save(models[t])
        else:
            models = train_targets(client, backend, cfg.train, kinds, train_f, valid_f, built.features, layout.group, pinned,
                                   layout.row_key, log=prog.log, progress=training, trained=save)
    return Trained(models, kinds, train_f, valid_f, pinned)


@dataclass(frozen=True)
class Evaluated:
    """The evaluate stage's results: the gathered validation frame, the predictions by target, the oracle's true
    probabilities or None, the metrics by target with their baselines and feature skew, and the baselines' scores of
    the validation rows (for the ranking plot: :func:`rapids_engage.evaluate.ranked_rows`)."""

    frame: Any
    preds: dict[str, Any]
    truth: Any
    results: dict[str, dict]
    baselines: dict[str, dict[str, Scores]]


def evaluate_stage(backend: Backend, prog: StageProgress, client: Any, dataset: Dataset, split: SplitInfo,
                   built: Materialized, trained: Trained) -> Evaluated:
    """The models scored on the validation rows, beside the baselines (:class:`Evaluated`)."""
    models, layout, targets = trained.models, dataset.layout, list(trained.models)
    with prog.stage("evaluate", client=client):
        preds = {t: predict(client, models[t], trained.valid, built.features) for t in targets}
        te_cols = sorted({c for t in targets for c in te_columns(built.features, t)})
        frame, preds = while_workers_live(client, lambda: gather(client, trained.valid, preds, targets, layout, te_cols),
                                          workers=trained.workers, what="evaluation")
        oracle_ids = frame[layout.oracle_id] if layout.oracle_id else None
        truth = oracle_probabilities(dataset.truth_dir, oracle_ids, split.cutoff, targets, layout.oracle_id)
        ranking = tuple(t for t, m in models.items() if m.ranks)
        results = evaluate_targets(frame, preds, targets, layout, truth, ranking)
        raw_counts = frozenset(t for t, m in models.items() if m.objective in RAW_COUNT_OBJECTIVES)
        base = while_workers_live(client, lambda: baseline_scores(backend, trained.train, frame, targets, built.features, layout,
                                                                  raw_counts=raw_counts),
                                  workers=trained.workers, what="evaluation")
        for t, b in scored(frame, layout, base).items():
            results[t]["baselines"] = b
        skew = while_workers_live(client, lambda: skew_report(trained.train, trained.valid, trained.kinds, built.features,
                                                              {t: m.booster for t, m in models.items()}),
                                  workers=trained.workers, what="evaluation")
        for t, found in skew.items():
            results[t]["skew"] = found
    return Evaluated(frame, preds, truth, results, base)
