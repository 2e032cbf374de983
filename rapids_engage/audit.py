"""``python -m rapids_engage.pipeline audit``: leakage checks of the features and the split.

* **shuffled labels**: the pipeline rerun with the training labels permuted
  within each day, each target boosted for the real-label model's rounds (no early stopping on the validation
  labels: :func:`control_rounds`), once or more (``--shuffles``: the checks read the mean over the shuffles,
  :mod:`.audit_shuffles`); a validation RCE above 0.5, or above what chance gives on few positives (a ranking model's
  within-group AUC above 0.5 + 3 standard errors of a scorer without skill),
  means features carry label information into the validation rows (e.g. a feature copied from the label).
* **time order**: every training event is at or before the cut-off (less ``split.gap_hours``), every
  validation event after it.
* **overlap**: no (tweet, engaging user) row is in both training and validation.
* **row keys**: no row key repeats within a split (a log written twice, a bad join). Rows that
  share a key share a fold under every fold method, so no label crosses folds then, unless the folds
  keep a ranking group together (:meth:`Layout.fold_key`) and the copies lie in different groups.
* **time travel**: history features of training rows unchanged when the future is cut off and the labels of
  each key's last events are flipped (:func:`time_travel_checks`).
* **out of fold**: target encodings of training rows unchanged when the labels of their own fold are flipped
  (:func:`.audit_folds.out_of_fold_checks`): an in-fold encoding leaks into the training rows only, which the
  shuffled labels cannot show.

Prints pass/fail per check and writes ``<out>/audit.json``.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .audit_compare import co_partitioned, merged_differences, per_partition_counts, totals
from .audit_folds import out_of_fold_checks
from .audit_shuffles import mean_of_shuffles, shuffles_phrase, spread_phrase
from .config import Config, TrainConfig
from .report import write_json
from .schema import utc
from .store import FeatureStore, marked_in_use, not_marked_line, unwritable
from .layout import Layout
from .progress import StageProgress
from .provenance import absolute_path
from .split import training_end

MAX_SHUFFLED_RCE = 0.5
MAX_SHUFFLED_AUC = 0.55
#: Standard errors above chance a shuffled-label model's validation metric may reach (:func:`rce_bound`,
#: :func:`group_auc_bound`).
CHANCE_SES = 3
#: Count targets: with shuffled labels the model's RMSE (on log1p; on counts for raw-count objectives) may beat the
#: constant's by at most 1 %.
MIN_SHUFFLED_RMSE_RATIO = 0.99
#: ``--shuffles auto``'s stages (:func:`run_audit`): the shuffled-label runs whose mean the checks read, the next
#: stage's while one fails on this one's. Under :mod:`.audit_shuffles`' model (``bench/audit_escalation.py``,
#: bench/README) a clean target fails where noise-fitting dominates about 1 in 850 audits (1 in 27 stopping at 3), at
#: 1.85 shuffled runs (1.74); a leak of 5 RCE points on the event log's buy is caught as often (97 %), at 10 runs.
AUTO_STAGES = (1, 3, 5, 10)


def split_checks(store_dir: Path, cutoff: int, layout: Layout, train_end: int | None = None) -> list[dict]:
    """Time order, row overlap and repeated row keys of a store version's train/valid splits. ``train_end``: the
    latest training time, the cut-off less ``split.gap_hours`` (default: the cut-off, no gap)."""
    import dask
    import dask.dataframe as dd

    key, time = list(layout.row_key), layout.time
    keyed = list(dict.fromkeys([*key, *layout.fold_key()]))  # a row key with its fold's: a copy in another group differs
    train = dd.read_parquet(str(store_dir / "train"), columns=[*keyed, time])
    valid = dd.read_parquet(str(store_dir / "valid"), columns=[*key, time])
    both = train[key].merge(valid[key], on=key, how="inner")  # copies x copies rows per key: counted distinct

    def distinct(frame: Any, columns: list[str]) -> Any:
        return frame[columns].drop_duplicates(split_out=True).map_partitions(len).sum()

    t_max, v_min, n_both, n_train, n_valid, keys_train, keys_valid, folds_train = dask.compute(
        train[time].max(), valid[time].min(), distinct(both, key), train[time].size, valid[time].size,
        distinct(train, key), distinct(valid, key), distinct(train, keyed) if keyed != key else None,
    )
    end = cutoff if train_end is None else train_end
    gap = "" if end == cutoff else f"training end {utc(end)} (the cut-off less split.gap_hours) < "
    return [
        {"check": "time order", "passed": bool(t_max <= end <= cutoff < v_min),
         "detail": f"last training event {utc(int(t_max))} <= {gap}cut-off {utc(cutoff)} < first validation event {utc(int(v_min))}"},
        {"check": "train/valid overlap", "passed": int(n_both) == 0, "detail": f"{int(n_both)} row key(s) in both"},
        repeated_keys_check(int(n_train) - int(keys_train), int(n_valid) - int(keys_valid), key,
                            0 if folds_train is None else int(folds_train) - int(keys_train), layout.group),
    ]


def repeated_keys_check(train: int, valid: int, key: list[str], crossing: int = 0, group: str | None = None) -> dict:
    """Rows that repeat an earlier row's key (``train`` / ``valid``: how many in each split; ``crossing``: how
    many training copies lie in another ``group`` than their key's first, whose rows the folds keep together then)."""
    detail = f"{train:,} training and {valid:,} validation row(s) repeat a row key ({', '.join(key)})"
    check = {"check": "row keys unique", "passed": not crossing, "detail": detail}
    if crossing:
        check["detail"] += (f"; {crossing:,} of them in another {group} than the key's first: folds keep each {group} "
                            "together, so those copies may lie in different folds, where one's label encodes the other's: "
                            f"deduplicate the input or make {group} part of the row key (data.table.row_id)")
    elif train:
        check["detail"] += "; their copies share a fold, so no label crosses folds, but they count twice"
    return check


