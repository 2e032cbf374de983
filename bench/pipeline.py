"""Pipeline throughput per stage, CPU and GPU in one run: ``python bench/pipeline.py --rows 1000000 --gpus 0 1``.

The synthetic data are generated first, outside the timings (every run's data stage reads
them from the cache). Each ``--gpus`` value runs the whole pipeline on them (features
rebuilt, so every run pays for them), then its store stages again (a cache hit: what the
second run of a config pays for its features), and the table gives seconds and rows/s per
stage, peak host RSS per stage (driver + local workers) and, on GPU, peak device memory in
use (the report's ``memory`` section), plus the ratio of each later backend to the first (none
between two CPU runs: ``--gpus auto`` without a GPU runs on the CPU, and is labelled so). Writes
``bench/results/pipeline-<rows>.json`` (``--results DIR``: there instead); the exit status is 1
when a backend's run failed (its error is printed and in the JSON). Several ``--rows`` values (``--rows 1000000 10000000``)
run each size in turn and end with the scaling table: seconds per stage and t(N) / t(previous N).
A benchmark, not a test: nothing here asserts speed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rapids_engage.cli import positive_int, writable_dir
from rapids_engage.ingest.bench import cpu_model
from rapids_engage.pipeline import KNOWN_ERRORS
from rapids_engage.pipeline import main as pipeline_main
from rapids_engage.report import write_json

STAGES = ("data", "cluster", "split", "features", "train", "evaluate", "plots", "other")  # report.json's timings_s, in run order


def device_name(gpus: str) -> str:
    if gpus == "0":
        import os

        return f"CPU: {os.cpu_count()} cores ({cpu_model()})"
    try:
        import pynvml

        pynvml.nvmlInit()
        return f"GPU: {gpus} x {pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(0))}"
    except Exception:  # noqa: BLE001 - the name is informative only
        return f"GPU: {gpus}"


def peak_gib(peaks: dict[str, int], stage: str) -> str:
    """A stage's peak in GiB ("total": the run's), or "-" when not sampled."""
    value = max(peaks.values(), default=None) if stage == "total" else peaks.get(stage)
    return "-" if value is None else f"{value / 2**30:.2f}"


def prepare_data(rows: int, work: Path, extra: list[str], console: Console) -> None:
    """Generate (or find) the runs' synthetic data in ``work/cache`` before any backend is timed: every
    run's data stage then reads the cache, and no backend's seconds hold the generation."""
    from rapids_engage.data import synthetic_dataset
    from rapids_engage.pipeline import build_parser, config_from_args

    argv = ["--gpus", "0", "--rows", str(rows), "--set", f"data.cache_dir={work / 'cache'}", *extra]
    try:
        cfg = config_from_args(build_parser().parse_args(argv))
    except KNOWN_ERRORS:
        return  # a bad --set: each run reports it
    t0 = time.perf_counter()
    dataset = synthetic_dataset(cfg)
    console.print(f"data ready in {time.perf_counter() - t0:.1f} s, outside the timings: {dataset.description}")


def run_one(gpus: str, rows: int, work: Path, extra: list[str]) -> dict:
    """The report of one pipeline run (its stage lines go to stderr: a log shows how far a cut-off run got),
    or ``{"error": ...}`` when it failed: the other backends' results still count."""
    out = work / f"gpus-{gpus}"
    args = ["--gpus", gpus, "--rows", str(rows), "--out", str(out), "--rebuild",
            "--set", f"data.cache_dir={work / 'cache'}", *extra]
    try:  # --debug: a failure reaches here, so the JSON says why (a known one in its line, any other with its traceback)
        code = pipeline_main([*args, "--debug"])
    except Exception as exc:  # noqa: BLE001 - recorded: one failing backend must not lose the others
        if not isinstance(exc, KNOWN_ERRORS):
            traceback.print_exc()
        return {"error": f"{type(exc).__name__}: {exc}", "device": device_name(gpus)}
    if code != 0:
        return {"error": f"pipeline exit code {code}", "device": device_name(gpus)}
    report = json.loads((out / "report.json").read_text())
    report["device"] = device_name(gpus if report.get("backend") == "gpu" else "0")  # --gpus auto without a GPU ran on the CPU
    report["cache_hit"] = cache_hit_cost(args, out, report)
    return report


