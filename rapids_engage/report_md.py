"""``report.md`` — a human-readable rendering of ``report.json`` with the run's plots.

:func:`write_markdown` reads the report dict (see :mod:`rapids_engage.report` for the
contract) and tolerates missing optional keys and ``None`` / NaN values, shown as "—".
Plot paths are taken relative to the directory of ``report.md`` (what
:func:`rapids_engage.plots.write_all` returns when both live in the run's output dir).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .atomic import write_text
from .progress import byte_size
from .schema import utc
from .skew import describe
from .split import training_end

DASH = "—"

PLOT_TITLES = {
    "pr_curves": "Precision-recall curves",
    "calibration": "Calibration (reliability diagrams)",
    "feature_importance": "Feature importance",
    "learning_curves": "Learning curves",
    "count_predictions": "Count targets: predicted vs true",
    "ranking": "Ranking within groups: NDCG@k and MAP@k",
}

# (column, key in report["targets"][t], digits)
_METRIC_COLUMNS = (
    ("positive rate", "positive_rate", 4),
    ("AP", "ap", 4),
    ("RCE", "rce", 2),
    ("oracle RCE", "oracle_rce", 2),
)
_TAIL_COLUMNS = (
    ("AUC", "auc", 4),
    ("log loss", "log_loss", 4),
    ("ECE", "ece", 4),
)
_EXTRA_COLUMNS = (
    ("AP grouped", "ap_grouped", 4),
    ("RCE grouped", "rce_grouped", 2),
    ("oracle AP", "oracle_ap", 4),
)
_BASELINE_METRICS = (("AP", "ap", 4), ("RCE", "rce", 2))
#: Digits of a metric in the notes, as in the tables (RCE in percent points: 2).
_DIGITS = {key: digits for _, key, digits in (*_METRIC_COLUMNS, *_TAIL_COLUMNS, *_EXTRA_COLUMNS)}


# --------------------------------------------------------------------------- formatting


def _split_line(split: Mapping, first: str, last: str) -> str:
    """The split row: the training events, the gap purged before the validation window (``split.gap_hours``), the
    validation window."""
    cutoff, valid = int(split["cutoff"]), f"{_number(split.get('valid_hours')) or 0:g} h"
    gap = _number(split.get("gap_hours")) or 0
    if not gap:
        return f"train: events {first}up to {utc(cutoff)}; validation: the {valid} after{last}"
    purged = split.get("purged_rows")
    rows = f"{purged:,} rows" if isinstance(purged, int) else "the rows"
    return (f"train: events {first}up to {utc(training_end(split))}; gap: the {gap:g} h to {utc(cutoff)}, {rows} purged "
            f"(`split.gap_hours`: in neither split); validation: the {valid} after{last}")


def _number(value: Any) -> float | None:
    """``value`` as a finite float, else None (None, NaN, inf, non-numbers)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def fmt_number(value: Any, digits: int = 4) -> str:
    """``value`` with ``digits`` decimals, a dash when it is no finite number; never ``-0.00`` (the terminal
    table prints numbers this way too)."""
    x = _number(value)
    return DASH if x is None else f"{x:.{digits}f}".replace(f"-{0:.{digits}f}", f"{0:.{digits}f}")  # no "-0.00"


