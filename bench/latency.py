"""Serving latency on 1 CPU core and GPU batch throughput: ``python bench/latency.py``.

Scores the validation-window rows of a finished run (new to its serving state)
with ``rapids_engage.serve.Scorer``, without a cluster: the feature store's fitted
state computes the features (``--features frame``, the default: ``Scorer.features``,
``FeatureBuilder.transform_frame`` on the in-memory batch; ``--features dask``:
``FeatureBuilder.transform`` on dask's synchronous scheduler, what ``predict`` runs
per cluster) and every target's booster scores them (``Scorer.scores``).

* CPU: this process pinned to one core, OMP_NUM_THREADS=1 and ``nthread=1``;
  per batch size, several batches of different rows, median and p95 ms per batch
  (features, models, total) and ms/row against the RecSys 2021 limit of 6 ms/row.
* GPU (``--gpus 1``, when RAPIDS and a GPU are present; else skipped): cudf
  frames, boosters on ``cuda``, rows/s for large batches.

Without ``--model-dir`` a run of ``--rows`` synthetic rows is trained first
(``runs/latency-<rows>``). Writes ``bench/results/latency-<device>.json`` (``--results DIR``: there instead). A
benchmark, not a test: nothing here asserts speed.
"""

from __future__ import annotations

import os

_OMP = os.environ.get("OMP_NUM_THREADS")
os.environ["OMP_NUM_THREADS"] = "1"  # before numpy / xgboost start their thread pools

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import dask  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.markup import escape  # noqa: E402
from rich.table import Table  # noqa: E402

from rapids_engage.backend import CPU, BackendError, resolve  # noqa: E402
from rapids_engage.cli import positive_int, writable_dir  # noqa: E402
from rapids_engage.features.frames import as_dask  # noqa: E402
from rapids_engage.ingest.bench import cpu_model  # noqa: E402
from rapids_engage.ingest.bench import device as machine  # noqa: E402
from rapids_engage.predict import ModelError, load_builder, load_models  # noqa: E402
from rapids_engage.report import write_json  # noqa: E402
from rapids_engage.serve import Scorer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LIMIT_MS_PER_ROW = 6.0  # RecSys Challenge 2021: inference on 1 CPU core


def ensure_run(model_dir: Path, rows: int) -> None:
    """Train a demo run into ``model_dir`` unless it already holds one."""
    if (model_dir / "report.json").exists():
        return
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # training uses its own threads
    if _OMP is not None:
        env["OMP_NUM_THREADS"] = _OMP
    cmd = [sys.executable, "-m", "rapids_engage.pipeline", "--gpus", "0", "--rows", str(rows), "--out", str(model_dir), "--quiet"]
    print("training a run first:", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)


def new_rows(report: dict, columns: list[str], time_col: str) -> pd.DataFrame:
    """The run's validation-window rows (event time > the split cut-off): the input columns only.

    One arrow chunk per column, as ``predict`` gets from a partition: the CPU
    hex-id parser (``ingest.ids._parse_cpu``) fails on multi-chunk strings.
    """
    import pyarrow.parquet as pq

    split = report["split"]
    table = pq.read_table(split["data_dir"], filters=[(time_col, ">", split["cutoff"])]).combine_chunks()
    return table.to_pandas().drop(columns=["day"], errors="ignore")[columns]


class DaskScorer(Scorer):
    """:class:`Scorer` with the features of ``FeatureBuilder.transform`` on the batch as one dask
    partition (what ``predict`` runs on a cluster), computed."""

    def features(self, rows: Any) -> Any:
        return self.builder.transform(as_dask(rows), self.layout.carried()).compute()


