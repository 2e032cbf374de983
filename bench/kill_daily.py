"""A daily job killed at random moments (SIGKILL), then run again: ``python bench/kill_daily.py [--kills 50] [--seed 0]
[--work DIR] [--json FILE]``.

The job (:func:`job`, one process group): ``run`` of a rolling window of small daily CSVs (``data.source: table``,
``data.keep_ingests: 1``, ``features.keep_versions: 1``, a shared ``--store``), then ``predict --out`` of the run's
ingested rows. Day 0 runs whole once (the base, copied for each trial with its hard links); day 1 slides the window
(the oldest file deleted, a new day's added) and runs whole once more: the reference. Each trial starts from the
base, kills day 1's job after a delay drawn in [0, the reference's seconds) (``--repeat K``: K kills in a row), runs
it again to the end and compares (:func:`differences`): the ingest folders and the rows of the newest, the store's
versions and their files' bytes, the predictions, no ``.tmp*`` / ``.trash*`` leftover, the same lock files, and no rerun held
longer than ``--rerun-timeout`` seconds. The stage each kill landed in is the last line the job logged. Results to
``bench/results/kill_daily.json`` (``--json FILE`` elsewhere); exit status 1 when a trial differed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

T0 = 1_767_225_600  # 2026-01-01 UTC
DAY = 86_400
HEADER = "id,user,item,ts,clicked,lang\n"
WINDOW = 3  # daily files in data.path
ROWS = 120  # rows per day


def write_day(raw: Path, day: int) -> Path:
    """One day's events (seeded by the day), its last in the next day's first minute (it shares that day's part)."""
    rng = np.random.default_rng(day)
    ts = T0 + day * DAY + np.sort(rng.integers(0, DAY, ROWS))
    ts[-1] = T0 + (day + 1) * DAY + 30
    users, items, clicked = rng.integers(0, 12, ROWS), rng.integers(0, 30, ROWS), rng.random(ROWS) < 0.3
    lines = [f"d{day}-{k},u{u},i{i},{t},{int(c)},{'en' if k % 3 else 'fr'}"
             for k, (u, i, t, c) in enumerate(zip(users, items, ts, clicked))]
    lines.insert(5, f"d{day}-bad,u1,i1,yesterday,1,en")  # one quarantined row a file
    path = raw / f"events-{day:03d}.csv"
    path.write_text(HEADER + "\n".join(lines) + "\n")
    return path


CONFIG = """\
data:
  source: table
  path: {raw}/*.csv
  cache_dir: {work}/cache
  ingest_workers: 1
  keep_ingests: 1
  table:
    format: csv
    time: ts
    time_format: unix
    row_id: [id]
    user: user
    item: item
    targets:
      click: {{column: clicked, kind: binary}}
    categorical: [lang]
cluster:
  n_workers: 1
  threads_per_worker: 1
split:
  valid_hours: 24
features:
  keep_versions: 1
  target_encoding:
    keys: [[user], [item]]
    n_folds: 2
  counts: [[user]]
train:
  targets: [click]
  num_boost_round: 5
"""


def prepare(work: Path) -> None:
    """``work``: the raw window of days 0..WINDOW-1 and the config."""
    raw = work / "raw"
    raw.mkdir(parents=True)
    for day in range(WINDOW):
        write_day(raw, day)
    (work / "daily.yaml").write_text(CONFIG.format(raw=raw, work=work))


def slide(work: Path, day: int) -> None:
    """The window slid to end at ``day``: the oldest file deleted, ``day``'s written."""
    (work / "raw" / f"events-{day - WINDOW:03d}.csv").unlink()
    write_day(work / "raw", day)


def job(work: Path) -> str:
    """The daily job as a shell line: the run, then predict of the rows it read."""
    py = f"{sys.executable} -m rapids_engage.pipeline"
    run = f"{py} --config {work}/daily.yaml --gpus 0 --no-plots --out {work}/runs/daily --store {work}/runs/store"
    data_dir = (f"$({sys.executable} -c \"import json,sys; print(json.load(open(sys.argv[1]))['split']['data_dir'])\" "
                f"{work}/runs/daily/report.json)")
    predict = f"{py} predict --gpus 0 --model-dir {work}/runs/daily --input {data_dir} --out {work}/preds"
    return f"set -e; {run}; {predict}"


#: The calls :func:`job_in_process` counts and can die at: every rename, link, unlink and directory removal of the job's
#: own process (its dask workers' are not counted; they die with it).
MUTATIONS = (("os", "rename"), ("os", "replace"), ("os", "link"), ("os", "unlink"), ("os", "rmdir"), ("shutil", "rmtree"))


def die_before(die_at: int | str) -> list[str]:
    """:data:`MUTATIONS` of this process counted from now on, its process group killed (SIGKILL) just before the
    ``die_at``-th (0: never; ``"<name> in <function>#k"``: the k-th call of that label, numbered from 1, as the
    calls' order varies a little from run to run): the list they are recorded in (each call's label: its name and the
    project's function that made it)."""
    import importlib
    import traceback

    calls: list[str] = []
    label, _, nth = str(die_at).rpartition("#") if "#" in str(die_at) else ("", "", "")

    def counted(real, name):
        def call(*args, **kwargs):
            frames = [f for f in traceback.extract_stack(limit=12) if "rapids_engage" in f.filename]
            calls.append(f"{name} in {frames[-1].name if frames else '?'}")
            if (calls.count(label) == int(nth) and calls[-1] == label) if label else len(calls) == die_at:
                os.killpg(os.getpgrp(), signal.SIGKILL)
            return real(*args, **kwargs)
        return call

    for module, name in MUTATIONS:
        module = importlib.import_module(module)
        setattr(module, name, counted(getattr(module, name), name))
    return calls


def job_in_process(work: Path, die_at: int | str, calls_json: Path | None) -> int:
    """The daily job in this process (``run``, then ``predict``), killed just before its ``die_at``-th mutation
    (:func:`die_before`); ``calls_json``: the calls it made, written at the end."""
    from rapids_engage.pipeline import main as pipeline

    calls = die_before(die_at)
    base = ["--gpus", "0", "--quiet"]
    code = pipeline(["--config", f"{work}/daily.yaml", *base, "--no-plots", "--out", f"{work}/runs/daily",
                     "--store", f"{work}/runs/store"])
    if code == 0:
        data_dir = json.loads((work / "runs" / "daily" / "report.json").read_text())["split"]["data_dir"]
        code = pipeline(["predict", *base, "--model-dir", f"{work}/runs/daily", "--input", data_dir, "--out", f"{work}/preds"])
    if calls_json:
        calls_json.write_text(json.dumps(calls))
    return code


def start(work: Path, log: Path, die_at: int | str | None = None, calls_json: Path | None = None) -> subprocess.Popen:
    """The job in a process group of its own: the shell line of :func:`job`, or with ``die_at`` :func:`job_in_process`."""
    argv = ["bash", "-c", job(work)] if die_at is None else [
        sys.executable, __file__, "--job", str(work), "--die-at", str(die_at), *(["--calls-json", str(calls_json)] if calls_json else [])]
    with open(log, "w") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def run_whole(work: Path, log: Path, timeout: float, calls_json: Path | None = None) -> float:
    """The job to its end (its seconds; ``calls_json``: in process, its calls recorded); a RuntimeError with its log's
    tail when it fails or outlasts ``timeout``."""
    began = time.monotonic()
    proc = start(work, log, None if calls_json is None else 0, calls_json)
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise RuntimeError(f"the job ran past {timeout:.0f} s: {log.read_text()[-1500:]}") from None
    if code != 0:
        raise RuntimeError(f"the job failed ({code}): {log.read_text()[-1500:]}")
    return time.monotonic() - began


def kill_after(work: Path, log: Path, delay: float) -> str:
    """The job started and its process group killed (SIGKILL) after ``delay`` s: the last line it logged then
    ('ended' when it ended first)."""
    proc = start(work, log)
    try:
        proc.wait(delay)
        return "ended"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    lines = [line.strip() for line in log.read_text().splitlines() if line.strip()]
    return lines[-1][:160] if lines else "(nothing logged)"


def kill_at_call(work: Path, log: Path, call: int | str, timeout: float) -> str:
    """The job in process, killed just before its ``call``-th mutation (:func:`die_before`): 'killed', or how it
    ended."""
    proc = start(work, log, call)
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return "hung"
    return "killed" if code == -signal.SIGKILL else f"exit {code}"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def state(work: Path) -> dict:
    """What the next day sees and the user reads, paths relative to ``work``: the ingest folders and their files'
    rows, the store's versions and their files' bytes (``manifest.json`` less its ``created`` time), the
    predictions' rows, leftovers (``.tmp*``, ``.trash*``) and lock files anywhere."""
    import pyarrow.parquet as pq

    cache, store, preds = work / "cache", work / "runs" / "store", work / "preds" / "predictions"
    out: dict = {"ingests": {}, "versions": {}, "leftovers": [], "locks": []}
    for folder in sorted(p for p in cache.iterdir() if p.name.startswith("table-")):
        parts = sorted((folder / "data").rglob("*.parquet"))
        rows = pq.read_table(parts).to_pandas().sort_values("row_id") if parts else None
        quarantine = folder / "quarantine.parquet"
        out["ingests"][folder.name] = {
            "rows": _digest_frame(rows), "complete": (folder / "ingest.json").is_file(),
            "quarantine": pq.read_table(quarantine).num_rows if quarantine.is_file() else None}
    for version in sorted(p for p in store.iterdir() if not p.name.startswith(".")) if store.is_dir() else []:
        files = {}
        for f in sorted(version.rglob("*")):
            if f.is_file():
                key = str(f.relative_to(version))
                if f.name == "manifest.json":
                    manifest = json.loads(f.read_text())
                    manifest.pop("created", None)
                    files[key] = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]
                else:
                    files[key] = _digest(f)
        out["versions"][version.name] = files
    parts = sorted(preds.glob("*.parquet")) if preds.is_dir() else []
    out["predictions"] = _digest_frame(pq.read_table(parts).to_pandas()) if parts else None
    for path in sorted(work.rglob("*")):
        rel = str(path.relative_to(work))
        if path.name.startswith((".tmp", ".trash")):  # with what it holds, to tell whose it is
            inside = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
            out["leftovers"].append(f"{rel} {inside}" if inside else rel)
        elif path.name.endswith(".lock"):
            out["locks"].append(rel)
    return out


