"""Pipeline throughput per stage, CPU and GPU in one run: ``python bench/pipeline.py --rows 1000000 --gpus 0 1``.

Each ``--gpus`` value runs the whole pipeline on the same synthetic data (features
rebuilt, so every run pays for them) and the table gives seconds and rows/s per
stage, plus the ratio of each later backend to the first. Writes
``bench/results/pipeline-<rows>.json``. A benchmark, not a test: nothing here asserts speed.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rapids_engage.pipeline import main as pipeline_main

STAGES = ("data", "split", "features", "train", "evaluate")


def device_name(gpus: str) -> str:
    if gpus == "0":
        import os

        return f"CPU: {os.cpu_count()} cores ({platform.processor() or platform.machine()})"
    try:
        import pynvml

        pynvml.nvmlInit()
        return f"GPU: {gpus} x {pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(0))}"
    except Exception:  # noqa: BLE001 - the name is informative only
        return f"GPU: {gpus}"


def run_one(gpus: str, rows: int, work: Path, extra: list[str]) -> dict:
    out = work / f"gpus-{gpus}"
    args = ["--gpus", gpus, "--rows", str(rows), "--out", str(out), "--rebuild", "--quiet",
            "--set", f"data.cache_dir={work / 'cache'}", *extra]
    if pipeline_main(args) != 0:
        raise SystemExit(f"pipeline failed for --gpus {gpus}")
    report = json.loads((out / "report.json").read_text())
    report["device"] = device_name(gpus)
    return report


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--gpus", nargs="+", default=["0"], help="backends to compare, e.g. 0 1")
    p.add_argument("--work", help="scratch directory (default: a temporary one)")
    p.add_argument("--set", action="append", default=[], help="config overrides passed to every run")
    args = p.parse_args(argv)
    extra = [x for kv in args.set for x in ("--set", kv)]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        reports = {g: run_one(g, args.rows, work, extra) for g in args.gpus}
    table = Table(title=f"pipeline, {args.rows:,} synthetic rows")
    table.add_column("stage")
    base = args.gpus[0]
    for g in args.gpus:
        table.add_column(f"--gpus {g} s", justify="right")
        table.add_column(f"--gpus {g} rows/s", justify="right")
    if len(args.gpus) > 1:
        table.add_column(f"speed-up vs --gpus {base}", justify="right")
    rows_total = args.rows
    for stage in (*STAGES, "total"):
        cells = [stage]
        secs = {}
        for g in args.gpus:
            t = reports[g]["timings_s"]
            secs[g] = sum(t.values()) if stage == "total" else t.get(stage, 0.0)
            cells += [f"{secs[g]:.1f}", f"{rows_total / secs[g]:,.0f}" if secs[g] > 0 else "-"]
        if len(args.gpus) > 1:
            cells.append(" / ".join(f"{secs[base] / secs[g]:.1f}x" if secs[g] > 0 else "-" for g in args.gpus[1:]))
        table.add_row(*cells)
    console = Console()
    console.print(table)
    for g in args.gpus:
        rce = ", ".join(f"{t} {m['rce']:.2f}" for t, m in reports[g]["targets"].items())
        console.print(f"--gpus {g} ({reports[g]['device']}): RCE {rce}")
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    summary = {g: {"device": r["device"], "timings_s": r["timings_s"], "targets": r["targets"], "rows": r["rows"]} for g, r in reports.items()}
    (results / f"pipeline-{args.rows}.json").write_text(json.dumps({"rows": args.rows, "python": sys.version, "runs": summary}, indent=1))


if __name__ == "__main__":
    main()
