"""The command line of every subcommand (``python -m rapids_engage.pipeline`` / ``rapids-engage``): their parsers,
the config they give, ``ingest``, ``predict`` and ``audit``, and :func:`main`, which runs one and turns known
failures into one-line errors (``--debug`` for tracebacks). The run itself and ``features``: :mod:`.pipeline`."""

from __future__ import annotations

import argparse
import difflib
import json
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from . import __version__
from .backend import BackendError
from .cli import Parser, command_name, positive_int, seed_int
from .cluster_errors import ClusterError, WorkerLostError
from .config import Config, ConfigError, load_config, sourced
from .data import DataError, check_some_ingested
from .existing_cluster import run_backend
from .failures import one_line
from .ingest import IngestError
from .pipeline import _keys_sourced, build_features, run
from .predict import ModelError
from .progress import StageProgress, read_detail
from .stop_signals import interrupted_for, stop_signals

#: The failures a run reports in one line (with running out of memory, a full disk and an unusable path: :mod:`.failures`).
KNOWN_ERRORS = (BackendError, ConfigError, DataError, IngestError, ModelError, FileNotFoundError, ValueError, MemoryError,
                WorkerLostError, ClusterError)


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
    "audit": "Leakage checks of a run with these options: the run, reruns with shuffled training labels (--shuffles), time order, "
             "train/valid overlap, repeated row keys and time travel of history features; writes <out>/audit.json, "
             "exit 1 if a check fails (default --out: <config out>/audit).",
}