def cache_hit_cost(args: list[str], out: Path, first: dict) -> dict:
    """The same command again, its store stages alone (``features``): the seconds of its feature stage (a
    cache hit: fingerprint the input, check the version's manifest and files) against the first build's."""
    again = out.with_name(out.name + "-again")
    argv = ["features", *[a for a in args if a != "--rebuild"], "--out", str(again), "--store", str(out / "store")]
    if pipeline_main(argv) != 0:
        return {"error": "the second run failed (its error line is above)"}
    summary = json.loads((again / "features.json").read_text())
    seconds, built = summary["timings_s"]["features"], first["timings_s"]["features"]
    return {"hit": summary["store"]["cache_hit"], "features_s": seconds, "of_first_build": seconds / built if built else None}


def stage_table(rows: int, gpus: list[str], reports: dict[str, dict]) -> Table:
    """Seconds, rows/s and peak memory per stage for each backend, and the speed-up over the first."""
    table = Table(title=f"pipeline, {rows:,} synthetic rows")
    table.add_column("stage")
    base = gpus[0]
    for g in gpus:
        table.add_column(f"--gpus {g} s", justify="right")
        table.add_column(f"--gpus {g} rows/s", justify="right")
        table.add_column(f"--gpus {g} peak RSS GiB", justify="right")
        if on_gpu(reports[g]):
            table.add_column(f"--gpus {g} peak GPU GiB", justify="right")
    if len(gpus) > 1:
        table.add_column(f"speed-up vs --gpus {base}", justify="right")
    for stage in (*STAGES, "total"):
        cells = [stage]
        secs = {}
        for g in gpus:
            secs[g] = stage_seconds(reports[g], stage)
            cells += [f"{secs[g]:.1f}", f"{rows / secs[g]:,.0f}" if secs[g] > 0 else "-"]
            memory = reports[g].get("memory", {})
            for key in ("host_rss_peak_bytes", *(("gpu_used_peak_bytes",) if on_gpu(reports[g]) else ())):
                cells.append(peak_gib(memory.get(key) or {}, stage))
        if len(gpus) > 1:
            cells.append(" / ".join(speed_up(reports[base], reports[g], secs[base], secs[g]) for g in gpus[1:]))
        table.add_row(*cells)
    cells = ["features, 2nd run (cache hit)"]
    for g in gpus:
        hit = reports[g].get("cache_hit") or {}
        share = f"{hit['of_first_build']:.1%} of the build" if hit.get("of_first_build") is not None and hit.get("hit") else "not a hit"
        cells += [f"{hit['features_s']:.2f}" if "features_s" in hit else "-", share, "", *(("",) if on_gpu(reports[g]) else ())]
    table.add_row(*cells, *(("",) if len(gpus) > 1 else ()))
    return table


def on_gpu(report: dict) -> bool:
    """Whether the run ran on GPUs (``--gpus auto`` on a machine without one runs on the CPU)."""
    return report.get("backend") == "gpu"


def speed_up(base: dict, other: dict, base_s: float, other_s: float) -> str:
    """``other``'s speed-up over ``base``; none between two CPU runs (``--gpus 0 auto`` without a GPU)."""
    if not (on_gpu(base) or on_gpu(other)):
        return "- (CPU vs CPU)"
    return f"{base_s / other_s:.1f}x" if other_s > 0 else "-"


def scaling_table(by_rows: dict[int, dict[str, dict]], gpus: list[str]) -> Table:
    """Seconds per stage at each size and t(larger) / t(smaller) between consecutive sizes."""
    sizes = sorted(by_rows)
    table = Table(title="scaling: seconds per stage, and the ratio to the previous size")
    table.add_column("--gpus")
    table.add_column("stage")
    for i, n in enumerate(sizes):
        table.add_column(f"{n:,}", justify="right")
        if i:
            table.add_column(f"t({n:,}) / t({sizes[i - 1]:,})", justify="right")
    for g in gpus:
        for stage in (*STAGES, "total"):
            cells = [g, stage]
            for i, n in enumerate(sizes):
                t = stage_seconds(by_rows[n][g], stage)
                cells.append(f"{t:.1f}")
                if i:
                    prev = stage_seconds(by_rows[sizes[i - 1]][g], stage)
                    cells.append(f"{t / prev:.2f}" if prev > 0 else "-")
            table.add_row(*cells)
    return table


