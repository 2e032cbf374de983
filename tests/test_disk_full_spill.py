"""A full cluster.local_directory (dask's spill / P2P shuffle files) stops the run in one line instead of hanging:
dask keeps data in memory when a spill fails and restarts a P2P shuffle that could not write."""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from rapids_engage.backend import CPU
from rapids_engage.cluster import start_cluster
from rapids_engage.config import ClusterConfig
from rapids_engage.failures import LocalDirectoryFull, one_line
from rapids_engage.spill_disk import failed_for_room


def _record(name: str, exc: BaseException | None) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, "failed", (), (type(exc), exc, None) if exc else None)


def _raised(exc: BaseException, cause: BaseException | None = None) -> BaseException:
    try:
        raise exc from cause
    except BaseException as caught:  # noqa: BLE001 - the exception with its cause set, as logged
        return caught


def test_only_spill_and_shuffle_writes_without_room_count():
    from distributed.shuffle._exceptions import P2POutOfDiskError

    full = OSError(errno.ENOSPC, "No space left on device")
    assert failed_for_room(_record("distributed.spill", full)) == "spill"
    assert failed_for_room(_record("distributed.spill", OSError(errno.EDQUOT, "Disk quota exceeded"))) == "spill"
    # P2P's error, logged by the module it passed through (distributed.core's comm handler)
    assert failed_for_room(_record("distributed.core", _raised(P2POutOfDiskError(), full))) == "P2P shuffle"
    assert failed_for_room(_record("distributed.spill", OSError(errno.EIO, "I/O error"))) is None
    assert failed_for_room(_record("distributed.spill", None)) is None
    # a task's own write on a full disk (to_parquet into the store) reaches the driver, which names its file
    assert failed_for_room(_record("distributed.worker", full)) is None


def test_the_error_is_its_own_line():
    error = LocalDirectoryFull("/spill", "disk full in cluster.local_directory /spill: ...")
    assert error.errno == errno.ENOSPC and error.filename == "/spill"
    assert one_line(error, ()) == "disk full in cluster.local_directory /spill: ..."


def _spills_find_no_room(dask_worker) -> int:
    """Every spill of this worker fails as on a full disk; spill what it holds now."""
    def no_room(self, key, value):
        raise OSError(errno.ENOSPC, "No space left on device")

    type(dask_worker.data.slow.data).__setitem__ = no_room
    return dask_worker.data.evict()


def test_a_spill_that_found_no_room_stops_the_run_in_one_line(tmp_path, capfd):
    spill = tmp_path / "spill"
    cfg = ClusterConfig(gpus="0", n_workers=1, threads_per_worker=1, local_directory=str(spill))
    with pytest.raises(LocalDirectoryFull) as raised:
        with start_cluster(CPU, cfg) as cluster:
            client = cluster.client
            held = client.scatter(np.arange(100_000))
            threading.Timer(0.5, client.run, (_spills_find_no_room,)).start()
            client.submit(time.sleep, 30, pure=False).result()  # a stage waiting on the cluster: stopped
    del held
    line = one_line(raised.value, ())
    assert line.startswith(f"disk full in cluster.local_directory {spill}: dask's spill files no longer fit (")
    assert "1 failed write(s) on worker tcp://" in line and "point cluster.local_directory at a larger disk" in line
    time.sleep(0.5)  # the worker's stderr
    assert "Spill to disk failed" not in capfd.readouterr().err  # said once, by the run


_TMPFS_RUN = r"""
import sys, time
import numpy as np
from rapids_engage.backend import CPU
from rapids_engage.cluster import start_cluster
from rapids_engage.config import ClusterConfig
from rapids_engage.failures import LocalDirectoryFull

def spill(dask_worker):
    return dask_worker.data.evict()

cfg = ClusterConfig(gpus="0", n_workers=1, threads_per_worker=1, local_directory=sys.argv[1])
try:
    with start_cluster(CPU, cfg) as cluster:
        client = cluster.client
        small = client.scatter(np.random.default_rng(0).random(100_000))  # 800 kB of the 1 MiB: fits
        assert list(client.run(spill).values()) != [-1]
        time.sleep(5)  # polls of a nearly full directory still written to: no stop
        print("nearly full: went on", flush=True)
        large = client.scatter(np.random.default_rng(1).random(1_000_000))  # 8 MB: does not
        client.run(spill)
        time.sleep(30)
except LocalDirectoryFull as exc:
    print(exc)
"""


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="mounts a tmpfs: root only")
def test_a_real_full_tmpfs_stops_the_run_and_a_nearly_full_one_does_not(tmp_path):
    mount = tmp_path / "mnt"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        done = subprocess.run([sys.executable, "-c", _TMPFS_RUN, str(mount)], capture_output=True, text=True, timeout=120)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)
    assert done.stdout.splitlines()[0] == "nearly full: went on", done.stdout + done.stderr
    assert done.stdout.splitlines()[1].startswith(f"disk full in cluster.local_directory {mount}: dask's spill files "), \
        done.stdout + done.stderr
    assert "Spill to disk failed" not in done.stderr


class _CountingWorkers:
    """A client whose one worker reports ``failures`` failed spill writes; ``asked`` is set after a few questions."""

    def __init__(self, failures: int) -> None:
        self.failures, self.questions, self.asked = failures, 0, threading.Event()

    def run(self, function, on_error=None, **kwargs):
        self.questions += 1
        if self.questions >= 4:
            self.asked.set()
        return {"tcp://w1": {"failures": self.failures, "what": "spill", "directory": "/spill", "free": 0}}


