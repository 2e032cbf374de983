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

import pandas as pd
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


@pytest.mark.parametrize("script, argv, said", [
    ("pipeline", ["--rows", "0", "--gpus", "0"], "argument --rows: expected a whole number >= 1, got 0"),
    ("pipeline", ["--rows", "100", "--gpus", "0", "--results", "{file}/sub"], "--results: cannot make the directory"),
    ("latency", ["--gpus", "0", "--sizes", "0"], "argument --sizes: expected a whole number >= 1, got 0"),
    ("latency", ["--gpus", "0", "--model-dir", "{tmp}/run", "--results", "{tmp}/r"], "no report.json there; give a finished run's --out"),
    ("latency", ["--gpus", "0", "--model-dir", "{tmp}", "--results", "{tmp}/r"], "no models (<target>.meta.json) in"),
    ("latency", ["--gpus", "0", "--results", "{file}/sub"], "--results: cannot make the directory"),
    ("latency", ["--gpus", "0", "--core", "-1", "--model-dir", "{tmp}/run", "--results", "{tmp}/r"], "argument --core: expected one of the cores"),
    ("latency", ["--gpus", "0", "--core", "4096", "--model-dir", "{tmp}/run", "--results", "{tmp}/r"], "argument --core: expected one of the cores"),
    ("oracle_gap", ["--rows", "-5"], "argument --rows: expected a whole number >= 1, got -5"),
    ("oracle_gap", ["--rows", "30000", "--report", "{report}"], "is a run on 20,000 rows, not --rows 30,000"),
    ("oracle_gap", ["--rows", "10", "--seed", "-1", "--work", "{tmp}/w"], "argument --seed: expected a whole number >= 0, got -1"),
    ("synthetic_gen", ["--rows", "0"], "argument --rows: expected a whole number >= 1, got 0"),
    ("synthetic_gen", ["--rows", "10", "--workers", "2", "0"], "argument --workers: expected a whole number >= 1, got 0"),
    ("synthetic_gen", ["--rows", "10", "--json", "{file}/sub/x.json"], "--json: cannot make the directory"),
    ("synthetic_gen", ["--rows", "10", "--work", "{file}/w", "--json", "{tmp}/x.json"], "--work: cannot make the directory"),
    ("ingest_quotes", ["--rows", "0"], "argument --rows: expected a whole number >= 1, got 0"),
    ("ingest_quotes", ["--rows", "10", "--seed", "-1"], "argument --seed: expected a whole number >= 0, got -1"),
    ("ingest_quotes", ["--rows", "10", "--rates", "0", "5", "--json", "{tmp}/x.json"], "argument --rates: expected a fraction of the lines in [0, 1], got 5"),
    ("ingest_quotes", ["--rows", "10", "--quoted", "-0.1", "--json", "{tmp}/x.json"], "argument --quoted: expected a fraction of the lines in [0, 1], got -0.1"),
    ("ingest_quotes", ["--rows", "10", "--json", "{file}/sub/x.json"], "--json: cannot make the directory"),
    ("ingest_quotes", ["--rows", "10", "--work", "{file}/w", "--json", "{tmp}/x.json"], "--work: cannot make the directory"),
    ("out_of_core", ["--rows", "10", "--memory-limit", "lots"], "argument --memory-limit: expected a size such as 3GB"),
    ("out_of_core", ["--rows", "10", "--memory-limit", "0", "--work", "{tmp}/w", "--json", "{tmp}/x.json"],
     "argument --memory-limit: 0 is no limit (nothing would spill); expected a size such as 3GB"),
    ("out_of_core", ["--rows", "10", "--memory-limit=-1GB", "--work", "{tmp}/w", "--json", "{tmp}/x.json"],
     "argument --memory-limit: expected a size such as 3GB"),
    ("out_of_core", ["--rows", "10", "--set", "synthetic.days=0", "--work", "{tmp}/w", "--json", "{tmp}/x.json"],
     "synthetic.days: expected a whole number of days >= 1, got 0"),
    ("out_of_core", ["--rows", "10", "--memory-limit", "100MB", "--work", "{tmp}/w", "--json", "{tmp}/x.json"],
     "argument --memory-limit: expected a size such as 3GB"),
    ("out_of_core", ["--rows", "10", "--work", "{tmp}/w", "--json", "{file}/x.json"], "--json: cannot make the directory"),
    ("side_table", ["--rows", "0"], "argument --rows: expected a whole number >= 1, got 0"),
    ("side_table", ["--rows", "10", "--work", "{file}/w", "--json", "{tmp}/x.json"], "--work: cannot make the directory"),
])
def test_bench_scripts_refuse_bad_arguments_in_one_line_before_any_work(tmp_path, capsys, script, argv, said):
    """A bad size or an unwritable results place is a usage error at the start (exit status 2), not a
    traceback after the run (a ZeroDivisionError for --sizes 0, FileNotFoundError for --results)."""
    (tmp_path / "file").write_text("")
    (tmp_path / "report.json").write_text(json.dumps({"rows": {"train": 19_000, "valid": 1_000}, "targets": {}}))
    fill = {"tmp": str(tmp_path), "file": str(tmp_path / "file"), "report": str(tmp_path / "report.json")}
    with pytest.raises(SystemExit) as exc:
        _bench_module(script).main([a.format(**fill) for a in argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err, err


def test_synthetic_gen_bench_compares_the_bytes_of_each_worker_count(tmp_path):
    _bench_module("synthetic_gen").main(["--rows", "300", "--workers", "1", "3", "--work", str(tmp_path / "w"),
                                        "--json", str(tmp_path / "gen.json")])
    result = json.loads((tmp_path / "gen.json").read_text())
    assert [r["workers"] for r in result["runs"]] == [1, 3] and [r["same_bytes"] for r in result["runs"]] == [True, True]
    assert result["runs"][0]["digest"] == result["runs"][1]["digest"] and "CPU" in result["device"]
    assert not list((tmp_path / "w").iterdir())  # each output deleted


def test_ingest_quotes_bench_writes_the_results_file_the_readme_names(tmp_path, monkeypatch):
    module = _bench_module("ingest_quotes")
    monkeypatch.setattr(module, "__file__", str(tmp_path / "bench" / "ingest_quotes.py"))
    module.main(["--rows", "50", "--rates", "0", "--work", str(tmp_path)])
    result = json.loads((tmp_path / "bench" / "results" / "ingest_quotes-50.json").read_text())
    assert result["results"][0]["rows"] == 50


def test_bench_results_are_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """The benches wrote their results JSON with Path.write_text: a write cut short (a full disk, a kill) left
    the previous results file half-written, no JSON. They write atomically now (report.write_json, atomic.write_text):
    the old file stays whole."""
    from rapids_engage.ingest import bench as ingest_bench

    quotes = _bench_module("ingest_quotes")
    monkeypatch.setattr(quotes, "__file__", str(tmp_path / "bench" / "ingest_quotes.py"))
    results = tmp_path / "bench" / "results"
    results.mkdir(parents=True)
    old = json.dumps({"results": [{"rows": 7}], "note": "x" * 200})
    names = ("ingest-0.01.json", "ingest_quotes-50.json", "pipeline-50.json")
    for name in names:
        (results / name).write_text(old)
    write_text = Path.write_text

    def cut_short(self, text, *args, **kwargs):  # in results/ only: half the text written, then the disk is full
        if self.parent != results:
            return write_text(self, text, *args, **kwargs)
        write_text(self, text[: len(text) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", cut_short)
    for write in (lambda: quotes.main(["--rows", "50", "--rates", "0", "--work", str(tmp_path)]),
                  lambda: _bench_module("pipeline").write_results(results / names[2], 50, [], {"0": {"device": "cpu", "error": "x"}}),
                  lambda: ingest_bench.main(["--mb", "0.01", "--work", str(tmp_path), "--json", str(results / names[0])])):
        with pytest.raises(OSError, match="No space left"):
            write()
    monkeypatch.undo()
    assert sorted(p.name for p in results.iterdir()) == sorted(names)  # no temporary file left
    assert [(results / name).read_text() for name in names] == [old] * 3


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # --max-iter 20: quick, not converged
def test_oracle_gap_bench_generates_the_data_of_its_own_days(tmp_path):
    """--days is part of the data: a second run with other --days used to reuse the first run's
    folder (named by rows and seed only) and score data of the wrong span."""
    module = _bench_module("oracle_gap")
    # --results: the results elsewhere than bench/results, as the other benches (it had no such option)
    args = ["--rows", "2000", "--work", str(tmp_path / "work"), "--c", "1.0", "--max-iter", "20", "--results", str(tmp_path / "res")]
    for days in (4, 2):
        module.main([*args, "--days", str(days)])
        result = json.loads((tmp_path / "res" / "oracle_gap-2000.json").read_text())
        assert abs(result["valid_rows"] - 2000 / days) < 100, (days, result["valid_rows"])  # the last 24 h of `days` days


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_oracle_gap_gives_no_share_of_an_rce_that_is_not_positive(tmp_path, capsys):
    """A tiny run's oracle (or structured) RCE is negative: "pipeline / oracle 11%" of two negative RCEs meant
    nothing; it is "n/a" with the reason, and null in the JSON, a share only of a positive RCE."""
    module = _bench_module("oracle_gap")
    assert module.share(-3.0, -26.7) is None and module.share(-3.0, 0.0) is None and module.share(None, 5.0) is None
    assert module.share(3.0, 12.0) == 0.25 and module.share_text(-3.0, 12.0, "oracle") == "-25%"
    assert module.share_text(-3.0, -26.7, "oracle") == "n/a (oracle RCE -26.70 <= 0)" and module.share_text(None, 1.0, "x") == "–"
    run = {"rows": {"train": 290, "valid": 10}, "targets": {t: {"rce": -3.0} for t in ("like", "reply", "retweet", "quote")},
           "split": {"valid_hours": 24.0}, "config": {"data": {"source": "synthetic"}, "synthetic": {
               "rows": 300, "days": 10, "seed": 42, "n_users": None, "chunk_rows": 1_000_000}}}
    (tmp_path / "report.json").write_text(json.dumps(run))
    module.main(["--rows", "300", "--days", "10", "--work", str(tmp_path / "w"), "--c", "1.0", "--max-iter", "20",
                 "--results", str(tmp_path / "res"), "--report", str(tmp_path / "report.json")])
    table = {line.split(" | ")[0].strip("| "): line for line in capsys.readouterr().out.splitlines()}
    result = json.loads((tmp_path / "res" / "oracle_gap-300.json").read_text())["targets"]
    assert any(r["oracle"] <= 0 for r in result.values()), "the seed gives a non-positive oracle RCE"
    for target, r in result.items():
        for ref, key in (("oracle", "pipeline_over_oracle"), ("structured_map", "pipeline_over_structured")):
            name = ref.split("_")[0]
            if r[ref] > 0:
                assert r[key] == pytest.approx(-3.0 / r[ref]) and f"{-3.0 / r[ref]:.0%}" in table[target]
            else:
                assert r[key] is None and f"n/a ({name} RCE {r[ref]:.2f} <= 0)" in table[target]


@pytest.mark.parametrize("argv, said", [
    (["--seed", "7"], "synthetic.seed 42, not --seed 7"),
    (["--days", "7"], "synthetic.days 28, not --days 7"),
    (["--valid-hours", "12"], "split.valid_hours 24.0, not --valid-hours 12.0"),
])
def test_oracle_gap_refuses_a_report_of_other_data(tmp_path, capsys, argv, said):
    """--report of a run on the same rows but another seed, span or validation window used to be set beside
    this bench's oracle silently: its RCE is of other rows."""
    run = {"rows": {"train": 19_000, "valid": 1_000}, "targets": {}, "split": {"valid_hours": 24.0},
           "config": {"data": {"source": "synthetic"},
                      "synthetic": {"rows": 20_000, "days": 28, "seed": 42, "n_users": None, "chunk_rows": 1_000_000}}}
    (tmp_path / "report.json").write_text(json.dumps(run))
    with pytest.raises(SystemExit) as exc:
        _bench_module("oracle_gap").main(["--rows", "20000", *argv, "--report", str(tmp_path / "report.json")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err, err


def test_oracle_gap_refuses_a_report_of_a_run_with_a_gap(tmp_path, capsys):
    """split.gap_hours: the run's rows are its training, purged and validation rows (not 'a run on 19,000 rows'), and
    its training rows end before the bench's: its RCE is not comparable, for that reason."""
    run = {"rows": {"train": 18_000, "valid": 1_000}, "targets": {}, "split": {"valid_hours": 24.0, "gap_hours": 24.0, "purged_rows": 1_000},
           "config": {"data": {"source": "synthetic"},
                      "synthetic": {"rows": 20_000, "days": 28, "seed": 42, "n_users": None, "chunk_rows": 1_000_000}}}
    (tmp_path / "report.json").write_text(json.dumps(run))
    with pytest.raises(SystemExit):
        _bench_module("oracle_gap").main(["--rows", "20000", "--report", str(tmp_path / "report.json")])
    err = capsys.readouterr().err
    assert "split.gap_hours 24.0, not 0 (this bench trains on every row up to the cut-off)" in err and "rows, not" not in err, err


@pytest.mark.parametrize("argv, said", [
    (["--seed", "-1"], "argument --seed: expected a whole number >= 0, got -1"),
    (["--mb", "-1"], "argument --mb: expected MB > 0, got -1"),
    (["--block-mb", "0"], "argument --block-mb: expected a whole number >= 1, got 0"),
])
def test_ingest_bench_refuses_bad_arguments_in_one_line(capsys, argv, said):
    """A negative --seed was numpy's traceback; --mb -1 'measured' 0 rows at 0 rows/s."""
    from rapids_engage.ingest import bench

    with pytest.raises(SystemExit) as exc:
        bench.main(argv)
    assert exc.value.code == 2 and said in capsys.readouterr().err


@pytest.fixture(scope="module")
def plain_ingest_bench(tmp_path_factory) -> tuple[Path, str, dict]:
    """``ingest.bench --mb 0.01`` (plain input) run once, with a ``--work`` not there yet and ``--json``: its work
    directory, what it printed and its JSON (each run is a fresh ingest process: seconds)."""
    import contextlib
    import io

    from rapids_engage.ingest import bench

    tmp = tmp_path_factory.mktemp("ingest-bench")
    work, printed = tmp / "not" / "there", io.StringIO()
    with contextlib.redirect_stdout(printed):
        bench.main(["--mb", "0.01", "--work", str(work), "--json", str(tmp / "r.json")])
    return work, printed.getvalue(), json.loads((tmp / "r.json").read_text())


def test_ingest_bench_makes_its_work_directory(plain_ingest_bench):
    """bench/README gives `--work DIR`; a DIR not there yet was tempfile's FileNotFoundError traceback (the
    other benches make theirs)."""
    work, printed, _ = plain_ingest_bench
    assert work.is_dir() and "rows/s" in printed


@pytest.mark.parametrize("gz", [False, True])
def test_ingest_bench_generates_about_the_size_asked_and_records_its_bytes(tmp_path, gz, request):
    """--mb 0.01 (bench/ingest_recsys.sh 5 alike) generated a whole 50,000-row chunk, ~21 MB, while the
    results were named for the size asked; it is within a row of it now, and the JSON records the bytes
    (plain: :func:`plain_ingest_bench`'s run)."""
    from rapids_engage.ingest import bench

    if gz:
        bench.main(["--mb", "0.01", "--work", str(tmp_path), "--json", str(tmp_path / "r.json"), "--gzip"])
    r = json.loads((tmp_path / "r.json").read_text()) if gz else request.getfixturevalue("plain_ingest_bench")[2]
    assert r["mb_asked"] == 0.01 and 10_000 <= r["bytes_uncompressed"] < 12_000 and r["rows"] < 40
    assert r["input"] == ("gzip" if gz else "plain") and (r["bytes_on_disk"] < r["bytes_uncompressed"]) == gz
    rows, size = bench.generate(tmp_path / "5.tsv", 5, seed=1)
    assert 5e6 <= size < 5e6 + 2_000 and size == (tmp_path / "5.tsv").stat().st_size
    assert rows == (tmp_path / "5.tsv").read_bytes().count(b"\n")


def test_ingest_bench_ingests_several_files_on_workers(tmp_path):
    """``--files 2``: two files of ``--mb`` each, ingested together (whole files on the 2 workers asked)."""
    from rapids_engage.ingest import bench

    bench.main(["--mb", "0.01", "--files", "2", "--ingest-workers", "2", "--work", str(tmp_path), "--json", str(tmp_path / "r.json")])
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["files"] == 2 and 20_000 <= r["bytes_uncompressed"] < 24_000 and r["ingest_workers"] == 2
    assert r["peak_worker_rss_mb"] > 0 and r["worker_cpu_s"] > 0 and r["main_cpu_s"] > 0  # its forkserver and workers, sampled


def test_pipeline_bench_names_the_cpu_model():
    """The CPU column was labelled 'CPU: 2 cores (x86_64)': ``platform.processor()`` gives only the
    architecture on Linux, not the model the README asks to give next to a number."""
    try:
        model = next(x.split(":", 1)[1].strip() for x in Path("/proc/cpuinfo").read_text().splitlines()
                     if x.startswith("model name"))
    except (OSError, StopIteration):
        pytest.skip("no model name in /proc/cpuinfo")
    assert model in _bench_module("pipeline").device_name("0")


def _fake_pipeline(backend: str, rce: dict):
    """A stand-in for ``rapids_engage.pipeline.main`` writing what a finished run of ``backend`` writes."""
    def main(argv: list[str]) -> int:
        out = Path(argv[len(argv) - 1 - argv[::-1].index("--out") + 1])  # the last --out counts
        out.mkdir(parents=True, exist_ok=True)
        timings = {"data": 0.1, "split": 0.2, "features": 1.0, "train": 2.0, "evaluate": 0.5}
        if argv[0] == "features":
            (out / "features.json").write_text(json.dumps({"timings_s": {"features": 0.01}, "store": {"cache_hit": True}}))
        else:
            (out / "report.json").write_text(json.dumps({
                "backend": backend, "n_workers": 2, "rows": {"train": 90, "valid": 10}, "timings_s": timings,
                "targets": {t: {"rce": v} for t, v in rce.items()}}))
        return 0
    return main


def test_pipeline_bench_labels_a_run_by_the_backend_it_ran_on(tmp_path, monkeypatch, capsys):
    """`--gpus 0 auto` on a machine without a GPU: the auto run (on the CPU) was labelled 'GPU: auto', got a
    GPU memory column and a 'speed-up vs --gpus 0' that was the CPU against itself."""
    module = _bench_module("pipeline")
    monkeypatch.setattr(module, "pipeline_main", _fake_pipeline("cpu", {"like": 1.0}))
    monkeypatch.setenv("COLUMNS", "300")  # the table unwrapped
    module.main(["--rows", "100", "--gpus", "0", "auto", "--work", str(tmp_path / "w"), "--results", str(tmp_path)])
    runs = json.loads((tmp_path / "pipeline-100.json").read_text())["runs"]
    assert runs["auto"]["device"] == runs["0"]["device"] and runs["auto"]["device"].startswith("CPU"), runs
    out = capsys.readouterr().out
    assert "GPU" not in out and "CPU vs CPU" in out, out


def test_pipeline_bench_prints_a_target_without_an_rce(tmp_path, monkeypatch, capsys):
    """A validation window with one class of a rare target (a small run's quote) has RCE null in
    report.json: the bench's RCE line was a TypeError traceback after the whole run."""
    module = _bench_module("pipeline")
    monkeypatch.setattr(module, "pipeline_main", _fake_pipeline("cpu", {"like": 1.234, "quote": None}))
    assert module.main(["--rows", "100", "--gpus", "0", "--work", str(tmp_path / "w"), "--results", str(tmp_path)]) == 0
    assert "RCE like 1.23, quote -" in capsys.readouterr().out


def test_out_of_core_rce_line_without_an_rce():
    assert _bench_module("out_of_core").rce_line({"like": 1.234, "quote": None}) == "RCE like 1.23, quote -"


def test_pipeline_bench_generates_the_data_before_timing_a_backend(tmp_path, monkeypatch):
    """The first backend's data stage (and total) held the synthetic data's generation, the next one's a
    cache read: `--gpus 0 1` credited the GPU with the generation in its speed-up, and a GPU-only run
    counted it in its seconds and scaling ratios."""
    module = _bench_module("pipeline")
    fake, found = _fake_pipeline("cpu", {"like": 1.0}), []

    def pipeline_main(argv: list[str]) -> int:
        if argv[0] != "features":
            cache = Path(next(a for a in argv if a.startswith("data.cache_dir=")).split("=", 1)[1])
            found.append(any(cache.glob("synthetic-*/synthetic.json")))
        return fake(argv)

    monkeypatch.setattr(module, "pipeline_main", pipeline_main)
    module.main(["--rows", "200", "--gpus", "0", "--work", str(tmp_path / "w"), "--results", str(tmp_path),
                 "--set", "synthetic.days=2"])
    assert found == [True]


def test_out_of_core_reports_the_limit_a_worker_gets():
    """--memory-limit 0.5 (half the memory, as dask reads it) was shown as a limit of 0 MiB, 0.00x the
    data, in the table and the JSON (``parse_bytes`` reads a fraction as 0 bytes)."""
    module = _bench_module("out_of_core")
    assert module.limit_bytes("0.5") > 2**29 and module.limit_bytes("3GB") == 3 * 10**9


def test_out_of_core_prepares_the_data_the_run_reads(tmp_path):
    """`--set synthetic.days=2` reached the measured run but not the data prepared before it: the run
    generated its own data inside the sampled time, and a failed run's data size was of other data."""
    data = _bench_module("out_of_core").prepare_data(300, tmp_path / "cache", ["synthetic.days=2"])
    assert json.loads((data.parent / "synthetic.json").read_text())["spec"]["days"] == 2


def test_event_log_bench_ingests_its_log_plain_and_labelled_with_the_config_it_writes(tmp_path):
    from rapids_engage.config import load_config

    _bench_module("event_log").main(["--rows", "3000", "--work", str(tmp_path), "--json", str(tmp_path / "r.json")])
    result = json.loads((tmp_path / "r.json").read_text())
    events = result["events"]
    assert result["rows"] == sum(events.values()) and events["addtocart"] > 0 and events["transaction"] > 0
    plain, labelled = result["runs"]["plain"], result["runs"]["events"]
    assert plain["rows_out"] == result["rows"]  # every row kept
    assert 0 < labelled["rows_out"] < events["view"]  # the views less those of the last horizon
    assert load_config(result["config"]).data.table.events.targets == {"cart": "addtocart", "buy": "transaction"}
    available = pd.read_parquet(tmp_path / "event_log" / "ingest-events" / "data", columns=["available"])["available"]
    assert set(available) == {0.0, 1.0}  # item_properties.csv joined as of each view: every view after a snapshot



def test_side_table_bench_reads_the_kept_properties_and_joins_them(tmp_path):
    module = _bench_module("side_table")
    module.main(["--rows", "4000", "--events", "300", "--work", str(tmp_path), "--json", str(tmp_path / "x.json")])
    result = json.loads((tmp_path / "x.json").read_text())
    kept = result["kept_rows"]
    assert set(kept) == {"categoryid", "available"} and 0 < sum(kept.values()) < 4000 and result["join_rows"] == 300
    assert set(result["joined_nonblank"]) == set(kept) and result["keys"] > 0  # few items in both at this size


def test_side_table_bench_samples_the_ingest_workers(tmp_path):
    """``--ingest-workers 2``: 4 event files ingested on 2 workers, with the side table joined and without; each run's
    workers' peaks (RSS counts the mapped side table, USS does not) and the ingest process's own peak RSS."""
    _bench_module("side_table").main(["--rows", "4000", "--events", "400", "--ingest-workers", "2", "--work", str(tmp_path),
                                      "--json", str(tmp_path / "x.json")])
    result = json.loads((tmp_path / "x.json").read_text())
    assert (result["ingest_workers"], result["event_files"]) == (2, 4) and set(result["runs"]) == {"side table", "no side table"}
    for run in result["runs"].values():
        assert run["rows_out"] == 400 and run["main_peak_rss_mib"] > 0 and 1 <= len(run["workers"]) <= 2, run
        assert all(w["rss"] >= w["pss"] >= w["uss"] > 0 for w in run["workers"]), run


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="VmHWM is Linux's")
def test_a_fresh_process_peak_rss_is_its_own_not_its_parents():
    """Linux keeps ``ru_maxrss`` across fork and exec: a bench that generated 500 MiB of data before starting its
    measured child read the child's peak as at least its own; ``own_peak_rss_mib`` is the child's."""
    code = (
        "import resource, subprocess, sys\n"
        "big = bytearray(400 << 20)\n"
        "for i in range(0, len(big), 4096): big[i] = 1\n"
        "child = 'import resource; from rapids_engage.ingest.bench import own_peak_rss_mib; "
        "print(own_peak_rss_mib(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)'\n"
        "print(subprocess.run([sys.executable, '-c', child], capture_output=True, text=True, check=True).stdout)\n")
    own, inherited = map(float, subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                               check=True).stdout.split())
    assert inherited >= 400  # what the benches read before
    assert own < 300


def test_audit_escalation_bench_agrees_with_the_audit_s_own_checks(tmp_path):
    """``bench/audit_escalation.py``'s vectorised rule gives the audit's verdicts (it re-checks every trial here
    through ``shuffled_checks``: a changed bound or stage list makes them differ), and writes its JSON and table."""
    module = _bench_module("audit_escalation")
    assert module.main(["--trials", "40", "--verify", "40", "--results", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "audit_escalation.json").read_text())
    from rapids_engage.audit import AUTO_STAGES

    assert tuple(module.RULES["1 -> 3 -> 5 -> 10"]) == AUTO_STAGES
    rule = result["scenarios"]["buy"]["rules"]["1 -> 3 (before)"]
    assert 1 <= rule["d=0"]["mean_runs"] <= 3 and rule["d=10"]["failed"] == 1.0
    assert "| buy (-0.91, 0.16, 1.42) | 1 -> 3 -> 5 -> 10 |" in (tmp_path / "audit_escalation.md").read_text()
