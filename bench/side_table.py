"""A long point-in-time side table: ``python bench/side_table.py [--rows 20000000] [--ingest-workers N] [--work DIR] [--json FILE]``.

Writes a RetailRocket-like ``item_properties.csv`` of ``--rows`` rows (``timestamp,itemid,property,value``: Unix-ms
times at 18 weekly snapshots, rows shuffled; 417k items; ~1,100 properties, most named by numbers, ``categoryid`` 4 %
and ``available`` 7.5 % of the rows; values like ``n552.000 639502 n720.000``), then, in a fresh process, reads it as
a side table (``read_side`` with ``keep: [categoryid, available]``) and joins a chunk of 1M events to it: seconds,
kept rows and peak RSS (the process's own ``VmHWM``, the interpreter and imports included). Writes the numbers to
``bench/results/side_table-<rows>.json`` (``--json FILE``: there instead). Nothing here asserts.

``--ingest-workers N`` measures the side table shared by the ingest's workers instead: 4 CSVs of ``--events`` / 4
events (:func:`write_events`, seeds 10-13) ingested as a table in a fresh process with ``data.ingest_workers=N``
(whole files per worker), joined point-in-time to the side table, then again with no side table; each worker's peak
RSS / USS / PSS (psutil every 0.1 s; the workers are the processes the ingest's forkserver starts, so Linux) and the
ingest process's peak RSS, to ``bench/results/side_table_workers-<rows>-w<N>.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from rapids_engage.cli import positive_int, seed_int, writable_dir
from rapids_engage.ingest.bench import device, fresh_process_json
from rapids_engage.report import write_json

T0 = 1_431_226_800_000  # 2015-05-10 03:00 UTC, ms
WEEK = 7 * 86_400_000
ITEMS = 417_053
#: Share of rows of the named properties (RetailRocket's counts over 20.3M); the rest over ~1,100 numbered ones.
NAMED = {"888": 0.15, "790": 0.09, "available": 0.075, "categoryid": 0.04, "159": 0.02, "764": 0.02, "112": 0.02,
         "283": 0.02, "364": 0.02, "678": 0.02}
BLOCK = 1_000_000
COLUMNS = ("timestamp", "itemid", "property", "value")

READ = """\
import json, sys, time
import numpy as np, pyarrow.csv as pcsv
from rapids_engage.config import SideTableSpec
from rapids_engage.ingest.side_tables import read_side
from rapids_engage.ingest.bench import own_peak_rss_mib
path, events = sys.argv[1], sys.argv[2]
spec = SideTableSpec(path=path, key="itemid", time="timestamp", time_format="unix_ms", property="property",
                     value="value", keep=["categoryid", "available"], format="csv", header=True)
start = time.perf_counter()
side = read_side(spec, strict=False, chunk_rows=1_000_000)
read_s = time.perf_counter() - start
read_rss = own_peak_rss_mib()
chunk = pcsv.read_csv(events, convert_options=pcsv.ConvertOptions(column_types={"itemid": "string"})).to_pandas()
ms = chunk.pop("timestamp").to_numpy(np.int64)
start = time.perf_counter()
joined = side.join(chunk, ms)
join_s = time.perf_counter() - start
print(json.dumps({"read_s": round(read_s, 2), "read_peak_rss_mib": round(read_rss),
                  "kept_rows": {p: c.num_rows for p, c in side.columns.items()}, "keys": len(side.keys),
                  "join_rows": len(joined), "join_s": round(join_s, 2),
                  "joined_nonblank": {p: int((joined[p] != "").sum()) for p in side.keep},
                  "peak_rss_mib": round(own_peak_rss_mib())}))
"""


#: Run by a fresh ``python``: ingest the event files with ``data.ingest_workers`` set, joined to the side table
#: (argv[4] "1") or not; print, as JSON, seconds, rows out and peak RSS: VmHWM, the process's own (Linux keeps
#: ``ru_maxrss`` across fork and exec: a child's is at least the peak of the bench process that started it).
INGEST = """\
import json, shutil, sys, time
from rapids_engage.config import load_config
from rapids_engage.ingest import ingest_table
from rapids_engage.ingest.bench import own_peak_rss_mib
config, out, workers, side = sys.argv[1:5]
cfg = load_config(config, [f"data.ingest_workers={workers}"])
spec = cfg.data.table
if side == "0":
    spec.join, spec.categorical, spec.numeric = [], [], []
