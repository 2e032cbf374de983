"""``python -m rapids_engage.pipeline audit``: leakage checks of the features and the split.

* **shuffled labels**: the pipeline rerun with the training labels permuted
  within each day; any validation RCE above 0.5 means features carry label
  information they should not (e.g. in-fold target encoding).
* **time order**: every training event is at or before the cut-off, every
  validation event after it.
* **overlap**: no (tweet, engaging user) row is in both training and validation.

Prints pass/fail per check and writes ``<out>/audit.json``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .config import Config
from .report import write_json
from .schema import EVENT_TIME, ROW_KEY

MAX_SHUFFLED_RCE = 0.5


def split_checks(store_dir: Path, cutoff: int) -> list[dict]:
    """Time order and row overlap of a store version's train/valid splits."""
    import dask
    import dask.dataframe as dd

    train = dd.read_parquet(str(store_dir / "train"), columns=[*ROW_KEY, EVENT_TIME])
    valid = dd.read_parquet(str(store_dir / "valid"), columns=[*ROW_KEY, EVENT_TIME])
    both = train[list(ROW_KEY)].merge(valid[list(ROW_KEY)], on=list(ROW_KEY), how="inner")
    t_max, v_min, n_both = dask.compute(train[EVENT_TIME].max(), valid[EVENT_TIME].min(), both.map_partitions(len).sum())
    return [
        {"check": "time order", "passed": bool(t_max <= cutoff < v_min),
         "detail": f"train max time {int(t_max)} <= cut-off {cutoff} < valid min time {int(v_min)}"},
        {"check": "train/valid overlap", "passed": int(n_both) == 0, "detail": f"{int(n_both)} row key(s) in both"},
    ]


def run_audit(cfg: Config, console: Console, quiet: bool = False, seed: int = 0) -> dict:
    """Run the checks for ``cfg``; results in ``<cfg.out>/audit.json``."""
    from .pipeline import run

    out = Path(cfg.out)
    real = run(cfg, quiet=True, console=console)
    shuffled_cfg = copy.deepcopy(cfg)
    shuffled_cfg.out = str(out / "shuffled-labels")
    shuffled_cfg.features.store = str(out / "shuffled-labels" / "store")
    shuffled = run(shuffled_cfg, quiet=True, console=console, shuffle_seed=seed)
    checks = [
        {"check": f"shuffled labels: {t} RCE <= {MAX_SHUFFLED_RCE}", "passed": m["rce"] <= MAX_SHUFFLED_RCE,
         "detail": f"validation RCE {m['rce']:.3f} with shuffled training labels (real labels: {real['targets'][t]['rce']:.2f})"}
        for t, m in shuffled["targets"].items()
    ]
    store_dir = Path(real["store"]["path"]) / real["store"]["version"]
    checks += split_checks(store_dir, real["split"]["cutoff"])
    result = {"passed": all(c["passed"] for c in checks), "checks": checks, "store_version": real["store"]["version"]}
    write_json(out / "audit.json", result)
    if not quiet:
        console.print(audit_table(checks))
        console.print(f"audit: {'PASS' if result['passed'] else 'FAIL'} -> {out / 'audit.json'}")
    return result


def audit_table(checks: list[dict[str, Any]]) -> Table:
    table = Table(title="leakage audit")
    for col in ("check", "result", "detail"):
        table.add_column(col)
    for c in checks:
        table.add_row(c["check"], "[green]pass[/green]" if c["passed"] else "[red]FAIL[/red]", c["detail"])
    return table
