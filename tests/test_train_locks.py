"""The workers' training locks (xgboost.dask's): a training stopped midway (Ctrl-C) frees them, so the next one on that
cluster runs."""

from __future__ import annotations

import _thread
import threading
import time

import numpy as np
import pandas as pd
import pytest

from rapids_engage.backend import CPU
from rapids_engage.config import TrainConfig
from rapids_engage.train_shared_matrix import train_targets
from rapids_engage.train_locks import lock_queues, release_locks, released_on_abort

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


def test_an_interrupted_training_frees_the_workers_for_the_next(cluster, client):
    """A run on an existing cluster stopped mid-training (its client closes while the abandoned training still
    runs on the workers) used to leave the workers' locks held for good: the next run waited forever."""
    from distributed import Client

    # long enough for the Ctrl-C to land mid-training (it lands within ~0.1 s of the lock) and short enough that
    # the abandoned training, which runs on to its end, does not hold up the next one for long (3,000 rounds: a minute)
    cfg = TrainConfig(targets=["like"], max_depth=6, num_boost_round=600, early_stopping_rounds=0)

    def interrupt_once_locked() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _held(client):
            time.sleep(0.02)
        _thread.interrupt_main()  # Ctrl-C while the workers train

    threading.Thread(target=interrupt_once_locked, daemon=True).start()
    with Client(cluster) as stopped, pytest.raises(KeyboardInterrupt):
        train_targets(stopped, CPU, cfg, {"like": "binary"}, *_frames(), ["a", "b", "c"])
    assert _held(client) == set()
    # The next training on the same workers runs (it waited forever on the abandoned training's lock)
    done: dict = {}
    quick = TrainConfig(targets=["like"], max_depth=3, num_boost_round=5, early_stopping_rounds=0)
    thread = threading.Thread(target=lambda: done.setdefault("model", train_targets(client, CPU, quick, {"like": "binary"},
                                                                                      *_frames(), ["a", "b", "c"])["like"]),
                              daemon=True)
    thread.start()
    thread.join(120)
    assert "model" in done and done["model"].booster.num_boosted_rounds() == 5


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
