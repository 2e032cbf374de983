"""Parallel raw ingest: the output is byte-identical whatever the worker count; errors and Ctrl-C as serially."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from rapids_engage.config import ExplodeSpec, SideTableSpec, TableConfig, TargetSpec
from rapids_engage.ingest import StrictModeError, ingest_recsys, ingest_table, table_read
from rapids_engage.ingest.bench import generate
from rapids_engage.ingest.parallel import ordered_map, worker_count

ROOT = Path(__file__).resolve().parent.parent


def outputs(out: Path) -> dict[str, bytes]:
    """Every output file's bytes by relative path; ingest.json without its timing and output folder."""
    files = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    result = json.loads(files.pop("ingest.json").decode().replace(str(out), "<out>"))
    assert result.pop("elapsed_s") > 0
    files["ingest.json"] = json.dumps(result).encode()
    return files


def raw_files(tmp_path: Path) -> list[Path]:
    """Two RecSys files of several 16 KB blocks with bad rows (field count, id, int, UTF-8), one gzip."""
    first, second = tmp_path / "part-0.tsv", tmp_path / "part-1.tsv"
    generate(first, 0.08, seed=1)
    generate(second, 0.06, seed=2)
    lines = first.read_bytes().splitlines(keepends=True)
    fields = lines[5].split(b"\x01")
    lines[7] = b"\x01".join([*fields[:2], b"zz" * 16, *fields[3:]])  # invalid id
    lines[40] = b"\x01".join([*fields[:10], b"lots", *fields[11:]])  # invalid int
    lines[90] = lines[90].replace(b"Retweet", b"Re\xfftweet").replace(b"TopLevel", b"Top\xffLevel")
    first.write_bytes(b"".join(lines))
    (tmp_path / "part-1.tsv.gz").write_bytes(gzip.compress(second.read_bytes()))
    second.unlink()
    return [first, tmp_path / "part-1.tsv.gz"]


def test_recsys_output_is_byte_identical_on_two_workers(tmp_path):
    files = raw_files(tmp_path)
    serial = ingest_recsys(files, tmp_path / "one", block_size=16_000, rows_per_file=150)
    parallel = ingest_recsys(files, tmp_path / "two", block_size=16_000, rows_per_file=150, workers=2)
    assert (serial.workers, parallel.workers) == (1, 2)
    assert serial.quarantine_counts["invalid_id"] == serial.quarantine_counts["invalid_int"] == 1
    assert serial.output_files > 4
    assert outputs(tmp_path / "one") == outputs(tmp_path / "two")
    assert "parsed on 2 processes" in parallel.summary() and "processes" not in serial.summary()


def test_recsys_strict_stops_at_the_same_first_bad_row(tmp_path):
    files = raw_files(tmp_path)
    errors = []
    for workers in (1, 2):
        with pytest.raises(StrictModeError) as info:
            ingest_recsys(files, tmp_path / f"out{workers}", block_size=16_000, strict=True, workers=workers)
        errors.append(str(info.value))
    assert errors[0] == errors[1] and ":8:tweet_id: invalid_id" in errors[0]


def mind_files(tmp_path: Path) -> tuple[list[Path], TableConfig]:
    """Three MIND-like behaviour files (explode, a side-table join) with bad rows, and their spec."""
    paths = []
    for f in range(3):
        lines = [f"{f}-{i}\tU{i % 7}\t11/1{2 + f}/2019 {1 + i % 11}:14:46 PM\t\t"
                 + " ".join(f"N{j}-{(i + j) % 2}" for j in range(i % 5 + 1)) for i in range(400)]
        lines[13 + f] = lines[13 + f].replace("-1", "")  # a token without its label
        lines[77] = lines[77].replace("PM", "XM")  # bad time
        paths.append(tmp_path / f"behaviors-{f}.tsv")
        paths[-1].write_text("\n".join(lines) + "\n")
    news = tmp_path / "news.tsv"
    news.write_text("".join(f"N{j}\tcat{j % 3}\tsub\ttitle {j}\tabs\turl\t[]\t[]\n" for j in range(4)))
    spec = TableConfig(
        format="tsv", header=False, columns=["impression_id", "user_id", "time", "history", "impressions"],
        time="time", time_format="%m/%d/%Y %I:%M:%S %p", row_id=["impression_id", "news_id"], user="user_id",
        group="impression_id", explode=ExplodeSpec(column="impressions", item="news_id", label="click"),
        targets={"click": TargetSpec("click", "binary")}, categorical=["category"], text=["title"],
        join=[SideTableSpec(path=str(news), key="news_id", keep=["category", "title"], format="tsv",
                            columns=["news_id", "category", "subcategory", "title", "abstract", "url", "te", "ae"])])
    return paths, spec


