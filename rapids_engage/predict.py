"""``python -m rapids_engage.pipeline predict``: score new rows with the stored serving state.

The models of a run name the feature-store version they were trained on; the
fitted encoders of that version (``<store>/<version>/state``) compute the new
rows' features exactly as the validation rows got theirs, and every target's
booster scores them. Predictions are written atomically as parquet; when the
new rows carry engagement columns the metrics are computed too.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console

from .atomic import DamagedFile, check_fields, read_json, replace_dir, staged_dir
from .backend import Backend
from .config import ClusterConfig
from .data import DataError, check_partitioning, sized_input
from .failures import naming
from .features import FeatureBuilder, add_labels
from .input_checks import check_input_files
from .ingest.reader_marks import read_if_ingest
from .input_files import expand, glob_root, hive_hint, is_glob
from .footers import RAW_INPUT, Footer, as_footers, int_bounds, not_parquet, read_footer, unreadable
from .layout import Layout
from .memory import MemoryWatch
from .progress import StageProgress
from .provenance import absolute_path
from .schema import PLAUSIBLE_TIMES, utc
from .split import training_end
from .store import (FeatureStore, MissingVersion, has_parquet_footer, marked_in_use, not_marked_line, parquet_files,
                    unwritable)

PRED_PREFIX = "pred_"
#: The metadata files dask's ``to_parquet`` may write beside the parquet parts of ``predictions/``.
PARQUET_METADATA = ("_metadata", "_common_metadata")


class ModelError(ValueError):
    """The model directory is incomplete or does not match its feature store."""


def load_models(model_dir: Path) -> tuple[dict[str, dict], dict]:
    """(target -> meta, store {path, version}) of a run's ``models/`` (or the run directory)."""
    if not model_dir.is_dir():
        raise ModelError(f"--model-dir {model_dir} does not exist (a pipeline run's --out, holding models/)")
    models = model_dir / "models" if (model_dir / "models").is_dir() else model_dir
    metas = {m["target"]: m for m in map(_read_meta, sorted(models.glob("*.meta.json")))}
    orphans = sorted(p.name for p in models.glob("*.json") if not p.name.endswith(".meta.json") and p.stem not in metas
                     and _is_model(p))
    if orphans:  # a target's meta lost: its predictions would be missing without a word
        raise ModelError(f"{models / orphans[0]} has no {Path(orphans[0]).stem}.meta.json beside it (its features and store "
                         f"version): copy the run's models/ whole, or rerun")
    if not metas:
        only = " (a features-only run: the `features` subcommand trains none)" if (model_dir / "features.json").is_file() else ""
        raise ModelError(f"no models (<target>.meta.json) in {models}{only or _runs_below(model_dir)}")
    stores = {json.dumps(m.get("store"), sort_keys=True) for m in metas.values()}
    if len(stores) != 1 or not next(iter(metas.values())).get("store"):
        trained = "; ".join(f"{t}: {(m.get('store') or {}).get('version', 'unknown')}" for t, m in metas.items())
        raise ModelError(f"models in {models} were trained on different or unknown feature-store versions ({trained}); "
                         "retrain them together")
    for t, m in metas.items():
        m["model_file"] = str(models / f"{t}.json")
        if not Path(m["model_file"]).is_file():
            raise ModelError(f"{m['model_file']} is missing (its {t}.meta.json is there): copy the run's models/ whole, or rerun")
    return metas, next(iter(metas.values()))["store"]


def _runs_below(folder: Path, most: int = 3) -> str:
    """`` (did you mean runs/demo? it holds models)`` for up to ``most`` subfolders of ``folder`` holding models (run
    directories or their ``models/``: ``--model-dir runs``, the parent of runs), else ``""``."""
    runs = [d for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith(".")
            and (any(d.glob("*.meta.json")) or any(d.glob("models/*.meta.json")))][:most]
    if not runs:
        return ""
    named = f"{', '.join(map(str, runs[:-1]))} or {runs[-1]}" if len(runs) > 1 else str(runs[0])
    return f" (did you mean {named}? {'they hold' if len(runs) > 1 else 'it holds'} models)"