def time_batches(scorer: Scorer, pool: pd.DataFrame, size: int, repeats: int, seed: int, sync: Callable[[], None]) -> dict:
    """ms per batch (median, p95) of features, models and both over ``repeats`` batches of ``size`` rows.

    Each batch is a different random draw from ``pool`` (with replacement when
    ``size`` exceeds it); one untimed warm-up batch comes first.
    """
    rng = np.random.default_rng(seed)
    feats_ms, models_ms = [], []
    for i in range(repeats + 1):
        idx = rng.choice(len(pool), size, replace=size > len(pool))
        batch = scorer.backend.from_pandas(pool.iloc[idx].reset_index(drop=True))
        t0 = time.perf_counter()
        feats = scorer.features(batch)
        sync()
        t1 = time.perf_counter()
        scorer.scores(feats)
        sync()
        t2 = time.perf_counter()
        if len(feats) != size:
            raise RuntimeError(f"features of a {size}-row batch have {len(feats)} rows")
        if i:  # the first batch is the warm-up
            feats_ms.append((t1 - t0) * 1e3)
            models_ms.append((t2 - t1) * 1e3)
    total = np.add(feats_ms, models_ms)
    med = float(np.median(total))
    return {"rows": size, "batches": repeats, "features_ms": _stat(feats_ms), "models_ms": _stat(models_ms),
            "total_ms": _stat(total), "ms_per_row": med / size, "rows_per_s": size / med * 1e3}


def _stat(ms: Any) -> dict[str, float]:
    return {"median": float(np.median(ms)), "p95": float(np.percentile(ms, 95))}


def usable_core(text: str) -> int:
    """An argparse ``type``: a CPU core this process may run on (``os.sched_setaffinity`` refused any other
    in a traceback after the models were loaded)."""
    cores = sorted(os.sched_getaffinity(0))
    try:
        core = int(text)
    except ValueError:
        core = None
    if core not in cores:
        raise argparse.ArgumentTypeError(f"expected one of the cores this process may use ({', '.join(map(str, cores))}), got {text}")
    return core


def bench_cpu(model_dir: Path, pool: pd.DataFrame, sizes: list[int], repeats: int, core: int, in_memory: bool) -> dict:
    """Single-core CPU latency: pinned to ``core``, synchronous dask, 1 XGBoost thread."""
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        with dask.config.set(scheduler="synchronous"):
            t0 = time.perf_counter()
            scorer = (Scorer if in_memory else DaskScorer)(model_dir, CPU, nthread=1)
            load_s = time.perf_counter() - t0
            runs = [time_batches(scorer, pool, n, repeats, seed=n, sync=lambda: None) for n in sizes]
    finally:
        os.sched_setaffinity(0, allowed)
    for r in runs:
        r["within_limit"] = r["ms_per_row"] <= LIMIT_MS_PER_ROW
    return {"device": f"1 core (#{core}) of {cpu_model()}", "load_s": load_s, "batches": runs}


def bench_gpu(model_dir: Path, pool: pd.DataFrame, sizes: list[int], repeats: int, in_memory: bool) -> dict:
    """GPU batch throughput (cudf features, XGBoost on cuda); ``{"skipped": why}`` without RAPIDS or a GPU."""
    try:
        backend = resolve("1").init()
    except BackendError as e:
        return {"skipped": str(e)}
    import cupy

    name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"]
    name = name.decode() if isinstance(name, bytes) else name
    sync = cupy.cuda.Device().synchronize
    with dask.config.set(scheduler="synchronous"):
        t0 = time.perf_counter()
        scorer = (Scorer if in_memory else DaskScorer)(model_dir, backend)
        load_s = time.perf_counter() - t0
        runs = [time_batches(scorer, pool, n, repeats, seed=n, sync=sync) for n in sizes]
    return {"device": f"GPU: {name}", "load_s": load_s, "batches": runs}