def time_travel_checks(cfg: Config, real: dict, n_cuts: int = 2, seed: int = 0) -> list[dict]:
    """History features must not change when the future is cut off, nor with an event's own label.

    For ``n_cuts`` random times in the training window (before any gap), the history features
    are recomputed from the events up to that time only, the labels of each
    key's last events there flipped (:func:`flip_last_labels`), and compared, row
    by row, with the store's training rows up to that time: any difference means a
    feature saw a later event, or its own label (or one of an event at the same time). Compared partition by
    partition on the cluster (:mod:`.audit_compare`): only counts come back.
    """
    import dask
    import dask.dataframe as dd
    import numpy as np

    from .data import read_events
    from .features import add_labels
    from .features.configured_encoders import history_encoder
    from .features.key_columns import with_key_columns
    from .features.label_times import engagement_times
    from .features.history import history_features

    keys = cfg.features.history.keys
    if not keys:
        return [{"check": "time travel (history features)", "passed": True, "detail": "no history features configured"}]
    layout, targets = Layout.from_dict(real["layout"]), list(cfg.train.targets)
    row_key, time = list(layout.row_key), layout.time
    events = with_key_columns(add_labels(read_events(Path(real["split"]["data_dir"]), layout), targets, layout), layout, keys)
    store_train = dd.read_parquet(str(Path(real["store"]["path"]) / real["store"]["version"] / "train"))
    t_min, end = int(events[time].min().compute()), training_end(real["split"])  # the training rows' end (less any gap)
    cuts = sorted(int(c) for c in np.random.default_rng(seed).integers(t_min + (end - t_min) // 4, end, n_cuts))
    engagement = engagement_times(cfg.features.history, layout, targets)  # label times: their columns too
    encoders = [history_encoder(cfg.features.history, key, targets, time, engagement=engagement) for key in keys]
    names = [enc.output_names(targets) for enc in encoders]
    # a row is matched by its row key, time and history key (those the store keeps): copies of a row key at other
    # times have other features, and matched across copies they differed without a leak
    matched = [list(dict.fromkeys([*row_key, time, *(c for c in key if c in store_train.columns)])) for key in keys]
    compared, differing = [0] * len(keys), [0] * len(keys)
    for cut in cuts:  # a cut's keys computed together: one pass over its rows
        stored = store_train[store_train[time] <= cut]
        counts = []
        for i, (key, enc) in enumerate(zip(keys, encoders)):
            past = events[events[time] <= cut][list(dict.fromkeys([*row_key, time, *key, *targets, *(engagement or {}).values()]))]
            past = flip_last_labels(past, key, time, targets)
            fresh = history_features(past, enc, fit=True, limit=cfg.features.broadcast_limit)[[*matched[i], *names[i]]]
            pair = co_partitioned(fresh, stored[[*matched[i], *names[i]]], matched[i])
            counts.append(per_partition_counts(merged_differences, *pair, ["compared", "differing"], matched[i], names[i]))
        for i, frame in enumerate(dask.compute(*counts)):  # a row of counts per partition: no rows come back
            compared[i] += totals(frame)["compared"]
            differing[i] += totals(frame)["differing"]
    checks = [{
        "check": f"time travel: hist_{'_'.join(key)} unchanged without the future or own labels", "passed": d == 0 and c > 0,
        "detail": f"{c:,} row comparisons at {n_cuts} cut time(s) (the training rows up to each cut, the labels of each "
                  f"key's last events there flipped); {d:,} differ",
    } for key, c, d in zip(keys, compared, differing)]
    return checks


def flip_last_labels(events: Any, key: list[str], time: str, targets: list[str]) -> Any:
    """``events`` (dask) with the labels of each ``key``'s events at its latest time flipped (a positive to 0, else
    1): no feature of any of them may change, as no event of the key is later; a feature that counts an event's
    own label, or one of an event at the same time, does (the shuffled-label check cannot see that: the
    validation rows see no labels of their own window)."""
    last = events.groupby(key)[time].max().rename("_key_last").reset_index()
    marked = events.merge(last, on=key, how="left")
    at_last = marked[time] == marked["_key_last"]  # false for a null key (alone: no history)
    flipped = {t: marked[t].where(~at_last, (marked[t].fillna(0) <= 0).astype(marked[t].dtype)) for t in targets}
    return marked.assign(**flipped).drop(columns=["_key_last"])


def run_audit(cfg: Config, console: Console, quiet: bool = False, seed: int = 0, plots: bool | None = None,
              rebuild: bool = False, command: str | None = None, shuffles: int | None = None) -> dict:
    """Run the checks for ``cfg``; results in ``<cfg.out>/audit.json``. ``plots``: the real-label run's
    (``--plots`` / ``--no-plots``, as for a run); ``rebuild``: every run recomputes its features
    (``--rebuild``); ``command``: the audit's command line, in every run's report. ``shuffles``: shuffled-label runs,
    their labels shuffled with seeds ``seed``, ``seed`` + 1, ...; the checks read their mean
    (:mod:`.audit_shuffles`); None (``--shuffles auto``): one, then more while a shuffled-label check fails on the mean
    of all so far, up to the last of :data:`AUTO_STAGES` (a FAIL only there). ``seed`` also draws the time-travel
    check's cut times and the out-of-fold check's fold (``seed`` mod ``n_folds``). The split, time-travel and
    out-of-fold checks run on the run's cluster (``--scheduler-address`` or a local one), not in this process. ``cfg.out``'s run lock is held
    throughout (:func:`~.run_lock.out_lock`: a run into it between the audit's runs is refused), and so is the mark of the
    ingest folder its runs read (:func:`~.ingest.reader_marks.keep_reading`: ``data.keep_ingests`` keeps it)."""
    from .ingest.reader_marks import keep_reading
    from .run_lock import out_lock

    # keep_reading: the checks read the real run's ingest folder again; held: the real run's store version's mark
    with out_lock(Path(cfg.out), "audit"), keep_reading(), ExitStack() as held:
        return _audit(cfg, console, quiet, seed, plots, rebuild, command, shuffles, held)


def _audit(cfg: Config, console: Console, quiet: bool, seed: int, plots: bool | None, rebuild: bool,
           command: str | None, shuffles: int | None, held: ExitStack) -> dict:
    """:func:`run_audit` holding its ``--out``; ``held``: what the audit holds until it ends (its real-label run's
    store version marked in use, :func:`real_version_held`)."""
    from .cluster import start_cluster
    from .existing_cluster import run_backend
    from .pipeline import run

    if shuffles is not None and shuffles < 1:
        raise ValueError(f"audit shuffles: {shuffles}; at least 1 (or None: auto)")
    out = Path(cfg.out)

    def say(line: str) -> None:
        if not quiet:
            console.print(f"audit: {line}", highlight=False)

    # decided once, said once: each (quiet) run and the checks asked the workers again, and the line was never shown
    backend, why = run_backend(cfg.cluster)
    if why:
        say(why)
    # each run is quiet: a stage of the audit's own, so that a minute's run is a moving bar (a log: a line every
    # StageProgress.HEARTBEAT s) and a line with its seconds, not a silent stretch
    prog = held.enter_context(StageProgress(console, quiet))
    say(f"run with the real labels -> {out}")
    with prog.stage("real run"):
        real = run(cfg, quiet=True, console=console, plots=plots, rebuild=rebuild, command=command, backend=backend)
    # marked in use from here to the audit's end: a `store --keep` / features.keep_versions of a job sharing the store
    # deleted it under the shuffled runs or the checks (the audit's models are not beside that store: unseen)
    store_dir = held.enter_context(real_version_held(real, out, say))
    control = copy.deepcopy(cfg)
    control.features.store = str(out / "shuffled-labels" / "store")  # one store: each shuffle is a version of it
    control.train = control_rounds(cfg.train, real["targets"])
    runs: list[dict] = []

    stages = AUTO_STAGES if shuffles is None else (shuffles,)
    ladder = " -> ".join(str(n) for n in stages)

    def shuffle(n: int) -> list[dict]:
        while len(runs) < n:
            i = len(runs)
            control.out = str(shuffled_dir(out, i))
            of = f" of {n}" if shuffles is not None or n > 1 else f" (--shuffles auto: {ladder} while a check fails)"
            say(f"shuffle {i + 1}{of}, seed {seed + i}: run with the training labels shuffled within each day -> {control.out}")
            with prog.stage(f"shuffle {i + 1}"):
                runs.append(run(control, quiet=True, console=console, shuffle_seed=seed + i, plots=False, rebuild=rebuild,
                                command=command, backend=backend))
        return shuffled_checks(real, runs, [seed + i for i in range(n)])

    verdicts: list[dict] = []  # each stage's: audit.json's shuffles.stages
    for n in stages:
        if verdicts:
            failed = ", ".join(t for t, passed in verdicts[-1]["targets"].items() if not passed)
            say(f"shuffled-label check(s) failed on {_shuffles_count(len(runs))} ({failed}): {n - len(runs)} more "
                f"(--shuffles auto: {ladder}), the checks on the mean of {n}")
        checks = shuffle(n)
        verdicts.append({"n": n, "passed": all(c["passed"] for c in checks),
                         "targets": {c["target"]: c["passed"] for c in checks}})
        if verdicts[-1]["passed"]:
            break
    for stale in stale_shuffled_dirs(out, len(runs)):  # an earlier audit's with more shuffles: not this audit's
        say(f"removing {stale}: an earlier audit's shuffled-label run ({len(runs)} this time)")
        if stale.is_symlink():  # the link goes, not what it points to (rmtree refuses a link)
            stale.unlink()
        else:
            shutil.rmtree(stale)
    record = {"n": len(runs), "auto": shuffles is None, "stages": verdicts, "seeds": [seed + i for i in range(len(runs))],
              "runs": [absolute_path(shuffled_dir(out, i)) for i in range(len(runs))],  # as report.json's paths
              "targets": {c["target"]: c.pop("shuffles") for c in checks}}
    for c in checks:
        del c["target"]
    say("split, time-travel and out-of-fold checks")
    with prog.stage("checks"), start_cluster(backend.init(), cfg.cluster):  # its client computes them
        checks += split_checks(store_dir, real["split"]["cutoff"], Layout.from_dict(real["layout"]), training_end(real["split"]))
        checks += time_travel_checks(cfg, real, seed=seed)
        checks += out_of_fold_checks(cfg, real, seed=seed)
    result = {"passed": all(c["passed"] for c in checks), "checks": checks, "store_version": real["store"]["version"],
              "shuffles": record}
    write_json(out / "audit.json", result)
    if not quiet:
        console.print(audit_table(checks))
        console.print(f"audit: {'PASS' if result['passed'] else 'FAIL'} -> {out / 'audit.json'}")
    return result


@contextmanager
def real_version_held(real: dict, out: Path, log: Callable[[str], None] = lambda _: None) -> Iterator[Path]:
    """The directory of the real-label run's store version (``real``: its report), marked in use by ``<out>/models``
    while the block runs (:func:`~.store.marked_in_use`, as a predict's): a deletion meanwhile keeps it. Deleted or
    damaged before the mark (after the run's own mark ended): a ValueError naming it, the checks not run. In a store
    this user cannot write (read-only mount), held unmarked, as a run and predict hold it: ``log`` says so."""
    store, version = Path(real["store"]["path"]), real["store"]["version"]
    with ExitStack() as mark:
        try:
            mark.enter_context(marked_in_use(store, version, out / "models", serving=True))
        except OSError as exc:
            if not unwritable(exc):
                raise
            log(not_marked_line(store, version, exc))
        problem = FeatureStore(store).problem(version)
        if problem is not None:
            what = "gone" if problem == "absent" else f"damaged ({problem})"
            raise ValueError(f"audit: store version {version} of the real-label run is {what} in {store} (deleted by "
                             "a `store --keep` / features.keep_versions sharing the store since the run?): the split, "
                             "time-travel and out-of-fold checks read it; rerun the audit")
        yield store / version


def _shuffles_count(n: int) -> str:
    """``one shuffle``, ``the mean of 3 shuffles``."""
    return "one shuffle" if n == 1 else f"the mean of {n} shuffles"


def shuffled_dir(out: Path, i: int) -> Path:
    """The output directory of the audit's ``i``-th shuffled-label run (from 0): ``shuffled-labels/``, then
    ``shuffled-labels-2/``, ``-3/`` ..."""
    return out / ("shuffled-labels" if i == 0 else f"shuffled-labels-{i + 1}")


def stale_shuffled_dirs(out: Path, n: int) -> list[Path]:
    """The shuffled-label run directories in ``out`` beyond the first ``n`` (:func:`shuffled_dir`): left by an earlier
    audit of ``out`` with more shuffles, they would pass for this audit's. Only directories a run wrote (with its
    ``report.json`` or ``config.yaml``) are named."""
    found = []
    for path in out.glob("shuffled-labels-*"):
        number = path.name.removeprefix("shuffled-labels-")
        if number.isdigit() and int(number) > n and path.is_dir() and (
                (path / "report.json").exists() or (path / "config.yaml").exists()):
            found.append(path)
    return sorted(found, key=lambda p: int(p.name.removeprefix("shuffled-labels-")))


def shuffled_checks(real: dict, runs: list[dict], seeds: list[int]) -> list[dict]:
    """The shuffled-label check of each target (:func:`shuffled_check`) on its mean over ``runs`` (the reports of the
    shuffled-label runs, shuffled with ``seeds``: :func:`.audit_shuffles.mean_of_shuffles`); each check carries its
    ``target`` and the ``shuffles`` record of its metric for audit.json."""
    checks = []
    for target in runs[0]["targets"]:
        merged = mean_of_shuffles([r["targets"][target] for r in runs], seeds)
        check = shuffled_check(target, merged, real["targets"][target])
        checks.append(check | {"target": target, "shuffles": merged["shuffles"]})
    return checks


def control_rounds(train: TrainConfig, real_targets: dict) -> TrainConfig:
    """``train`` for the shuffled-label run: each target boosted for as many rounds as its real-label model kept
    (``best_iteration`` + 1), without early stopping: it sees no validation label. Early-stopped on the validation
    labels, it kept boosting while its noise happened to rank the validation rows, and stopped at once where it did not
    (bench/event_log.py's 300k log, seeds 0 / 1 / 2: cart RCE 0.72 / -0.04 / 0.06 after 16 / 1 / 2 rounds; with the
    real model's 35 rounds 0.03 / -0.96 / -0.16)."""
    train = copy.deepcopy(train)
    train.early_stopping_rounds = 0
    for target in dict.fromkeys([*train.per_target, *real_targets]):
        best = real_targets.get(target, {}).get("best_iteration")
        rounds = {} if best is None else {"num_boost_round": int(best) + 1}
        train.per_target[target] = {**train.per_target.get(target, {}), **rounds, "early_stopping_rounds": 0}
    return train


def shuffled_check(target: str, shuffled: dict, real: dict) -> dict:
    """A model trained on permuted labels must show no skill on the validation window. Where the real-label
    model has no more skill than the bound either, the check passes, marked inconclusive: it shows nothing."""
    if shuffled.get("kind") == "count":
        key = _rmse_key(shuffled)
        name = "RMSE" if key == "rmse" else "RMSE(log1p)"
        ratio, real_ratio = _rmse_ratio(shuffled, key), _rmse_ratio(real, key)
        ratio = 1.0 if ratio is None else ratio  # no constant to beat: no skill shown
        check = {"check": f"shuffled labels: {target} {_mean_of(shuffled)}{name} >= {MIN_SHUFFLED_RMSE_RATIO} x constant's",
                 "passed": ratio >= MIN_SHUFFLED_RMSE_RATIO,
                 "detail": f"{_mean_of(shuffled)}{name} {shuffled[key]:.4f} vs constant "
                           f"{shuffled['baselines']['constant'][key]:.4f}{shuffles_phrase(shuffled, 4)} with shuffled labels "
                           f"(real labels: {real[key]:.4f})"}
        return _without_skill(check, real_ratio is not None and real_ratio >= MIN_SHUFFLED_RMSE_RATIO)
    if shuffled.get("rce") is None:  # a ranking model's scores: no RCE, and only comparable within a group
        return _ranking_check(target, shuffled, real)
    bound = rce_bound(shuffled)
    name = f"shuffled labels: {target} {_mean_of(shuffled)}RCE <= {bound:.3g}"
    if _undefined(shuffled.get("rce")):
        return _one_class(name, "RCE", real)
    spread = spread_phrase(shuffled)
    chance = "" if bound == MAX_SHUFFLED_RCE else (
        f"; the bound is {shuffled['rce_chance']:.2f} + {CHANCE_SES} x {shuffled['rce_chance_se']:.2f}, " + (
            f"the standard error{spread}" if spread else
            f"what its predictions reach by chance alone (labels permuted: mean + {CHANCE_SES} standard errors), above "
            f"{MAX_SHUFFLED_RCE} on few positives"))
    check = {"check": name, "passed": shuffled["rce"] <= bound,
             "detail": f"{_mean_of(shuffled)}validation RCE {shuffled['rce']:.3f}{shuffles_phrase(shuffled)} with shuffled "
                       f"training labels (real labels: {real['rce']:.2f})" + _scored(real) + chance}
    return _without_skill(check, real.get("rce") is not None and real["rce"] <= bound)


def rce_bound(metrics: dict) -> float:
    """The validation RCE a model trained on shuffled labels may reach: :data:`MAX_SHUFFLED_RCE`, or, where chance
    alone moves RCE further on these rows (few positives), the mean + :data:`CHANCE_SES` standard errors of its RCE
    with the labels permuted among the rows (``rce_chance``, ``rce_chance_se``: exceeded by chance about once in 700
    audits). With 13 positives in 2,143 rows a model without skill reached 4.6 about once in 1,000: the fixed 0.5
    failed clean runs."""
    mean, se = metrics.get("rce_chance"), metrics.get("rce_chance_se")
    if _undefined(mean) or _undefined(se):
        return MAX_SHUFFLED_RCE
    return max(MAX_SHUFFLED_RCE, mean + CHANCE_SES * se)


def _ranking_check(target: str, shuffled: dict, real: dict) -> dict:
    """The shuffled-label check of a ranking model (``rank:*``): its within-group AUC (``group_auc``), as its scores
    order the rows of a group and are not comparable across groups (the pooled AUC of MIND's real-label model was 0.47),
    against :func:`group_auc_bound`."""
    bound = group_auc_bound(shuffled)
    name = f"shuffled labels: {target} {_mean_of(shuffled)}within-group AUC <= {bound:.3g}"
    if _undefined(shuffled.get("group_auc")):
        return _one_class(name, "within-group AUC", real, "no group holds both a positive and a negative row")
    se = shuffled.get("group_auc_se")
    check = {"check": name, "passed": shuffled["group_auc"] <= bound,
             "detail": f"{_mean_of(shuffled)}validation within-group AUC {shuffled['group_auc']:.3f}{shuffles_phrase(shuffled)} "
                       f"with shuffled labels (real labels: {_fmt(real.get('group_auc'), 3)})" + _scored(real) + _groups(real)
                       + ("" if _undefined(se) else f"; the bound is 0.5 + {CHANCE_SES} x {se:.4f}, the standard error"
                          + (spread_phrase(shuffled) or " of a scorer without skill on these groups"))}
    return _without_skill(check, not _undefined(real.get("group_auc")) and real["group_auc"] <= bound)


def group_auc_bound(metrics: dict) -> float:
    """The within-group AUC a model trained on shuffled labels may reach: 0.5 + :data:`CHANCE_SES` standard errors of
    a scorer without skill on the validation groups (``group_auc_se``: chance alone exceeds it about once in 700 runs),
    :data:`MAX_SHUFFLED_AUC` where the metrics have no such error (a report of an older version). A fixed 0.55 was
    looser than MIND's real skill (0.531 on 968 impressions, the standard error 0.0095): every audit of it was
    inconclusive."""
    se = metrics.get("group_auc_se")
    return MAX_SHUFFLED_AUC if _undefined(se) else 0.5 + CHANCE_SES * se


def _mean_of(metrics: dict) -> str:
    """``mean `` where ``metrics`` are a mean over shuffles (:func:`.audit_shuffles.mean_of_shuffles`), else ``""``."""
    return "mean " if len((metrics.get("shuffles") or {}).get("values") or []) > 1 else ""


def _fmt(value: Any, digits: int) -> str:
    """``value`` with ``digits`` decimals, ``nan`` where it is undefined."""
    return "nan" if _undefined(value) else f"{value:.{digits}f}"


def _groups(metrics: dict) -> str:
    """``, N groups with a positive`` where the metrics say."""
    n = metrics.get("n_groups")
    return "" if n is None else f", {n:,} group{'' if n == 1 else 's'} with a positive"


def _rmse_key(metrics: dict) -> str:
    """The RMSE a count model and its constant are compared on: of the counts for an objective fitted on raw counts
    (its constant predicts the mean count, the best constant there, not on log1p), else of log1p."""
    from .train import RAW_COUNT_OBJECTIVES

    return "rmse" if metrics.get("objective") in RAW_COUNT_OBJECTIVES else "rmse_log1p"


def _rmse_ratio(metrics: dict, key: str) -> float | None:
    """A count model's RMSE (``key``) over its constant baseline's (None where either is missing or 0)."""
    const = (metrics.get("baselines") or {}).get("constant", {}).get(key)
    if _undefined(metrics.get(key)) or _undefined(const) or not const:
        return None
    return metrics[key] / const


def _without_skill(check: dict, no_skill: bool) -> dict:
    """``check``, passed and marked inconclusive when the real-label model has no more skill than its bound:
    a leak would give that model skill too (a rare target's or a noisy target's shuffled run does not fail)."""
    if no_skill:
        check["inconclusive"] = True
        check["passed"] = True
        check["detail"] += "; inconclusive: the real-label model has no more skill than that either"
    return check


def _undefined(value: Any) -> bool:
    """A metric the run could not compute: null in report.json, NaN in the run's report."""
    return value is None or value != value


def _one_class(check: str, metric: str, real: dict, why: str = "the validation labels are all one class") -> dict:
    """The check of a target whose validation labels are all one class (or, ``why``, whose groups are each): the
    metric is undefined, so there is nothing to measure a leak by; it passes, inconclusive, as one without real skill does."""
    return {"check": check, "passed": True, "inconclusive": True,
            "detail": f"validation {metric} undefined: {why}" + _scored(real) + "; inconclusive: nothing to measure a leak by"}


def _scored(metrics: dict) -> str:
    """`` on N validation rows (P positives)`` where the metrics say (the size that sets the shuffled RCE's noise)."""
    n, rate = metrics.get("n"), metrics.get("positive_rate")
    if n is None or rate is None:
        return ""
    positives = round(n * rate)
    return f" on {n:,} validation rows ({positives:,} positive{'' if positives == 1 else 's'})"


def audit_table(checks: list[dict[str, Any]]) -> Table:
    table = Table(title="leakage audit")
    for col in ("check", "result", "detail"):
        table.add_column(col)
    for c in checks:
        result = "[green]pass[/green]" if c["passed"] else "[red]FAIL[/red]"
        table.add_row(c["check"], result + (" [yellow](inconclusive)[/yellow]" if c.get("inconclusive") else ""), c["detail"])
    return table
