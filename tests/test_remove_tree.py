"""atomic.remove_tree: a directory deleted as far as it can be, the first refusal said; the ingest cache's sweep of
folders a killed pruning renamed away counts as freed only what it deleted (a read-only cache deletes nothing)."""

from __future__ import annotations

import errno
import os

import pytest

from rapids_engage.atomic import OLD_PREFIX, remove_tree
from rapids_engage.ingest import cache_pruning


def _tree(root):
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "part.parquet").write_bytes(b"x" * 4096)
    (root / "a.json").write_text("{}")
    return root


def _refuse_unlink(monkeypatch):
    def refuse(path, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))
    monkeypatch.setattr(os, "unlink", refuse)


def test_a_tree_that_can_be_deleted_is_gone(tmp_path):
    assert remove_tree(_tree(tmp_path / "t")) is None
    assert not (tmp_path / "t").exists()


def test_a_refused_deletion_names_the_first_refusal_and_leaves_the_tree(tmp_path, monkeypatch):
    root = _tree(tmp_path / "t")
    _refuse_unlink(monkeypatch)
    refusal = remove_tree(root)
    assert refusal is not None and refusal.startswith("Read-only file system: ") and str(root) in refusal
    assert (root / "sub" / "part.parquet").is_file()


@pytest.mark.parametrize("refused", [False, True])
def test_the_ingest_sweep_counts_only_what_it_deleted(tmp_path, monkeypatch, refused):
    aside = _tree(tmp_path / f"{OLD_PREFIX}table-{'a' * 12}-{'b' * 8}")
    if refused:
        _refuse_unlink(monkeypatch)
    freed = cache_pruning._sweep_leftovers(tmp_path)
    assert aside.exists() is refused
    assert (freed == 0) is refused and freed >= (0 if refused else 4096)