shutil.rmtree(out, ignore_errors=True)
start = time.perf_counter()
result = ingest_table(cfg.data.path, out, spec, workers=cfg.data.ingest_workers)
print(json.dumps({"s": round(time.perf_counter() - start, 2), "rows_out": result.output_rows,
                  "main_peak_rss_mib": round(own_peak_rss_mib())}))
"""
CONFIG = """\
data:
  source: table
  path: {events}/events-*.csv
  table:
    time: timestamp
    time_format: unix_ms
    item: itemid
    join:
      - {{path: {side}, format: csv, header: true, key: itemid, time: timestamp, property: property, value: value,
         keep: [categoryid, available]}}
    categorical: [categoryid]
    numeric: [available]
"""
#: Seeds of the event files of ``--ingest-workers`` (one file each).
EVENT_SEEDS = (10, 11, 12, 13)


def _values(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` value texts like RetailRocket's: 1-8 tokens, each a number or ``n<number>.000``."""
    tokens = np.where(rng.random((n, 8)) < 0.5, np.char.add(np.char.add("n", rng.integers(0, 1000, (n, 8)).astype(str)),
                                                             ".000"), rng.integers(0, 1_200_000, (n, 8)).astype(str))
    size = rng.integers(1, 9, n)
    return np.array([" ".join(t[:k]) for t, k in zip(tokens.tolist(), size.tolist())], dtype=object)


def write_table(rows: int, path: Path, seed: int = 0) -> dict[str, int]:
    """Write the long side table of ``rows`` rows to ``path``; the rows per kept property."""
    rng = np.random.default_rng(seed)
    others = np.array([str(k) for k in range(1, 1_200) if str(k) not in NAMED][:1_090])
    weights = 1.0 / np.arange(1, len(others) + 1)
    names = np.concatenate([list(NAMED), others])
    share = np.concatenate([list(NAMED.values()), weights / weights.sum() * (1 - sum(NAMED.values()))])
    pool = _values(rng, min(rows, 200_000))  # the same table from 200k rows up; a small one is quick to write
    counts = {"categoryid": 0, "available": 0}
    with path.open("wb") as f, pcsv.CSVWriter(f, pa.schema([(c, pa.string()) for c in COLUMNS]), write_options=(
            pcsv.WriteOptions(quoting_style="none", include_header=False))) as out:
        f.write((",".join(COLUMNS) + "\n").encode())
        for start in range(0, rows, BLOCK):
            n = min(BLOCK, rows - start)
            prop = names[rng.choice(len(names), n, p=share)]
            value = pool[rng.integers(0, len(pool), n)]
            value[prop == "available"] = rng.integers(0, 2, int((prop == "available").sum())).astype(str)
            value[prop == "categoryid"] = rng.integers(0, 1_700, int((prop == "categoryid").sum())).astype(str)
            week = np.where(rng.random(n) < 0.4, 0, rng.integers(0, 18, n))
            at = T0 + week * WEEK + rng.integers(0, 3, n) * 1000  # a snapshot is written over a few seconds
            out.write(pa.record_batch([pa.array(at.astype(str)), pa.array(rng.integers(0, ITEMS, n).astype(str)),
                                       pa.array(prop), pa.array(value, pa.string())],
                                      names=list(COLUMNS)))
            for p in counts:
                counts[p] += int((prop == p).sum())
    return counts


def write_events(rows: int, path: Path, seed: int = 1) -> None:
    """A chunk of ``rows`` events (``timestamp,itemid``) over the side table's weeks."""
    rng = np.random.default_rng(seed)
    at = T0 + rng.integers(0, 18 * WEEK, rows)
    item = rng.integers(0, ITEMS + 1000, rows)  # a few items the side table lacks
    pcsv.write_csv(pa.table({"timestamp": at, "itemid": item.astype(str)}), path,
                   pcsv.WriteOptions(quoting_style="none"))


def _read(path: Path, events: Path) -> dict:
    """The :data:`READ` of ``path`` in a fresh process; its numbers."""
    return fresh_process_json(READ, [str(path), str(events)], f"reading {path}")


def _worker_peaks(proc: subprocess.Popen) -> list[dict[str, int]]:
    """Peak RSS / USS / PSS (MiB) of each worker of ``proc``'s ingest (the children of its forkserver), sampled every
    0.1 s until ``proc`` ends."""
    import psutil

    main, peaks = psutil.Process(proc.pid), {}
    while proc.poll() is None:
        try:
            workers = [w for helper in main.children() for w in helper.children()]
        except psutil.Error:  # ended meanwhile
            break
        for worker in workers:
            try:
                memory = worker.memory_full_info()
            except psutil.Error:
                continue
            peak = peaks.setdefault(worker.pid, dict.fromkeys(("rss", "uss", "pss"), 0))
            for k in peak:
                peak[k] = max(peak[k], getattr(memory, k))
        time.sleep(0.1)
    return [{k: round(v / 2**20) for k, v in peak.items()} for peak in peaks.values()]


