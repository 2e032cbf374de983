"""A run on a feature store this user cannot write (another team's shared store: a read-only mount, or no write
permission): a cache hit trains from it unmarked and says so; a miss is one error naming the store, not a traceback
from the use lock. The OS's refusal is emulated where it would come (root writes through ``chmod a-w``): every open
for writing, mkdir, unlink and rename under the store raises EROFS / EACCES; reads go through."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from rapids_engage.backend import CPU
from rapids_engage.config import load_config
from rapids_engage.features.materialize import materialize
from rapids_engage.layout import RECSYS
from rapids_engage.store import StoreNotWritable

FEATURES = ["features.target_encoding.keys=[[language]]", "features.counts=[[engaging_user_id]]", "features.history.keys=[]"]



def read_only(monkeypatch, store: Path, code: int) -> None:
    """Writes under ``store`` refused with ``code`` (EROFS: a read-only mount; EACCES: ``chmod -R a-w``)."""
    under = str(store.resolve())

    def refusing(real, writes=lambda *_: True):
        def call(path, *args, **kwargs):
            if str(Path(os.fsdecode(path)).absolute()).startswith(under) and writes(*args):
                raise OSError(code, os.strerror(code), os.fsdecode(path))
            return real(path, *args, **kwargs)
        return call

    monkeypatch.setattr(os, "open", refusing(os.open, lambda flags, *_: flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)))
    for name in ("mkdir", "unlink", "rename", "replace", "rmdir"):
        monkeypatch.setattr(os, name, refusing(getattr(os, name)))


def _build(cfg_overrides, store, split, log, hold=None):
    data_dir, train, valid, split_def = split
    cfg = load_config(None, [*FEATURES, *cfg_overrides]).features
    return materialize(cfg, store, data_dir, train, valid, ["like"], split_def, CPU, RECSYS, False, log, hold=hold)


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_a_hit_on_a_read_only_store_is_used_unmarked_and_said(small_split, tmp_path, monkeypatch, code):
    built = _build([], tmp_path / "store", small_split, lambda _: None)
    read_only(monkeypatch, tmp_path / "store", code)
    lines, held = [], []
    hit = _build([], tmp_path / "store", small_split, lines.append, held.append)
    assert (hit.cache_hit, hit.version, held) == (True, built.version, [])
    assert f"version {built.version} is not marked in use: the store {tmp_path / 'store'} is read-only" in lines[-1]
    assert "could delete it meanwhile" in lines[-1]


def test_a_miss_on_a_read_only_store_is_one_error_naming_it(small_split, tmp_path, monkeypatch):
    from rapids_engage.commands import KNOWN_ERRORS
    from rapids_engage.failures import one_line

    _build([], tmp_path / "store", small_split, lambda _: None)
    read_only(monkeypatch, tmp_path / "store", errno.EROFS)
    with pytest.raises(StoreNotWritable) as raised:
        _build(["features.content=false"], tmp_path / "store", small_split, lambda _: None)
    message = one_line(raised.value, KNOWN_ERRORS)
    assert message.startswith(f"feature store {tmp_path / 'store'} is not writable (Read-only file system: ")
    assert "is not in it" in message and "features.store" in message and "\n" not in message


def test_a_predict_on_a_read_only_store_says_it_as_a_run_does(tmp_path, monkeypatch):
    from rapids_engage.predict import serving_marks

    version = "0123456789abcdef"
    (tmp_path / "store" / version).mkdir(parents=True)
    read_only(monkeypatch, tmp_path / "store", errno.EACCES)
    lines = []
    with serving_marks({"path": str(tmp_path / "store"), "version": version}, tmp_path / "models", log=lines.append):
        pass
    assert lines == [f"feature store: version {version} is not marked in use: the store {tmp_path / 'store'} is read-only "
                     f"for this user (Permission denied: {tmp_path / 'store' / f'.{version}.use.lock'}), so retention by a "
                     "user who can write it (store --keep, features.keep_versions) could delete it meanwhile"]