def _is_model(path: Path) -> bool:
    """Whether ``path`` is an XGBoost JSON model (as a run saves ``<target>.json``), not a run's other JSON files."""
    with open(path, "rb") as f:
        return f.read(16).startswith(b'{"learner":')


#: What to do about a damaged file of a run's models/.
MODELS_HINT = "copy the run's models/ whole, or rerun"


def _read_meta(path: Path) -> dict:
    try:
        meta = read_json(path, {"target": str, "features": list, "store": (dict, type(None))}, MODELS_HINT)
        if meta.get("store") is not None:
            check_fields(meta["store"], {"path": str, "version": str}, path, MODELS_HINT, where="store")
    except DamagedFile as exc:
        raise ModelError(str(exc)) from None
    return meta


def load_booster(meta: dict, backend: Backend, nthread: int | None = None) -> Any:
    """The booster of one model's meta (from :func:`load_models`) on ``backend``'s device."""
    import xgboost as xgb

    try:
        booster = xgb.Booster(model_file=meta["model_file"])
    except (xgb.core.XGBoostError, UnicodeDecodeError) as exc:  # cut short, empty, not a model: its first line, less the
        # C++ place and stack trace (a file cut short can make XGBoost's own message undecodable: UnicodeDecodeError)
        why = ("not a whole XGBoost JSON model, cut short?" if isinstance(exc, UnicodeDecodeError)
               else re.sub(r"^\[[\d:]+\] \S+: ", "", (str(exc).splitlines() or [""])[0]))
        raise ModelError(f"{meta['model_file']} is damaged (XGBoost cannot load it: {why}): {MODELS_HINT}") from None
    booster.set_param({"device": backend.xgb_device, **({"nthread": nthread} if nthread else {})})
    return booster


def load_boosters(metas: dict[str, dict], backend: Backend) -> dict[str, Any]:
    """target -> booster of every model of :func:`load_models` (a damaged model file: a :class:`ModelError` naming it)."""
    return {t: load_booster(meta, backend) for t, meta in metas.items()}


def store_candidates(store_info: dict, model_dir: Path | None = None, store: str | Path | None = None) -> list[Path]:
    """Where to look for the models' store version: ``store`` alone when given; else the path the
    models recorded, then the ``store/`` of the run directory they are in (a run copied or moved
    with its store). A version id is a hash of its definition and input, so any copy serves."""
    if store is not None:
        return [Path(store)]
    places = [Path(store_info["path"])]
    if model_dir is not None:
        places.append(run_directory(model_dir) / "store")
    return list(dict.fromkeys(p.resolve() if p.exists() else p for p in places))


def load_builder(store_info: dict, backend: Backend, model_dir: Path | None = None, store: str | Path | None = None) -> FeatureBuilder:
    """The fitted feature builder of the store version the models were trained on (looked up in
    :func:`store_candidates`)."""
    return locate_builder(store_info, backend, model_dir, store)[0]


def locate_builder(store_info: dict, backend: Backend, model_dir: Path | None = None,
                   store: str | Path | None = None) -> tuple[FeatureBuilder, Path]:
    """:func:`load_builder` with the store it was found in (``--store``, where the models were trained, or the
    ``store/`` beside them): the one ``predict.json`` names."""
    version = store_info["version"]
    places = store_candidates(store_info, model_dir, store)
    damaged = []
    for place in places:
        try:
            return FeatureStore(place).builder(version, backend.df), Path(place)
        except MissingVersion as exc:
            if exc.problem != "absent":  # there, but not whole: say which file
                damaged.append(f"{Path(place) / version}: {exc.problem}")
        except ValueError as exc:
            raise ModelError(str(exc)) from None
    where = " nor ".join(str(p) for p in places)
    found = f"; damaged: {'; '.join(damaged)}" if damaged else ""
    raise ModelError(
        f"feature-store version {version} is not in {where} (deleted, damaged, or rebuilt by another config{found}); "
        "the models cannot be served without it: point --store (in process: Scorer(..., store=DIR)) at a store holding "
        "that version, or rerun the pipeline"
    )