def _cell(text: Any) -> str:
    """Text safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]], right_from: int = 1) -> list[str]:
    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _pct_of_oracle(m: Mapping[str, Any]) -> str:
    rce, oracle = _number(m.get("rce")), _number(m.get("oracle_rce"))
    if rce is None or oracle is None or oracle <= 0:
        return DASH
    return f"{100.0 * rce / oracle:.1f}%"


def _rounds(m: Mapping[str, Any]) -> str:
    """Trees in the saved model: best_iteration is 0-based, the booster keeps best + 1 rounds."""
    best = m.get("best_iteration")
    return str(int(best) + 1) if isinstance(best, (int, float)) and _number(best) is not None else DASH


# --------------------------------------------------------------------------- sections


def _workers(report: Mapping[str, Any]) -> str:
    """The workers at the start, and those training ran on when a worker joined or left between."""
    start, train = report.get("n_workers", DASH), report.get("n_workers_train")
    return f"{start} at the start, {train} in training" if train is not None and train != start else str(start)


def _summary(report: Mapping[str, Any]) -> list[str]:
    rows: list[list[str]] = []
    backend = str(report.get("backend", DASH))
    if report.get("n_gpus"):
        backend += f" ({report['n_gpus']} GPU{'s' if report['n_gpus'] != 1 else ''})"
    rows.append(["backend", backend])
    rows.append(["workers", _workers(report)])
    if report.get("spilled_bytes"):
        rows.append(["spilled", f"{byte_size(report['spilled_bytes'])} written to disk by dask above cluster.memory_limit"])
    split_rows = report.get("rows") or {}
    sizes = " / ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in split_rows.items())
    rows.append(["rows", sizes or DASH])
    source = report.get("input") or {}
    if source.get("path"):
        files = (report.get("ingest") or {}).get("files")
        rows.append(["input", f"`{source['path']}`" + (f" ({files:,} file{'s' if files != 1 else ''})" if isinstance(files, int) else "")])
    if report.get("data") is not None:
        rows.append(["data", str(report["data"])])
    split = report.get("split") or {}
    if _number(split.get("cutoff")) is not None:
        first = f"from {utc(split['min_time'])} " if _number(split.get("min_time")) is not None else ""
        last = f" (to {utc(split['max_time'])})" if _number(split.get("max_time")) is not None else ""
        rows.append(["split", _split_line(split, first, last)])
    if split.get("shuffled_labels_seed") is not None:
        rows.append(["labels", f"**training labels shuffled within each day** (seed {split['shuffled_labels_seed']}): the "
                               "leakage audit's control run, whose models must show no skill"])
    store = report.get("store") or {}
    if store:
        version = f"`{store['version']}`" if store.get("version") else DASH
        hit = store.get("cache_hit")
        hit_text = "" if hit is None else (" (cache hit, reused)" if hit else " (built, cache miss)")
        if store.get("reused"):
            hit_text = f" (built; {len(store['reused']['groups'])} feature groups reused from `{store['reused']['from']}`)"
        rows.append(["feature store", version + hit_text])
        if store.get("path"):
            rows.append(["store path", f"`{store['path']}`"])
    if report.get("features") is not None:
        rows.append(["features", str(len(report["features"]))])
    if report.get("models"):
        rows.append(["models", f"`{report['models']}`"])
    if report.get("version"):
        rows.append(["rapids_engage", str(report["version"])])
    return ["## Run", "", *_table(["", ""], rows + _provenance(report), right_from=2), ""]


def _provenance(report: Mapping[str, Any]) -> list[list[str]]:
    """Rows of report["run"]: how to rerun it and with what."""
    run = report.get("run") or {}
    rows = []
    if run.get("command"):
        rows.append(["command", f"`{run['command']}`"])
    if report.get("config") is not None:
        shuffled = (report.get("split") or {}).get("shuffled_labels_seed") is not None
        rows.append(["config", "`config.yaml` beside this report: every key resolved; `--config config.yaml` reruns it"
                     + (" with the real labels (`audit` shuffles them)" if shuffled else "")])
    if run.get("started_utc"):
        rows.append(["ran", f"{run['started_utc']} to {run.get('finished_utc', DASH)} on {run.get('host') or DASH}"])
    if run.get("libraries"):
        rows.append(["libraries", ", ".join(f"{k} {v}" for k, v in run["libraries"].items()) + f", Python {run.get('python', '?')}"])
    return rows


def _baseline_names(targets: Mapping[str, Mapping[str, Any]]) -> list[str]:
    names: list[str] = []
    for m in targets.values():
        for name in (m.get("baselines") or {}):
            if name not in names:
                names.append(name)
    return names


def _of_kind(report: Mapping[str, Any], kind: str) -> dict[str, Mapping[str, Any]]:
    return {t: m for t, m in (report.get("targets") or {}).items() if m.get("kind", "binary") == kind}


def _metrics(report: Mapping[str, Any]) -> list[str]:
    targets = _of_kind(report, "binary")
    valid_rows = (report.get("rows") or {}).get("valid")
    title = "## Validation metrics" + (f" ({valid_rows:,} rows)" if isinstance(valid_rows, int) else "")
    if not report.get("targets"):
        return [title, "", "No targets.", ""]
    if not targets:
        return [title, ""]
    baselines = [n for n in _baseline_names(targets) if any(_number(((m.get("baselines") or {}).get(n) or {}).get("rce")) is not None
                                                            for m in targets.values())]  # a ranking score has no RCE
    oracle = any(_number(m.get("oracle_rce")) is not None for m in targets.values())
    first = [c for c in _METRIC_COLUMNS if oracle or c[1] != "oracle_rce"]
    header = ["target", "positives", *(c for c, _, _ in first), *(["% of oracle"] if oracle else []),
              *(c for c, _, _ in _TAIL_COLUMNS), "rounds"]
    header += [f"{c} {name}" for name in baselines for c, _, _ in _BASELINE_METRICS]
    rows = []
    for target, m in targets.items():
        row = [f"**{target}**", _positives(m), *(fmt_number(m.get(k), d) for _, k, d in first), *([_pct_of_oracle(m)] if oracle else [])]
        row += [*(fmt_number(m.get(k), d) for _, k, d in _TAIL_COLUMNS), _rounds(m)]
        for name in baselines:
            b = (m.get("baselines") or {}).get(name) or {}
            row += [fmt_number(b.get(k), d) for _, k, d in _BASELINE_METRICS]
        rows.append(row)
    lines = [title, "", *_table(header, rows), ""]
    lines += [
        "RCE: relative cross entropy vs. predicting the positive rate (RecSys 2021), in %. "
        + ("Oracle RCE: the RCE of the true probabilities (synthetic data), the best any model can reach; "
           "% of oracle = RCE / oracle RCE (part of that gap cannot be learned from this many rows: "
           "bench/README.md, \"How much of the oracle RCE is learnable\"). " if oracle else "")
        + "Rounds: trees in the saved model (best iteration + 1).",
        "",
    ]
    caveat = ranking_caveat(targets)
    if caveat:
        lines += [caveat, ""]
    extra = [(c, k, d) for c, k, d in _EXTRA_COLUMNS if any(_number(m.get(k)) is not None for m in targets.values())]
    if extra:
        rows = [[f"**{t}**", *(fmt_number(m.get(k), d) for _, k, d in extra)] for t, m in targets.items()]
        title2 = "### Grouped and oracle metrics" if oracle else "### Grouped metrics"
        lines += [title2, "", *_table(["target", *(c for c, _, _ in extra)], rows), ""]
        if any(k.endswith("_grouped") for _, k, _ in extra):
            lines += ["Grouped: the mean over 5 groups of validation rows by quantiles of the popularity column "
                      "(RecSys: the creator's follower count), as the RecSys 2021 challenge scored.", ""]
    return lines


def ranking_caveat(targets: Mapping[str, Mapping[str, Any]], table: str = "Ranking table", code: str = "`") -> str | None:
    """The line that says the AP / AUC of ``targets`` trained with a ``rank:*`` objective pool incomparable scores."""
    ranked = [t for t, m in targets.items() if _ranks(m)]
    if not ranked:
        return None
    return (f"{', '.join(ranked)}: a {code}rank:*{code} objective, whose scores order the rows of a ranking group and are not "
            f"comparable across groups; AP and AUC pool every group's rows, so read its {table}.")


def _positives(m: Mapping[str, Any]) -> str:
    rate, n = _number(m.get("positive_rate")), _number(m.get("n"))
    return DASH if rate is None or n is None else f"{round(rate * n):,}"


_RANKING_METRICS = (("MAP@10", "map@10", 4), ("NDCG@10", "ndcg@10", 4), ("MRR", "mrr", 4), ("group AUC", "group_auc", 4),
                    ("tied@10", "tied@10", 2))
_COUNT_METRICS = (("RMSE log1p", "rmse_log1p", 4), ("MAE log1p", "mae_log1p", 4), ("RMSE", "rmse", 2),
                  ("MAE", "mae", 2), ("Spearman", "spearman", 4), ("mean predicted", "mean_pred", 2))


def _beside_baselines(targets: Mapping[str, Mapping[str, Any]], columns: tuple) -> list[list[str]]:
    """Rows ``target / model-or-baseline`` with ``columns`` for the model and each of its baselines."""
    rows = []
    for target, m in targets.items():
        rows.append([f"**{target}**", "model", *(fmt_number(m.get(k), d) for _, k, d in columns), _rounds(m)])
        for name, b in (m.get("baselines") or {}).items():
            rows.append(["", name, *(fmt_number(b.get(k), d) for _, k, d in columns), DASH])
    return rows


def _ranking(report: Mapping[str, Any]) -> list[str]:
    targets = {t: m for t, m in _of_kind(report, "binary").items() if "map@10" in m}
    if not targets:
        return []
    header = ["target", "scores", *(c for c, _, _ in _RANKING_METRICS), "rounds"]
    groups = next(iter(targets.values())).get("n_groups")
    note = f"Per ranking group ({groups:,} groups with a positive), averaged." if isinstance(groups, int) else ""
    note += (" group AUC: the ROC AUC within each group with a positive and a negative row, averaged (0.5: no skill;"
             " the AUC a ranking model is audited on). tied@10: the share of the top 10 rows whose score another row of"
             " their group has too, ordered by a hash of the row key: the larger it is, the more of MAP@10 the tie-break decides.")
    return ["### Ranking", "", *_table(header, _beside_baselines(targets, _RANKING_METRICS), right_from=2), "", note, ""]


def _skew(report: Mapping[str, Any]) -> list[str]:
    """The features models lean on whose signal is gone in validation (:mod:`rapids_engage.skew`)."""
    rows = [[f"**{t}**", d["feature"], d["measure"], fmt_number(d["train"], 3), fmt_number(d["valid"], 3), f"{d['gain_share']:.0%}"]
            for t, m in (report.get("targets") or {}).items() for d in m.get("skew") or []]
    if not rows:
        return []
    return [
        "### Train/validation skew", "",
        *_table(["target", "feature", "measure", "training", "validation", "share of the gain"], rows, right_from=3), "",
        "Features the model leans on that predict the label in the training rows but not in the validation rows "
        "(ROC AUC, or Spearman correlation for counts, of the feature alone against the label, on samples; the "
        "difference is beyond noise). The model learned a relation the "
        "rows it scores do not have. Usual causes: history engagements of the last hours or days, known for training "
        "rows but not yet for rows being scored (set `features.history.label_delay` to the delay before labels arrive); "
        "counts over the training window (`cnt_<key>`), which include a training row's own future; target encodings "
        "of items new in the validation window (they get the prior). Drop the feature, or change how it is computed.", "",
    ]


def _regression(report: Mapping[str, Any]) -> list[str]:
    targets = _of_kind(report, "count")
    if not targets:
        return []
    header = ["target", "predictions", *(c for c, _, _ in _COUNT_METRICS), "rounds"]
    means = "; ".join(f"{t} {fmt_number(m.get('mean'), 2)}" for t, m in targets.items())
    objectives = "; ".join(f"{t} `{m['objective']}`" + (" on counts" if _raw_counts(m) else " on log1p(count)")
                           for t, m in targets.items() if m.get("objective"))
    return [
        "### Count targets", "",
        *_table(header, _beside_baselines(targets, _COUNT_METRICS), right_from=2), "",
        (f"Objectives: {objectives}. " if objectives else "") +
        f"Mean true count in the validation window: {means}. RMSE / MAE log1p: errors of log1p(predicted count) "
        "against log1p(count); Spearman: rank correlation of predicted and true counts. " + _count_scale(targets), "",
    ]


def _count_scale(targets: Mapping[str, Mapping[str, Any]]) -> str:
    """What the count models predict, and what the constant and creator_mean baselines beside them predict."""
    raw = [t for t, m in targets.items() if _raw_counts(m)]
    text = "" if len(raw) == len(targets) else (
        "A log1p regression predicts about the typical (median-like) count, below the mean of a skewed count: for the "
        "mean, train with `train.per_target.<target>.objective=count:poisson` (or `reg:tweedie`). ")
    if raw:
        text += (f"{', '.join(raw)}: a model of the mean count, so its constant and creator_mean baselines predict the "
                 "(creator's) mean count of the training rows.")
    return text.rstrip()


#: (metric key, higher is better) compared with each baseline in the notes, by target kind; a count
#: model of a raw-count objective (Poisson, Tweedie, gamma) fits the mean: its errors are on counts.
#: A metric's name in the notes: its column's in the tables (``AP``, ``MAP@10``, ``RMSE log1p``), not its report.json key.
_LABELS = {key: label for label, key, _ in (*_METRIC_COLUMNS, *_TAIL_COLUMNS, *_EXTRA_COLUMNS, *_RANKING_METRICS, *_COUNT_METRICS)}
_COMPARED = {"binary": (("ap", True), ("rce", True), ("map@10", True), ("ndcg@10", True)),
             "count": (("rmse_log1p", False), ("mae_log1p", False), ("spearman", True)),
             "raw_count": (("rmse", False), ("spearman", True)),
             # a rank:* model's scores order the rows of a group: AP over all rows compares them across groups
             "ranking": (("map@10", True), ("ndcg@10", True))}


def _raw_counts(m: Mapping[str, Any]) -> bool:
    from .train import RAW_COUNT_OBJECTIVES

    return m.get("kind") == "count" and m.get("objective") in RAW_COUNT_OBJECTIVES


def _ranks(m: Mapping[str, Any]) -> bool:
    """Whether a target's model was trained with a ``rank:*`` objective (scores that order a group's rows)."""
    from .train import is_ranking

    return m.get("kind", "binary") == "binary" and is_ranking(m.get("objective") or "")


def _compared(m: Mapping[str, Any]) -> tuple:
    """The ``(metric, higher is better)`` pairs the notes compare for a target's metrics ``m``."""
    if _raw_counts(m):
        return _COMPARED["raw_count"]
    if _ranks(m):
        return _COMPARED["ranking"]
    return _COMPARED.get(m.get("kind", "binary"), ())


