"""Incremental ingest against a full one: ``python bench/incremental_ingest.py [--files 30] [--rows 200000] [--work DIR]
[--slide N [--late K] [--keep-ingests K|all]]``.

Writes ``--files`` daily CSVs of ``--rows`` events each (``id,user,item,ts,clicked,lang,score``: a day of unix times
each, seeded), ingests them as a table into a cache (``table_dataset``, as a run does), then writes one more day's
file and ingests the ``--files`` + 1 files twice: into the same cache (built onto the earlier entry: the new file
alone is parsed) and into a fresh cache (a full ingest, as every day before). Seconds of each, the disk blocks each
entry adds (``du``: hard-linked parts counted once) and the data lines, to
``bench/results/incremental_ingest-<files>x<rows>.json`` (``--json FILE``: there instead). ``--slide N``: a rolling
window instead, N times: the oldest file deleted and a new day's written, then the same two ingests (to
``incremental_ingest-<files>x<rows>-slide.json``); ``--late K``: each day's last K events fall after midnight (late
events in a daily dump: they share the next day's part with the next file's rows; ``...-slide-late<K>.json``);
``--keep-ingests K|all``: the cache's disk instead of the full ingests: after each slide ``data.keep_ingests`` K (all:
null, nothing pruned) is applied as a run's end does, and the whole cache's ``du`` and folders recorded
(``...-slide<N>-keep<K>.json``). Nothing here asserts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

T0 = 1_767_225_600  # 2026-01-01 UTC
HEADER = "id,user,item,ts,clicked,lang,score\n"


def write_day(folder: Path, day: int, rows: int, late: int = 0) -> Path:
    """One day's events (seeded by the day), its last ``late`` in the next day's first minutes."""
    rng = np.random.default_rng(day)
    ts = T0 + day * 86_400 + np.sort(rng.integers(0, 86_400, rows))
    if late:
        ts[-late:] = T0 + (day + 1) * 86_400 + np.arange(late)
    users, items = rng.integers(0, 200_000, rows), rng.integers(0, 50_000, rows)
    clicked, lang, score = rng.random(rows) < 0.1, rng.choice(["en", "fr", "de", "es"], rows), rng.random(rows).round(4)
    lines = [f"d{day}-{k},u{u},i{i},{t},{int(c)},{g},{s}" for k, (u, i, t, c, g, s) in
             enumerate(zip(users, items, ts, clicked, lang, score))]
    path = folder / f"events-{day:03d}.csv"
    path.write_text(HEADER + "\n".join(lines) + "\n")
    return path


def config(raw: Path, cache: Path, workers: str):
    from rapids_engage.config import TableConfig, TargetSpec, from_dict

    cfg = from_dict({"data": {"source": "table", "path": str(raw / "*.csv"), "cache_dir": str(cache),
                              "ingest_workers": workers if workers == "auto" else int(workers)}})
    spec = TableConfig(format="csv", time="ts", time_format="unix", row_id=["id"], user="user", item="item",
                       targets={"click": TargetSpec("clicked", "binary")}, categorical=["lang"], numeric=["score"])
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, table=spec))


def timed(raw: Path, cache: Path, workers: str) -> dict:
    from rapids_engage.data import table_dataset

    start = time.perf_counter()
    dataset = table_dataset(config(raw, cache, workers))
    return {"s": round(time.perf_counter() - start, 2), "line": dataset.description, "entry": str(dataset.data_dir.parent)}


def du_kib(*paths: str) -> list[int]:
    """The KiB ``du`` counts for each path, in one call (a block linked from an earlier path counted there only)."""
    out = subprocess.run(["du", "-sk", *paths], capture_output=True, text=True, check=True).stdout
    return [int(line.split()[0]) for line in out.splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=30)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--workers", default="auto")
    parser.add_argument("--work", default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--slide", type=int, default=0, help="slide the window N times (delete the oldest file, add one)")
    parser.add_argument("--late", type=int, default=0, help="with --slide: each day's last K events after midnight")
    parser.add_argument("--keep-ingests", default=None,
                        help="with --slide: the cache's disk after each slide, pruned to K folders (all: none pruned)")
    args = parser.parse_args()
    if args.slide and args.keep_ingests is not None:
        return slide_kept(args)
    if args.slide:
        return slide(args)
    with tempfile.TemporaryDirectory(dir=args.work) as work:
        raw = Path(work) / "raw"
        raw.mkdir()
        for day in range(args.files):
            write_day(raw, day, args.rows)
        first = timed(raw, Path(work) / "cache", args.workers)
        write_day(raw, args.files, args.rows)
        incremental = timed(raw, Path(work) / "cache", args.workers)
        full = timed(raw, Path(work) / "fresh", args.workers)
        first["kib"], incremental["kib"] = du_kib(first["entry"], incremental["entry"])
        full["kib"] = du_kib(full["entry"])[0]
        raw_mib = sum(f.stat().st_size for f in raw.iterdir()) / 2**20
    result = {"files": args.files, "rows_per_file": args.rows, "raw_mib": round(raw_mib, 1), "workers": args.workers,
              "first_ingest": first, "incremental": incremental, "full": full}
    out = Path(args.json) if args.json else Path(__file__).parent / "results" / f"incremental_ingest-{args.files}x{args.rows}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


def slide(args: argparse.Namespace) -> None:
    """A rolling window of ``args.files`` days, slid ``args.slide`` times: incremental (onto yesterday's entry) and full."""
    with tempfile.TemporaryDirectory(dir=args.work) as work:
        raw = Path(work) / "raw"
        raw.mkdir()
        for day in range(args.files):
            write_day(raw, day, args.rows, args.late)
        first = timed(raw, Path(work) / "cache", args.workers)
        slides = []
        for day in range(args.files, args.files + args.slide):
            (raw / f"events-{day - args.files:03d}.csv").unlink()
            write_day(raw, day, args.rows, args.late)
            incremental = timed(raw, Path(work) / "cache", args.workers)
            full = timed(raw, Path(work) / f"fresh-{day}", args.workers)
            incremental["kib"], full["kib"] = du_kib(first["entry"], incremental["entry"])[1], du_kib(full["entry"])[0]
            slides.append({"incremental": incremental, "full": full})
            subprocess.run(["rm", "-r", str(Path(work) / f"fresh-{day}")], check=True)
            first = first | {"entry": incremental["entry"]}
    result = {"files": args.files, "rows_per_file": args.rows, "late": args.late, "workers": args.workers, "slides": slides}
    name = f"incremental_ingest-{args.files}x{args.rows}-slide{f'-late{args.late}' if args.late else ''}.json"
    out = Path(args.json) if args.json else Path(__file__).parent / "results" / name
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


def slide_kept(args: argparse.Namespace) -> None:
    """A rolling window slid ``args.slide`` times, ``data.keep_ingests`` applied after each incremental ingest (as a
    run's end does; ``all``: nothing pruned): the whole cache's disk and folders after each."""
    from rapids_engage.ingest.cache_pruning import prune_ingests

    keep = None if args.keep_ingests == "all" else int(args.keep_ingests)
    with tempfile.TemporaryDirectory(dir=args.work) as work:
        raw, cache = Path(work) / "raw", Path(work) / "cache"
        raw.mkdir()
        for day in range(args.files):
            write_day(raw, day, args.rows, args.late)
        first = timed(raw, cache, args.workers)
        slides = [{"first": first, "cache_kib": du_kib(str(cache))[0]}]
        for day in range(args.files, args.files + args.slide):
            (raw / f"events-{day - args.files:03d}.csv").unlink()
            write_day(raw, day, args.rows, args.late)
            incremental = timed(raw, cache, args.workers)
            said: list[str] = []
            retention = prune_ingests(Path(incremental["entry"]) / "data", keep, said.append)
            slides.append({"incremental": incremental, "retention": retention, "line": said[0] if said else None,
                           "cache_kib": du_kib(str(cache))[0],
                           "folders": sorted(p.name for p in cache.iterdir() if p.name.startswith("table-"))})
    result = {"files": args.files, "rows_per_file": args.rows, "late": args.late, "workers": args.workers,
              "keep_ingests": keep, "slides": slides}
    name = f"incremental_ingest-{args.files}x{args.rows}-slide{args.slide}-keep{args.keep_ingests}.json"
    out = Path(args.json) if args.json else Path(__file__).parent / "results" / name
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