#: What ``--out`` holds after each of them.
OUT_HELP = {
    None: "output directory (report.json, report.md, config.yaml, models/, plots/, store/)",
    "features": "output directory (features.json, config.yaml, store/)",
    "audit": "output directory (audit.json, the real-label run's report.json, models/, store/ ..., the shuffled-label "
             "runs in shuffled-labels/, shuffled-labels-2/ ...)",
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
    else:  # a script passing a run's flags on to `features` learns why they are refused
        why = f"{subcommand} draws no plots: --plots / --no-plots are a run's and audit's; leave them out here"
        p.not_here.update({"--plots": why, "--no-plots": why})
    if subcommand == "audit":
        p.add_argument("--shuffles", type=shuffles_arg, default=None, metavar="N|auto",
                       help="shuffled-label runs, each a full rerun; the checks read their mean, whose bound counts their "
                            "spread from 3 on (default auto: 1, then 3, 5, 10 in all while a shuffled-label check fails on "
                            "the mean so far; a FAIL only at 10)")
        p.add_argument("--seed", type=seed_int, default=0,
                       help="the first shuffle's seed (shuffle i uses SEED + i; also the time-travel check's; default 0)")
    p.add_argument("--version", action="version", version=f"rapids_engage {__version__}")
    return p


def shuffles_arg(text: str) -> int | None:
    """An argparse ``type`` of ``--shuffles``: a whole number >= 1, or ``auto`` (None)."""
    if text == "auto":
        return None
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1 or auto, got {text!r}") from None


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
    p.add_argument("--input", required=True, help="canonical parquet rows (a file, a directory or a glob); engagement columns optional")
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
    backend, why = run_backend(cluster_cfg)  # why: --gpus auto on an existing cluster, decided by its workers' GPUs
    backend = backend.init()
    if why and not args.quiet:
        console.print(f"  {why}", highlight=False)
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
    p.add_argument("--input", help="a glob of raw files, or a directory of them (default: the config's data.path)")
    p.add_argument("--out", required=True, help="output directory (data/, ingest.json, layout.json; quarantine.parquet when "
                   "a row is quarantined)")
    p.add_argument("--unlabelled", action="store_true", help="the files carry no target columns (table sources)")
    p.add_argument("--strict", action="store_true", help="fail at the first bad row (file:line:column)")
    p.add_argument("--ingest-workers", metavar="N", help="processes that ingest the files (whole files each, when as many or more): a number >= 1 or auto "
                   "(default: the config's data.ingest_workers); the output is the same whatever the number")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def _check_table_spec(cfg: Config, unlabelled: bool) -> None:
    """A ``data.table`` the ingest would refuse, refused before it starts as a run refuses it: naming the config
    file and the ``--set`` that gave the key."""
    from .ingest import IngestError
    from .ingest.table_plan import plan_of

    try:
        plan_of(cfg.data.table, unlabelled)
    except IngestError as exc:
        raise ConfigError(sourced(cfg, str(exc))) from None


def _ingest(args: argparse.Namespace, console: Console) -> None:
    from .ingest import ingest_recsys, ingest_table

    cfg = load_config(args.config, args.set + ([f"data.ingest_workers={args.ingest_workers}"] if args.ingest_workers else []))
    files = args.input or cfg.data.path
    if not files:
        raise ConfigError("ingest: give --input (a glob of raw files, or a directory of them) or set data.path in the config")
    if cfg.data.source == "table" and cfg.data.table is None:
        raise ConfigError("ingest: data.source is 'table' but the config has no data.table section")
    if cfg.data.source not in ("table", "recsys", "synthetic", "parquet"):
        raise ConfigError(f"ingest: data.source {cfg.data.source!r} has no raw format")
    if cfg.data.source == "table":
        _check_table_spec(cfg, args.unlabelled)
    # the files' bytes read on a bar (a log: a line every StageProgress.HEARTBEAT s): it printed nothing until the end
    with StageProgress(console, args.quiet) as prog, prog.stage("ingest"):
        def read(done: int, total: int) -> None:
            prog.update(done, total, read_detail(done, total))

        if cfg.data.source == "table":
            result = ingest_table(files, args.out, cfg.data.table, strict=args.strict or cfg.data.strict,
                                  unlabelled=args.unlabelled, workers=cfg.data.ingest_workers, on_progress=read)
        else:
            result = ingest_recsys(files, args.out, strict=args.strict or cfg.data.strict, workers=cfg.data.ingest_workers,
                                   on_progress=read)
    check_some_ingested(asdict(result), f"ingest {files}", Path(args.out))
    if not args.quiet:
        console.print(result.summary(), highlight=False, soft_wrap=True, markup=False)


def _audit(args: argparse.Namespace, console: Console, command: str | None = None) -> int:
    """Exit code 0 when every audit check passes, 1 otherwise."""
    from .audit import run_audit

    cfg = config_from_args(args)
    if args.out is None:
        cfg.out = str(Path(cfg.out) / "audit")
    result = run_audit(cfg, console, quiet=args.quiet, plots=args.plots, rebuild=args.rebuild, command=command,
                       shuffles=args.shuffles, seed=args.seed)
    return 0 if result["passed"] else 1


def _guarded(action: Any, args: argparse.Namespace, console: Console) -> int:
    """Run ``action`` (its int result is the exit code); known failures, running out of memory and a full disk
    become one line on stderr (the latter two with what to change), exit 2. A KeyboardInterrupt is "interrupted",
    exit 130, unless the run stopped itself for an error (a full spill disk, :func:`~.stop_signals.interrupted_for`):
    that error's line, exit 2, wherever the interrupt surfaced."""
    try:
        code = action()
    except KeyboardInterrupt:
        stopped_for = interrupted_for()
        if stopped_for is None:
            console.print("[red]error:[/red] interrupted")
            return 130
        message = one_line(stopped_for, KNOWN_ERRORS) or str(stopped_for)
    except Exception as exc:  # noqa: BLE001 - only known failures, OOMs and a full disk become one line
        message = None if args.debug else one_line(exc, KNOWN_ERRORS)
        if message is None:
            raise
    else:
        return code if isinstance(code, int) else 0
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return 2


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
                         f"{', '.join(SUBCOMMANDS)}; without one, the command runs the whole pipeline"
                         + ("" if close else _stage_hint(argv[0])))
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return _timed(lambda: run(config_from_args(args), rebuild=args.rebuild, quiet=args.quiet, console=console, command=command,
                              plots=args.plots), args, console)


#: The stages of the whole pipeline a user may type as a subcommand (``features`` is one).
PIPELINE_STAGES = ("data", "split", "train", "evaluate", "report", "plots")


def _stage_hint(word: str) -> str:
    """`` (did you mean that? evaluate is one of its stages: ...)`` for a word like a stage of the whole pipeline
    (``evalute``, ``train``), else ``""``."""
    close = difflib.get_close_matches(word, PIPELINE_STAGES, n=1)
    return f" (did you mean that? {close[0]} is one of its stages: {command_name()} [options])" if close else ""


def _timed(action: Any, args: argparse.Namespace, console: Console) -> int:
    """:func:`_guarded` ``action``, then its wall time unless ``--quiet``."""
    start = time.perf_counter()
    code = _guarded(action, args, console)
    if code == 0 and not args.quiet:
        console.print(f"done in {time.perf_counter() - start:.1f} s")
    return code
