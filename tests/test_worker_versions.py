"""An existing cluster's workers must run the driver's rapids_engage and libraries: checked up front, in one line."""

from __future__ import annotations

import sys
import types

import pytest

from rapids_engage.backend import Backend
from rapids_engage.cluster_errors import ClusterError
from rapids_engage.existing_cluster import _existing_workers_ready
from rapids_engage.worker_versions import code_versions


class Workers:
    """A client of an existing cluster whose workers report ``versions`` (address -> code_versions)."""

    def __init__(self, versions: dict[str, dict]) -> None:
        self.versions = versions

    def wait_for_workers(self, n, timeout=None):
        pass

    def register_plugin(self, plugin):
        pass

    def run(self, fn, *args):
        return self.versions


def test_a_worker_with_other_rapids_engage_source_is_named_before_the_run_uses_it():
    """A worker with another copy of rapids_engage died loading a task (dask retried elsewhere, and the run blamed
    memory), or where its functions had the same names could compute other feature values unseen."""
    ours = code_versions()
    other = {**ours, "rapids_engage": "0.1.0 (source 000000000000)"}
    _existing_workers_ready(Workers({"tcp://w1:1": ours}), "tcp://sched:8786", Backend("cpu"))
    with pytest.raises(ClusterError) as err:
        _existing_workers_ready(Workers({"tcp://w1:1": ours, "tcp://w2:2": other}), "tcp://sched:8786", Backend("cpu"))
    words = str(err.value)
    assert "worker tcp://w2:2 of the cluster at tcp://sched:8786 runs other code" in words
    assert f"rapids_engage 0.1.0 (source 000000000000) there, {ours['rapids_engage']} here" in words
    assert "\n" not in words


def test_other_library_versions_are_named_and_a_library_one_side_lacks_is_not():
    ours = code_versions()
    theirs = {**ours, "xgboost": "1.7.0", "cudf": "26.10.00"}  # cudf: read only where loaded, so not compared
    with pytest.raises(ClusterError, match=rf"xgboost 1\.7\.0 there, {ours['xgboost']} here\)"):
        _existing_workers_ready(Workers({"tcp://w1:1": theirs}), "tcp://sched:8786", Backend("cpu"))


def test_the_source_digest_follows_the_files_and_not_their_bytecode(tmp_path, monkeypatch):
    package = tmp_path / "rapids_engage"
    (package / "__pycache__").mkdir(parents=True)
    (package / "__init__.py").write_text("__version__ = '0.1.0'\n")
    (package / "a.py").write_text("X = 1\n")
    monkeypatch.setitem(sys.modules, "rapids_engage", types.SimpleNamespace(__file__=str(package / "__init__.py"),
                                                                            __version__="0.1.0"))
    first = code_versions(libraries=(), loaded_only=())
    (package / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert code_versions(libraries=(), loaded_only=()) == first
    (package / "a.py").write_text("X = 2\n")
    assert code_versions(libraries=(), loaded_only=()) != first


def test_first_worker_names_the_first_failing_worker_and_counts_the_others():
    from rapids_engage.cluster_errors import first_worker

    assert first_worker({"tcp://b": [], "tcp://a": None}) is None
    assert first_worker({"tcp://b": ["x"], "tcp://a": []}) == ("tcp://b", ["x"], "")
    assert first_worker({"tcp://c": ["z"], "tcp://b": ["y"], "tcp://a": []}) == ("tcp://b", ["y"], " (and 1 more worker(s))")
