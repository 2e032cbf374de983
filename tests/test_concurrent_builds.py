"""Runs sharing a cache or store at once: each ends with the right entry, built once; staging is each run's own."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

import rapids_engage.synthetic as synthetic
from rapids_engage.atomic import write_text
from rapids_engage.backend import CPU
from rapids_engage.build_lock import build_once, building, lock_path
from rapids_engage.config import load_config
from rapids_engage.data import _ingest_once, _reuse, read_events, synthetic_dataset
from rapids_engage.features import add_labels
from rapids_engage.features.materialize import materialize
from rapids_engage.layout import RECSYS
from rapids_engage.split import time_split
from rapids_engage.store import FeatureStore
from rapids_engage.synthetic import SyntheticSpec, generate

#: The most a test waits for the racing thread to arrive (it comes within a second; a busy machine, a few).
ARRIVE_S = 20.0


class Race:
    """The first run to enter a build starts a second run and holds its build until that second run has arrived:
    entered the same build (no lock) or said it waits for the first (locked)."""

    def __init__(self, second) -> None:
        self.entered, self.lines, self.arrived = 0, [], threading.Event()
        self.second = threading.Thread(target=self._run, args=(second,))
        self.failure: BaseException | None = None
        self.result = None

    def _run(self, second) -> None:
        try:
            self.result = second(self.log)
        except BaseException as exc:  # noqa: BLE001 - re-raised by join
            self.failure = exc
            self.arrived.set()

    def log(self, line: str) -> None:
        self.lines.append(line)
        if "waiting for another run building" in line:
            self.arrived.set()

    def enter(self) -> None:
        self.entered += 1
        if self.entered == 1:
            self.second.start()
            assert self.arrived.wait(ARRIVE_S), "the second run never arrived"
        else:
            self.arrived.set()

    def join(self):
        self.second.join(ARRIVE_S * 3)
        assert not self.second.is_alive()
        if self.failure is not None:
            raise self.failure
        return self.result


def test_a_second_synthetic_run_waits_for_the_first_and_reuses_its_data(tmp_path, monkeypatch):
    """Both generated the same dataset into the same folder at once (correct, the work done twice)."""
    cfg = load_config(None, [f"data.cache_dir={tmp_path}", "synthetic.rows=2000", "synthetic.days=2"])
    race = Race(lambda log: synthetic_dataset(cfg, log=log))

    def racing_generate(out_dir, spec, **kwargs):
        race.enter()
        return generate(out_dir, spec, **kwargs)

    monkeypatch.setattr(synthetic, "generate", racing_generate)
    first = synthetic_dataset(cfg)
    second = race.join()
    assert race.entered == 1, "generated twice"
    assert "(generated; " in first.description and "(by another run meanwhile: cached; " in second.description
    assert [line for line in race.lines if "waiting" in line] == [f"waiting for another run building {first.data_dir.parent}"]
    assert len(read_events(second.data_dir).compute()) == 2000
    assert not list(tmp_path.glob(".*.lock"))  # released and gone


def _look(entry: Path):
    """An entry's look: its text when whole; a file reading "cut" is damaged."""
    text = entry.read_text() if entry.exists() else None
    return (None, f"damaged ({text})") if text == "cut" else (text, None)


def test_build_once_builds_once_and_a_second_thread_waits_and_reuses_it(tmp_path):
    """look, lock, look again, build: the second thread's first look misses, it waits, its second finds the first's."""
    entry, built = tmp_path / "entry", []

    def build(why):
        race.enter()
        built.append(why)
        entry.write_text("whole")
        return "built"

    race = Race(lambda log: build_once(building(entry, log), lambda: _look(entry), build))
    assert build_once(building(entry), lambda: _look(entry), build) == ("built", False)
    assert race.join() == ("whole", True) and built == [None]
    assert build_once(building(entry), lambda: _look(entry), build) == ("whole", False)
    assert not lock_path(entry).exists()


def test_build_once_builds_a_copy_look_calls_damaged_again_saying_why(tmp_path):
    entry, built = tmp_path / "entry", []
    entry.write_text("cut")

    def build(why):
        built.append(why)
        entry.write_text("whole")
        return "built"

    assert build_once(building(entry), lambda: _look(entry), build) == ("built", False)
    assert built == ["damaged (cut)"] and entry.read_text() == "whole"


@dataclass
class Summary:
    """The fields of an ingest's result that a run reads."""

    files: int = 1
    input_rows: int = 3
    ingested_rows: int = 3
    quarantined_rows: int = 0
    quarantine_counts: dict = field(default_factory=dict)


def test_a_second_ingest_of_the_same_files_waits_and_reuses_the_first(tmp_path):
    """Both ingested the same files into the same cache entry, the second replacing the first's under its reader."""
    root = tmp_path / "table-0123456789ab"

    def ingest() -> Summary:  # an ingest publishes its output with ingest.json last
        race.enter()
        write_text(root / "ingest.json", json.dumps(asdict(Summary())))
        return Summary()

    race = Race(lambda log: _ingest_once(root, ingest, log))
    first = _ingest_once(root, ingest)
    second = race.join()
    assert race.entered == 1, "ingested twice"
    assert first == asdict(Summary()) and second["reused"] and second["waited"]
    assert _reuse(second) == " (by another run meanwhile: cached)"


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    root = tmp_path_factory.mktemp("race")
    generate(root, SyntheticSpec(rows=4_000, days=3, seed=5))
    frame = add_labels(read_events(root / "data"), ["like"])
    train, valid, split = time_split(frame, 24)
    return root / "data", train, valid, {"valid_hours": 24, "cutoff": split.cutoff}


def test_a_second_build_of_a_store_version_waits_for_the_first_and_reuses_it(events, tmp_path, monkeypatch):
    """Both built the version in full; the second's publication found the first's there and threw its own away."""
    data_dir, train, valid, split = events
    cfg = copy.deepcopy(load_config().features)
    store = tmp_path / "store"

    def build(log):
        return materialize(cfg, store, data_dir, train, valid, ["like"], split, CPU, RECSYS, False, log)

    race = Race(build)
    begin = FeatureStore.begin

    def racing_begin(self):
        race.enter()
        return begin(self)

    monkeypatch.setattr(FeatureStore, "begin", racing_begin)
    lines: list[str] = []
    first = build(lines.append)
    second = race.join()
    assert race.entered == 1, "built twice"
    assert not first.cache_hit and second.cache_hit and second.version == first.version and second.rows == first.rows
    assert any(line.startswith(f"waiting for another run building {store / first.version}") for line in race.lines)
    assert FeatureStore(store).versions() == [first.version]
    assert not list(store.glob(".*.lock"))


def test_a_killed_holders_lock_blocks_no_later_build(tmp_path):
    """flock goes with its process: a run killed mid-build (SIGKILL) leaves a lock file that blocks nothing."""
    entry = tmp_path / "synthetic-x"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from rapids_engage.build_lock import building\n"
         f"with building({str(entry)!r}):\n print('held', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    try:
        assert holder.stdout.readline().strip() == "held"
        waited: list[str] = []
        done = threading.Event()

        def take() -> None:
            with building(entry, waited.append):
                done.set()

        taker = threading.Thread(target=take)
        taker.start()
        deadline = time.monotonic() + ARRIVE_S
        while not waited and time.monotonic() < deadline:  # held: the taker waits, and says so
            time.sleep(0.01)
        assert waited and not done.is_set()
        holder.send_signal(signal.SIGKILL)
        taker.join(ARRIVE_S)
        assert done.is_set()
    finally:
        holder.kill()
        holder.wait()
    assert not lock_path(entry).exists()
