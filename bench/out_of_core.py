"""Out-of-core CPU run: ``python bench/out_of_core.py --rows 3000000 --memory-limit 3GB``.

Runs ``python -m rapids_engage.pipeline --gpus 0`` (default config otherwise) in a subprocess
with 2 dask workers × 1 thread, a per-worker ``cluster.memory_limit`` below the in-memory size
of the data and ``cluster.local_directory`` as the spill directory. Every ``--interval`` seconds
(0.25 by default) it samples the RSS of the whole process tree (psutil, children recursive),
the RSS of each dask worker process and the bytes under the spill directory. After the run it
measures the data: the in-memory size of the canonical events (every parquet file of the run's
``split.data_dir`` read with pandas one at a time, ``memory_usage(deep=True)`` summed) and their
size on disk. Writes ``bench/results/out_of_core-cpu.json``. A benchmark, not a test: nothing
here asserts; the table says whether the limit and the peaks were below the data size. A failed
run (workers killed at 95 % of the limit) still writes the JSON, with ``returncode`` and ``error``.

The synthetic data are generated first (into ``<work>/cache``, outside the sampled run), so the
timed run reads them from the cache like any second run would.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

from rapids_engage.cli import positive_int, writable_dir
from rapids_engage.report import write_json

STAGES = ("data", "split", "features", "train", "evaluate")
MiB = 2**20


def _is_worker(proc: psutil.Process) -> bool:
    """A dask worker process: LocalCluster's nannies start them with multiprocessing's spawn."""
    try:
        return any("spawn_main" in part for part in proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def _rss(proc: psutil.Process) -> int:
    try:
        return proc.memory_info().rss
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return 0


def _dir_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


class Sampler(threading.Thread):
    """Peak RSS of a process tree (total and per worker) and of a spill directory, sampled."""

    def __init__(self, pid: int, spill_dir: Path, interval: float) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.spill_dir = spill_dir
        self.interval = interval
        self.stop = threading.Event()
        self.samples = 0
        self.peak_total = 0
        self.peak_driver = 0
        self.peak_worker: dict[int, int] = {}  # worker pid -> its peak RSS (itself + its children)
        self.peak_workers_sum = 0
        self.peak_spill = 0
        self.spill_seen_s: float | None = None  # seconds after the start when spill bytes first appeared
        self.max_procs = 0
        self.timeline: list[tuple[float, int, int, int]] = []  # (s, total, max worker, spill) once a second
        self._workers: dict[int, psutil.Process] = {}
        self._start = time.perf_counter()

    def run(self) -> None:
        last_kept = -1.0
        while not self.stop.is_set():
            t = time.perf_counter() - self._start
            try:
                children = self.root.children(recursive=True)
            except psutil.NoSuchProcess:
                break
            procs = [self.root, *children]
            total = sum(_rss(p) for p in procs)
            by_pid = {p.pid: p for p in children}
            for p in children:
                if p.pid not in self._workers and _is_worker(p):
                    self._workers[p.pid] = p
            workers_now = 0
            top = 0
            for wpid, w in self._workers.items():
                if wpid not in by_pid:
                    continue
                try:
                    rss = _rss(w) + sum(_rss(c) for c in w.children(recursive=True))
                except psutil.NoSuchProcess:
                    continue
                workers_now += rss
                top = max(top, rss)
                self.peak_worker[wpid] = max(self.peak_worker.get(wpid, 0), rss)
            spill = _dir_bytes(self.spill_dir) if self.spill_dir.exists() else 0
            if spill and self.spill_seen_s is None:
                self.spill_seen_s = t
            self.samples += 1
            self.max_procs = max(self.max_procs, len(procs))
            self.peak_total = max(self.peak_total, total)
            self.peak_driver = max(self.peak_driver, _rss(self.root))
            self.peak_workers_sum = max(self.peak_workers_sum, workers_now)
            self.peak_spill = max(self.peak_spill, spill)
            if t - last_kept >= 1.0:
                self.timeline.append((round(t, 2), total, top, spill))
                last_kept = t
            self.stop.wait(self.interval)


def prepare_data(rows: int, cache: Path, overrides: list[str]) -> Path:
    """Generate (or find) the synthetic data of the run (its ``--set`` overrides too) in the cache, outside
    the measured run."""
    from rapids_engage.data import synthetic_dataset
    from rapids_engage.pipeline import build_parser, config_from_args

    sets = [x for kv in (f"data.cache_dir={cache}", *overrides) for x in ("--set", kv)]
    args = build_parser().parse_args(["--gpus", "0", "--rows", str(rows), *sets])
    return synthetic_dataset(config_from_args(args)).data_dir


def data_size(data_dir: Path) -> dict:
    """In-memory (pandas, deep) and on-disk bytes of the canonical events, one file at a time."""
    import pandas as pd

    files = sorted(data_dir.rglob("*.parquet"))
    mem = rows = 0
    largest = 0
    for f in files:
        frame = pd.read_parquet(f)
        size = int(frame.memory_usage(deep=True).sum())
        mem += size
        largest = max(largest, size)
        rows += len(frame)
        del frame
    return {"files": len(files), "rows": rows, "memory_bytes": mem, "largest_file_memory_bytes": largest,
            "disk_bytes": sum(f.stat().st_size for f in files)}


def rce_line(rce: dict[str, float | None]) -> str:
    """The run's RCE per target; "-" where report.json has none (one class in the validation window)."""
    return "RCE " + ", ".join(f"{t} {'-' if v is None else f'{v:.2f}'}" for t, v in rce.items())