def _input_paths(path: Path) -> list[Path]:
    """The parquet files of ``predict --input``: a file, a directory's (an ingest output's ``data/``;
    :func:`.store.parquet_files`), or a glob's matches (``**``: any depth; a directory matched, its files), sorted."""
    if is_glob(path):
        return sorted({f for m in expand(path) for f in _input_paths(m)}, key=str)
    if (path / "data").is_dir():  # an ingest output: its rows, not its quarantine
        path = path / "data"
    return [path] if path.is_file() else parquet_files(path)


def input_exists(path: Path) -> bool:
    """Whether ``predict --input`` (or ``--history``) names something: a path there, or a glob matching one."""
    return bool(expand(path)) if is_glob(path) else path.exists()


def input_files(path: Path) -> list[Path]:
    """The parquet files of ``predict --input`` (:func:`_input_paths`), each checked to end as parquet does."""
    files = _input_paths(path)
    for f in files:
        try:
            whole = has_parquet_footer(f)
        except OSError as exc:  # a symlink loop
            raise unreadable(f, exc) from exc
        if not whole:
            raise not_parquet(f)
    return files


def input_footers(path: Path) -> list[Footer]:
    """The footers of ``predict --input``'s parquet files (:func:`_input_paths`), each read once: what the checks
    before the cluster starts take (:func:`check_some_rows`, :func:`read_new_rows`, :func:`earliest_time`,
    :func:`check_not_before`)."""
    return [read_footer(f) for f in _input_paths(path)]


def check_some_rows(path: Path, files: Sequence[Path | Footer]) -> None:
    """A :class:`DataError` when ``predict --input`` (``files``: its :func:`input_footers`, or paths) holds no row
    (its parquet footers say so: nothing is read), as ``ingest`` refuses empty input: else predict wrote 0
    predictions, and a truncated export went unnoticed."""
    footers = as_footers(files)
    if footers and not any(f.num_rows for f in footers):
        held = f"all {len(footers)} parquet files under it have" if len(footers) > 1 else f"{footers[0].path} has"
        raise DataError(f"input {path}: no rows to score ({held} 0 rows)")


def earliest_time(files: Sequence[Path | Footer], column: str) -> int | None:
    """The smallest ``column`` value of parquet ``files`` (footers, or paths) from their footers' statistics (no
    data read); None when a file has no statistics for it, or values that are not integers (a timestamp column:
    refused with its own message when the rows are read)."""
    lows = []
    for footer in as_footers(files):
        bounds = int_bounds(footer, column)
        if bounds is None:
            return None
        lows += [low for low, _ in bounds]
    return min(lows) if lows else None


def run_directory(model_dir: Path) -> Path:
    """The run directory of ``--model-dir`` (the run, or its ``models/``)."""
    return model_dir if (model_dir / "models").is_dir() else model_dir.parent


