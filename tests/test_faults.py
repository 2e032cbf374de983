"""Dask faults: a worker process killed mid-run gives a retry or a clean one-line failure, never a
partially published store, and the same command run again completes.

The pipeline CLI runs in a subprocess; when it reaches the stage under test we SIGKILL one of its
dask worker processes (the nanny restarts it). Dask recomputes the lost tasks of the feature
build, so that run usually succeeds; what holds state on one worker (an ``xgboost.dask``
training, a scattered booster) cannot be recomputed, so a kill there is
``cluster_errors.WorkerLostError``: a one-line ``error:`` and exit code 2. Either way, what the store publishes is complete, and a second run resumes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import psutil
import pyarrow.parquet as pq
import pytest

from rapids_engage.report import validate
from rapids_engage.store import MANIFEST, FeatureStore

pytestmark = pytest.mark.slow

ROWS = 30000
#: Seconds to wait for the run to reach the stage under test, and for a run to finish.
TIMEOUT = 300
#: The CLI's own traceback (dask's logs may print tracebacks of worker-side errors: those are not ours).
CLI_TRACEBACK = re.compile(r'File ".*rapids_engage[/\\]pipeline\.py", line \d+, in main')


def _cmd(cache: Path, out: Path, subcommand: tuple[str, ...] = ()) -> list[str]:
    """A whole run; ``subcommand=("features",)``: its store stages only (summary in features.json)."""
    return [
        sys.executable, "-m", "rapids_engage.pipeline", *subcommand, "--gpus", "0", "--rows", str(ROWS), "--out", str(out), "--quiet",
        *(() if subcommand else ("--no-plots",)),
        "--set", f"data.cache_dir={cache}", "--set", "synthetic.days=7", "--set", "train.targets=[like,retweet]",
        "--set", "train.num_boost_round=20", "--set", "cluster.n_workers=2", "--set", "cluster.threads_per_worker=1",
        "--set", "features.history.keys=[[engaging_user_id]]",
    ]


def _env() -> dict[str, str]:
    # Workers are spawned processes (dask's default, pinned here): `python -c "from multiprocessing.spawn ...`
    return {**os.environ, "DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD": "spawn"}


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _workers(pid: int) -> list[psutil.Process]:
    """The dask worker processes under ``pid`` (the multiprocessing resource tracker excluded)."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            cmdline = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "multiprocessing.spawn" in cmdline and "resource_tracker" not in cmdline:
            found.append(child)
    return sorted(found, key=lambda p: p.pid)


def _in_features(out: Path, log: list[str]) -> bool:  # noqa: ARG001 - a stage predicate's signature
    """A store version is being built: its temporary directory exists (the feature computation runs)."""
    store = out / "store"
    return store.is_dir() and any(p.name.startswith(".tmp-") for p in store.iterdir())


def _in_training(out: Path, log: list[str]) -> bool:
    """Training has begun: the first model is saved, so the next one's matrices or training run now (its workers'
    "got rank" lines, when XGBoost prints them: the workers send them to their logger)."""
    return any("got rank" in line for line in log) or any(out.glob(".tmp-models-*/like.json"))  # staged till the end


def _kill_a_worker_when(proc: subprocess.Popen, reached, out: Path, log: list[str], delay_s: float) -> int | None:
    """SIGKILL one dask worker once ``reached(out, log)`` holds (then ``delay_s`` later); its pid, or None."""
    deadline = time.monotonic() + TIMEOUT
    while not (reached(out, log) and len(_workers(proc.pid)) >= 2):
        if proc.poll() is not None:
            return None  # finished (or failed) before the stage: checked like any other run
        assert time.monotonic() < deadline, "the run never reached the stage under test"
        time.sleep(0.05)
    time.sleep(delay_s)
    for worker in _workers(proc.pid):
        try:
            worker.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            continue
        return worker.pid
    return None


def _collect(stream, lines: list[str]) -> None:
    for line in stream:
        lines.append(line)


