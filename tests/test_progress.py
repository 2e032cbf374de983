"""Stage progress: a stage that follows the cluster shows and counts the tasks it ran."""

from __future__ import annotations

import io
import time

import dask.dataframe as dd
import pytest
import pandas as pd
from distributed import Client, LocalCluster
from rich.console import Console

from rapids_engage.progress import StageProgress


def _slow(part: pd.DataFrame) -> pd.DataFrame:
    time.sleep(0.15)
    return part


def test_a_followed_stage_shows_and_counts_the_clusters_tasks():
    frame = dd.from_pandas(pd.DataFrame({"x": range(1000)}), npartitions=10)
    out = io.StringIO()
    prog = StageProgress(Console(file=out, force_terminal=True, width=120))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, Client(cluster) as client:
        client.submit(sum, [1, 2]).result()  # tasks before the stage are not its own
        with prog, prog.stage("features", client=client):
            total = frame.map_partitions(_slow, meta=frame._meta).x.sum().compute()
    assert total == sum(range(1000))
    assert 10 <= prog.tasks["features"] < 100  # the ten slow partitions and their reduction, not the earlier task
    assert "tasks done, " in out.getvalue() and "✓" in out.getvalue()


class _NoScheduler:
    def run_on_scheduler(self, fn):  # noqa: ARG002 - the client API's signature
        raise OSError("scheduler gone")


def test_progress_never_fails_a_stage():
    prog = StageProgress(quiet=True)
    with prog, prog.stage("features", client=_NoScheduler()):
        pass
    assert prog.tasks["features"] == 0 and "features" in prog.timings


def test_following_the_tasks_logs_once_on_the_scheduler():
    """The scheduler logs every ``run_on_scheduler`` call at INFO: the task count, polled twice a second, wrote
    "Run out-of-band function 'counts'" into the log of the user's own scheduler for as long as a stage ran."""
    import logging

    from rapids_engage.progress import TaskWatch

    lines: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    log = logging.getLogger("distributed.worker")
    level = log.level
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            seen: list[tuple[int, int]] = []
            with TaskWatch(client, lambda done, waiting: seen.append((done, waiting)), interval=0.05):
                time.sleep(0.5)
            client.run_on_scheduler(lambda: None)  # other out-of-band calls are still logged
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    assert len(seen) >= 5
    ours = [line for line in lines if line.startswith("Run out-of-band function") and "'lambda'" not in line]
    assert not any("rapids_engage_task_seconds" in line for line in ours)  # the profile's two calls are quiet too
    assert len(ours) <= 1, ours  # the first call's, before the function quiets the rest
    assert any("Run out-of-band function 'lambda'" in line for line in lines)


def test_the_stage_line_says_when_its_memory_is_the_drivers_alone():
    """With --scheduler-address the workers are not sampled: "peak RSS 0.26 GiB" on the train line read as the
    training's memory."""
    from rapids_engage.memory import MemoryWatch

    for external, expected in ((False, "peak RSS   "), (True, "peak RSS (driver)   ")):
        out = io.StringIO()
        with MemoryWatch(external=external) as memory, StageProgress(Console(file=out, width=120), memory=memory) as prog:
            with prog.stage("train"):
                pass
        assert expected in out.getvalue() and "GiB" in out.getvalue()


