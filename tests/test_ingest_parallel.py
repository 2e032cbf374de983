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
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rapids_engage.config import ExplodeSpec, SideTableSpec, TableConfig, TargetSpec
from rapids_engage.ingest import StrictModeError, ingest_recsys, ingest_table, parallel, recsys, table_read
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
    """Three RecSys files of several 16 KB blocks: bad rows (field count, id, int, UTF-8) in the first, the second
    gzip, the third a test file (20 fields)."""
    first, second, third = tmp_path / "part-0.tsv", tmp_path / "part-1.tsv", tmp_path / "part-2.tsv"
    generate(first, 0.08, seed=1)
    generate(second, 0.06, seed=2)
    generate(third, 0.04, seed=3)
    lines = first.read_bytes().splitlines(keepends=True)
    fields = lines[5].split(b"\x01")
    lines[7] = b"\x01".join([*fields[:2], b"zz" * 16, *fields[3:]])  # invalid id
    lines[40] = b"\x01".join([*fields[:10], b"lots", *fields[11:]])  # invalid int
    lines[90] = lines[90].replace(b"Retweet", b"Re\xfftweet").replace(b"TopLevel", b"Top\xffLevel")
    first.write_bytes(b"".join(lines))
    (tmp_path / "part-1.tsv.gz").write_bytes(gzip.compress(second.read_bytes()))
    second.unlink()
    third.write_bytes(b"".join(b"\x01".join(line.split(b"\x01")[:20]) + b"\n" for line in third.read_bytes().splitlines()))
    return [first, tmp_path / "part-1.tsv.gz", third]


def rows_by_part_prefix(out: Path) -> dict[str, int]:
    """The rows written under each part name prefix (``part-<file>-``)."""
    rows: dict[str, int] = {}
    for part in (out / "data").rglob("*.parquet"):
        prefix = part.name.rsplit("-", 1)[0]
        rows[prefix] = rows.get(prefix, 0) + pq.read_metadata(part).num_rows
    return rows


def test_recsys_output_is_byte_identical_whatever_the_workers(tmp_path, monkeypatch):
    """Whole files on 2 and 3 workers (each written by its worker), 2 files' blocks on 3 (written here): the same
    bytes as serially; each day one file (its small parts merged), named as its first part, holding the parts' rows
    in order: each input file's rows in input order."""
    files = raw_files(tmp_path)
    serial = ingest_recsys(files, tmp_path / "w1", block_size=16_000, rows_per_file=150)
    assert {"field_count", "invalid_id", "invalid_int", "invalid_utf8"} <= set(serial.quarantine_counts)
    days = sorted((tmp_path / "w1" / "data").glob("day=*"))
    assert serial.test_files == [str(files[2])] and serial.output_files == len(days) > 1
    with monkeypatch.context() as m:  # the parts as written, before the merge
        m.setattr(recsys, "compact_parts", lambda data: sum(1 for _ in data.rglob("*.parquet")))
        written = ingest_recsys(files, tmp_path / "parts", block_size=16_000, rows_per_file=150)
    assert written.output_files > 6
    bad = pq.read_table(tmp_path / "w1" / "quarantine.parquet")["file"].to_pylist()
    lines = [len((gzip.open if f.suffix == ".gz" else open)(f, "rb").read().splitlines()) for f in files]
    assert rows_by_part_prefix(tmp_path / "parts") == {f"part-{i:05d}": n - bad.count(str(f))
                                                       for i, (f, n) in enumerate(zip(files, lines))}
    for day in days:
        parts = sorted((tmp_path / "parts" / "data" / day.name).glob("*.parquet"))
        assert [p.name for p in day.glob("*.parquet")] == [parts[0].name]
        assert pq.ParquetFile(day / parts[0].name).read() == pa.concat_tables(pq.ParquetFile(p).read() for p in parts)
    for workers in (2, 3):
        result = ingest_recsys(files, tmp_path / f"w{workers}", block_size=16_000, rows_per_file=150, workers=workers)
        assert result.workers == workers
        assert outputs(tmp_path / f"w{workers}") == outputs(tmp_path / "w1")
    assert "parsed on 3 processes" in result.summary() and "processes" not in serial.summary()
    ingest_recsys(files[:2], tmp_path / "blocks1", block_size=16_000, rows_per_file=150)
    blocks = ingest_recsys(files[:2], tmp_path / "blocks3", block_size=16_000, rows_per_file=150, workers=3)
    assert blocks.workers == 3 and outputs(tmp_path / "blocks3") == outputs(tmp_path / "blocks1")