def test_table_output_is_byte_identical_on_two_workers(tmp_path, monkeypatch):
    monkeypatch.setattr(table_read, "BLOCK_BYTES", 4096)  # read blocks: several per file
    paths, spec = mind_files(tmp_path)
    serial = ingest_table(paths, tmp_path / "one", spec, chunk_rows=100)
    parallel = ingest_table(paths, tmp_path / "two", spec, chunk_rows=100, workers=2)
    assert (serial.workers, parallel.workers) == (1, 2)
    assert serial.quarantine_counts == {"bad_explode_token": 3, "bad_time": 3}
    assert outputs(tmp_path / "one") == outputs(tmp_path / "two")
    errors = []
    for workers in (1, 2):
        with pytest.raises(StrictModeError) as info:
            ingest_table(paths, tmp_path / f"strict{workers}", spec, chunk_rows=100, strict=True, workers=workers)
        errors.append(str(info.value))
    assert errors[0] == errors[1] and "behaviors-0.tsv:14:impressions: bad_explode_token" in errors[0]


def test_a_point_in_time_side_table_is_joined_alike_on_two_workers(tmp_path, monkeypatch):
    """A long-format side table joined as of each row's time (``time``, ``property``, ``value``) reaches the workers
    whole: the same rows and values with 1 and 2 workers."""
    import pandas as pd

    monkeypatch.setattr(table_read, "BLOCK_BYTES", 4096)
    paths, spec = mind_files(tmp_path)
    props = tmp_path / "props.csv"
    t0 = pd.Timestamp("2019-11-12", tz="UTC").value // 10**6  # the behaviours' first day, in ms
    props.write_text("ts,news_id,property,value\n" + "".join(
        f"{t0 + h * 3_600_000},N{j},category,cat{(j + h) % 5}\n" for h in range(0, 96, 6) for j in range(4)))
    spec.join = [SideTableSpec(path=str(props), key="news_id", format="csv", header=True, time="ts",
                               time_format="unix_ms", property="property", value="value", keep=["category"])]
    spec.text = []
    serial = ingest_table(paths, tmp_path / "one", spec, chunk_rows=100)
    parallel = ingest_table(paths, tmp_path / "two", spec, chunk_rows=100, workers=2)
    assert (serial.workers, parallel.workers) == (1, 2)
    assert outputs(tmp_path / "one") == outputs(tmp_path / "two")
    rows = pd.read_parquet(tmp_path / "two" / "data")
    assert rows["category"].nunique() > 3  # values of several snapshots joined, not one per item


def test_a_worker_error_is_raised_as_serially(tmp_path):
    """An OSError (a missing file, a full disk) in a worker: the same class and message as in process."""
    tasks = [(i, str(tmp_path / f"copy{i}")) for i in range(6)]
    errors = []
    for workers in (1, 2):
        with pytest.raises(OSError) as info:
            list(ordered_map(shutil.copyfile, str, (str(tmp_path / "absent"),), tasks, workers))
        errors.append((type(info.value), str(info.value)))
    assert errors[0] == errors[1] and errors[0][0] is FileNotFoundError


def test_a_read_error_comes_after_the_results_before_it():
    """The tasks' own error (an unreadable file) is raised once the earlier tasks' results are taken, as serially."""
    def tasks():
        yield from ((i, -i) for i in range(5))
        raise ValueError("unreadable")

    got = []
    with pytest.raises(ValueError, match="unreadable"):
        for tag, value in ordered_map(max, int, (3,), tasks(), 2):
            got.append((tag, value))
    assert got == [(i, 3) for i in range(5)]


def test_worker_count():
    assert worker_count(4, 100) == 4 and worker_count(4, 1) == 1 and worker_count(1, 100) == 1
    assert 1 <= worker_count("auto", 3) <= 3


def test_ctrl_c_stops_the_pool_and_leaves_no_process(tmp_path):
    (tmp_path / "napping.py").write_text(textwrap.dedent("""
        import os, time

        def nap(state, i):
            if i > 1:
                time.sleep(600)
            return os.getpid()
    """))
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent("""
        from rapids_engage.ingest.parallel import ordered_map
        from napping import nap
        if __name__ == "__main__":
            for tag, pid in ordered_map(nap, int, (), ((i, i) for i in range(10)), 2):
                print("result", tag, flush=True)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=os.environ | {"PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"})
    try:
        assert proc.stdout.readline().startswith("result 0")  # the pool runs, the later tasks sleep
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 2
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert "KeyboardInterrupt" in err
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, [p.cmdline() for p in alive]


@pytest.mark.parametrize("value", ["0", "many", "1.5"])
def test_a_bad_ingest_workers_value_is_an_error_naming_the_key(value):
    from rapids_engage.config import ConfigError, load_config

    assert load_config(None, ["data.ingest_workers=3"]).data.ingest_workers == 3
    with pytest.raises(ConfigError, match=r"data\.ingest_workers: expected"):
        load_config(None, [f"data.ingest_workers={value}"])
