"""The workers' training locks (xgboost.dask's): a training stopped midway (Ctrl-C) frees them, so the next one on that
cluster runs."""

from __future__ import annotations

import _thread
import logging
import threading
import time

import numpy as np
import pandas as pd
import pytest

from rapids_engage.backend import CPU
from rapids_engage.config import TrainConfig
from rapids_engage.train_shared_matrix import train_targets
from rapids_engage.train_locks import lock_queues, release_locks, released_on_abort, training_lock

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def client(cluster):
    from distributed import Client

    with Client(cluster) as client:
        yield client


def _frames(rows: int = 4_000):
    import dask.dataframe as dd

    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 3))
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2],
                          "like": (x[:, 0] + rng.normal(size=rows) > 0).astype("float32")})
    return [dd.from_pandas(f, npartitions=2) for f in (frame.iloc[: rows // 2], frame.iloc[rows // 2:])]


def _held(client) -> set[str]:
    return {i for q in lock_queues(client, client.nthreads()).values() for i in q}


def test_queues_name_a_held_lock_and_release_frees_it(client):
    from distributed import MultiLock

    workers = sorted(client.nthreads())
    lock = MultiLock(workers, client=client)  # what a killed run's training leaves behind
    assert lock.acquire(timeout=10)
    assert lock_queues(client, workers) == {w: [lock.id] for w in workers}
    said = []
    with released_on_abort(client, workers, said.append):  # ends normally: takes nothing, releases nothing
        pass
    assert "another training on this cluster holds it" in said[0] and _held(client) == {lock.id}
    assert release_locks(client, [lock.id, "not-a-lock"]) == 1
    assert _held(client) == set()


def _executing(client) -> int:
    """Tasks running on the workers (a cancelled one too, until its function returns)."""
    return sum(client.run(lambda dask_worker: len(dask_worker.state.executing)).values())


def _let_go(client, bound_s: float = 60) -> bool:
    """Whether the workers run no task within ``bound_s``: a bound on a hang (the abandoned training ran on for good,
    or for the tracker's 300 s), not a timing."""
    deadline = time.monotonic() + bound_s
    while _executing(client) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not _executing(client)


def _trackers_end(client, bound_s: float = 60) -> bool:
    """Whether the scheduler lists no tracker within ``bound_s`` (a tracker ends just after its tasks leave it): a
    bound on a hang, not a timing."""
    from rapids_engage.train_abandon import TRACKERS

    def listed() -> list[str]:
        return client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.__dict__.get(TRACKERS, {})))

    deadline = time.monotonic() + bound_s
    while listed() and time.monotonic() < deadline:
        time.sleep(0.1)
    return not listed()


def _interrupt_once(ready) -> None:
    """Ctrl-C in the main thread once ``ready()``."""
    def interrupt() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not ready():
            time.sleep(0.02)
        _thread.interrupt_main()

    threading.Thread(target=interrupt, daemon=True).start()


def test_an_interrupted_training_frees_the_workers_for_the_next(cluster, client):
    """A run on an existing cluster stopped mid-training (its client closes while the abandoned training still
    runs on the workers) used to leave the workers' locks held for good: the next run waited forever. Its training
    then ran on to its last round on the workers, the next run's tasks queued behind it (3,000 rounds: 13 s); now
    its tasks leave their group together at once (train_abandon)."""
    from distributed import Client

    endless = TrainConfig(targets=["like"], max_depth=3, num_boost_round=10**7, early_stopping_rounds=0)
    _interrupt_once(lambda: _held(client) and _executing(client) == 2)  # Ctrl-C while the workers train
    with Client(cluster) as stopped, pytest.raises(KeyboardInterrupt):
        train_targets(stopped, CPU, endless, {"like": "binary"}, *_frames(), ["a", "b", "c"])
    assert _held(client) == set()
    assert _let_go(client) and _trackers_end(client)  # its tasks left, and with them its tracker
    # The next training on the same workers runs (it waited forever on the abandoned training's lock)
    done: dict = {}
    quick = TrainConfig(targets=["like"], max_depth=3, num_boost_round=5, early_stopping_rounds=0)
    thread = threading.Thread(target=lambda: done.setdefault("model", train_targets(client, CPU, quick, {"like": "binary"},
                                                                                      *_frames(), ["a", "b", "c"])["like"]),
                              daemon=True)
    thread.start()
    thread.join(120)
    assert "model" in done and done["model"].booster.num_boosted_rounds() == 5


def test_an_abandoned_training_whose_group_cannot_form_lets_its_workers_go(client, monkeypatch):
    """A worker lost as training started: its peers' tasks wait for it in XGBoost's group, and the run ends with the
    loss. Their tracker kept them waiting until its timeout (TRACKER_TIMEOUT_S, 300 s), the next run's tasks queued
    behind them; now the abandoned training's tracker is stopped, and they fail at once."""
    import rapids_engage.train_shared_matrix as tsm

    start_tracker = tsm.start_tracker
    monkeypatch.setattr(tsm, "start_tracker", lambda client, n: start_tracker(client, n + 1))  # a peer that never joins
    quick = TrainConfig(targets=["like"], max_depth=3, num_boost_round=5, early_stopping_rounds=0)
    _interrupt_once(lambda: _executing(client) == 2)  # both wait for the third
    with pytest.raises(KeyboardInterrupt):
        train_targets(client, CPU, quick, {"like": "binary"}, *_frames(), ["a", "b", "c"])
    assert _held(client) == set()
    assert _let_go(client) and _trackers_end(client)


@pytest.fixture
def errors_logged():
    """The ERROR records logged in this process during the test: the scheduler's too (it runs in this process here;
    distributed's loggers may not propagate to the root logger, so the handler is on both; a record once)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = lambda record: any(r is record for r in records) or records.append(record)
    loggers = [logging.getLogger(), logging.getLogger("distributed")]
    for logger in loggers:
        logger.addHandler(handler)
    yield records
    for logger in loggers:
        logger.removeHandler(handler)


def _training_threads_ended(bound_s: float = 60) -> bool:
    """Whether the training threads (cluster.while_workers_live's) end within ``bound_s``: a bound on a hang."""
    deadline, threads = time.monotonic() + bound_s, [t for t in threading.enumerate() if t.name == "while-workers-live"]
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return not any(t.is_alive() for t in threads)


def test_an_abandoned_training_logs_no_error_when_the_abort_released_its_locks(client, monkeypatch, errors_logged):
    """The abort releases the abandoned training's locks; its training thread, let go by its cancelled tasks, released
    them again (``with MultiLock``): the scheduler logged a ``distributed.multi_lock`` KeyError traceback for every
    Ctrl-C on an existing cluster. Exactly one of the two releases them now, and no error is logged."""
    import rapids_engage.train_shared_matrix as tsm

    gather_cause = tsm.gather_cause

    def gathered_once_the_abort_released(client_, futures):  # the training thread ends after the abort's release
        try:
            return gather_cause(client_, futures)
        finally:
            deadline = time.monotonic() + 60
            while _held(client) and time.monotonic() < deadline:
                time.sleep(0.02)

    monkeypatch.setattr(tsm, "gather_cause", gathered_once_the_abort_released)
    endless = TrainConfig(targets=["like"], max_depth=3, num_boost_round=10**7, early_stopping_rounds=0)
    _interrupt_once(lambda: _held(client) and _executing(client) == 2)  # Ctrl-C while the workers train
    with pytest.raises(KeyboardInterrupt):
        train_targets(client, CPU, endless, {"like": "binary"}, *_frames(), ["a", "b", "c"])
    assert _training_threads_ended() and _let_go(client)
    assert _held(client) == set()
    assert [f"{r.name}: {r.getMessage()}" for r in errors_logged] == []


def test_a_training_lock_is_released_once_by_whichever_releases_it_first(client, errors_logged):
    """The training's lock is released as its block ends, or by the run's abort before that (then the block's end
    releases nothing: ``MultiLock.release`` raised the scheduler's KeyError and the scheduler logged it)."""
    workers = sorted(client.nthreads())
    with training_lock(client, workers):
        assert len(_held(client)) == 1
    assert _held(client) == set()
    with training_lock(client, workers):
        assert release_locks(client, _held(client)) == 1  # the run's abort, while the training thread runs on
    assert _held(client) == set() and errors_logged == []


def test_a_second_ctrl_c_while_releasing_still_frees_the_lock(client, monkeypatch):
    """An impatient second Ctrl-C landed while the first one's clean-up looked up the locks to release: the
    release was skipped, the lock stayed held, and every later run on that scheduler waited forever."""
    import signal

    import distributed

    import rapids_engage.train_locks as train_locks

    workers = sorted(client.nthreads())
    released = train_locks.release_locks
    calls = []

    def second_ctrl_c_during_the_clean_up(*args, **kwargs):
        calls.append(1)
        signal.raise_signal(signal.SIGINT)
        return released(*args, **kwargs)

    monkeypatch.setattr(train_locks, "release_locks", second_ctrl_c_during_the_clean_up)
    with pytest.raises(KeyboardInterrupt):
        with released_on_abort(client, workers) as abandoned:
            assert distributed.MultiLock(workers, client=client).acquire(timeout=10)  # what xgboost.dask.train takes
            raise KeyboardInterrupt  # the first Ctrl-C
    assert _held(client) == set() and len(calls) == 1
    assert abandoned.is_set()  # a training thread left behind takes no lock now
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is back


def test_a_stopped_run_leaves_another_runs_waiting_training_its_place(cluster, client):
    """A run stopped mid-training released every lock requested since its training began, another run's too: that
    run's training, waiting on the shared scheduler for the workers, failed with the scheduler's KeyError (or waited
    for good) instead of training once the stopped run's locks were free."""
    import distributed
    from distributed import Client

    workers, got = sorted(client.nthreads()), {}
    with Client(cluster) as other:
        with pytest.raises(KeyboardInterrupt):
            with released_on_abort(client, workers):
                assert distributed.MultiLock(workers, client=client).acquire(timeout=10)  # this run trains
                waiting = distributed.MultiLock(workers, client=other)  # the other run's training, behind it
                thread = threading.Thread(target=lambda: got.setdefault("other", waiting.acquire(timeout=20)), daemon=True)
                thread.start()
                while len(_held(client)) < 2:
                    time.sleep(0.02)
                raise KeyboardInterrupt  # this run stopped
        thread.join(30)
        assert got == {"other": True} and _held(client) == {waiting.id}
        waiting.release()
    assert _held(client) == set()


def test_overlapping_blocks_on_one_client_keep_each_its_own_record(monkeypatch):
    """Two trainings of one client (threads) each record the locks they request in a set of their own: the first
    to end removes its set by identity, not the other's equal (empty) one, whose locks would then go unrecorded
    and stay held after a Ctrl-C (mutation round 3)."""
    from rapids_engage import train_locks

    monkeypatch.setattr(train_locks, "lock_queues", lambda client, workers: {})
    client = object()
    first, second = released_on_abort(client, []), released_on_abort(client, [])
    first.__enter__()
    second.__enter__()
    assert [len(s) for s in train_locks._requested[id(client)]] == [0, 0]
    first.__exit__(None, None, None)
    assert len(train_locks._requested[id(client)]) == 1  # the second's set, still recording
    second.__exit__(None, None, None)
    assert id(client) not in train_locks._requested


def _split_files(tmp_path, rows: int = 400) -> tuple:
    """A store version's train / valid directories of one parquet file each, as external memory reads them."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 2)).astype("float32")
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": (x[:, 0] > 0).astype("float32")})
    for split in ("train", "valid"):
        (tmp_path / split).mkdir()
        frame.to_parquet(tmp_path / split / "part.0.parquet")
    return tmp_path / "train", tmp_path / "valid"


def _until(done, bound_s: float = 60) -> bool:
    """Whether ``done()`` within ``bound_s``: a bound on a hang, not a timing."""
    deadline = time.monotonic() + bound_s
    while not done() and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(done())


def test_the_least_queued_worker_is_a_free_one(client):
    """External memory trains on one worker: one whose lock no other run holds, where there is one."""
    from distributed import MultiLock

    from rapids_engage.train_locks import least_queued

    first, second = sorted(client.nthreads())
    assert least_queued(client, [second, first]) == first  # all free: the first address
    lock = MultiLock([first], client=client)
    assert lock.acquire(timeout=10)
    try:
        assert least_queued(client, [first, second]) == second
    finally:
        lock.release()


def test_an_external_memory_training_waits_for_its_workers_lock_and_frees_it(cluster, client, tmp_path):
    """train.external_memory took no lock: on a shared cluster it trained on a worker while another run's training held
    it (two trainings on one worker, the memory budget external memory keeps exceeded). It now queues behind the other
    run's lock, says so, trains once it is free, and leaves no lock held."""
    from distributed import Client, MultiLock

    from rapids_engage.train_external import train_target_external

    train_dir, valid_dir = _split_files(tmp_path)
    quick = TrainConfig(targets=["y"], max_depth=2, num_boost_round=5, early_stopping_rounds=0)
    said, done = [], {}
    with Client(cluster) as other:
        held = MultiLock(sorted(client.nthreads()), client=other)  # another run trains on every worker
        assert held.acquire(timeout=10)
        thread = threading.Thread(target=lambda: done.setdefault("model", train_target_external(
            client, CPU, quick, "y", train_dir, valid_dir, ["a", "b"], cache_dir=str(tmp_path / "cache"), log=said.append)),
            daemon=True)
        thread.start()
        assert _until(lambda: len(_held(client)) == 2 or not thread.is_alive())
        assert thread.is_alive() and "model" not in done and _executing(client) == 0  # queued behind it, not training
        assert "another training on this cluster holds it" in said[0]
        held.release()
        thread.join(60)
    assert done["model"].booster.num_boosted_rounds() == 5
    assert _held(client) == set()


def test_an_abandoned_external_memory_training_leaves_its_workers_lock_free(client, tmp_path, errors_logged):
    """A run given up (Ctrl-C) mid external-memory training: the lock it trained under is released, once (the abort or
    the training thread, whichever first: no scheduler KeyError logged), and its task stops."""
    from rapids_engage.train_external import train_target_external

    train_dir, valid_dir = _split_files(tmp_path)
    endless = TrainConfig(targets=["y"], max_depth=2, num_boost_round=10**7, early_stopping_rounds=0)
    while_training: list[set[str]] = []
    _interrupt_once(lambda: _executing(client) == 1 and not while_training.append(_held(client)))
    with pytest.raises(KeyboardInterrupt):
        train_target_external(client, CPU, endless, "y", train_dir, valid_dir, ["a", "b"], cache_dir=str(tmp_path / "cache"))
    assert len(while_training[-1]) == 1  # it trained under a lock
    assert _training_threads_ended() and _let_go(client)
    assert _held(client) == set()
    assert [f"{r.name}: {r.getMessage()}" for r in errors_logged] == []