def test_recsys_strict_stops_at_the_first_bad_row_in_input_order(tmp_path):
    """The first file's only bad row is its last line, the later files' their first: whichever worker fails first,
    the error is the first file's, as serially."""
    files = raw_files(tmp_path)
    generate(files[0], 0.08, seed=1)  # without the bad rows planted
    good = [line for line in files[0].read_bytes().splitlines(keepends=True) if line.count(b"\x01") == 23]
    files[0].write_bytes(b"".join(good) + good[0].replace(b"\x01", b"", 1))
    for f in files[1:]:
        text = (gzip.decompress if f.suffix == ".gz" else bytes)(f.read_bytes())
        f.write_bytes(b"x\x01y\n" + text)  # not gzip any more: sniffed as plain text
    errors = []
    for workers in (1, 2, 3):
        with pytest.raises(StrictModeError) as info:
            ingest_recsys(files, tmp_path / f"out{workers}", block_size=16_000, strict=True, workers=workers)
        errors.append(str(info.value))
    assert errors[0] == errors[1] == errors[2] and f"part-0.tsv:{len(good) + 1}:-: field_count" in errors[0]


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


def test_table_output_is_byte_identical_whatever_the_workers(tmp_path, monkeypatch):
    """Explode and a side-table join: whole files on 2 and 3 workers, 2 files' chunks on 3 workers: the same bytes as
    serially; strict: the same first bad row."""
    monkeypatch.setattr(table_read, "BLOCK_BYTES", 4096)  # read blocks: several per file, in the workers too
    paths, spec = mind_files(tmp_path)
    serial = ingest_table(paths, tmp_path / "w1", spec, chunk_rows=100)
    assert serial.quarantine_counts == {"bad_explode_token": 3, "bad_time": 3}
    for workers in (2, 3):
        assert ingest_table(paths, tmp_path / f"w{workers}", spec, chunk_rows=100, workers=workers).workers == workers
        assert outputs(tmp_path / f"w{workers}") == outputs(tmp_path / "w1")
    ingest_table(paths[:2], tmp_path / "blocks1", spec, chunk_rows=100)
    assert ingest_table(paths[:2], tmp_path / "blocks3", spec, chunk_rows=100, workers=3).workers == 3
    assert outputs(tmp_path / "blocks3") == outputs(tmp_path / "blocks1")
    errors = []
    for workers in (1, 2):
        with pytest.raises(StrictModeError) as info:
            ingest_table(paths, tmp_path / f"strict{workers}", spec, chunk_rows=100, strict=True, workers=workers)
        errors.append(str(info.value))
    assert errors[0] == errors[1] and "behaviors-0.tsv:14:impressions: bad_explode_token" in errors[0]