def rce_text(rce: float | None) -> str:
    """An RCE for the console; "-" where report.json has none (one class in the validation window)."""
    return "-" if rce is None else f"{rce:.2f}"


def stage_seconds(report: dict, stage: str) -> float:
    timings = report["timings_s"]
    return sum(timings.values()) if stage == "total" else timings.get(stage, 0.0)


def provenance() -> dict:
    """Date and commit of the measured code, for bench/README.md."""
    import datetime
    import subprocess

    import os

    try:
        commit = os.environ.get("COMMIT") or subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False, cwd=Path(__file__).parent
        ).stdout.strip() or None
    except OSError:
        commit = None
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "commit": commit,
            "python": sys.version}


def main(argv: list[str] | None = None) -> int:
    """Exit status 1 when a run failed (its error is in the table's place and in the JSON), else 0."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=positive_int, nargs="+", default=[1_000_000],
                   help="rows of synthetic data; several values measure the scaling curve, e.g. 1000000 10000000")
    p.add_argument("--gpus", nargs="+", default=["0"], help="backends to compare, e.g. 0 1")
    p.add_argument("--work", help="scratch directory (default: a temporary one)")
    p.add_argument("--set", action="append", default=[], help="config overrides passed to every run")
    p.add_argument("--results", default=str(Path(__file__).parent / "results"),
                   help="where pipeline-<rows>.json goes (default: bench/results)")
    args = p.parse_args(argv)
    extra = [x for kv in args.set for x in ("--set", kv)]
    console = Console()
    results = writable_dir(p, "--results", args.results)
    by_rows: dict[int, dict[str, dict]] = {}
    for rows in args.rows:
        reports: dict[str, dict] = {}
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(args.work or tmp) / f"rows-{rows}"
            prepare_data(rows, work, extra, console)
            for g in args.gpus:
                reports[g] = run_one(g, rows, work, extra)
                write_results(results / f"pipeline-{rows}.json", rows, args.set, reports)  # after each: a cut-off run keeps its results
        done = [g for g in args.gpus if "error" not in reports[g]]
        for g in args.gpus:
            if g not in done:
                console.print(f"--gpus {g} ({reports[g]['device']}) failed: {reports[g]['error']}")
        if done:
            console.print(stage_table(rows, done, reports))
        for g in done:
            rce = ", ".join(f"{t} {rce_text(m.get('rce'))}" for t, m in reports[g]["targets"].items())
            console.print(f"--gpus {g} ({reports[g]['device']}): RCE {rce}")
            spent = (reports[g].get("task_seconds") or {}).get("features") or {}
            if spent:  # where the feature stage's work went: the profile a missed target needs
                top = ", ".join(f"{name} {s:.2f}" for name, s in list(spent.items())[:6])
                console.print(f"--gpus {g}: feature stage, worker seconds per kind of task: {top}")
        by_rows[rows] = {g: reports[g] for g in done}
    ok = [g for g in args.gpus if all(g in r for r in by_rows.values())]
    if len(by_rows) > 1 and ok:
        console.print(scaling_table(by_rows, ok))
    return int(any(len(done) < len(args.gpus) for done in by_rows.values()))


def write_results(path: Path, rows: int, overrides: list[str], reports: dict[str, dict]) -> None:
    """``pipeline-<rows>.json``: each backend's timings, memory and metrics, or its error."""
    summary = {g: {"device": r["device"], "error": r["error"]} if "error" in r else
               {"device": r["device"], "timings_s": r["timings_s"], "memory": r.get("memory"), "targets": r["targets"],
                "rows": r["rows"], "n_workers": r["n_workers"], "cache_hit": r.get("cache_hit"),
                "task_seconds": r.get("task_seconds")} for g, r in reports.items()}
    write_json(path, {"rows": rows, **provenance(), "overrides": overrides, "runs": summary})


if __name__ == "__main__":
    sys.exit(main())