def limit_bytes(text: str) -> int | None:
    """The bytes a worker (one thread) gets for ``cluster.memory_limit`` ``text``, read as dask reads it (a
    size, a fraction of the memory or ``auto``); None for no limit (0)."""
    import logging

    from distributed.worker_memory import parse_memory_limit

    return parse_memory_limit(text, 1, os.cpu_count() or 1, logger=logging.getLogger(__name__))


def memory_limit(text: str) -> str:
    """An argparse ``type``: a memory limit per worker that dask applies (``3GB``, ``1.5GiB``, bytes, a fraction
    of the memory), of at least the pipeline's minimum, kept as written."""
    from rapids_engage.config import MIN_MEMORY_LIMIT

    expected = (f"expected a size such as 3GB or 1.5GiB, or a fraction of the memory, of at least "
                f"{MIN_MEMORY_LIMIT >> 20}MiB per worker, got {text!r}")
    try:
        limit = limit_bytes(text)
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(expected) from None
    if limit is None:
        raise argparse.ArgumentTypeError(f"0 is no limit (nothing would spill); {expected}")
    if limit < MIN_MEMORY_LIMIT:
        raise argparse.ArgumentTypeError(expected)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=positive_int, default=3_000_000)
    p.add_argument("--memory-limit", default="3GB", type=memory_limit, help="cluster.memory_limit, per worker (3M rows complete at 1GB with "
                   "--set data.partition_rows=50000 --set features.broadcast_limit=200000 --set train.external_memory=true)")
    p.add_argument("--n-workers", type=positive_int, default=2)
    p.add_argument("--work", default="/tmp/rapids_engage_ooc", help="scratch: cache/, out/, spill/ (out/ and spill/ are emptied)")
    p.add_argument("--interval", type=float, default=0.25, help="seconds between RSS samples")
    p.add_argument("--timeout", type=float, default=590, help="kill the run after this many seconds")
    p.add_argument("--json", default=str(Path(__file__).parent / "results" / "out_of_core-cpu.json"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="further config overrides for the run")
    args = p.parse_args(argv)
    writable_dir(p, "--json", Path(args.json).parent)
    writable_dir(p, "--work", args.work)

    from rapids_engage.config import ConfigError
    from rapids_engage.ingest.bench import device

    console = Console()
    work = Path(args.work)
    cache, out, spill = work / "cache", work / "out", work / "spill"
    for d in (out, spill):
        shutil.rmtree(d, ignore_errors=True)
    spill.mkdir(parents=True)
    t0 = time.perf_counter()
    try:
        prepare_data(args.rows, cache, args.set)
    except ConfigError as exc:  # a bad --set: one line, before the run
        p.error(str(exc))
    console.print(f"data ready in {time.perf_counter() - t0:.1f} s (cache {cache})")

    cmd = [sys.executable, "-m", "rapids_engage.pipeline", "--gpus", "0", "--rows", str(args.rows), "--out", str(out),
           "--quiet",
           "--set", f"data.cache_dir={cache}",
           "--set", f"cluster.n_workers={args.n_workers}",
           "--set", "cluster.threads_per_worker=1",
           "--set", f"cluster.memory_limit={args.memory_limit}",
           "--set", f"cluster.local_directory={spill}"]
    for override in args.set:
        cmd += ["--set", override]
    console.print("$ " + " ".join(cmd))
    log = work / "pipeline.log"
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        sampler = Sampler(proc.pid, spill, args.interval)
        sampler.start()
        try:
            rc = proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            for c in psutil.Process(proc.pid).children(recursive=True):
                c.kill()
            proc.kill()
            rc = proc.wait()
        wall = time.perf_counter() - start
        sampler.stop.set()
        sampler.join()
    log_text = log.read_text(errors="replace")
    if rc != 0:
        console.print(f"[red]pipeline exited with {rc} after {wall:.0f} s[/red]; last lines of {log}:")
        console.print("\n".join(log_text.splitlines()[-20:]), markup=False)

    report = json.loads((out / "report.json").read_text()) if rc == 0 else {}
    data_dir = Path(report["split"]["data_dir"]) if report else prepare_data(args.rows, cache, args.set)
    size = data_size(data_dir)
    limit = limit_bytes(args.memory_limit)
    peak_worker = max(sampler.peak_worker.values(), default=0)
    memory_lines = [line for line in log_text.splitlines() if "memory" in line.lower()]
    result = {
        "device": device(),
        "python": platform.python_version(),
        "command": " ".join(cmd),
        "rows": args.rows,
        "returncode": rc,
        "settings": {"n_workers": args.n_workers, "threads_per_worker": 1, "memory_limit": args.memory_limit,
                     "memory_limit_bytes": limit, "local_directory": str(spill), "sample_interval_s": args.interval},
        "data": {**size, "dir": str(data_dir)},
        "peak_rss_bytes": {
            "total": sampler.peak_total,
            "driver": sampler.peak_driver,
            "per_worker_max": peak_worker,
            "per_worker": {str(k): v for k, v in sampler.peak_worker.items()},
            "workers_sum": sampler.peak_workers_sum,
        },
        "worker_processes_seen": len(sampler.peak_worker),
        "spill": {"peak_bytes": sampler.peak_spill, "first_seen_s": sampler.spill_seen_s},
        "samples": sampler.samples,
        "wall_s": wall,
        "timings_s": report.get("timings_s", {}),
        "rce": {t: m.get("rce") for t, m in report.get("targets", {}).items()},
        "load_avg_1min_at_start": load_before,
        "error": " ".join(log_text[log_text.rfind("\nerror:") + 1:].split()) if "\nerror:" in log_text else None,
        "memory_log_lines": memory_lines[:20],
        "timeline_1s": [{"t": t, "total": tot, "max_worker": w, "spill": s} for t, tot, w, s in sampler.timeline],
    }
    write_json(Path(args.json), result)

    mib = lambda b: f"{b / MiB:,.0f}"  # noqa: E731
    table = Table(title=f"out-of-core run, {args.rows:,} synthetic rows, {result['device']}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_column("vs data in memory", justify="right")
    data_mem = size["memory_bytes"]
    rel = lambda b: f"{b / data_mem:.2f}x" if data_mem else "-"  # noqa: E731
    table.add_row("data in memory (pandas, deep) MiB", mib(data_mem), "1.00x")
    table.add_row("data on disk (parquet) MiB", mib(size["disk_bytes"]), rel(size["disk_bytes"]))
    table.add_row(f"cluster.memory_limit per worker ({args.memory_limit}) MiB", mib(limit), rel(limit))
    table.add_row("peak RSS, one worker MiB", mib(peak_worker), rel(peak_worker))
    table.add_row("peak RSS, workers together MiB", mib(sampler.peak_workers_sum), rel(sampler.peak_workers_sum))
    table.add_row("peak RSS, driver MiB", mib(sampler.peak_driver), rel(sampler.peak_driver))
    table.add_row("peak RSS, whole tree MiB", mib(sampler.peak_total), rel(sampler.peak_total))
    table.add_row("peak spill directory MiB", mib(sampler.peak_spill), rel(sampler.peak_spill))
    table.add_row("worker processes seen (restarts if > n_workers)", str(len(sampler.peak_worker)), "")
    for stage in STAGES:
        table.add_row(f"{stage} s", f"{result['timings_s'].get(stage, 0.0):.1f}", "")
    table.add_row("wall s (subprocess)", f"{wall:.1f}", "")
    console.print(table)
    if result["rce"]:
        console.print(rce_line(result["rce"]))
    console.print(f"-> {args.json}")
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