def _disturbed_run(cmd: list[str], disturb) -> tuple[subprocess.Popen, str]:
    """Run ``cmd`` (its own process group), call ``disturb(proc, log)`` while it runs (``log``: its
    output so far, line by line, the workers' too), wait for the end; (the process, its output)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(),
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    log: list[str] = []
    reader = threading.Thread(target=_collect, args=(proc.stdout, log), daemon=True)
    reader.start()
    try:
        disturb(proc, log)
        proc.wait(timeout=TIMEOUT)
        reader.join(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc, "".join(log)


def _check_store(store: Path) -> dict[str, dict]:
    """Every published version is complete and readable; nothing temporary is left. Manifests by version."""
    assert store.is_dir()
    assert not [p.name for p in store.iterdir() if p.is_dir() and p.name.startswith(".")], "a temporary build was left behind"
    manifests = {}
    for version in (p for p in store.iterdir() if p.is_dir()):
        assert FeatureStore(store).problem(version.name) is None, version
        manifest = json.loads((version / MANIFEST).read_text())
        assert manifest["version"] == version.name
        on_disk = {f.relative_to(version).as_posix() for f in version.rglob("*") if f.is_file()} - {MANIFEST}
        assert set(manifest["files"]) == on_disk
        for split in ("train", "valid"):
            parts = sorted((version / split).glob("*.parquet"))
            assert parts, split
            assert sum(pq.read_metadata(f).num_rows for f in parts) == manifest["rows"][split]
        for f in version.rglob("*.parquet"):
            pq.read_metadata(f)
        assert manifest["rows"]["train"] + manifest["rows"]["valid"] == ROWS
        for split in ("train", "valid"):  # a recomputed partition is neither lost nor written twice
            keys = pd.read_parquet(version / split, columns=["tweet_id", "engaging_user_id"])
            assert not keys.duplicated().any(), split
        manifests[version.name] = manifest
    return manifests


def _store_frame(store: Path, version: str, split: str) -> pd.DataFrame:
    frame = pd.read_parquet(store / version / split)
    return frame.sort_values(["tweet_id", "engaging_user_id"]).reset_index(drop=True)


def _check_report(out: Path, manifests: dict[str, dict], clean: dict) -> dict:
    report = json.loads((out / "report.json").read_text())
    validate(report)
    assert report["store"]["version"] == clean["store"]["version"]
    assert report["rows"] == manifests[report["store"]["version"]]["rows"] == clean["rows"]
    return report


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> tuple[Path, dict]:
    """An uninterrupted build of the store: the reference (one data cache for every run, so one store version).

    The ``features`` subcommand builds the store version a whole run of the same command builds (its
    summary holds the report's store, rows and split); what the tests compare with it is the store and
    the rows, so training a reference model would only cost time.
    """
    tmp = tmp_path_factory.mktemp("faults")
    cache, out = tmp / "cache", tmp / "clean"
    _run(_cmd(cache, out, ("features",)))
    return cache, json.loads((out / "features.json").read_text())


@pytest.mark.parametrize(
    ("stage", "reached", "delay_s"),
    [pytest.param("features", _in_features, 0.5, id="features"), pytest.param("train", _in_training, 0.0, id="train")],
)
def test_killed_worker_retries_or_fails_cleanly_then_resumes(clean, tmp_path, stage, reached, delay_s):
    cache, reference = clean
    out = tmp_path / "run"
    store = out / "store"
    found: dict = {}
    proc, output = _disturbed_run(_cmd(cache, out), lambda p, log: found.setdefault(
        "killed", _kill_a_worker_when(p, reached, out, log, delay_s)))
    killed = found["killed"]
    print(f"stage {stage}: killed worker {killed}, exit {proc.returncode}: {output.strip().splitlines()[-1:]}")
    assert killed is not None, f"no worker was killed before the run ended (exit {proc.returncode}): {output[-2000:]}"
    assert proc.returncode in (0, 2), f"stage {stage}, exit {proc.returncode}: {output[-3000:]}"
    assert not CLI_TRACEBACK.search(output), output[-3000:]
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    if proc.returncode == 2:
        assert len(errors) == 1 and errors[0].strip() != "error:", output[-3000:]
        assert output.strip().splitlines()[-1] == errors[0], f"the error is not one line: {output[-3000:]}"
        assert not (out / "report.json").exists()
    else:
        assert not errors, output[-3000:]

    manifests = _check_store(store) if store.is_dir() else {}
    if proc.returncode == 0:
        _check_report(out, manifests, reference)
    for version in manifests:  # what a faulted run published is what an uninterrupted run publishes
        assert version == reference["store"]["version"]
        clean_store = Path(reference["store"]["path"])
        for split in ("train", "valid"):
            pd.testing.assert_frame_equal(_store_frame(store, version, split), _store_frame(clean_store, version, split))

    _run(_cmd(cache, out))  # resume: the same command completes
    report = _check_report(out, _check_store(store), reference)
    assert report["store"]["cache_hit"] is bool(manifests)


@pytest.mark.parametrize(("stage", "reached"), [pytest.param("features", _in_features, id="features"),
                                               pytest.param("train", _in_training, id="train")])
def test_ctrl_c_ends_the_run_in_one_line(clean, tmp_path, stage, reached):
    """A terminal's Ctrl-C reaches the run and its workers (one process group): the run ends with
    `error: interrupted` (exit 130) and nothing else; each worker printed a KeyboardInterrupt traceback,
    and the driver asyncio's "Task exception was never retrieved" (~80 lines in all)."""
    cache, _ = clean
    out = tmp_path / "run"

    def ctrl_c(proc: subprocess.Popen, log: list[str]) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not reached(out, log) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, f"the run ended before {stage}: {''.join(log)[-2000:]}"
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)

    proc, output = _disturbed_run(_cmd(cache, out), ctrl_c)
    assert proc.returncode == 130, output[-3000:]
    assert output.strip().splitlines()[-1] == "error: interrupted" and "Traceback" not in output, output[-3000:]
