"""The pipeline run, data → split → features/store → train → evaluate → report (:func:`run`), and the
``features`` subcommand's stages alone (:func:`build_features`).

Each stage lives in its own module; this one only wires them together and times them. The command line
(``python -m rapids_engage.pipeline``, the ``rapids-engage`` script: :func:`main`) is :mod:`.commands`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console

from . import __version__
from .atomic import OLD_PREFIX, replace_dir, staged_dir, staging_dir, write_file
from .backend import Backend
from .cluster import spilled_bytes, start_cluster
from .cluster_errors import ClusterError
from .config import Config, ConfigError, about_a_key, sourced
from .data import DataError, Dataset, expected_layout, ignored_data_settings, input_footers, resolve_dataset
from .evaluate import ranked_rows
from .existing_cluster import run_backend
from .ingest import IngestError
from .features.key_checks import check_keys, role_changes
from .features.label_times import resolve_label_time
from .features.materialize import Materialized
from .footers import int_range
from .layout import Layout
from .memory import MemoryWatch
from .progress import StageProgress, read_detail
from .provenance import CONFIG_FILE, absolute_path, config_data, run_info, write_config
from .retention import apply_retention
from .run_lock import out_lock
from .run_dirs import check_dir, check_features_out, check_run_outputs, check_store, store_path
from .store_builds import in_use
from .run_stages import evaluate_stage, store_stages, train_stage
from .split import check_window
from .plots import write_all
from .report import print_summary, validate, write_json
from .report_md import write_markdown
from .schema import TRUE_PROB_PREFIX
from .train_check import check_params


@contextlib.contextmanager
def _stages(cfg: Config, quiet: bool, console: Console, backend: Backend | None = None, rebuild: bool = False,
            ) -> Iterator[tuple[Backend, Path, StageProgress, MemoryWatch]]:
    """The backend (``backend``: decided already, by the audit for its runs), output directory, progress display and
    memory watch of a run (``rebuild``: its features rebuilt, so its store must be writable)."""
    why = None
    if backend is None:
        backend, why = run_backend(cfg.cluster)  # why: --gpus auto on an existing cluster, decided by its workers' GPUs
    backend = backend.init()
    # the directories a run writes, before it spends time; made when written (a config refused later leaves none)
    check_dir(cfg, "out", cfg.out, "output directory")
    check_dir(cfg, "data.cache_dir", cfg.data.cache_dir, "cache directory")
    check_store(cfg, rebuild)
    memory = MemoryWatch.for_run(backend, cfg.cluster.scheduler_address)
    with memory, StageProgress(console, quiet, memory) as prog, _keys_sourced(cfg):
        if why:
            prog.log(why)
        yield backend, Path(cfg.out), prog, memory


@contextlib.contextmanager
def _keys_sourced(cfg: Config) -> Iterator[None]:
    """A value refused by the run in the block (cluster.memory_limit on this machine, data.path) named as the
    config's errors are: the config file (``predict``) first, the ``--set`` or flag that gave it last."""
    try:
        yield
    except (ClusterError, DataError) as exc:
        if not about_a_key(cfg, str(exc)):
            raise
        raise type(exc)(sourced(cfg, str(exc))) from None


def _data_stage(cfg: Config, backend: Backend, prog: StageProgress, train: bool = True,
                hold: Callable[[Any], Any] | None = None) -> Dataset:
    """The data stage, with the config checked against the data's layout (targets, feature keys and,
    when the run trains, XGBoost parameters): before it when the config tells the layout, so a typo
    does not wait for an ingest, else after it. ``hold``: where the mark of the ingest folder read is held until the
    command ends (:func:`.data.resolve_dataset`)."""
    try:
        expected = expected_layout(cfg)
    except IngestError as exc:  # a data.table the ingest would refuse
        raise ConfigError(sourced(cfg, str(exc))) from None
    if expected is not None:
        _check_config(cfg, expected, backend, train)
    with prog.stage("data"):
        unit = "rows" if cfg.data.source == "synthetic" else "bytes"  # generated rows, else raw files' bytes ingested
        dataset = resolve_dataset(cfg, backend, on_chunk=lambda done, total: prog.update(done, total, read_detail(done, total, unit)),
                                  log=prog.log, hold=hold)
        prog.log(dataset.description)
        for line in ignored_data_settings(cfg.data):
            prog.log(line)
    if expected is None:
        _check_config(cfg, dataset.layout, backend, train)
    return _split_checked(cfg, dataset)