MIN_POSITIVES = 100
MIN_ROUNDS = 5


def _quarantine_note(ingest: Mapping[str, Any] | None) -> str | None:
    """The input rows the ingest quarantined, which no model trained or was scored on; None when there are none."""
    held = _number((ingest or {}).get("quarantined_rows"))
    if not held:
        return None
    total = _number(ingest.get("input_rows")) or held
    reasons = ", ".join(f"{k} {int(v):,}" for k, v in (ingest.get("quarantine_counts") or {}).items())
    where = f"; `{ingest['quarantine']}` has each row's file, line, column and reason" if ingest.get("quarantine") else ""
    return (f"{int(held):,} of {int(total):,} input rows ({held / total:.1%}) were quarantined"
            f"{f' ({reasons})' if reasons else ''} and left out of training and validation{where}.")


def _notes(report: Mapping[str, Any]) -> list[str]:
    """What a reader should not miss: input rows left out, weak or noisy models, and baselines that beat the model."""
    notes = [n for n in (_quarantine_note(report.get("ingest")),) if n]
    if report.get("workers_lost"):
        notes.append(f"{report['workers_lost']} dask worker(s) of the start left the cluster during the run (died and "
                     "restarted, or retired); dask recomputed their tasks, so no rows were lost, but the run was slower "
                     "(killed for memory? raise cluster.memory_limit), and a model trained on fewer workers may differ "
                     "slightly from an undisturbed run's (XGBoost's histogram bins depend on how the rows spread over "
                     "the workers).")
    elif report.get("n_workers_train") not in (None, report.get("n_workers")):  # none lost: one joined
        notes.append(f"Training ran on {report['n_workers_train']} dask worker(s), not the {report['n_workers']} of the start "
                     "(a worker joined the cluster during the run): a model trained on another number of workers may "
                     "differ slightly from an undisturbed run's (XGBoost's histogram bins depend on how the rows spread "
                     "over the workers).")
    for target, m in (report.get("targets") or {}).items():
        kind = m.get("kind", "binary")
        rce, pos, rounds = _number(m.get("rce")), _number(m.get("positive_rate")), _number(m.get("best_iteration"))
        n = _number(m.get("n"))
        if kind == "binary" and rce is not None and rce <= 0:
            notes.append(f"**{target}**: RCE {fmt_number(rce, 2)} ≤ 0: no better than predicting the positive rate.")  # as in the table
        if kind == "binary" and pos is not None and n is not None and round(pos * n) == 0:
            notes.append(f"**{target}**: no positive in the validation window: its AP, RCE and AUC are undefined (—), "
                         "the rows cannot tell how good the model is.")
        elif kind == "binary" and pos is not None and n is not None and round(pos * n) < MIN_POSITIVES:
            positives = round(pos * n)
            notes.append(f"**{target}**: {positives:,} positive{'' if positives == 1 else 's'} in the validation window: "
                         "its metrics are noisy.")
        if rounds is not None and rounds + 1 < MIN_ROUNDS:
            notes.append(f"**{target}**: {int(rounds) + 1} boosting round(s): early stopping found little to learn.")
        if m.get("skew"):
            notes.append(f"**{target}**: the model leans on features that predict it in training but not in validation "
                         f"(train/serve skew): {describe(m['skew'])}; see Train/validation skew.")
        for name, b in (m.get("baselines") or {}).items():
            worse = [(k, m[k], b[k]) for k, higher in _compared(m)
                     if _number(m.get(k)) is not None and _number(b.get(k)) is not None
                     and (b[k] > m[k] if higher else b[k] < m[k])]
            if worse:
                what = ", ".join(f"{_LABELS.get(k, k)} {fmt_number(v_b, _DIGITS.get(k, 4))} vs {fmt_number(v_m, _DIGITS.get(k, 4))}"
                                 for k, v_m, v_b in worse)
                notes.append(f"**{target}**: the {name} baseline is better on {what}.")
    if not notes:
        return []
    return ["## Notes", "", *(f"- {n}" for n in notes), "",
            "Early stopping watched the validation rows these metrics come from, so they are slightly optimistic.", ""]


