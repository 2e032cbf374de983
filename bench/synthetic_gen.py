"""The synthetic generator on many cores: ``python bench/synthetic_gen.py --rows 10000000 --workers 1 16``.

Generates the dataset of ``--rows`` (the default days, seed, users and ``chunk_rows``) once per
``--workers`` count into ``--work`` (deleted after each), and prints the seconds, rows/s and speed-up
over the first count, whether every file has the same bytes as the first count's (a sha256 of each
file's path and content) and the machine's 1-minute load average before each run (on a shared machine,
other work). Writes the numbers to ``bench/results/synthetic_gen-<rows>.json`` (``--json
FILE``: there instead). Nothing here asserts.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from rapids_engage.cli import positive_int, writable_dir
from rapids_engage.ingest.bench import device
from rapids_engage.report import write_json
from rapids_engage.synthetic import SyntheticSpec, generate


def digest(root: Path) -> str:
    """One sha256 of every file under ``root``: its path and its bytes, in path order."""
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(f.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def measure(spec: SyntheticSpec, workers: int, work: Path) -> dict:
    """Seconds and digest of one generation on ``workers`` threads."""
    out = Path(tempfile.mkdtemp(prefix=f"gen-w{workers}-", dir=work))
    load = os.getloadavg()[0]  # the machine's 1-minute load before: other work on a shared machine
    try:
        start = time.perf_counter()
        generate(out, spec, workers=workers)
        seconds = time.perf_counter() - start
        return {"workers": workers, "seconds": round(seconds, 3), "rows_per_s": round(spec.rows / seconds),
                "load_before": round(load, 2), "digest": digest(out)}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=positive_int, default=1_000_000)
    p.add_argument("--workers", type=positive_int, nargs="+", default=[1, len(os.sched_getaffinity(0))])
    p.add_argument("--work", default=tempfile.gettempdir(), help="scratch folder (default: the temp folder)")
    p.add_argument("--json", help="results file (default: bench/results/synthetic_gen-<rows>.json)")
    args = p.parse_args(argv)
    work = writable_dir(p, "--work", args.work)
    out = Path(args.json) if args.json else Path(__file__).parent / "results" / f"synthetic_gen-{args.rows}.json"
    writable_dir(p, "--json", out.parent)
    spec = SyntheticSpec(rows=args.rows)
    runs = []
    for workers in args.workers:
        runs.append(measure(spec, workers, work))
        run = runs[-1]
        run["speedup"] = round(runs[0]["seconds"] / run["seconds"], 2)
        run["same_bytes"] = run["digest"] == runs[0]["digest"]
        print(f"{workers:3d} workers: {run['seconds']:8.2f} s  {run['rows_per_s']:>12,} rows/s  "
              f"x{run['speedup']:.2f}  same bytes: {run['same_bytes']}  (load before {run['load_before']})", flush=True)
    write_json(out, {"device": device(), "cores": len(os.sched_getaffinity(0)), "rows": args.rows, "runs": runs})
    print(f"-> {out}")


if __name__ == "__main__":
    main()