def ingest_on_workers(config: Path, out: Path, workers: int, side: bool) -> dict:
    """The :data:`INGEST` of ``config`` into ``out`` on ``workers`` processes, its workers sampled; its numbers."""
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", INGEST, str(config), str(out), str(workers), "1" if side else "0"],
                                stdout=stdout, stderr=stderr, text=True)
        workers_seen = _worker_peaks(proc)
        stdout.seek(0), stderr.seek(0)
        if proc.wait():
            raise SystemExit(f"the ingest of {config} failed: {stderr.read().strip().splitlines()[-1:]}")
        return {**json.loads(stdout.read().strip().splitlines()[-1]), "workers": workers_seen}


def measure_workers(args: argparse.Namespace, work: Path, side: Path) -> dict:
    """Write the event files and the ingest's config into ``work``, ingest them with and without the side table."""
    events = work / f"ingest_events-{args.events}"
    events.mkdir(exist_ok=True)
    for seed in EVENT_SEEDS:
        if not (events / f"events-{seed}.csv").exists():
            write_events(args.events // len(EVENT_SEEDS), events / f"events-{seed}.csv", seed)
    config = work / f"ingest-{args.events}-{args.rows}-{args.seed}.yaml"
    config.write_text(CONFIG.format(events=events, side=side))
    runs = {}
    for name, joined in (("side table", True), ("no side table", False)):
        runs[name] = run = ingest_on_workers(config, work / f"ingest-w{args.ingest_workers}", args.ingest_workers, joined)
        print(f"{name}: {run['s']:.2f} s, {run['rows_out']:,} rows; main peak RSS {run['main_peak_rss_mib']:,} MiB; "
              f"workers' peak RSS / USS / PSS MiB: {', '.join('{rss} / {uss} / {pss}'.format(**w) for w in run['workers'])}",
              flush=True)
    return {"events": args.events, "event_files": len(EVENT_SEEDS), "ingest_workers": args.ingest_workers,
            "memory": "each worker's peaks, sampled every 0.1 s with psutil memory_full_info (MiB)", "runs": runs}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=positive_int, default=20_000_000, help="rows of the side table")
    p.add_argument("--events", type=positive_int, default=1_000_000,
                   help="rows of the event chunk joined to it (with --ingest-workers: of the 4 files together)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--work", default=tempfile.gettempdir(), help="folder of the side table (reused if there)")
    p.add_argument("--ingest-workers", type=positive_int,
                   help="measure a table ingest on this many worker processes instead (see above)")
    p.add_argument("--json", help="results file (default: bench/results/side_table-<rows>.json, "
                                  "side_table_workers-<rows>-w<N>.json with --ingest-workers)")
    args = p.parse_args(argv)
    work = writable_dir(p, "--work", Path(args.work) / "side_table").resolve()
    name = f"side_table_workers-{args.rows}-w{args.ingest_workers}" if args.ingest_workers else f"side_table-{args.rows}"
    out = Path(args.json) if args.json else Path(__file__).parent / "results" / f"{name}.json"
    writable_dir(p, "--json", out.parent)
    path, events = work / f"item_properties-{args.rows}-{args.seed}.csv", work / f"events-{args.events}.csv"
    if not path.exists():
        counts = write_table(args.rows, path, args.seed)
        print(f"{args.rows:,} rows ({counts}) -> {path}, {path.stat().st_size / 1e9:.2f} GB", flush=True)
    if args.ingest_workers:
        write_json(out, {"device": device(), "rows": args.rows, "bytes": path.stat().st_size, "seed": args.seed,
                         **measure_workers(args, work, path)})
        print(f"-> {out}")
        return
    if not events.exists():
        write_events(args.events, events)
    run = _read(path, events)
    print(f"read: {run['read_s']:.2f} s, peak RSS {run['read_peak_rss_mib']:,} MiB, kept {run['kept_rows']}; "
          f"join of {run['join_rows']:,} rows: {run['join_s']:.2f} s; peak RSS {run['peak_rss_mib']:,} MiB", flush=True)
    write_json(out, {"device": device(), "rows": args.rows, "bytes": path.stat().st_size, "seed": args.seed, **run})
    print(f"-> {out}")


if __name__ == "__main__":
    main()