def _split_checked(cfg: Config, dataset: Dataset) -> Dataset:
    """``dataset`` with its files' footers, its time span from their statistics checked against split.valid_hours and
    split.gap_hours before the cluster starts (a window covering the whole data was said only after the cluster's
    start and the split's pass over the data); the split checks it again on the data."""
    footers = tuple(input_footers(dataset.data_dir))
    span = int_range(footers, dataset.layout.time)
    if span is not None:
        check_window(*span, cfg.split.valid_hours, cfg.split.gap_hours, dataset.layout.time)
    return dataclasses.replace(dataset, footers=footers)


def _check_config(cfg: Config, layout: Layout, backend: Backend, train: bool) -> None:
    """``cfg`` checked against the data's ``layout``, and its layout-dependent defaults resolved in place
    (``features.history.label_time: auto``), so the store, report.json and config.yaml record the value used."""
    try:
        for target in cfg.train.targets:
            layout.target(target)
        cfg.features = resolve_label_time(cfg.features, layout)
        check_keys(cfg.features, layout, role_changes(cfg))
        if train:
            check_params(cfg.train, layout, backend)
    except (ConfigError, ValueError) as exc:
        raise ConfigError(sourced(cfg, str(exc))) from None


#: Whether a run draws its plots when not told (``--plots`` / ``--no-plots``); the test suite turns it off.
PLOTS_BY_DEFAULT = True


def run(
    cfg: Config, *, rebuild: bool = False, quiet: bool = False, console: Console | None = None, shuffle_seed: int | None = None,
    command: str | None = None, plots: bool | None = None, backend: Backend | None = None,
) -> dict:
    """:func:`_run` holding ``cfg.out``'s run lock (:func:`~.run_lock.out_lock`: another run writing there is refused)."""
    with out_lock(Path(cfg.out)), contextlib.ExitStack() as readers:  # the ingest folder read, marked to the end
        return _run(cfg, rebuild=rebuild, quiet=quiet, console=console, shuffle_seed=shuffle_seed, command=command,
                    plots=plots, backend=backend, hold=readers.enter_context)