def history_events(spec: str, model_dir: Path, backend: Backend, time_column: str) -> Any:
    """The labelled events ``predict --history`` folds into the serving state, in memory: ``validation``
    (the run's own events after its training rows: the validation window and a purged gap before it, from its
    canonical data) or canonical parquet
    rows (a file, a directory, an ingest output)."""
    if spec == "validation":
        report = run_directory(model_dir) / "report.json"
        if not report.is_file():
            raise DataError(f"--history validation reads the run's split from {report}, which is missing")
        hint = "rerun the pipeline, or pass the events' parquet directory instead"
        split = read_json(report, {"split": dict}, hint)["split"]
        check_fields(split, {"data_dir": str, "cutoff": (int, float), "gap_hours": (int, float, type(None))}, report,
                     hint, where="split")
        for key in ("cutoff", "gap_hours"):  # JSON's NaN / Infinity: no time to filter by
            if not math.isfinite(split.get(key) or 0):
                raise DamagedFile(report, f"key split.{key} is {split[key]}, not a finite number", hint)
        if (split.get("gap_hours") or 0) < 0:
            raise DamagedFile(report, f"key split.gap_hours is {split['gap_hours']}, below 0", hint)
        data = Path(split["data_dir"])
        filters = [(time_column, ">", training_end(split))]  # with a gap (split.gap_hours), its purged rows too
    else:
        data, filters = Path(spec), None
    with read_if_ingest(glob_root(data)):  # an ingest cache folder: data.keep_ingests deletes it not while it is read
        if spec == "validation" and not data.is_dir():
            raise DataError(f"--history validation: the run's data ({data}) is gone (a cleared cache?); pass the "
                            "events' parquet directory instead")
        files = parquet_files(data) if spec == "validation" else input_files(data) if input_exists(data) else []
        if not files:
            raise DataError(f"--history {spec}: no parquet files there (canonical rows, as `ingest` writes them)")
        return backend.df.concat([backend.df.read_parquet(f, filters=filters) for f in files], ignore_index=True)


#: A gap between the serving state's end and the first row scored beyond which history features drift.
HISTORY_GAP_S = 86_400


def history_gap(builder: FeatureBuilder, start: int | None) -> str | None:
    """A line for the log when the rows to score start more than a day after the serving state ends
    (the training cut-off): history features count no event in between."""
    return _gap_line(builder, start, "the rows", "count", "pass the labelled events in between with --history "
                     "(`--history validation`: the run's validation window)")


def _gap_line(builder: FeatureBuilder, start: int | None, what: str, count: str, advice: str) -> str | None:
    """The line of :func:`history_gap` / :func:`history_events_gap`: ``what`` starts at ``start``, more than a day
    after the serving state ends; None when it does not, or ``start`` is no plausible time (milliseconds: refused with
    its own message when the rows are read)."""
    end = builder.history_end()
    if start is None or end is None or start - end <= HISTORY_GAP_S or not PLAUSIBLE_TIMES[0] <= start < PLAUSIBLE_TIMES[1]:
        return None
    return (f"{what} start {utc(start)}, {(start - end) / 86_400:.1f} days after the serving state ends "
            f"({utc(end)}): history features {count} no event in between, so their recent windows ({_spans(builder)}) "
            f"read lower than at training; {advice}, or retrain on data up to them")


def history_events_gap(builder: FeatureBuilder, events: Any) -> str | None:
    """A line for the log when ``--history`` events (a pandas or cudf frame) start more than a day after the serving
    state they extend ends: the events in between are missing from the history for good (folding a later day's
    events moves the state's end past the gap, so the rows scored are not said to start after one)."""
    column = builder.layout.time
    if builder.history_end() is None or len(events) == 0 or column not in events.columns:
        return None
    times = events[column]
    if getattr(times.dtype, "kind", "O") not in "iu" or not bool(times.notna().any()):
        return None  # not epoch seconds, or no time: extend_history's checks refuse them, naming the column
    return _gap_line(builder, int(times.min()), "the --history events", "will count",
                     "pass the labelled events from the state's end on with --history")


def _spans(builder: FeatureBuilder) -> str:
    """The rolling windows and calendar spans of the builder's history features (``1h, 6h, 24h, prev1d``)."""
    from .features.history_spans import window_label

    encoders = getattr(builder, "history_encoders", None) or []
    windows = sorted({w for e in encoders for w in getattr(e, "windows", [])})
    days = sorted({d for e in encoders for d in getattr(e, "days", [])})
    spans = [window_label(w) for w in windows] + [f"prev{d}d" for d in days]
    return ", ".join(spans) if spans else "rolling and previous-day spans"