def _digest_frame(frame) -> str | None:
    """Rows in a stable order, hashed: the same rows and values give the same digest."""
    if frame is None:
        return None
    import pandas as pd

    frame = frame.sort_values(list(frame.columns)).reset_index(drop=True)
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).values.tobytes()
                          + str(list(frame.dtypes.astype(str))).encode() + str(list(frame.columns)).encode()).hexdigest()[:16]


def differences(got: dict, want: dict) -> list[str]:
    """What ``got`` (a trial's state) differs from ``want`` (the reference's) in, one line each."""
    lines = []
    if got["leftovers"]:
        lines.append(f"leftovers: {got['leftovers']}")
    for key in ("ingests", "versions", "predictions", "locks"):
        if got[key] != want[key]:
            lines.append(f"{key}: {json.dumps(got[key], sort_keys=True)[:600]} != {json.dumps(want[key], sort_keys=True)[:600]}")
    return lines


def base(root: Path, timeout: float) -> tuple[Path, Path, float, dict, list[str]]:
    """``root/base``: day 0 run whole (the state each trial starts from); ``root/work``: the reference's day 1 (in
    process), its seconds, its state and its mutation calls. Every trial runs in ``root/work`` as the reference did:
    paths are part of what is stored."""
    base_dir, work = root / "base", root / "work"
    prepare(work)
    run_whole(work, root / "day0.log", timeout)
    shutil.move(work, base_dir)
    restore(base_dir, work)
    slide(work, WINDOW)
    seconds = run_whole(work, root / "reference.log", timeout, root / "calls.json")
    return base_dir, work, seconds, state(work), json.loads((root / "calls.json").read_text())