def _run(
    cfg: Config, *, rebuild: bool = False, quiet: bool = False, console: Console | None = None, shuffle_seed: int | None = None,
    command: str | None = None, plots: bool | None = None, backend: Backend | None = None,
    hold: Callable[[Any], Any] | None = None,
) -> dict:
    """Run the whole pipeline for ``cfg``; returns the report (also written to ``<out>/report.json``,
    the resolved config to ``<out>/config.yaml``).

    ``shuffle_seed``: permute the training labels first (the leakage audit's control run);
    ``command``: the command line, for the report; ``plots``: draw ``<out>/plots/`` (None:
    :data:`PLOTS_BY_DEFAULT`; without them report.json's ``plots`` is empty). ``backend``: decided already (the audit's
    runs: one ``--gpus auto`` answer for all); None: :func:`~.existing_cluster.run_backend`. ``hold``: as
    :func:`_data_stage`'s.
    """
    console = console or Console(stderr=True)
    started = time.time()
    targets = list(cfg.train.targets)
    check_run_outputs(cfg, Path(cfg.out))
    # a run stopped before publishing (Ctrl-C, an error) removes what it staged; published, nothing is left to remove;
    # the store version the models are trained from is marked in use until they are published: `store --keep`
    # (a housekeeping job) deleted it under a run in progress, whose models then could not be served
    with contextlib.ExitStack() as staged:
        with _stages(cfg, quiet, console, backend, rebuild) as (backend, out, prog, memory):
            dataset = _data_stage(cfg, backend, prog, hold=hold)
            with _cluster(cfg, backend, prog) as cluster:
                # marked as soon as the version is known, inside the store stage: a `store --keep` between its end
                # and the mark deleted the version about to be trained from
                def hold(version: str) -> None:
                    staged.enter_context(in_use(store_path(cfg), version, out / "models"))

                split, built = store_stages(cfg, backend, prog, cluster, dataset, rebuild, shuffle_seed, hold)
                # published at the end; a run stopped before (Ctrl-C, an error) removes it on the way out
                model_dir = staged.enter_context(staged_dir(out / "models"))
                trained = train_stage(cfg, backend, prog, cluster.client, built, dataset.layout, model_dir)
                evaluated = evaluate_stage(backend, prog, cluster.client, dataset, split, built, trained)
                frame, preds, truth, results = evaluated.frame, evaluated.preds, evaluated.truth, evaluated.results
                workers = _cluster_facts(cluster) | {"n_workers_train": _trained_on(trained)}
            models = trained.models
            for t, m in models.items():
                results[t]["best_iteration"] = m.best_iteration
                results[t]["objective"] = m.objective
            report: dict[str, Any] = {"targets": results}
            report["models"] = os.path.join(absolute_path(cfg.out), "models")  # absolute, as the config's paths
            binary = [t for t in targets if trained.kinds[t] != "count" and not models[t].ranks]  # probabilities
            counts = [t for t in targets if trained.kinds[t] == "count"]
            report["plots"], plots_dir = _draw_plots(out, prog, PLOTS_BY_DEFAULT if plots is None else plots, lambda into: write_all(
                into, {t: frame[t] for t in binary}, {t: preds[t] for t in binary}, {t: m.booster for t, m in models.items()},
                {t: m.history for t, m in models.items()}, {t: m.best_iteration for t, m in models.items()},
                counts=({t: frame[t] for t in counts}, {t: preds[t] for t in counts}),
                baselines={t: (results[t].get("baselines") or {}).get("constant") or {} for t in targets},
                oracle=None if truth is None else {t: truth[TRUE_PROB_PREFIX + t] for t in binary},
                train_histories={t: m.train_history for t, m in models.items()},
                ranked=ranked_rows(frame, dataset.layout, preds, evaluated.baselines),
            ))
            if plots_dir is not None:  # removed by the publication; by the way out when not published
                staged.callback(shutil.rmtree, plots_dir, ignore_errors=True)
            # the plots' seconds and memory are the run's (their stage); ``other`` is counted to here
            report = _summary(cfg, backend, workers, built, prog, dataset, split, memory, started, command) | report
            if shuffle_seed is not None:  # the audit's control run: say so, its metrics show no skill by design
                report["split"]["shuffled_labels_seed"] = shuffle_seed
        validate(report)
        _publish_models(model_dir, out, plots_dir)
    # published: features.keep_versions applies (a run that failed deletes nothing); not in the audit's control runs,
    # whose shuffles are each a version of their own store
    report["store"]["retention"] = None if shuffle_seed is not None else _retention(cfg, built, quiet, console)
    if "ingest" in report:  # data.keep_ingests likewise, of the ingest folders
        report["ingest"]["retention"] = None if shuffle_seed is not None else _ingest_retention(cfg, dataset, quiet, console)
    write_config(cfg, out)
    write_json(out / "report.json", report)
    # an earlier `features` run's summary would stand beside this report recording another config and store version;
    # report.json holds every key it had
    (out / "features.json").unlink(missing_ok=True)
    write_markdown(report, report["plots"], out / "report.md")
    if not quiet:
        print_summary(report, console, out / "report.json")
    return report


#: What describes a run's models beside them (written after the models are published).
RUN_FILES = ("report.json", "report.md", CONFIG_FILE)


def _publish_models(staged: Path, out: Path, plots_root: Path | None) -> None:
    """Replace ``out/models`` with ``staged`` (whole: a killed rerun leaves the last run's), then ``out/plots`` with
    ``plots_root/plots`` (None: no plots). The last run's :data:`RUN_FILES` and plots go first: a run stopped between
    the rename and the writes after it (Ctrl-C, a kill) leaves its models without a report, config.yaml or plots,
    never beside the old. A publication that fails (``staged`` still there: the last run's models are) puts them
    back beside the models they describe."""
    kept = {name: (out / name).read_bytes() for name in RUN_FILES if (out / name).is_file()}
    plots = out / "plots"
    aside = plots.with_name(f"{OLD_PREFIX}plots-{os.getpid()}") if plots.exists() else None  # swept as replace_dir's
    for name in kept:
        (out / name).unlink()
    if aside is not None:
        os.replace(plots, aside)
    try:
        replace_dir(staged, out / "models")
    except BaseException:
        if staged.exists():
            for name, data in kept.items():
                write_file(out / name, lambda tmp, data=data: tmp.write_bytes(data))
            if aside is not None:
                os.replace(aside, plots)
        raise
    finally:
        if aside is not None:  # gone where put back
            shutil.rmtree(aside, ignore_errors=True)
    if plots_root is not None:  # this run's plots, drawn in their stage, published with its models
        replace_dir(plots_root / "plots", plots)
        shutil.rmtree(plots_root, ignore_errors=True)


