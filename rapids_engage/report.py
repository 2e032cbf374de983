"""``report.json`` — the contract other tools read — and its terminal table.

Contract (extend, never break)::

    {"backend": "cpu"|"gpu", "n_workers": int,
     "rows": {"train": int, "valid": int},
     "targets": {"like": {"ap", "rce", "auc", "positive_rate", "oracle_rce"}, "retweet": ..., ...},
     "timings_s": {"<stage>": float}}

Extra keys so far: "version", "data", "store", "features", "models", and more
metrics per target (log_loss, ece, grouped AP/RCE, oracle_ap, best_iteration).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

REQUIRED_TARGET_KEYS = ("ap", "rce", "auc", "positive_rate", "oracle_rce")


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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(_clean(data), indent=2))
    os.replace(tmp, path)


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
        missing = [k for k in REQUIRED_TARGET_KEYS if k not in values]
        if missing:
            raise ValueError(f"report.json targets.{target} misses {missing}")


def _fmt(value: Any, digits: int = 4) -> str:
    return "—" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def metrics_table(report: dict) -> Table:
    table = Table(title=f"validation metrics ({report['backend']}, {report['rows']['valid']:,} rows)")
    for col in ("target", "positive rate", "AP", "RCE", "oracle RCE", "AUC", "RCE TE-logreg", "trees"):
        table.add_column(col, justify="right" if col != "target" else "left")
    for target, m in report["targets"].items():
        table.add_row(
            target,
            _fmt(m["positive_rate"]),
            _fmt(m["ap"]),
            _fmt(m["rce"], 2),
            _fmt(m.get("oracle_rce"), 2),
            _fmt(m["auc"]),
            _fmt(m.get("baselines", {}).get("te_logreg", {}).get("rce"), 2),
            str(m["best_iteration"] + 1) if m.get("best_iteration") is not None else "—",
        )
    return table


def print_summary(report: dict, console: Console, path: Path) -> None:
    console.print(metrics_table(report))
    timings = ", ".join(f"{k} {v:.1f}s" for k, v in report["timings_s"].items())
    console.print(f"timings: {timings}")
    console.print(f"report: {path} (and report.md, plots/)")
