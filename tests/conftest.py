"""Shared test set-up: ``gpu``-marked tests skip cleanly where no GPU + RAPIDS is available; parquet footer reads
counted (``count_footer_reads``); row-level frames refused onto the driver
(``refuse_rows``); an in-process worker at a tcp address, as an existing cluster's (``tcp_cluster``); a context held
by another thread, as by another command (``held_elsewhere``); every config key (``config_keys``); a small synthetic
input read and split in time, as a store build takes it (``small_split``)."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from hypothesis import settings

from rapids_engage.backend import rapids_available, visible_gpu_count

# No example deadline: the suite runs two test processes on CI's 2 cores (pytest-xdist), and an
# example's time there says how busy the machine is, not whether the code is right. The same examples every run
# (derandomize): a gate that passes or fails by the draw lands nothing (CI's random draws found two ingest fuzz
# cases, now explicit examples); `--hypothesis-profile explore` draws new ones (1,000 where a test sets no count).
settings.register_profile("suite", deadline=None, derandomize=True)
settings.register_profile("explore", deadline=None, max_examples=1000)
settings.load_profile("suite")


def gpu_ready() -> bool:
    return rapids_available() and visible_gpu_count() > 0


def pytest_configure(config):  # noqa: ARG001 - pytest hook signature
    """Runs draw no plots unless a test asks (``--plots`` / ``run(plots=True)``): drawing is ~2 s a run and
    the plots are tested where they are asked for.

    pyarrow converts pandas frames with a thread pool of its own per call: with the in-process dask workers some
    tests start (``LocalCluster(processes=False)``: two workers' p2p shuffles converting at once in this process), a
    CI run hung for good in that pool's shutdown (``Thread.join`` in ``pyarrow.pandas_compat.dataframe_to_arrays``,
    2026-12-04, Python 3.11.7; not reproduced in 4 reruns). One conversion thread here; the workers of a run's own
    cluster are processes of their own, unchanged."""
    import pyarrow

    import rapids_engage.pipeline

    rapids_engage.pipeline.PLOTS_BY_DEFAULT = False
    pyarrow.set_cpu_count(1)


def pytest_collection_modifyitems(config, items):  # noqa: ARG001 - pytest hook signature
    if gpu_ready():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU and the RAPIDS libraries (pip install 'rapids_engage[gpu]')")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def _count_footer_reads(monkeypatch) -> dict[str, int]:
    """file name -> parquet footers read of it from now on (``ParquetFile`` without a footer handed over,
    ``read_metadata``, ``read_schema``)."""
    import collections

    import pyarrow.parquet as pq

    reads: dict[str, int] = collections.Counter()
    init = pq.ParquetFile.__init__

    def counted_init(self, source, *args, metadata=None, **kwargs):
        name = getattr(source, "name", source)  # a path, or a Python file (read_metadata's own file has no name)
        if metadata is None and isinstance(name, (str, Path)):
            reads[Path(name).name] += 1
        init(self, source, *args, metadata=metadata, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "__init__", counted_init)
    for fn in ("read_metadata", "read_schema"):
        def counted(where, *args, _read=getattr(pq, fn), **kwargs):
            reads[Path(where).name] += 1
            return _read(where, *args, **kwargs)
        monkeypatch.setattr(pq, fn, counted)
    return reads


@pytest.fixture
def count_footer_reads(monkeypatch):
    """Call it to count parquet footer reads from then on (:func:`_count_footer_reads`)."""
    return lambda: _count_footer_reads(monkeypatch)


def _refuse_rows(monkeypatch, module, name: str, columns: list[str]) -> None:
    """``module.name`` (a function) wrapped: while it runs, a dask compute (``dask.compute`` or a collection's
    ``.compute()``) whose result holds a frame with all of ``columns`` (row-level rows: their row key and time) raises;
    results are searched inside tuples, lists and dicts, and a series counts as the frame of its index and itself."""
    import dask
    import dask.base

    function, compute = getattr(module, name), dask.base.compute

    def frames(result):
        if isinstance(result, (tuple, list)):
            return [f for r in result for f in frames(r)]
        if isinstance(result, dict):
            return [f for r in result.values() for f in frames(r)]
        if hasattr(result, "columns"):
            return [result]
        if hasattr(result, "to_frame") and hasattr(result, "index"):  # a series: its values and its index's
            return [result.to_frame().reset_index()]
        return []

    def refusing(*args, **kwargs):
        results = compute(*args, **kwargs)
        for frame in frames(results):
            if set(columns) <= set(frame.columns):
                raise AssertionError(f"{len(frame):,} rows collected onto one process: {list(frame.columns)}")
        return results

    def guarded(*args, **kwargs):
        with monkeypatch.context() as patched:
            patched.setattr(dask.base, "compute", refusing)  # a collection's .compute() calls this one
            patched.setattr(dask, "compute", refusing)
            return function(*args, **kwargs)

    monkeypatch.setattr(module, name, guarded)


@pytest.fixture
def refuse_rows(monkeypatch):
    """Call it with a module, a function's name and the row columns: that function may compute no frame of them
    (:func:`_refuse_rows`)."""
    return lambda module, name, columns: _refuse_rows(monkeypatch, module, name, columns)


@pytest.fixture(scope="module")
def tcp_cluster():
    """One in-process worker, reachable by a tcp address as an existing cluster's is (``--scheduler-address``: no
    cluster start per run); one per test module."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address=None) as local:
        yield local


@contextlib.contextmanager
def _held_elsewhere(context: Callable[[], Any]) -> Iterator[None]:
    """``context()`` entered in another thread (another command alike: a lock is not this thread's) for as long as
    the block runs; left when it ends."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with context():
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(30), "the other thread did not enter its context"
        yield
    finally:
        release.set()
        holder.join(30)


@pytest.fixture
def held_elsewhere():
    """Call it with a context's factory: ``with held_elsewhere(lambda: lock(...)):`` (:func:`_held_elsewhere`)."""
    return _held_elsewhere


def _config_keys(cls: type, path: str = "") -> list[tuple[str, str]]:
    """(dotted path, name) of every field of ``cls`` and of the sections nested in it (sections themselves too)."""
    import dataclasses
    import typing

    out = []
    for name, hint in typing.get_type_hints(cls).items():
        out.append((f"{path}{name}", name))
        nested = [h for h in (hint, *typing.get_args(hint), *(a for h in typing.get_args(hint) for a in typing.get_args(h)))
                  if dataclasses.is_dataclass(h)]
        if nested:
            out += _config_keys(nested[0], f"{path}{name}.")
    return out


@pytest.fixture(scope="session")
def config_keys():
    """``config_keys(cls)``: (dotted path, name) of every field of the config section ``cls``, nested ones included."""
    return _config_keys


@pytest.fixture(scope="module")
def small_split(tmp_path_factory):
    """(data dir, train, valid, the split as a store version's definition holds it) of 3,000 synthetic rows over 3
    days, labelled for ``like``, the last 24 hours validation."""
    from rapids_engage.data import read_events
    from rapids_engage.features import add_labels
    from rapids_engage.split import time_split
    from rapids_engage.synthetic import SyntheticSpec, generate

    root = tmp_path_factory.mktemp("small_split")
    generate(root, SyntheticSpec(rows=3_000, days=3, seed=5))
    train, valid, info = time_split(add_labels(read_events(root / "data"), ["like"]), 24)
    return root / "data", train, valid, {"valid_hours": 24, "cutoff": info.cutoff}