def _draw_plots(out: Path, prog: StageProgress, plots: bool, draw: Callable[[Path], dict[str, str]]) -> tuple[dict[str, str], Path | None]:
    """(the plots, the staging directory ``root``) after ``draw(root)`` wrote ``root/plots/`` (the ``plots`` stage),
    which :func:`_publish_models` publishes whole as ``<out>/plots/`` with the models (an earlier run's plots go then,
    drawn or not: report.md would not show them); ``plots`` false: none, ``({}, None)``."""
    if not plots:
        return {}, None
    root = staging_dir(out / "plots")  # a failed run's goes at the next run's start, as the models'
    try:
        with prog.stage("plots"):
            return draw(root), root
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def build_features(
    cfg: Config, *, rebuild: bool = False, quiet: bool = False, console: Console | None = None, command: str | None = None
) -> dict:
    """:func:`_build_features` holding ``cfg.out``'s run lock, as :func:`run` (it writes config.yaml there too)."""
    with out_lock(Path(cfg.out), "features"), contextlib.ExitStack() as readers:
        return _build_features(cfg, rebuild=rebuild, quiet=quiet, console=console, command=command,
                               hold=readers.enter_context)


def _build_features(
    cfg: Config, *, rebuild: bool = False, quiet: bool = False, console: Console | None = None, command: str | None = None,
    hold: Callable[[Any], Any] | None = None,
) -> dict:
    """The ``features`` subcommand: the data, split and feature-store stages only (no training).

    Builds the store version of ``cfg`` (or finds it: a cache hit) that a run with the same
    config would train on; returns its summary, also written to ``<out>/features.json``
    (report.json's keys less the targets, models, ``n_workers_train`` and plots), the resolved config to ``<out>/config.yaml``.
    """
    console = console or Console(stderr=True)
    started = time.time()
    check_features_out(cfg, Path(cfg.out))
    with _stages(cfg, quiet, console, rebuild=rebuild) as (backend, out, prog, memory):
        dataset = _data_stage(cfg, backend, prog, train=False, hold=hold)
        with _cluster(cfg, backend, prog) as cluster:
            split, built = store_stages(cfg, backend, prog, cluster, dataset, rebuild, None)
            workers = _cluster_facts(cluster)
    summary = _summary(cfg, backend, workers, built, prog, dataset, split, memory, started, command)
    summary["store"]["retention"] = _retention(cfg, built, quiet, console)
    if "ingest" in summary:
        summary["ingest"]["retention"] = _ingest_retention(cfg, dataset, quiet, console)
    write_config(cfg, out)
    write_json(out / "features.json", summary)
    if not quiet:
        rows = summary["rows"]
        console.print(f"feature store {built.store.path} version {built.version}"
                      f"{' (cache hit)' if built.cache_hit else ''}: {len(built.features)} features, "
                      f"{rows['train']:,} train / {rows['valid']:,} valid rows; summary {out / 'features.json'}")
    return summary


def _retention(cfg: Config, built: Materialized, quiet: bool, console: Console) -> dict | None:
    """``features.keep_versions`` applied to the run's store once its outputs are published, never deleting its own
    version (:func:`~.retention.apply_retention`): report.json's / features.json's ``store.retention``."""
    return apply_retention(built.store.path, cfg.features.keep_versions, built.version,
                           lambda line: None if quiet else console.print(f"  {line}", highlight=False, soft_wrap=True))


def _ingest_retention(cfg: Config, dataset: Dataset, quiet: bool, console: Console) -> dict | None:
    """``data.keep_ingests`` applied to the run's ingest cache once its outputs are published, never deleting the
    folder it read (:func:`~.ingest.cache_pruning.prune_ingests`): report.json's / features.json's ``ingest.retention``."""
    from .ingest.cache_pruning import prune_ingests

    return prune_ingests(dataset.data_dir, cfg.data.keep_ingests,
                         lambda line: None if quiet else console.print(f"  {line}", highlight=False, soft_wrap=True))


