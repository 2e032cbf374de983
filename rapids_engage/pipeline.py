"""``python -m rapids_engage.pipeline``: data → split → features/store → train → evaluate → report.

Each stage lives in its own module; this one only wires them together, times
them and turns known failures into one-line errors (``--debug`` for tracebacks).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from . import __version__
from .atomic import OLD_PREFIX, replace_dir, staged_dir, staging_dir, write_file
from .backend import Backend, BackendError, resolve
from .cluster import ClusterError, WorkerLostError, spilled_bytes, start_cluster
from .cli import Parser, command_name
from .config import Config, ConfigError, about_a_key, load_config, sourced
from .data import DataError, Dataset, check_some_ingested, expected_layout, ignored_data_settings, resolve_dataset
from .evaluate import ranked_rows
from .ingest import IngestError
from .predict import ModelError
from .failures import one_line
from .features.build import check_keys
from .features.materialize import Materialized
from .layout import Layout
from .memory import MemoryWatch
from .progress import StageProgress
from .provenance import CONFIG_FILE, absolute_path, config_data, run_info, write_config
from .run_dirs import check_dir, check_features_out, check_run_outputs, store_path
from .store_builds import in_use
from .run_stages import evaluate_stage, store_stages, train_stage
from .plots import write_all
from .report import print_summary, validate, write_json
from .report_md import write_markdown
from .schema import TRUE_PROB_PREFIX
from .stop_signals import stop_signals
from .train_check import check_params

#: The failures a run reports in one line (with running out of memory, a full disk and an unusable path: :mod:`.failures`).
KNOWN_ERRORS = (BackendError, ConfigError, DataError, IngestError, ModelError, FileNotFoundError, ValueError, MemoryError,
                WorkerLostError, ClusterError)


@contextlib.contextmanager
def _stages(cfg: Config, quiet: bool, console: Console) -> Iterator[tuple[Backend, Path, StageProgress, MemoryWatch]]:
    """The backend, output directory, progress display and memory watch of a run."""
    backend = resolve(cfg.cluster.gpus).init()
    # the directories a run writes, before it spends time; made when written (a config refused later leaves none)
    check_dir(cfg, "out", cfg.out, "output directory")
    check_dir(cfg, "data.cache_dir", cfg.data.cache_dir, "cache directory")
    check_dir(cfg, "features.store", store_path(cfg), "feature store")
    memory = MemoryWatch.for_run(backend, cfg.cluster.scheduler_address)
    with memory, StageProgress(console, quiet, memory) as prog, _keys_sourced(cfg):
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


def _data_stage(cfg: Config, backend: Backend, prog: StageProgress, train: bool = True) -> Dataset:
    """The data stage, with the config checked against the data's layout (targets, feature keys and,
    when the run trains, XGBoost parameters): before it when the config tells the layout, so a typo
    does not wait for an ingest, else after it."""
    try:
        expected = expected_layout(cfg)
    except IngestError as exc:  # a data.table the ingest would refuse
        raise ConfigError(sourced(cfg, str(exc))) from None
    if expected is not None:
        _check_config(cfg, expected, backend, train)
    with prog.stage("data"):
        dataset = resolve_dataset(cfg, backend, on_chunk=lambda done, total: prog.update(done, total, f"{done:,}/{total:,}"))
        prog.log(dataset.description)
        for line in ignored_data_settings(cfg.data):
            prog.log(line)
    if expected is None:
        _check_config(cfg, dataset.layout, backend, train)
    return dataset


def _check_config(cfg: Config, layout: Layout, backend: Backend, train: bool) -> None:
    try:
        for target in cfg.train.targets:
            layout.target(target)
        check_keys(cfg.features, layout)
        if train:
            check_params(cfg.train, layout, backend)
    except (ConfigError, ValueError) as exc:
        raise ConfigError(sourced(cfg, str(exc))) from None


#: Whether a run draws its plots when not told (``--plots`` / ``--no-plots``); the test suite turns it off.
PLOTS_BY_DEFAULT = True


def run(
    cfg: Config, *, rebuild: bool = False, quiet: bool = False, console: Console | None = None, shuffle_seed: int | None = None,
    command: str | None = None, plots: bool | None = None,
) -> dict:
    """Run the whole pipeline for ``cfg``; returns the report (also written to ``<out>/report.json``,
    the resolved config to ``<out>/config.yaml``).

    ``shuffle_seed``: permute the training labels first (the leakage audit's control run);
    ``command``: the command line, for the report; ``plots``: draw ``<out>/plots/`` (None:
    :data:`PLOTS_BY_DEFAULT`; without them report.json's ``plots`` is empty).
    """
    console = console or Console(stderr=True)
    started = time.time()
    targets = list(cfg.train.targets)
    check_run_outputs(cfg, Path(cfg.out))
    # a run stopped before publishing (Ctrl-C, an error) removes what it staged; published, nothing is left to remove;
    # the store version the models are trained from is marked in use until they are published: `store --keep`
    # (a housekeeping job) deleted it under a run in progress, whose models then could not be served
    with contextlib.ExitStack() as staged:
        with _stages(cfg, quiet, console) as (backend, out, prog, memory):
            dataset = _data_stage(cfg, backend, prog)
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
    """The ``features`` subcommand: the data, split and feature-store stages only (no training).

    Builds the store version of ``cfg`` (or finds it: a cache hit) that a run with the same
    config would train on; returns its summary, also written to ``<out>/features.json``
    (report.json's keys less the targets, models, ``n_workers_train`` and plots), the resolved config to ``<out>/config.yaml``.
    """
    console = console or Console(stderr=True)
    started = time.time()
    check_features_out(cfg, Path(cfg.out))
    with _stages(cfg, quiet, console) as (backend, out, prog, memory):
        dataset = _data_stage(cfg, backend, prog, train=False)
        with _cluster(cfg, backend, prog) as cluster:
            split, built = store_stages(cfg, backend, prog, cluster, dataset, rebuild, None)
            workers = _cluster_facts(cluster)
    summary = _summary(cfg, backend, workers, built, prog, dataset, split, memory, started, command)
    write_config(cfg, out)
    write_json(out / "features.json", summary)
    if not quiet:
        rows = summary["rows"]
        console.print(f"feature store {built.store.path} version {built.version}"
                      f"{' (cache hit)' if built.cache_hit else ''}: {len(built.features)} features, "
                      f"{rows['train']:,} train / {rows['valid']:,} valid rows; summary {out / 'features.json'}")
    return summary


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
    """The cluster's part of a summary, read before it closes: workers at the start, those lost since, bytes spilled."""
    return {"n_workers": cluster.n_workers, "workers_lost": cluster.workers_lost(), "spilled_bytes": spilled_bytes(cluster.client)}


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
        "n_gpus": backend.n_gpus,
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


SUBCOMMANDS = ("features", "audit", "ingest", "predict", "store")
#: What the subcommands that take a run's options do.
RUN_LIKE = {
    None: "Build features, train one XGBoost model per engagement target and report, on CPU or GPU. "
          "Subcommands (first on the line): `ingest --help` turns raw files into canonical parquet; `features [options]` "
          "builds (or finds) the feature-store version of a run and stops there, writing <out>/features.json; `predict "
          "--help` scores new rows with a trained run; `audit [options]` runs the leakage checks (shuffled labels, time "
          "order, overlap, repeated row keys, time travel) with the same options as a run; `store DIR` lists a feature "
          "store's versions and deletes old ones.",
    "features": "Run the data, split and feature-store stages of a run with these options and stop: build (or find: "
                "a cache hit) the store version a run would train on; writes <out>/features.json and <out>/config.yaml.",
    "audit": "Leakage checks of a run with these options: the run, a rerun with shuffled training labels, time order, "
             "train/valid overlap, repeated row keys and time travel of history features; writes <out>/audit.json, "
             "exit 1 if a check fails (default --out: <config out>/audit).",
}

#: What ``--out`` holds after each of them.
OUT_HELP = {
    None: "output directory (report.json, report.md, config.yaml, models/, plots/, store/)",
    "features": "output directory (features.json, config.yaml, store/)",
    "audit": "output directory (audit.json, the real-label run's report.json, models/, store/ ..., the shuffled-label "
             "run in shuffled-labels/)",
}


def build_parser(subcommand: str | None = None) -> argparse.ArgumentParser:
    p = Parser(
        prog=command_name(subcommand), description=RUN_LIKE[subcommand]
    )
    p.add_argument("--config", help="YAML config (default: configs/default.yaml, the synthetic demo)")
    p.add_argument("--gpus", help="'auto' (all visible GPUs, else CPU), 0 for CPU, or the number of GPUs")
    p.add_argument("--scheduler-address", help="use an existing Dask cluster instead of starting one")
    p.add_argument("--out", help=OUT_HELP[subcommand])
    p.add_argument("--store", help="feature store directory (features.store; default <out>/store): point runs at one "
                   "store to share its versions (a version id is a hash of its definition and input)")
    p.add_argument("--rows", type=int, help="rows of synthetic data (synthetic.rows; synthetic data only)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value, e.g. train.max_depth=6")
    p.add_argument("--strict", action="store_true", help="raw input: fail at the first bad row (file:line:column) instead of quarantining it")
    p.add_argument("--rebuild", action="store_true", help="recompute features even when the store has them")
    p.add_argument("--quiet", action="store_true", help="no progress or table (errors still print)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    if subcommand in (None, "audit"):
        p.add_argument("--plots", action=argparse.BooleanOptionalAction, default=None,
                       help="draw <out>/plots/ (PR curves, calibration, count predictions, ranking curves, feature importance, learning "
                            "curves; the default); "
                            "--no-plots leaves them out of the run and report.md")
    p.add_argument("--version", action="version", version=f"rapids_engage {__version__}")
    return p


def config_from_args(args: argparse.Namespace) -> Config:
    overrides, labels = list(args.set), {}
    flags = (("gpus", "cluster.gpus"), ("scheduler_address", "cluster.scheduler_address"), ("out", "out"), ("store", "features.store"),
             ("rows", "synthetic.rows"))
    for flag, key in flags:
        value = getattr(args, flag)
        if value is not None:
            # a path, never a YAML number; --gpus as typed: YAML read 1.5 as a float ("must be a string or a whole number")
            text = json.dumps(value) if flag in ("out", "scheduler_address", "store", "gpus") else value
            overrides.append(f"{key}={text}")
            labels[f"{key}={text}"] = f"--{flag.replace('_', '-')} {value}"
    if args.strict:
        overrides.append("data.strict=true")
    cfg = load_config(args.config, overrides, labels)
    cfg.cluster.gpus = str(cfg.cluster.gpus)
    if args.rows is not None and cfg.data.source != "synthetic":
        where = f" ({cfg.data.path})" if cfg.data.path else ""
        raise ConfigError(f"--rows sizes synthetic data; this config reads data.source {cfg.data.source!r}{where}")
    return cfg


def build_predict_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog=command_name("predict"),
        description="Score new rows with the models of a run and the serving state of its feature-store version.",
    )
    p.add_argument("--model-dir", required=True, help="output directory of a pipeline run (holds models/)")
    p.add_argument("--input", required=True, help="canonical parquet rows (a file or a directory); engagement columns optional")
    p.add_argument("--out", required=True, help="directory for predictions/ (parquet) and predict.json")
    p.add_argument("--gpus", help="'auto' (the default), 0 for CPU, or the number of GPUs")
    p.add_argument("--scheduler-address", help="use an existing Dask cluster")
    p.add_argument("--store", help="feature store holding the models' version (default: the path they were trained "
                   "with, else the store/ beside their models/)")
    p.add_argument("--history", metavar="validation|PATH",
                   help="labelled events after the training window to add to the serving state's history first: "
                   "'validation' (the run's validation window: to score the rows after it) or canonical parquet rows")
    p.add_argument("--set", action="append", default=[], metavar="cluster.KEY=VALUE",
                   help="a cluster setting, e.g. cluster.memory_limit=4GB or cluster.n_workers=4 (see configs/default.yaml)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def _predict(args: argparse.Namespace, console: Console) -> None:
    from .predict import run_predict
    from .report import print_metrics

    if not args.out.strip():  # --out "$OUT" with OUT unset: predictions/ and predict.json in the working directory
        raise ConfigError(f"predict: --out must be a directory path, got {args.out!r}")
    cluster_cfg = predict_cluster_config(args)
    backend = resolve(cluster_cfg.gpus).init()
    start = time.perf_counter()
    named = Config(cluster=cluster_cfg)  # its errors name the --set or flag that gave a value, as a run's
    named._origins = cluster_cfg._origins
    with _keys_sourced(named):
        result = run_predict(Path(args.model_dir), Path(args.input), Path(args.out), backend, cluster_cfg, console,
                             args.quiet, Path(args.store) if args.store else None, args.history)
    if args.quiet:
        return
    rate = f" ({result['rows_per_s']:,.0f} rows/s)" if result.get("rows_per_s") else ""
    console.print(f"{result['rows']:,} rows scored for {', '.join(result['targets'])}{rate} -> {result['predictions']}")
    if result["metrics"]:
        print_metrics({"backend": backend.kind, "rows": {"valid": result["rows"]}, "targets": result["metrics"]}, console,
                      "metrics of the scored rows")
    console.print(f"done in {time.perf_counter() - start:.1f} s")


def predict_cluster_config(args: argparse.Namespace) -> Any:
    """The cluster of a ``predict`` run: ``--set cluster.<key>=<value>``, then ``--gpus`` and
    ``--scheduler-address`` where given (defaults otherwise: not the run's, scoring may be elsewhere)."""
    from .config import ClusterConfig, parse_override, section_from_dict

    data: dict[str, Any] = {}
    origins: dict[str, str] = {}  # key -> how it was given: errors name the flag, not "predict --set"
    for text in args.set:
        key, value = parse_override(text)
        if not key.startswith("cluster.") or key.count(".") != 1:
            raise ConfigError(f"predict --set takes cluster.<key>=<value> settings only, got {key!r}")
        data[key.split(".", 1)[1]] = value
        origins[key] = f"--set {text}"
    for flag, key in (("gpus", "gpus"), ("scheduler_address", "scheduler_address")):
        if getattr(args, flag) is not None:
            data[key] = getattr(args, flag)
            origins[f"cluster.{key}"] = f"--{flag.replace('_', '-')} {getattr(args, flag)}"
    data["gpus"] = str(data.get("gpus", "auto"))
    cluster = section_from_dict(ClusterConfig, data, "predict", origins)
    cluster._origins = ("predict", origins)  # not a field: for errors about a value refused later (sourced)
    return cluster


def build_ingest_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog=command_name("ingest"),
        description="Ingest raw files (RecSys 2021 or a table described by a config's data.table) into canonical "
        "parquet (<out>/data) with bad rows quarantined, e.g. new rows to score with `predict --input <out>`.",
    )
    p.add_argument("--config", help="YAML config whose data section describes the files (default: configs/default.yaml)")
    p.add_argument("--input", help="a glob of raw files (default: the config's data.path)")
    p.add_argument("--out", required=True, help="output directory (data/, ingest.json, layout.json; quarantine.parquet when "
                   "a row is quarantined)")
    p.add_argument("--unlabelled", action="store_true", help="the files carry no target columns (table sources)")
    p.add_argument("--strict", action="store_true", help="fail at the first bad row (file:line:column)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def _check_table_spec(cfg: Config, unlabelled: bool) -> None:
    """A ``data.table`` the ingest would refuse, refused before it starts as a run refuses it: naming the config
    file and the ``--set`` that gave the key."""
    from .ingest import IngestError
    from .ingest.table import plan_of

    try:
        plan_of(cfg.data.table, unlabelled)
    except IngestError as exc:
        raise ConfigError(sourced(cfg, str(exc))) from None


def _ingest(args: argparse.Namespace, console: Console) -> None:
    from .ingest import ingest_recsys, ingest_table

    cfg = load_config(args.config, args.set)
    files = args.input or cfg.data.path
    if not files:
        raise ConfigError("ingest: give --input (a glob of raw files) or set data.path in the config")
    if cfg.data.source == "table":
        spec = cfg.data.table
        if spec is None:
            raise ConfigError("ingest: data.source is 'table' but the config has no data.table section")
        _check_table_spec(cfg, args.unlabelled)
        result = ingest_table(files, args.out, spec, strict=args.strict or cfg.data.strict, unlabelled=args.unlabelled)
    elif cfg.data.source in ("recsys", "synthetic", "parquet"):
        result = ingest_recsys(files, args.out, strict=args.strict or cfg.data.strict)
    else:
        raise ConfigError(f"ingest: data.source {cfg.data.source!r} has no raw format")
    check_some_ingested(asdict(result), f"ingest {files}", Path(args.out))
    if not args.quiet:
        console.print(result.summary(), highlight=False, soft_wrap=True, markup=False)


def _audit(args: argparse.Namespace, console: Console, command: str | None = None) -> int:
    """Exit code 0 when every audit check passes, 1 otherwise."""
    from .audit import run_audit

    cfg = config_from_args(args)
    if args.out is None:
        cfg.out = str(Path(cfg.out) / "audit")
    return 0 if run_audit(cfg, console, quiet=args.quiet, plots=args.plots, rebuild=args.rebuild, command=command)["passed"] else 1


def _guarded(action: Any, args: argparse.Namespace, console: Console) -> int:
    """Run ``action`` (its int result is the exit code); known failures, running out of memory and a full disk
    become one line on stderr (the latter two with what to change), exit 2."""
    try:
        code = action()
    except KeyboardInterrupt:
        console.print("[red]error:[/red] interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - only known failures, OOMs and a full disk become one line
        message = None if args.debug else one_line(exc, KNOWN_ERRORS)
        if message is None:
            raise
        console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
        return 2
    return code if isinstance(code, int) else 0


#: Console width when stderr is not a terminal (a log, CI): the metrics tables' headers fit, not cut at 80.
LOG_WIDTH = 160


def main(argv: list[str] | None = None) -> int:
    with stop_signals():
        return _main(list(sys.argv[1:] if argv is None else argv))


def _main(argv: list[str]) -> int:
    console = Console(stderr=True, width=None if sys.stderr.isatty() else LOG_WIDTH)
    command = shlex.join(["python", "-m", "rapids_engage.pipeline", *argv])
    if argv[:1] == ["audit"]:
        args = build_parser("audit").parse_args(argv[1:])
        return _guarded(lambda: _audit(args, console, command), args, console)
    if argv[:1] == ["features"]:
        args = build_parser("features").parse_args(argv[1:])
        return _timed(lambda: build_features(config_from_args(args), rebuild=args.rebuild, quiet=args.quiet, console=console,
                                             command=command), args, console)
    if argv[:1] == ["ingest"]:
        args = build_ingest_parser().parse_args(argv[1:])
        return _guarded(lambda: _ingest(args, console), args, console)
    if argv[:1] == ["predict"]:
        args = build_predict_parser().parse_args(argv[1:])
        return _guarded(lambda: _predict(args, console), args, console)
    if argv[:1] == ["store"]:
        from .store_admin import build_store_parser, run_store_command

        args = build_store_parser().parse_args(argv[1:])
        return _guarded(lambda: run_store_command(args, console), args, console)
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        misplaced = [a for a in unknown if a in SUBCOMMANDS]
        if misplaced:
            parser.error(f"the subcommand comes first: {command_name(misplaced[0])} [options]")
        if not argv[0].startswith("-"):  # a word where a subcommand goes (train, feature)
            close = difflib.get_close_matches(argv[0], SUBCOMMANDS, n=1)
            parser.error(f"no subcommand {argv[0]!r}{f' (did you mean {close[0]}?)' if close else ''}: the subcommands are "
                         f"{', '.join(SUBCOMMANDS)}; without one, the command runs the whole pipeline")
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return _timed(lambda: run(config_from_args(args), rebuild=args.rebuild, quiet=args.quiet, console=console, command=command,
                              plots=args.plots), args, console)


def _timed(action: Any, args: argparse.Namespace, console: Console) -> int:
    """:func:`_guarded` ``action``, then its wall time unless ``--quiet``."""
    start = time.perf_counter()
    code = _guarded(action, args, console)
    if code == 0 and not args.quiet:
        console.print(f"done in {time.perf_counter() - start:.1f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