def test_an_event_log_is_labelled_alike_whatever_the_workers(tmp_path):
    """An event log (``data.table.events``) in 3 files: its typed rows staged per file, labelled the same."""
    import numpy as np

    from rapids_engage.config import EventsSpec

    rng = np.random.default_rng(0)
    t0 = 1_433_116_800_000
    for f in range(3):
        rows = [f"{t0 + int(t)},{rng.integers(0, 20)},{rng.choice(['view', 'view', 'addtocart'])},{rng.integers(0, 9)}"
                for t in np.sort(rng.integers(0, 5 * 86_400_000, 300))]
        rows[17] = "soon,1,view,2"  # bad time
        (tmp_path / f"events-{f}.csv").write_text("timestamp,visitorid,event,itemid\n" + "\n".join(rows) + "\n")
    spec = TableConfig(format="csv", time="timestamp", time_format="unix_ms", row_id=["visitorid", "itemid", "timestamp"],
                       user="visitorid", item="itemid", events=EventsSpec("event", "view", 6, {"cart": "addtocart"}))
    paths = sorted(tmp_path.glob("events-*.csv"))
    serial = ingest_table(paths, tmp_path / "w1", spec)
    assert serial.quarantine_counts == {"bad_time": 3} and serial.events["positives"]["cart"] > 0
    for workers in (2, 3):
        assert ingest_table(paths, tmp_path / f"w{workers}", spec, workers=workers).workers == workers
        assert outputs(tmp_path / f"w{workers}") == outputs(tmp_path / "w1")


def test_a_point_in_time_side_table_is_joined_alike_whatever_the_workers(tmp_path, monkeypatch):
    """A long-format side table joined as of each row's time (``time``, ``property``, ``value``) reaches the workers
    whole: the same rows and values with 1, 2 and 3 workers."""
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
    ingest_table(paths, tmp_path / "w1", spec, chunk_rows=100)
    for workers in (2, 3):
        assert ingest_table(paths, tmp_path / f"w{workers}", spec, chunk_rows=100, workers=workers).workers == workers
        assert outputs(tmp_path / f"w{workers}") == outputs(tmp_path / "w1")
    rows = pd.read_parquet(tmp_path / "w3" / "data")
    assert rows["category"].nunique() > 3  # values of several snapshots joined, not one per item
    with pytest.raises(StrictModeError):
        ingest_table(paths, tmp_path / "strict", spec, chunk_rows=100, strict=True, workers=2)
    assert not list(tmp_path.rglob("*.arrow"))  # the side tables' shared files removed, after an error too


def test_side_tables_reach_the_workers_as_mapped_files(tmp_path):
    """Each worker unpickled its own copy of every side table (a 20M-row long table: ~200 MiB a worker); a side table
    written once (:func:`.side_share.shared_sides`) is pickled as its files' names and mapped again, joining alike."""
    import pickle

    import pandas as pd

    from rapids_engage.ingest.side_share import shared_sides
    from rapids_engage.ingest.side_tables import read_side

    news = tmp_path / "news.csv"
    news.write_text("id,category\n" + "".join(f"N{j},cat{j % 7}\n" for j in range(3000)))
    side = read_side(SideTableSpec(path=str(news), key="id", keep=["category"], format="csv", header=True), False, 100)
    frame = pd.DataFrame({"id": ["N1", "N9", "", "N2999", "N3000"]})
    with shared_sides([side], tmp_path / "sides") as (mapped,):
        sent = pickle.dumps(mapped)
        assert len(sent) < 1000 < 20_000 < len(pickle.dumps(side))  # the files' names, not the data
        assert pickle.loads(sent).join(frame).equals(side.join(frame))
        assert side.join(frame)["category"].tolist() == ["cat1", "cat2", "", "cat3", ""]
    assert not (tmp_path / "sides").exists()


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


def test_worker_count(monkeypatch):
    assert worker_count(4, 100) == 4 and worker_count(4, 1) == 1 and worker_count(1, 100) == 1
    assert 1 <= worker_count("auto", 3) <= 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(parallel, "_available_memory", lambda: 64 << 30)
    # as many files as cores: every core ingests whole files; fewer: one core left to the main process's writing
    assert [worker_count("auto", 100, files) for files in (1, 3, 4, 9)] == [3, 3, 4, 4]
    monkeypatch.setattr(parallel, "_available_memory", lambda: 2 * parallel.WORKER_BYTES)
    assert worker_count("auto", 100, 9) == 2
    assert worker_count("auto", 100, 9, shared_bytes=parallel.WORKER_BYTES // 2) == 1  # mapped side tables, once


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