def check_not_before(builder: FeatureBuilder, files: Sequence[Path | Footer], start: int | None) -> None:
    """The history or session features' refusal of rows earlier than the serving state's end (a :class:`DataError`,
    their message), before the cluster starts: ``start`` is the rows' earliest time from the footers
    (:func:`earliest_time`); the early rows are counted from the footers and the time column of the row
    groups that straddle the end. Nothing when ``start`` is unknown or implausible (refused when read)."""
    encoders = [*builder.history_encoders, *builder.session_encoders]
    late = [e for e in encoders if getattr(e, "t_end_", None) is not None]
    enc = next((e for e in late if start is not None and start < e.t_end_), None)
    if enc is None or not PLAUSIBLE_TIMES[0] <= start < PLAUSIBLE_TIMES[1]:
        return
    early, rows = _rows_before(files, builder.layout.time, enc.t_end_)
    raise DataError(enc.early_rows(early, rows, start))


def _rows_before(files: Sequence[Path | Footer], column: str, end: int) -> tuple[int, int]:
    """(rows whose ``column`` is below ``end``, rows) of parquet ``files`` (footers, or paths): a row group's
    footer statistics decide it when they can, else its ``column`` is read."""
    early = rows = 0
    for footer in as_footers(files):
        for g, n, stats in footer.row_groups(column):
            rows += n
            if stats is not None and stats.has_min_max and stats.min >= end:
                continue
            if stats is not None and stats.has_min_max and stats.max < end and stats.null_count == 0:
                early += n
                continue
            early += _read_rows_before(footer, g, column, end)
    return early, rows