def test_an_earlier_runs_failed_writes_do_not_stop_the_next_run():
    from rapids_engage.spill_disk import full_disk_stops

    workers = _CountingWorkers(failures=2)  # a long-lived worker of an existing cluster: an earlier run's failures
    with full_disk_stops(workers, "/spill", poll_s=0.01):
        assert workers.asked.wait(30)  # polled several times: no stop
    workers = _CountingWorkers(failures=2)
    with pytest.raises(LocalDirectoryFull) as raised:
        with full_disk_stops(workers, "/spill", poll_s=0.01):
            workers.failures = 3  # this run's own
            time.sleep(30)  # stopped long before
    assert "(0 bytes free; 1 failed write(s) on worker tcp://w1)" in one_line(raised.value, ())


class _InterruptedOnExit:
    """:func:`full_disk_stops`' context whose exit the interrupt reaches before the watch's code runs (a SIGINT
    landing in contextlib's ``__exit__`` as the stage ends)."""

    def __init__(self, watch) -> None:
        self.watch = watch

    def __enter__(self) -> None:
        self.watch.__enter__()

    def __exit__(self, *exc) -> None:
        raise KeyboardInterrupt


def test_a_stop_whose_interrupt_lands_as_the_stage_ends_says_disk_full(monkeypatch):
    """The watch's SIGINT landing while a stage ended (in contextlib's exit, before the watch's code) surfaced as a
    Ctrl-C: "error: interrupted", exit 130 (and the watch's error as "Exception ignored in ..."). The watch records
    why it stopped the run; the command says that line, exit 2. A later command's Ctrl-C is "interrupted" again."""
    import argparse
    import gc
    import io
    import signal

    from rich.console import Console

    from rapids_engage.commands import _guarded
    from rapids_engage.spill_disk import full_disk_stops
    from rapids_engage.stop_signals import stop_signals

    sent = threading.Event()
    monkeypatch.setattr(signal, "pthread_kill", lambda ident, signum: sent.set())  # it lands below instead
    ignored = []
    monkeypatch.setattr(sys, "unraisablehook", ignored.append)

    def stage() -> int:
        workers = _CountingWorkers(failures=0)
        with _InterruptedOnExit(full_disk_stops(workers, "/spill", poll_s=0.01)):
            workers.failures = 1
            assert sent.wait(30)
        return 0

    def ctrl_c() -> int:
        raise KeyboardInterrupt

    said = io.StringIO()
    with stop_signals():
        assert _guarded(stage, argparse.Namespace(debug=False), Console(file=said, width=300)) == 2
    gc.collect()
    assert said.getvalue().startswith("error: disk full in cluster.local_directory /spill: dask's spill files "), \
        said.getvalue()
    assert not ignored, [u.exc_value for u in ignored]
    said = io.StringIO()
    with stop_signals():
        assert _guarded(ctrl_c, argparse.Namespace(debug=False), Console(file=said, width=300)) == 130
    assert said.getvalue() == "error: interrupted\n"


def _shuffle_error(text: str) -> logging.LogRecord:
    from distributed.shuffle._exceptions import ShuffleClosedError

    return _record("distributed.shuffle._core", _raised(ShuffleClosedError(text)))


def test_the_worker_log_leaves_out_only_what_the_watching_run_says(monkeypatch):
    """The worker's filter dropped every P2P shuffle error for ever after one failed write. It drops a write that
    found no room only while a run watches, and the shuffle errors after one only for QUIET_S and until a new
    watch opens; other errors never."""
    from rapids_engage import spill_disk

    counter = spill_disk._FailedWrites()
    logged = spill_disk._SaidByTheRun(counter).filter
    no_room = _record("distributed.spill", OSError(errno.ENOSPC, "No space left on device"))
    assert logged(no_room)  # no run watches: the worker's own log says it
    counter.asked(opening=True)
    assert not logged(no_room) and logged(_shuffle_error("before any failure"))
    counter.handle(no_room)
    assert counter.count == 1
    assert not logged(_shuffle_error("a shuffle the stopped run left behind"))
    assert logged(_record("distributed.worker", _raised(ValueError("another kind"))))
    monkeypatch.setattr(spill_disk, "QUIET_S", 0.0)  # the time has passed
    assert logged(_shuffle_error("later")) and logged(no_room)


def _logged_on_worker(logger: str, text: str, no_room: bool) -> None:
    """(Run on a worker.) Log ``text`` with a write that found no room or a P2P shuffle error."""
    from distributed.shuffle._exceptions import ShuffleClosedError

    try:
        raise OSError(errno.ENOSPC, "No space left on device") if no_room else ShuffleClosedError(text)
    except Exception:  # noqa: BLE001 - logged as the worker's modules do
        logging.getLogger(logger).exception(text)


def test_a_later_runs_shuffle_errors_are_logged_again(capfd):
    """A long-lived worker (of an existing cluster) whose spill once found no room hid every later P2P shuffle
    error of its own, in every later run. Now only the stopped run's, and a new watch shows them again."""
    from distributed import Client, LocalCluster

    from rapids_engage.spill_disk import count_failed_writes, full_disk_stops

    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster) as client:
        client.run(count_failed_writes)  # as the worker setup does
        with pytest.raises(LocalDirectoryFull):
            with full_disk_stops(client, "/spill", poll_s=0.05):
                client.run(_logged_on_worker, "distributed.spill", "run 1 spill found no room", True)
                client.run(_logged_on_worker, "distributed.shuffle._core", "run 1 shuffle left behind", False)
                time.sleep(30)  # stopped long before
        with full_disk_stops(client, "/spill", poll_s=0.05):
            client.run(_logged_on_worker, "distributed.shuffle._core", "run 2 shuffle error", False)
        err = capfd.readouterr().err
    assert "run 1 spill found no room" not in err and "run 1 shuffle left behind" not in err  # said by run 1
    assert "run 2 shuffle error" in err