_GLOSSARY = (
    ("AP", "average precision: the area under the precision-recall curve (RecSys 2021)."),
    ("RCE", "relative cross entropy: the % by which the model's log loss beats predicting the positive rate of the "
     "validation rows scored (RecSys 2021); the constant baseline predicts the training rate, hence its RCE slightly below 0."),
    ("AUC / log loss / ECE", "ROC AUC; mean log loss; expected calibration error (row-weighted mean |predicted − observed| over 10 equal-width probability bins; the calibration plot's points are bins of equal rows)."),
    ("MAP@10 / NDCG@10 / MRR", "per ranking group (e.g. an impression) with a positive: mean average precision and "
     "normalised discounted cumulative gain of the top 10, reciprocal rank of the first positive; averaged over groups. "
     "group AUC: the ROC AUC of each group's rows (of the groups with a positive and a negative; ties count 1/2), averaged. "
     "tied@10: the share of top-10 rows tied with another row of their group (ties ordered by a hash of the row key)."),
    ("constant", "the training positive rate (or mean log1p count; the mean count beside a model of the mean count) for every row; for ranking, an order without information."),
    ("te_logreg / te_linreg", "logistic / linear regression on the target-encoding features alone."),
    ("creator_mean", "the creator's mean log1p count in training, or mean count beside a model of the mean count (the training mean for a new creator)."),
    ("popularity", "the item's positives in training (ties, e.g. new items, broken at random)."),
)


