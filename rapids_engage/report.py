"""``report.json`` — the contract other tools read — and its terminal table.

Contract (extend, never break)::

    {"backend": "cpu"|"gpu", "n_workers": int,
     "rows": {"train": int, "valid": int},
     "targets": {"like": {"ap", "rce", "auc", "positive_rate", "oracle_rce"}, "retweet": ..., ...},
     "timings_s": {"<stage>": float}}

Extra keys so far: "version", "data", "input" (source and path), "split" (cut-off, first and
last event time, data_dir), "store", "features", "models", "layout",
"memory" (peak host RSS and GPU memory in use per stage, see :mod:`rapids_engage.memory`),
"workers_lost", "n_workers_train" (workers when training started), "spilled_bytes" (written to disk by dask's spilling), "plots", "config", "run", "ingest",
and more metrics per target (kind, objective, log_loss, ece, grouped AP/RCE, oracle_ap, n,
best_iteration, baselines, skew; map@10 / ndcg@10 / mrr / group_auc / n_groups / tied@10 with a ranking group).
Every key is documented in README.md's "report.json" (tests/test_pipeline.py checks a run's keys against it).
Count targets (``"kind": "count"``) carry regression metrics instead of the
binary ones: {"rmse_log1p", "mae_log1p", "rmse", "mae", "spearman"}, and the mean true and
predicted counts ("mean", "mean_pred").
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .atomic import write_text
from .report_md import fmt_number, ranking_caveat
from .skew import describe

REQUIRED_TARGET_KEYS = ("ap", "rce", "auc", "positive_rate", "oracle_rce")
REQUIRED_COUNT_KEYS = ("rmse_log1p", "mae_log1p", "rmse", "mae", "spearman")
#: Terminal table columns per table (binary, ranking, count): (header, metric key, digits); "base:" keys read the baselines.
TABLE_COLUMNS = {
    "binary": (("positive rate", "positive_rate", 4), ("AP", "ap", 4), ("RCE", "rce", 2), ("oracle RCE", "oracle_rce", 2),
               ("AUC", "auc", 4), ("RCE te_logreg", "base:te_logreg:rce", 2)),
    "ranking": (("MAP@10", "map@10", 4), ("NDCG@10", "ndcg@10", 4), ("MRR", "mrr", 4), ("group AUC", "group_auc", 4),
                ("tied@10", "tied@10", 2),
                ("MAP@10 constant", "base:constant:map@10", 4), ("MAP@10 popularity", "base:popularity:map@10", 4),
                ("MAP@10 te_logreg", "base:te_logreg:map@10", 4)),
    "count": (("mean count", "mean", 2), ("mean predicted", "mean_pred", 2), ("RMSE log1p", "rmse_log1p", 4), ("MAE log1p", "mae_log1p", 4), ("Spearman", "spearman", 4),
              ("RMSE log1p constant", "base:constant:rmse_log1p", 4), ("RMSE log1p te_linreg", "base:te_linreg:rmse_log1p", 4),
              ("RMSE", "rmse", 2), ("RMSE constant", "base:constant:rmse", 2)),
}


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become null, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, data: dict) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    write_text(path, json.dumps(_clean(data), indent=2))


def validate(report: dict) -> None:
    """Raise ValueError if ``report`` breaks the report.json contract."""
    for key in ("backend", "n_workers", "rows", "targets", "timings_s"):
        if key not in report:
            raise ValueError(f"report.json misses {key!r}")
    if report["backend"] not in ("cpu", "gpu"):
        raise ValueError(f"report.json backend must be cpu or gpu, got {report['backend']!r}")
    for split in ("train", "valid"):
        if not isinstance(report["rows"].get(split), int):
            raise ValueError(f"report.json rows.{split} must be an int")
    for target, values in report["targets"].items():
        required = REQUIRED_COUNT_KEYS if values.get("kind") == "count" else REQUIRED_TARGET_KEYS
        missing = [k for k in required if k not in values]
        if missing:
            raise ValueError(f"report.json targets.{target} misses {missing}")


def _metric(m: dict, key: str) -> Any:
    if key.startswith("base:"):
        _, name, metric = key.split(":")
        return (m.get("baselines") or {}).get(name, {}).get(metric)
    return m.get(key)


def _table_targets(report: dict, table: str) -> dict[str, dict]:
    """The targets of one terminal table: binary / count by kind; ranking: those with per-group metrics."""
    if table == "ranking":
        return {t: m for t, m in report["targets"].items() if m.get("map@10") is not None}
    return {t: m for t, m in report["targets"].items() if m.get("kind", "binary") == table}


def _table_title(report: dict, title: str, table: str, targets: dict[str, dict]) -> str:
    rows = f"{report['backend']}, {report['rows']['valid']:,} rows"
    if table != "ranking":
        return f"{title}: {table} targets ({rows})"
    group = (report.get("layout") or {}).get("group") or "group"
    groups = next(iter(targets.values())).get("n_groups")
    about = [report["backend"], *([f"{groups:,} groups with a positive"] if isinstance(groups, int) else []),
             *sorted({m["objective"] for m in targets.values() if str(m.get("objective", "")).startswith("rank:")})]
    return f"{title}: ranking per {group} ({', '.join(about)})"


def metrics_tables(report: dict, title: str = "validation metrics") -> list[Table]:
    """One table per :data:`TABLE_COLUMNS` entry with targets (binary, ranking within groups, count),
    with the columns that have values (and the trees of each model, when the report has them)."""
    tables = []
    for kind, columns in TABLE_COLUMNS.items():
        targets = _table_targets(report, kind)
        if not targets:
            continue
        columns = [c for c in columns if any(_metric(m, c[1]) is not None for m in targets.values())]
        rounds = kind != "ranking" and any(m.get("best_iteration") is not None for m in targets.values())
        table = Table(title=_table_title(report, title, kind, targets))
        for header in ("target", *(c[0] for c in columns), *(["rounds"] if rounds else [])):
            table.add_column(header, justify="left" if header == "target" else "right")
        for target, m in targets.items():
            trees = [str(m["best_iteration"] + 1) if m.get("best_iteration") is not None else "—"] if rounds else []
            table.add_row(target, *(fmt_number(_metric(m, key), digits) for _, key, digits in columns), *trees)
        tables.append(table)
    return tables


def print_metrics(report: dict, console: Console, title: str = "validation metrics") -> None:
    """The metrics tables of ``report`` (a run's, or predict's of the scored rows), with the caveat of ``rank:*`` targets' AP / AUC."""
    for table in metrics_tables(report, title):
        console.print(table)
    caveat = ranking_caveat(report["targets"], "ranking table (MAP@10, NDCG@10)", code="")
    if caveat:
        console.print(caveat, highlight=False, markup=False)


def print_summary(report: dict, console: Console, path: Path) -> None:
    print_metrics(report, console)
    for target, m in report["targets"].items():
        if m.get("skew"):
            console.print(f"skew: {target} leans on features that predict it in training but not in validation: "
                          f"{describe(m['skew'])} (report.md: Train/validation skew)", highlight=False, markup=False)
    timings = ", ".join(f"{k} {v:.1f}s" for k, v in report["timings_s"].items())
    console.print(f"timings: {timings}")
    console.print(f"report: {path} (and report.md{', plots/' if report.get('plots') else ''})")