@contextlib.contextmanager
def _cluster(cfg: Config, backend: Backend, prog: StageProgress) -> Iterator[Any]:
    """The run's cluster (:func:`start_cluster`), timed as the ``cluster`` stage: its start (a stage line) and its
    close."""
    stack = contextlib.ExitStack()
    with prog.stage("cluster"):
        cluster = stack.enter_context(start_cluster(backend, cfg.cluster, prog.log))
    try:
        yield cluster
    except BaseException:
        if not stack.__exit__(*sys.exc_info()):
            raise
        return
    with prog.timed("cluster"):
        stack.close()


def _summary(
    cfg: Config, backend: Backend, workers: dict, built: Materialized, prog: StageProgress, dataset: Dataset, split: Any,
    memory: MemoryWatch, started: float, command: str | None,
) -> dict:
    """:func:`_store_summary` and ``run``, the run's end now: ``timings_s`` gets ``other``, the seconds of the run
    outside its stages (checking the config, starting the backend), so its timings add up to
    the run's wall time (``run.started_utc`` to ``finished_utc``)."""
    finished = time.time()
    prog.account("other", finished - started)
    summary = _store_summary(cfg, backend, workers, built, prog.timings, dataset, split, memory)
    summary["task_seconds"] = prog.task_seconds
    summary["run"] = run_info(backend, started, command, finished)
    return summary


def _cluster_facts(cluster: Any) -> dict:
    """The cluster's part of a summary, read before it closes: workers at the start, those lost since, bytes spilled, the
    GPUs the workers compute on (an existing cluster's: theirs, not this process's)."""
    return {"n_workers": cluster.n_workers, "workers_lost": cluster.workers_lost(), "spilled_bytes": spilled_bytes(cluster.client),
            "n_gpus": cluster.n_gpus}


def _trained_on(trained: Any) -> int | None:
    """Workers connected when training started (the training splits pinned to them; ``xgboost.dask`` trained on them):
    ``n_workers`` counts those of the start, and a worker may join or leave between. None: the scheduler did not say."""
    return None if trained.workers is None else len(trained.workers)


def _store_summary(
    cfg: Config, backend: Backend, workers: dict, built: Materialized, timings: dict, dataset: Dataset, split: Any,
    memory: MemoryWatch,
) -> dict:
    """What report.json and features.json both say: backend, workers (:func:`_cluster_facts`), rows, store
    version, features, split, timings, memory."""
    summary = {
        "version": __version__,
        "backend": backend.kind,
        **workers,
        "rows": {"train": int(built.rows["train"]), "valid": int(built.rows["valid"])},
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "data": dataset.description,
        "store": {"path": absolute_path(built.store.path), "version": built.version, "cache_hit": built.cache_hit, "reused": built.reused},
        "features": built.features,
        "layout": dataset.layout.to_dict(),
        "memory": memory.to_report(),
        "split": {"valid_hours": cfg.split.valid_hours, "gap_hours": cfg.split.gap_hours, "purged_rows": split.purged,
                  "cutoff": split.cutoff, "data_dir": absolute_path(dataset.data_dir), "min_time": split.min_time,
                  "max_time": split.max_time},
        "input": {"source": cfg.data.source, "path": cfg.data.path if cfg.data.source != "synthetic" else None},
        "config": config_data(cfg),
    }
    if dataset.ingest is not None:
        summary["ingest"] = dataset.ingest
    return summary


#: The command line's names (:mod:`.commands`), importable from here as before it had a module of its own; loaded
#: on first use, since :mod:`.commands` imports this module.
COMMAND_NAMES = frozenset({
    "KNOWN_ERRORS", "SUBCOMMANDS", "RUN_LIKE", "OUT_HELP", "LOG_WIDTH", "build_parser", "config_from_args",
    "build_predict_parser", "predict_cluster_config", "build_ingest_parser",
})


def __getattr__(name: str) -> Any:
    """One of :data:`COMMAND_NAMES`, from :mod:`.commands` (PEP 562: looked up only when not defined here)."""
    if name in COMMAND_NAMES:
        from . import commands

        return getattr(commands, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> int:
    """The command line (:func:`.commands.main`): the ``rapids-engage`` console script and ``python -m rapids_engage.pipeline``."""
    from .commands import main as commands_main

    return commands_main(argv)


if __name__ == "__main__":
    sys.exit(main())
