"""Lock files the prunings delete (``data.keep_ingests``: an ingest folder's build and readers' lock files;
``features.keep_versions``: a version's build and use lock files) against a command that opened one just before the
sweep unlinked it: the command notices it locked a deleted file and locks the one at the path, so a second command
waits for it (two holders of one lock were the classic race of deleting lock files). Deterministic: the sweep runs
from a hook between the holder's open and its flock."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from rapids_engage import build_lock
from rapids_engage.build_lock import building, lock_path, remove_unheld
from rapids_engage.ingest import reader_marks
from rapids_engage.ingest.cache_pruning import _sweep_stale_locks
from rapids_engage.ingest.reader_marks import marks_path, reading
from rapids_engage.store import use_lock

VERSION = "0123456789abcdef"
FOLDER = "table-0123456789ab"


def _held_by_someone(path: Path) -> bool:
    """Whether the lock file at ``path`` exists and another holder's lock stops an exclusive one (a second command)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _in_another_process(sweep, path: Path) -> bool:
    """Whether ``sweep()``, run in a forked process (another command: this one's locks are not its own), deleted the
    lock file ``path``."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            sweep()
            code = 0 if not path.exists() else 2
        finally:
            os._exit(code)
    return os.waitpid(pid, 0)[1] == 0


def _sweep_between_open_and_lock(monkeypatch, module, name: str, path: Path, sweep, after: bool = False) -> list[bool]:
    """Run ``sweep`` once in another process, right after the holder opened its lock file: before ``module.name``
    (the lock), or ``after`` it (the open)."""
    real, swept = getattr(module, name), []

    def hooked(*args, **kwargs):
        result = real(*args, **kwargs) if after else None
        if not swept:
            swept.append(_in_another_process(sweep, path))
        return result if after else real(*args, **kwargs)

    monkeypatch.setattr(module, name, hooked)
    return swept


def _check_exclusive(monkeypatch, path: Path, hold, sweep) -> None:
    swept = _sweep_between_open_and_lock(monkeypatch, build_lock, "_lock", path, sweep)
    with hold() as locked:
        assert locked and swept == [True], "the sweep did not delete the file between the open and the lock"
        assert path.exists(), "the holder kept a lock on a deleted file"
        assert _held_by_someone(path), "a second command would lock the file at the path too"
        assert not _in_another_process(sweep, path)  # a sweep during the (whole-build) hold deletes nothing
        assert _held_by_someone(path)
    assert not path.exists()


def test_an_ingest_folder_build_lock_swept_between_open_and_lock(tmp_path, monkeypatch):
    path = lock_path(tmp_path / FOLDER)
    path.touch()  # a killed build's
    _check_exclusive(monkeypatch, path, lambda: building(tmp_path / FOLDER), lambda: _sweep_stale_locks(tmp_path))


def test_a_version_build_lock_swept_between_open_and_lock(tmp_path, monkeypatch):
    path = lock_path(tmp_path / VERSION)
    path.touch()
    _check_exclusive(monkeypatch, path, lambda: building(tmp_path / VERSION), lambda: remove_unheld(path))


def test_a_version_use_lock_swept_between_open_and_lock(tmp_path, monkeypatch):
    path = tmp_path / f".{VERSION}.use.lock"
    path.touch()
    _check_exclusive(monkeypatch, path, lambda: use_lock(tmp_path, VERSION), lambda: remove_unheld(path))


@pytest.mark.parametrize("how", ["sweep", "remove_unheld"])
def test_a_readers_lock_swept_between_open_and_shared_lock(tmp_path, monkeypatch, how):
    entry, path = tmp_path / FOLDER, marks_path(tmp_path / FOLDER)
    path.touch()  # a killed pruning's
    sweep = (lambda: _sweep_stale_locks(tmp_path)) if how == "sweep" else (lambda: remove_unheld(path))
    swept = _sweep_between_open_and_lock(monkeypatch, reader_marks, "_open", path, sweep, after=True)
    with reading(entry):
        assert swept == [True], "the sweep did not delete the file between the open and the lock"
        assert path.exists(), "the reader kept a shared lock on a deleted file"
        assert _held_by_someone(path), "a pruning would rename the folder away under this reader"
        assert not _in_another_process(sweep, path)
    assert not path.exists()


def test_another_hosts_build_publishing_now_is_kept_where_its_lock_is_not_seen(tmp_path, monkeypatch):
    """A build on another host sharing the store (NFS where flock is per host, ``local_lock=flock`` or ``nolock``, so
    its build lock is free from here), caught between its manifest's write and its rename: this host's sweep kept it
    before the killed-publication rule and must keep it still (it took it for a killed one and deleted it: the other
    host's publication then failed)."""
    import json
    import socket

    from rapids_engage import store as store_module
    from rapids_engage.store import FeatureStore
    from rapids_engage.store_builds import OWNER, sweep, temporary_dirs

    store = FeatureStore(tmp_path / "store")
    tmp = store.begin()
    owner = json.loads((tmp / OWNER).read_text())
    (tmp / OWNER).write_text(json.dumps({**owner, "host": f"not-{socket.gethostname()}"}))  # another host's build
    (tmp / "train").mkdir()
    (tmp / "train" / "part.0.parquet").write_bytes(b"PAR1")
    real_rename, seen = os.rename, []

    def rename_after_a_sweep(src, dst):
        if Path(src) == tmp:
            seen.append((sweep(store.path)[0], temporary_dirs(store.path)))
        return real_rename(src, dst)

    monkeypatch.setattr(store_module.os, "rename", rename_after_a_sweep)
    assert store.publish(tmp, VERSION, {"rows": {"train": 2, "valid": 1}, "features": ["f"], "reused": None},
                         replace=False)
    assert seen == [(0, [tmp])], "this host's sweep deleted another host's build while it published"
    assert store.version_dir(VERSION).is_dir() and not (store.version_dir(VERSION) / OWNER).exists()