def test_byte_size_says_each_size_in_its_unit():
    """GiB from one GiB, MiB below, KiB below a MiB, bytes below a KiB: "0.0 MiB" said nothing of the bytes a
    killed build leaves (its owner mark) or a small spill (review of the day; bounds: mutation round 3)."""
    from rapids_engage.progress import byte_size

    sizes = (0, 40, 2**10, 3 * 2**10, 2**20 - 1, 2**20, 3 << 20, 2**30 - 2**19, 2**30, 5 * 2**30 // 2)
    assert [byte_size(n) for n in sizes] == ["0 bytes", "40 bytes", "1.0 KiB", "3.0 KiB", "1024.0 KiB", "1.0 MiB", "3.0 MiB",
                                             "1023.5 MiB", "1.00 GiB", "2.50 GiB"]


def test_a_stage_keeps_its_task_seconds_largest_first_and_the_rest_as_other():
    """report.json's ``task_seconds``: the compute seconds of each task prefix spent while the stage ran (the
    scheduler's totals since it started, less those at the stage's start), the 12 largest, the rest summed."""
    from rapids_engage.progress import TaskWatch

    watch = TaskWatch(None, lambda done, waiting: None)
    watch._before = {"read_parquet": 1.0, "merge": 5.0}
    after = {"read_parquet": 3.5, "merge": 5.0, **{f"t{i}": 0.1 * (i + 1) for i in range(13)}}
    watch._keep_seconds(after)
    assert list(watch.seconds)[:2] == ["read_parquet", "t12"] and watch.seconds["read_parquet"] == 2.5
    assert "merge" not in watch.seconds and len(watch.seconds) == 13  # 12 and other
    assert watch.seconds["other"] == pytest.approx(0.1 + 0.2)  # t0 and t1: the 2 smallest of the 14 spent


def test_task_seconds_of_a_real_cluster_name_the_tasks_it_ran():
    from rapids_engage.progress import TaskWatch

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        with TaskWatch(client, lambda done, waiting: None, interval=0.05) as watch:
            client.gather(client.map(lambda x: time.sleep(0.05) or x, range(4), key=[f"nap-{i}" for i in range(4)]))
    assert watch.seconds["nap"] >= 0.15


def test_a_long_stage_gets_lines_in_a_log_not_a_bar():
    """Without a terminal there is no bar: a 75 s feature build printed nothing between its start and its check mark.
    A stage still running gets a line every ``heartbeat`` seconds, with the bar's detail."""
    import threading

    out = io.StringIO()
    beat = threading.Event()
    prog = StageProgress(Console(file=out, width=120), heartbeat=0.01)
    original = prog.beat
    prog.beat = lambda name, elapsed: (original(name, elapsed), beat.set())  # type: ignore[method-assign]
    with prog, prog.stage("data"):
        prog.update(2**20, 2**21, "1.0 MiB of 2.0 MiB")
        assert beat.wait(30)
    lines = out.getvalue().splitlines()
    assert any(line.startswith("  … data") and line.endswith("s: 1.0 MiB of 2.0 MiB") for line in lines), lines
    assert lines[-1].startswith("✓ data")  # none after the stage ended


def test_a_terminal_gets_the_bar_and_no_heartbeat_lines():
    out = io.StringIO()
    prog = StageProgress(Console(file=out, force_terminal=True, width=120), heartbeat=0.01)
    prog.beat = lambda name, elapsed: pytest.fail("a heartbeat line under a live bar")  # type: ignore[method-assign]
    with prog, prog.stage("data"):
        time.sleep(0.1)  # ten heartbeats' time: none may come
    assert "✓" in out.getvalue()


def test_the_read_detail_names_its_unit():
    """An ingest's bar said "338,641/17,530,170": bytes, read as rows."""
    from rapids_engage.progress import read_detail

    assert read_detail(3 * 2**20, 17 * 2**20) == "3.0 MiB of 17.0 MiB"
    assert read_detail(1000, 5000, "rows") == "1,000/5,000 rows"


def test_the_ingest_command_shows_the_bytes_it_reads(tmp_path, monkeypatch, capsys):
    """``ingest`` printed nothing until its summary: 47 s for 840 small CSV files. It is a stage now, its bar the
    files' bytes read (the total: their size on disk)."""
    from rapids_engage.pipeline import main

    for k in range(2):
        (tmp_path / f"events-{k}.csv").write_text("id,user,ts,clicked\n" + "".join(
            f"f{k}-{i},u{i % 3},{1_600_000_000 + 3600 * i},{i % 2}\n" for i in range(20)))
    (tmp_path / "table.yaml").write_text(
        "data:\n  source: table\n  table:\n    format: csv\n    time: ts\n    time_format: unix\n    row_id: [id]\n"
        "    user: user\n    targets:\n      click: {column: clicked, kind: binary}\n")
    seen: list[tuple] = []
    monkeypatch.setattr(StageProgress, "update", lambda self, done=None, total=None, detail="": seen.append((done, total, detail)))
    assert main(["ingest", "--config", str(tmp_path / "table.yaml"), "--input", str(tmp_path / "events-*.csv"),
                 "--out", str(tmp_path / "out"), "--ingest-workers", "1"]) == 0
    size = sum(p.stat().st_size for p in tmp_path.glob("events-*.csv"))
    assert seen and seen[-1][:2] == (size, size) and seen[-1][2].endswith(f"of {size:,} bytes"), seen
    assert "✓ ingest" in capsys.readouterr().err


def test_the_train_detail_says_what_its_count_counts():
    """The train bar's detail was the targets alone ("like, retweet, reply, quote") at 0/4 for 176 s (a group of
    targets sharing a matrix trains at once): it says they are training and how many are done."""
    from rapids_engage.run_stages import training_detail

    assert training_detail(0, 4, "like, retweet") == "0/4 targets done; training like, retweet"