def _glossary(report: Mapping[str, Any]) -> list[str]:
    """The definitions of the metrics and baselines this report shows."""
    targets = report.get("targets") or {}
    shown = set(_baseline_names(targets)) | {"constant"}
    if _of_kind(report, "binary"):
        shown |= {"AP", "RCE", "AUC / log loss / ECE"}
    if any("map@10" in m for m in targets.values()):
        shown.add("MAP@10 / NDCG@10 / MRR")
    rows = [[f"**{term}**", text] for term, text in _GLOSSARY if term in shown or any(p in shown for p in term.split(" / "))]
    return ["## Reading the metrics", "", *_table(["", ""], rows, right_from=2), ""]


def _timings(report: Mapping[str, Any]) -> list[str]:
    timings = {k: _number(v) for k, v in (report.get("timings_s") or {}).items()}
    if not timings:
        return []
    total = sum(v for v in timings.values() if v is not None)
    memory = report.get("memory") or {}
    peaks = [(h, memory[k]) for h, k in (("peak host RSS GiB", "host_rss_peak_bytes"), ("peak GPU memory GiB", "gpu_used_peak_bytes"))
             if memory.get(k)]
    rows = [
        [stage, fmt_number(s, 2), f"{100.0 * s / total:.1f}%" if s is not None and total > 0 else DASH,
         *(fmt_number(_gib(p.get(stage)), 2) for _, p in peaks)]
        for stage, s in timings.items()
    ]
    rows.append(["**total**", f"**{total:.2f}**", "100.0%" if total > 0 else DASH,
                 *(fmt_number(_gib(max(p.values())), 2) for _, p in peaks)])
    note = ("`cluster` is starting and closing the cluster, `other` the rest of the run (checking the config, starting "
            "the backend): the total is the run's wall time, less loading the config and writing the report."
            if "other" in timings else  # a report of an earlier release
            "The run's wall time (\"done in\") also counts starting and stopping the cluster, "
            "drawing the plots and writing the report.")
    lines = ["## Stage timings", "", *_table(["stage", "seconds", "share", *(h for h, _ in peaks)], rows), "", note, ""]
    if peaks:
        scopes = [memory.get(k) for k in ("host_scope", "gpu_scope") if memory.get(k)]
        lines += [f"Peak memory per stage, sampled every {memory.get('interval_s')} s: " + "; ".join(scopes) + ".", ""]
    return lines + _task_seconds(report.get("task_seconds") or {})