def restore(base_dir: Path, work: Path) -> None:
    """``work`` made a copy of ``base_dir`` (``cp -a``: hard links between ingest folders kept)."""
    if work.exists():
        shutil.rmtree(work)
    subprocess.run(["cp", "-a", str(base_dir), str(work)], check=True)


def trial(base_dir: Path, work: Path, kills: list, rerun_timeout: float) -> dict:
    """Day 1 from the base, killed at each of ``kills`` in turn (a float: seconds after its start; else before that
    mutation call, :func:`die_before`), then run to its end."""
    restore(base_dir, work)
    slide(work, WINDOW)
    log = work.parent / "trial.log"
    ends = [kill_after(work, log, k) if isinstance(k, float) else kill_at_call(work, log, k, rerun_timeout) for k in kills]
    try:
        run_whole(work, log, rerun_timeout)
        error = None
    except RuntimeError as exc:
        error = str(exc)
    return {"kills": [round(k, 2) if isinstance(k, float) else k for k in kills], "ends": ends, "rerun_error": error,
            "state": None if error else state(work)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=50, help="trials (each kills day 1's job, then reruns it)")
    parser.add_argument("--at-calls", action="store_true",
                        help="kill just before a mutation call drawn from the reference's (else after a random delay)")
    parser.add_argument("--points", default=None,
                        help="with --at-calls: the calls to kill before, e.g. 43,67,88 (numbered as the reference's) or "
                             "'rmdir in build#3,unlink in release#1' (the k-th call of that label)")
    parser.add_argument("--repeat", type=int, default=1, help="kills in a row before the rerun")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default=None, help="scratch directory (default: a temporary one, deleted)")
    parser.add_argument("--rerun-timeout", type=float, default=300.0)
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "kill_daily.json"))
    parser.add_argument("--job", default=None, help=argparse.SUPPRESS)  # the job in process (start)
    parser.add_argument("--die-at", default="0", help=argparse.SUPPRESS)
    parser.add_argument("--calls-json", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.job:
        return job_in_process(Path(args.job), int(args.die_at) if args.die_at.isdigit() else args.die_at, Path(args.calls_json) if args.calls_json else None)
    if args.kills < 1 or args.repeat < 1:
        parser.error("--kills and --repeat must be >= 1")
    import tempfile

    root = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="kill_daily-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        base_dir, work, seconds, want, calls = base(root, args.rerun_timeout)
        print(f"reference day 1: {seconds:.1f} s, {len(calls)} mutation calls", flush=True)
        rng, trials = random.Random(args.seed), []
        # --at-calls: the kill points drawn without replacement (every call once when --kills is as many), in order
        points = ([int(p) if p.isdigit() else p for p in args.points.split(",")] if args.points else
                  sorted(rng.sample(range(1, len(calls) + 1), min(args.kills * args.repeat, len(calls)))))
        for k in range(args.kills):
            kills = (rng.sample(points, args.repeat) if args.repeat > 1 else [points[k % len(points)]]) if args.at_calls \
                else [rng.uniform(0, seconds) for _ in range(args.repeat)]
            result = trial(base_dir, work, kills, args.rerun_timeout)
            if args.at_calls:
                result["calls"] = [calls[c - 1] if isinstance(c, int) else c for c in kills]
            result["differences"] = ([f"rerun: {result['rerun_error']}"] if result["rerun_error"]
                                     else differences(result["state"], want))
            result.pop("state")
            trials.append(result)
            print(f"{k}: killed at {result['kills']} {result.get('calls', '')} -> {result['ends']}: "
                  f"{'; '.join(result['differences']) or 'same'}", flush=True)
    finally:
        if not args.work:
            shutil.rmtree(root, ignore_errors=True)
    failed = [t for t in trials if t["differences"]]
    summary = {"reference_s": round(seconds, 2), "mutation_calls": len(calls), "kills": len(trials) * args.repeat,
               "trials": len(trials), "failed": len(failed), "seed": args.seed, "repeat": args.repeat,
               "at_calls": args.at_calls, "results": trials}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
    print(f"{len(failed)} of {len(trials)} trial(s) differed; {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
