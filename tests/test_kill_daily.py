"""A daily job's ingest step (a rolling window: the oldest file removed, a day's added; built on yesterday's folder,
then ``data.keep_ingests: 1``), killed (SIGKILL) just before one of its renames, links, unlinks or directory removals,
then run again: the cache is what an uninterrupted step leaves, with no leftover and no lock file more.

The kill points are drawn from the uninterrupted step's calls with a fixed seed (``bench/kill_daily.py`` does the same
for the whole job, ``run`` and ``predict --out`` with a shared store and ``features.keep_versions: 1``, at any number
of points)."""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import random
import shutil
import signal
import subprocess
from contextlib import ExitStack
from pathlib import Path

import pytest

from rapids_engage.data import table_dataset
from rapids_engage.ingest.cache_pruning import prune_ingests

from test_ingest_incremental import day_file, table_cfg

BENCH = Path(__file__).resolve().parents[1] / "bench" / "kill_daily.py"
SEED = 20261205
KILLS = 4


def _bench():
    spec = importlib.util.spec_from_file_location("bench_kill_daily", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


kill_daily = _bench()


def _step(work: Path, die_at: int) -> None:
    """Today's ingest and pruning as a run does (its folder marked read from before it is built to after the
    pruning), killed before the ``die_at``-th mutation (0: never; the calls then in ``work/../calls.json``)."""
    import os

    os.setpgid(0, 0)  # a process group of its own: the kill takes this process alone
    calls = kill_daily.die_before(die_at)
    with ExitStack() as readers:
        dataset = table_dataset(table_cfg(work / "raw", work / "cache"), hold=readers.enter_context)
        prune_ingests(dataset.data_dir, 1, lambda _: None)
    (work.parent / "calls.json").write_text(json.dumps(calls))


def _run_step(work: Path, die_at: int) -> int:
    process = multiprocessing.get_context("fork").Process(target=_step, args=(work, die_at))
    process.start()
    process.join(120)
    assert process.exitcode is not None, "the step hung"  # a lock the killed step held would block it
    return process.exitcode


def _restore(base: Path, work: Path) -> None:
    if work.exists():
        shutil.rmtree(work)
    subprocess.run(["cp", "-a", str(base), str(work)], check=True)  # hard links between ingest folders kept
    (work / "raw" / "d0.csv").unlink()  # the window slid: the oldest day out, today's in
    day_file(work / "raw", "d3.csv", 3)


@pytest.fixture(scope="module")
def yesterday(tmp_path_factory) -> Path:
    """The cache after yesterday's step (days 0-2 ingested, the day before's folder pruned), to start each trial from."""
    base = tmp_path_factory.mktemp("kill_daily") / "base"
    (base / "raw").mkdir(parents=True)
    for day in range(3):
        day_file(base / "raw", f"d{day}.csv", day, bad=day != 1)
    with ExitStack() as readers:
        table_dataset(table_cfg(base / "raw", base / "cache"), hold=readers.enter_context)
    return base


def test_a_daily_ingest_killed_at_any_point_then_run_again_leaves_what_an_uninterrupted_one_does(yesterday):
    work = yesterday.parent / "work"
    _restore(yesterday, work)
    assert _run_step(work, 0) == 0
    want, calls = kill_daily.state(work), json.loads((yesterday.parent / "calls.json").read_text())
    assert len(want["ingests"]) == 1 and not want["leftovers"]
    points = sorted(random.Random(SEED).sample(range(1, len(calls) + 1), KILLS))
    for point in points:
        _restore(yesterday, work)
        assert _run_step(work, point) == -signal.SIGKILL, calls[point - 1]
        assert _run_step(work, 0) == 0, calls[point - 1]
        assert kill_daily.differences(kill_daily.state(work), want) == [], (point, calls[point - 1])


def _after_publication(calls: list[str]) -> int:
    """The call just after today's folder is published (its staging renamed in place; its build lock file still there)."""
    return max(i for i, c in enumerate(calls) if c == "replace in replace_dir") + 2


def _after_renaming_away(calls: list[str]) -> int:
    """The call just after the pruning renamed yesterday's folder away (its readers' lock file still there)."""
    return calls.index("replace in _delete_unless_read") + 2


@pytest.mark.parametrize("point", [_after_publication, _after_renaming_away])
def test_the_lock_files_a_killed_step_left_go_at_the_next_pruning(yesterday, point):
    """Killed after today's folder was published but before its build lock file went, or after a pruning renamed
    yesterday's folder away but before its readers' lock file went: the file stayed for good (blocking nothing: the
    kernel let its lock go), one more in the cache at each such kill of a rolling window (a build lock file went at the
    entry's next build only, and no folder of that name is built again)."""
    work = yesterday.parent / "work"
    _restore(yesterday, work)
    assert _run_step(work, 0) == 0
    want, calls = kill_daily.state(work), json.loads((yesterday.parent / "calls.json").read_text())
    _restore(yesterday, work)
    assert _run_step(work, point(calls)) == -signal.SIGKILL
    assert _run_step(work, 0) == 0
    got = kill_daily.state(work)
    assert got["locks"] == want["locks"] == []
    assert got == want


def _killed_holding(lock) -> None:
    """``lock`` (a context) entered in a forked process killed (SIGKILL) inside it: its lock file left, no lock held."""
    import os

    def hold() -> None:
        with lock:
            os.kill(os.getpid(), signal.SIGKILL)

    process = multiprocessing.get_context("fork").Process(target=hold)
    process.start()
    process.join(60)
    assert process.exitcode == -signal.SIGKILL


def test_the_lock_files_killed_store_commands_left_go_at_the_next_retention(tmp_path, held_elsewhere):
    """``bench/kill_daily.py`` killed a day's run after it published its store version but before the version's build
    lock file went: the file stayed for good once ``features.keep_versions`` deleted that version the next day (it went
    at the version's next build only); so did a deletion's ``.<version>.use.lock``, killed after renaming the version
    away. A lock a command holds stays."""
    import pandas as pd

    from rapids_engage.build_lock import building
    from rapids_engage.retention import apply_retention
    from rapids_engage.store import FeatureStore, use_lock

    store = FeatureStore(tmp_path / "store")
    old, own, busy = "0" * 16, "1" * 16, "2" * 16
    for version in (old, own):
        tmp = store.begin()
        (tmp / "train").mkdir()
        pd.DataFrame({"f": [1, 2]}).to_parquet(tmp / "train" / "part.0.parquet")
        store.publish(tmp, version, {"rows": {"train": 2, "valid": 1}, "features": ["f"], "reused": None})
    _killed_holding(building(store.version_dir(old)))
    _killed_holding(use_lock(store.path, own))
    with held_elsewhere(lambda: building(store.version_dir(busy))):  # another run building a version now
        assert apply_retention(store.path, 1, own, lambda _: None)["deleted"] == [old]
        assert sorted(p.name for p in store.path.glob(".*.lock")) == [f".{busy}.lock"]


def _publish(store_path: Path, version: str, die_at: int) -> None:
    """A version built in a temporary directory and published, killed before the ``die_at``-th mutation of the
    publication (0: never)."""
    import os

    import pandas as pd

    from rapids_engage.store import FeatureStore

    store = FeatureStore(store_path)
    tmp = store.begin()
    (tmp / "train").mkdir()
    pd.DataFrame({"f": [1, 2]}).to_parquet(tmp / "train" / "part.0.parquet")
    os.setpgid(0, 0)
    calls = kill_daily.die_before(die_at)
    store.publish(tmp, version, {"rows": {"train": 2, "valid": 1}, "features": ["f"], "reused": None}, replace=False)
    (store_path / "calls.json").write_text(json.dumps(calls))


def test_a_build_killed_while_it_publishes_leaves_nothing_the_next_build_keeps(tmp_path):
    """``bench/kill_daily.py`` killed a day's run while it published its store version (its owner mark removed, the
    manifest not yet renamed in place): the temporary directory, owned by no one, was taken for another host's build
    in progress and kept for good by every later run (a ``.tmp-<hex>`` more per such kill). Killed at any call of the
    publication, the next run's sweep deletes what it left (the owner mark stays until the rename, then goes: killed
    between, the mark left in the version goes at the sweep)."""
    from rapids_engage.store import FeatureStore
    from rapids_engage.store_builds import OWNER, sweep, temporary_dirs

    def publish(store_path: Path, die_at: int) -> int:
        process = multiprocessing.get_context("fork").Process(target=_publish, args=(store_path, "a" * 16, die_at))
        process.start()
        process.join(60)
        return process.exitcode

    assert publish(tmp_path / "clean", 0) == 0
    calls = json.loads((tmp_path / "clean" / "calls.json").read_text())
    for point in range(1, len(calls) + 1):
        store = tmp_path / f"killed-{point}"
        assert publish(store, point) == -signal.SIGKILL
        sweep(store)
        assert temporary_dirs(store) == [], calls[point - 1]
        assert not (store / ("a" * 16) / OWNER).exists(), calls[point - 1]  # killed after the rename
        assert publish(store, 0) == 0 and FeatureStore(store).versions() == ["a" * 16]
