"""The benchmark scripts still run: a session with a lent GPU runs them through ``bench/gpu_session.sh``
and has minutes of device time, none to spend on a script the code has moved away from.

Tiny sizes on the CPU, results in a temporary directory; what is checked is what the scripts
promise to write (every stage timed, every target scored, a failed backend recorded, not lost),
never a speed.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rapids_engage.backend import rapids_available

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[1] / "bench"
ROWS = 4000


def _bench_module(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pipeline_bench(tmp_path_factory) -> tuple[Path, int, dict]:
    """``bench/pipeline.py --gpus 0 1`` at a tiny size: its work directory, exit status and JSON."""
    tmp = tmp_path_factory.mktemp("bench")
    code = _bench_module("pipeline").main([
        "--rows", str(ROWS), "--gpus", "0", "1", "--work", str(tmp / "work"), "--results", str(tmp / "results"),
        "--set", "synthetic.days=7", "--set", "train.num_boost_round=5",
    ])
    return tmp, code, json.loads((tmp / "results" / f"pipeline-{ROWS}.json").read_text())


def test_pipeline_bench_times_every_stage_and_records_a_failed_backend(pipeline_bench):
    _, code, result = pipeline_bench
    cpu = result["runs"]["0"]
    assert set(cpu["timings_s"]) >= {"data", "split", "features", "train", "evaluate"}, cpu
    assert set(cpu["targets"]) == {"like", "retweet", "reply", "quote"}
    assert cpu["rows"]["train"] + cpu["rows"]["valid"] == ROWS
    assert result["commit"] and result["overrides"] == ["synthetic.days=7", "train.num_boost_round=5"]
    gpu = result["runs"]["1"]
    if rapids_available():
        assert "timings_s" in gpu or "error" in gpu
    else:  # no RAPIDS here: the GPU run fails with the install hint, the CPU numbers stay, the exit status says so
        assert "RAPIDS" in gpu["error"] and "GPU" in gpu["device"], gpu
        assert code == 1
    assert code == int("error" in gpu)


def test_latency_bench_scores_batches_of_a_bench_run(pipeline_bench, tmp_path):
    tmp, _, _ = pipeline_bench
    results = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "latency.py"), "--model-dir", str(tmp / "work" / f"rows-{ROWS}" / "gpus-0"),
         "--sizes", "1", "20", "--repeats", "2", "--gpus", "0", "--results", str(results)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((results / "latency-cpu.json").read_text())
    assert [b["rows"] for b in result["cpu"]["batches"]] == [1, 20]
    assert all(b["ms_per_row"] > 0 for b in result["cpu"]["batches"])
    assert set(result["targets"]) == {"like", "retweet", "reply", "quote"}


def test_gpu_session_script_parses():
    proc = subprocess.run(["bash", "-n", str(BENCH / "gpu_session.sh")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