def show(console: Console, title: str, res: dict) -> None:
    table = Table(title=title, caption="ms per batch: median (p95) over n batches; ms/row and rows/s from the median total")
    for col in ("rows", "n", "features ms", "models ms", "total ms", "ms/row", "rows/s"):
        table.add_column(col, justify="right")
    for r in res["batches"]:
        f, m, t = r["features_ms"], r["models_ms"], r["total_ms"]
        table.add_row(f"{r['rows']:,}", str(r["batches"]), f"{f['median']:.1f} ({f['p95']:.1f})", f"{m['median']:.2f} ({m['p95']:.2f})",
                      f"{t['median']:.1f} ({t['p95']:.1f})", f"{r['ms_per_row']:.4f}", f"{r['rows_per_s']:,.0f}")
    console.print(table)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", help="a finished run (default: runs/latency-<rows>, trained first if absent)")
    p.add_argument("--rows", type=positive_int, default=200_000, help="synthetic rows of the run trained when --model-dir is absent")
    p.add_argument("--sizes", type=positive_int, nargs="+", default=[1, 10, 100, 1000, 10000], help="CPU batch sizes (rows)")
    p.add_argument("--gpu-sizes", type=positive_int, nargs="+", default=[100_000, 1_000_000], help="GPU batch sizes (rows)")
    p.add_argument("--repeats", type=positive_int, default=20, help="timed CPU batches per size (after one warm-up)")
    p.add_argument("--gpu-repeats", type=positive_int, default=5, help="timed GPU batches per size (drawing a 1M-row batch costs ~1 s)")
    p.add_argument("--core", type=usable_core, default=max(os.sched_getaffinity(0)), help="CPU core to pin to")
    p.add_argument("--gpus", nargs="+", default=["0", "1"], choices=["0", "1"], help="0: CPU latency, 1: GPU throughput")
    p.add_argument("--features", choices=["frame", "dask"], default="frame",
                   help="frame: FeatureBuilder.transform_frame (no dask); dask: FeatureBuilder.transform")
    p.add_argument("--results", default=str(Path(__file__).parent / "results"),
                   help="where latency-<device>.json goes (default: bench/results)")
    args = p.parse_args(argv)
    results = writable_dir(p, "--results", args.results)

    model_dir = Path(args.model_dir) if args.model_dir else ROOT / "runs" / f"latency-{args.rows}"
    if args.model_dir is not None and not (model_dir / "report.json").is_file():
        p.error(f"--model-dir {model_dir}: no report.json there; give a finished run's --out")
    if args.model_dir is None:
        ensure_run(model_dir, args.rows)
    report = json.loads((model_dir / "report.json").read_text())
    try:
        metas, store = load_models(model_dir)
    except ModelError as e:
        p.error(str(e))
    layout = load_builder(store, CPU).layout
    pool = new_rows(report, layout.input_columns(), layout.time)
    if pool.empty:
        raise SystemExit(f"no rows after the cut-off {report['split']['cutoff']} in {report['split']['data_dir']}")
    console = Console()
    n_feat = len(next(iter(metas.values()))["features"])
    console.print(f"{model_dir}: {len(metas)} models ({', '.join(metas)}), {n_feat} features, "
                  f"{len(pool):,} new rows (validation window) to draw batches from")

    result: dict[str, Any] = {
        "device": machine(), "python": platform.python_version(), "model_dir": str(model_dir), "store": store,
        "targets": list(metas), "n_features": n_feat, "new_rows": len(pool), "limit_ms_per_row": LIMIT_MS_PER_ROW,
        "load_avg_1min": {"start": os.getloadavg()[0]},  # other processes on the machine skew the numbers
        "features_path": args.features,
    }
    for v in ("xgboost", "dask", "pandas"):
        result[v] = __import__(v).__version__
    if "0" in args.gpus:
        res = result["cpu"] = bench_cpu(model_dir, pool, args.sizes, args.repeats, args.core, args.features == "frame")
        show(console, f"single-core CPU latency, {res['device']} (state + boosters loaded in {res['load_s']:.2f} s)", res)
        for r in res["batches"]:
            verdict = "within" if r["within_limit"] else "OVER"
            console.print(f"  {r['rows']:>6,} rows/batch: {r['ms_per_row']:.4f} ms/row, {verdict} the {LIMIT_MS_PER_ROW:g} ms/row limit")
        write_json(results_file(results, "cpu", args.features), result)  # now: a GPU part cut off by a time limit keeps these
    if "1" in args.gpus:
        res = result["gpu"] = bench_gpu(model_dir, pool, args.gpu_sizes, args.gpu_repeats, args.features == "frame")
        if "skipped" in res:
            console.print(f"GPU throughput skipped: {escape(res['skipped'])}")
        else:
            show(console, f"GPU batch throughput, {res['device']}", res)
    result["load_avg_1min"]["end"] = os.getloadavg()[0]
    slug = "gpu" if "batches" in result.get("gpu", {}) else "cpu"
    if slug == "cpu" and "cpu" not in result:
        return  # nothing measured: keep the last results
    out = results_file(results, slug, args.features)
    write_json(out, result)
    console.print(f"-> {out}")


def results_file(results: Path, slug: str, features: str) -> Path:
    return results / f"latency-{slug}{'' if features == 'frame' else '-dask'}.json"


if __name__ == "__main__":
    main()