def _read_rows_before(footer: Footer, group: int, column: str, end: int) -> int:
    """Rows of row group ``group`` of ``footer``'s file whose ``column`` is below ``end``, the column read (its
    footer not read again)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    values = pq.ParquetFile(footer.path, metadata=footer.metadata).read_row_group(group, columns=[column]).column(0)
    return int(pc.sum(pc.less(values, end)).as_py() or 0)


def read_new_rows(path: Path, files: Sequence[Path | Footer], layout: Layout, min_partition_rows: int | None = None) -> Any:
    """Canonical parquet rows to score (a file or a directory; ``files``: its :func:`input_footers`, or paths); the
    target columns are optional. Consecutive files smaller than ``min_partition_rows`` share a
    partition (:func:`sized_partitions`), read by one task (:mod:`.grouped_read`)."""
    import dask.dataframe as dd

    if not files:
        raise DataError(f"no parquet files at {path}: {RAW_INPUT}")
    footers = as_footers(files)
    paths = [f.path for f in footers]
    check_partitioning(paths)
    frame = dd.read_parquet([str(p) for p in paths], blocksize=None, columns=_shared_columns(footers, layout))
    return sized_input(frame, footers, None, min_partition_rows, 1, sizing=True)


def _shared_columns(footers: list[Footer], layout: Layout) -> list[str] | None:
    """The columns to read of the files of ``footers`` (None: all, when every file has the same ones); a :class:`DataError`
    naming the file when one lacks a column needed to compute features, or a label or raw id column another
    file has (its rows would have neither score nor label: dask took the first file's columns for all and
    failed on the others). Columns no feature reads, in some files only, are left out. From the footers."""
    files = [f.path for f in footers]
    names = [list(f.names) for f in footers]
    for f, have in zip(files, names):
        missing = [c for c in layout.input_columns() if c not in have]
        if missing:
            raise DataError(f"{f}: missing column(s) {missing} needed to compute features{hive_hint(f, missing)}")
    common = set.intersection(*map(set, names))
    if all(len(n) == len(common) for n in names):
        return None
    optional = {t.column: f"the label of target {t.name!r}" for t in layout.targets} | {c: "a raw id" for c in layout.raw_ids}
    for col, what in optional.items():
        has = next((f for f, n in zip(files, names) if col in n), None)
        lacks = next((f for f, n in zip(files, names) if col not in n), None)
        if has and lacks:
            raise DataError(f"{lacks}: no column {col!r} ({what}), which {has} has: give every input file the same "
                            "columns, or score them apart")
    return [c for c in dict.fromkeys(names[0]) if c in common]


#: The record of a predict (:func:`run_predict`), beside its ``predictions/``.
PREDICT_JSON = "predict.json"


def _publish_predictions(frame: Any, out: Path) -> None:
    """Write ``out/predictions`` whole (staged, then renamed). An earlier predict's :data:`PREDICT_JSON` in ``out``
    goes just before: a predict stopped before writing its own (Ctrl-C in the metrics stage) leaves the new
    predictions without one, never beside the record of others."""
    with staged_dir(out / "predictions") as tmp:
        with naming(out / "predictions"):  # a worker's write error (a full disk) names no file
            frame.to_parquet(str(tmp), write_index=False)
        (out / PREDICT_JSON).unlink(missing_ok=True)
        replace_dir(tmp, out / "predictions")


def predict(client: Any, backend: Backend, model_dir: Path, rows: Any, out: Path, builder: FeatureBuilder | None = None,
            prog: StageProgress | None = None, boosters: dict[str, Any] | None = None,
            models: tuple[dict[str, dict], dict] | None = None, served_from: Path | None = None) -> dict:
    """Score ``rows`` (a dask frame) with every model of ``model_dir``; write ``out/predictions``.

    Returns {"rows", "targets", "predictions", "store", "metrics"}; metrics for the targets whose
    engagement column the rows carry (None without any). ``prog`` times the "score" and "metrics" stages.
    ``models``: :func:`load_models` of ``model_dir`` already read (the metas ``boosters`` were loaded from), read
    here otherwise; ``boosters``: target -> booster already loaded (:func:`load_boosters`), loaded here otherwise,
    before any feature. ``builder``: the serving state, found here otherwise (:func:`locate_builder`);
    ``served_from``: the store it was read from. The result's ``store`` names the store served from, as
    ``predict.json`` does (the models' own when a ``builder`` is given without ``served_from``).
    """
    from .evaluate import evaluate_targets, gather
    from .train import is_ranking

    prog = prog or StageProgress(quiet=True)
    metas, store_info = models or load_models(model_dir)
    if builder is None:
        builder, served_from = locate_builder(store_info, backend, model_dir)
    boosters = boosters or load_boosters(metas, backend)
    layout = builder.layout
    targets = list(metas)
    labelled = [t for t in targets if layout.target(t).column in rows.columns]
    with prog.stage("score", client=client):
        scored = _score(client, boosters, builder, metas, add_labels(rows, labelled, layout, missing=True), labelled, out)
        n = int(scored.map_partitions(len).sum().compute())
    store = store_info if served_from is None else {**store_info, "path": absolute_path(served_from)}
    result: dict[str, Any] = {"rows": n, "targets": targets, "predictions": absolute_path(out / "predictions"), "store": store, "metrics": None}
    if labelled:
        with prog.stage("metrics"):
            frame, host = gather(client, scored, {t: scored[PRED_PREFIX + t] for t in labelled}, labelled, layout)
            ranking = tuple(t for t, m in metas.items() if is_ranking(m.get("objective", "")))
            result["metrics"] = evaluate_targets(frame, host, labelled, layout, None, ranking)
            for t in labelled:  # as report.json's: the objective tells a rank:* model's scores (their AP / AUC pool groups)
                result["metrics"][t]["objective"] = metas[t].get("objective")
    return result


def id_columns(layout: Layout, columns: Any) -> list[str]:
    """The columns identifying each prediction: the row key, then the layout's raw ids (the text of a
    table's ``row_id`` columns) that ``columns`` has (rows ingested before they were kept lack them)."""
    return [*layout.row_key, *(c for c in layout.raw_ids if c in columns)]


def _score(client: Any, boosters: dict[str, Any], builder: FeatureBuilder, metas: dict[str, dict], rows: Any, labelled: list[str],
           out: Path) -> Any:
    """The rows' carried columns, the ``labelled`` targets' labels and ``pred_<target>`` (persisted); writes
    ``out/predictions``: the row key, the raw ids (:func:`id_columns`) and ``pred_<target>`` (counts for count targets)."""
    import xgboost as xgb
    import xgboost.dask  # noqa: F401 - registers xgb.dask

    from .train import to_label_scale

    layout = builder.layout
    targets = list(metas)
    ids = id_columns(layout, rows.columns)
    keep = list(dict.fromkeys([*layout.carried(), *ids])) + labelled
    feats = builder.transform(rows, keep).persist()
    preds = {}
    for t, meta in metas.items():
        preds[t] = to_label_scale(xgb.dask.inplace_predict(client, boosters[t], feats[meta["features"]]), meta.get("objective", ""))
    scored = feats[keep].assign(**{PRED_PREFIX + t: p for t, p in preds.items()}).persist()  # written, counted, gathered
    del feats
    counts = [t for t in targets if layout.target(t).is_regression]
    served = scored.assign(**{PRED_PREFIX + t: _expm1(scored[PRED_PREFIX + t]) for t in counts})
    _publish_predictions(served[[*ids, *(PRED_PREFIX + t for t in targets)]], out)
    return scored


def _expm1(log_counts: Any) -> Any:
    """Predicted counts from predicted log1p(count) (negative predictions clip to 0)."""
    import numpy as np

    return np.expm1(log_counts.clip(lower=0).astype("float64"))


def check_predict_out(out: Path) -> None:
    """A :class:`ConfigError` when ``out`` cannot be made and written (read-only, a file in the way: found before the
    models load, not after the rows are scored), or when ``out/predictions``, which predict replaces whole, holds
    files it did not write (the parquet parts of dask's ``to_parquet``): ``--out .`` in a project with a
    ``predictions/`` of the user's."""
    from .config import ConfigError
    from .run_dirs import foreign_files, unusable_dir

    problem = unusable_dir(out)
    if problem:
        raise ConfigError(f"predict: --out: cannot create the output directory {str(out)!r}: {problem}")
    problem = foreign_files(out / "predictions", lambda p: p.is_file() and (p.suffix == ".parquet" or p.name in PARQUET_METADATA),
                            "predict")
    if problem:
        raise ConfigError(f"predict: {problem}")


@contextmanager
def serving_marks(store_info: dict, model_dir: Path, store: Path | None = None,
                  log: Callable[[str], None] = lambda _: None) -> Iterator[None]:
    """Mark the models' store version in use (:func:`~.store_builds.in_use`) in each store it may be served from
    (:func:`store_candidates`) while the block runs: a ``store --keep`` meanwhile spares it. Each mark is written under
    the version's use lock (:func:`~.store.marked_in_use`): a deletion that read the marks before it (retention in a
    daily job) renamed the version away before the mark, and the read after it (:func:`locate_builder`) finds it gone;
    never found, then deleted under the predict. A store that is not there, or that this user cannot write
    (read-only, whose versions this user cannot delete either), is not marked (``log`` says so, as a run does)."""
    with ExitStack() as marks:
        for place in store_candidates(store_info, model_dir, store):
            if Path(place).is_dir():
                try:
                    marks.enter_context(marked_in_use(place, store_info["version"], model_dir, serving=True))
                except OSError as exc:
                    if unwritable(exc):
                        log(not_marked_line(place, store_info["version"], exc))
        yield


def run_predict(model_dir: Path, input_path: Path, out: Path, backend: Backend, cluster_cfg: ClusterConfig,
                console: Console | None = None, quiet: bool = True, store: Path | None = None,
                history: str | None = None) -> dict:
    """Start the cluster, score ``input_path`` and write ``out/predictions`` + ``out/predict.json``
    (with the seconds, rows/s and peak memory of each stage; progress on ``console`` unless ``quiet``).
    ``store``: the feature store holding the models' version (default: see :func:`store_candidates`);
    ``history``: labelled events after the training window to fold into the serving state first
    (:func:`history_events`). ``out``'s run lock is held throughout (:func:`~.run_lock.out_lock`: another predict, or a
    run, writing there is refused at the start, naming it), and so is the mark of the ingest cache folder ``input_path``
    lies in, if it does (:func:`~.ingest.reader_marks.read_if_ingest`: ``data.keep_ingests`` keeps it)."""
    from .run_lock import out_lock

    check_predict_out(out)
    # read_if_ingest: --input in an ingest cache folder (report.json's split.data_dir): data.keep_ingests keeps it
    with out_lock(out, "predict"), read_if_ingest(glob_root(input_path)):  # another predict into ``out`` is refused
        return _run_predict(model_dir, input_path, out, backend, cluster_cfg, console, quiet, store, history)


def _run_predict(model_dir: Path, input_path: Path, out: Path, backend: Backend, cluster_cfg: ClusterConfig,
                 console: Console | None, quiet: bool, store: Path | None, history: str | None) -> dict:
    """:func:`run_predict` holding ``out``'s lock."""
    from .cluster import ignored_settings, start_cluster
    from .existing_cluster import check_shared_paths
    from .report import write_json

    if not input_exists(input_path):
        what = " (a glob matching no file)" if is_glob(input_path) else ""
        raise DataError(f"input {input_path} does not exist{what}")
    files = input_footers(input_path)  # each file's footer read once, for every check before the cluster
    check_some_rows(input_path, files)
    memory = MemoryWatch.for_run(backend, cluster_cfg.scheduler_address)
    with memory, StageProgress(console, quiet, memory) as prog, ExitStack() as marks:
        with prog.stage("load"):
            metas, store_info = load_models(model_dir)
            marks.enter_context(serving_marks(store_info, model_dir, store, prog.log))  # until predict ends: `store --keep` spares it
            boosters = load_boosters(metas, backend)  # a damaged model file is refused before the cluster starts
            builder, served_from = locate_builder(store_info, backend, model_dir, store)
            extended = events_gap = None
            if history is not None:
                events = history_events(history, model_dir, backend, builder.layout.time)
                events_gap = history_events_gap(builder, events)  # before extending: it moves the state's end
                builder.extend_history(events)
                source = history if history == "validation" else absolute_path(history)
                extended = {"source": source, "rows": len(events), "end": builder.history_end()}
                prog.log(f"history: {len(events):,} labelled events folded into the serving state, which now ends "
                         f"{utc(extended['end']) if extended['end'] is not None else '(no history features)'}")
                if events_gap:
                    prog.log(events_gap)
            check_input_files(files, builder)  # each file's types and values, named: dask reads all as the first
            rows = read_new_rows(input_path, files, builder.layout, backend.min_partition_rows)
            prog.log(f"{len(metas)} model(s) ({', '.join(metas)}), feature-store version {store_info['version']}, "
                     f"{rows.npartitions} input partition(s)")
            start = earliest_time(files, builder.layout.time)
            check_not_before(builder, files, start)  # as the features would refuse them, before the cluster starts
            gap = history_gap(builder, start)
            if gap:
                prog.log(gap)
        with start_cluster(backend, cluster_cfg, prog.log) as cluster:  # as a run: stalls for memory said
            prog.log(cluster.describe(backend))
            for line in ignored_settings(cluster_cfg, backend, cluster.n_gpus):
                prog.log(line)
            if cluster.kind == "external":  # its workers read the rows and write the predictions
                check_shared_paths(cluster.client, cluster_cfg.scheduler_address, read=[glob_root(input_path)],
                                   write=[out])
            result = predict(cluster.client, backend, model_dir, rows, out, builder, prog, boosters, (metas, store_info),
                             served_from)
    result["timings_s"] = {k: round(v, 3) for k, v in prog.timings.items()}
    result["rows_per_s"] = round(result["rows"] / prog.timings["score"], 1) if prog.timings.get("score") else None
    result["memory"] = memory.to_report()
    result["backend"] = backend.kind
    result["history_gap"] = gap
    result["history"] = extended
    result["history_events_gap"] = events_gap
    write_json(out / PREDICT_JSON, result)
    return result