def _task_seconds(by_stage: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Where a stage's work went: the workers' compute seconds per kind of dask task (its prefix)."""
    rows = [[stage, ", ".join(f"{name} {fmt_number(_number(v), 2)}" for name, v in spent.items() if (_number(v) or 0) >= 0.005)]
            for stage, spent in by_stage.items() if spent]
    if not rows:
        return []
    return ["Seconds the workers computed, per kind of dask task (largest first; summed over workers and threads, so "
            "they can exceed the stage's wall time):", "", *_table(["stage", "task seconds"], rows, right_from=2), ""]


def _gib(value: Any) -> float | None:
    x = _number(value)
    return None if x is None else x / 2**30


def _plots(plots: Mapping[str, str], base: Path) -> list[str]:
    if not plots:
        return []
    lines = ["## Plots", ""]
    for name, rel in plots.items():
        p = Path(rel)
        if p.is_absolute():
            p = Path(os.path.relpath(p, base))
        link = p.as_posix()
        title = PLOT_TITLES.get(name, name.replace("_", " ").capitalize())
        lines += [f"### {title}", "", f"![{title}]({link})", ""]
    return lines


# --------------------------------------------------------------------------- public


def render_markdown(report: Mapping[str, Any], plots: Mapping[str, str] | None = None, base: Path | None = None) -> str:
    """The markdown text of ``report``; ``plots`` {name: path} relative to ``base`` (the
    directory of report.md; absolute paths are made relative to it)."""
    lines = ["# Engagement prediction report", ""]
    lines += _summary(report)
    lines += _metrics(report)
    lines += _ranking(report)
    lines += _regression(report)
    lines += _skew(report)
    lines += _notes(report)
    lines += _glossary(report)
    lines += _timings(report)
    lines += _plots(plots or {}, (base or Path.cwd()).resolve())
    return "\n".join(lines).rstrip() + "\n"


def write_markdown(report: Mapping[str, Any], plots: Mapping[str, str] | None, path: str | os.PathLike) -> Path:
    """Write ``report.md`` for ``report`` (the report.json dict) with ``plots`` embedded,
    atomically (temporary file, then rename). Returns the path written."""
    path = Path(path)
    return write_text(path, render_markdown(report, plots, path.parent))
