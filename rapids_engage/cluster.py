"""Dask clusters: local CPU processes, one dask-cuda worker per GPU, or an existing scheduler.

We never write a scheduler: a user who outgrows one machine points
``--scheduler-address`` at an existing Dask(-CUDA) cluster.
"""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backend import Backend, cuda_visible_devices
from .config import MIN_MEMORY_LIMIT, ClusterConfig


#: A free port for the dask dashboard (two runs on one machine never clash on 8787); the run logs its link.
DASHBOARD = ":0"


@dataclass(frozen=True)
class ClusterInfo:
    """What a stage needs to know about the running cluster."""

    client: Any
    n_workers: int
    kind: str  # "local-cpu", "local-cuda" or "external"
    dashboard: str | None = None
    started: frozenset[str] = frozenset()  # the workers' addresses at the start
    n_gpus: int = 0  # the GPUs the workers compute on (an existing cluster's: counted there, :func:`worker_gpus`)

    def workers_lost(self) -> int:
        """Workers of the start that are gone (died; a nanny's restart comes back under a new address):
        dask recomputed their tasks, so the run went on."""
        now = worker_addresses(self.client)
        return len(self.started - now) if now is not None else 0

    def describe(self, backend: Backend) -> str:
        """The run's cluster line: backend, workers, dashboard link."""
        dashboard = f"dashboard {self.dashboard}" if self.dashboard else "no dashboard (the scheduler serves none)"
        return f"backend {backend.kind}, {self.n_workers} worker(s) ({self.kind}), {dashboard}"


class ClusterError(RuntimeError):
    """The cluster cannot be used as configured (an existing scheduler without usable workers)."""


class WorkerLostError(RuntimeError):
    """A dask worker died during the run and what failed could not be recovered.

    Dask recomputes the tasks of a dead worker (the nanny restarts it), so most deaths cost only
    time; what holds state on one worker (an ``xgboost.dask`` training, a scattered booster)
    fails instead. Its message is one line; running the same command again resumes from what
    was published.
    """


def check_memory_limit(cfg: ClusterConfig, n_workers: int, threads: int) -> None:
    """A ClusterError when ``cluster.memory_limit`` comes to less than :data:`~.config.MIN_MEMORY_LIMIT` per
    worker on this machine (a fraction or ``auto``: the config can check sizes only): the workers would be
    paused for memory before their first task, and the run would wait for ever."""
    from distributed.worker_memory import parse_memory_limit

    from .progress import byte_size

    limit = parse_memory_limit(cfg.memory_limit, threads, usable_cores(), logger=logging.getLogger(__name__))
    if limit is not None and limit < MIN_MEMORY_LIMIT:
        raise ClusterError(f"cluster.memory_limit {cfg.memory_limit} is {byte_size(limit)} per worker on this machine "
                           f"({n_workers} worker(s)): at least {MIN_MEMORY_LIMIT >> 20}MiB, as an idle worker holds about "
                           "225 MiB; give a larger share or size, or fewer workers")


def usable_cores() -> int:
    """The cores this process may use, as dask counts them (CPU affinity, a cgroup's CPU quota): under taskset, a Slurm
    job or a container's quota ``os.cpu_count()`` gave the host's, and the local cluster started a thread per host core,
    each worker with an ``auto`` memory limit that dask computes from the cores allowed (2 workers on 1 allowed core of
    2: each the whole machine's memory)."""
    import dask.system

    return dask.system.CPU_COUNT


def _cpu_cluster(cfg: ClusterConfig) -> Any:
    import dask
    from distributed import LocalCluster

    cores = usable_cores()
    n_workers = cfg.n_workers or min(cores, 4)
    threads = cfg.threads_per_worker or max(1, cores // n_workers)
    check_memory_limit(cfg, n_workers, threads)
    # pyarrow's default pool (mimalloc) keeps freed parquet buffers: measured 150-250 MiB per
    # worker that dask counts as unmanaged and cannot spill, enough to pause a worker for good
    # under a tight memory_limit. The system allocator returns them (dask sets
    # MALLOC_TRIM_THRESHOLD_); set before the worker process starts, as it imports pyarrow early.
    with dask.config.set({"distributed.nanny.pre-spawn-environ.ARROW_DEFAULT_MEMORY_POOL": "system"}):
        return LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads,
            processes=True,
            memory_limit=cfg.memory_limit,
            dashboard_address=DASHBOARD,
            local_directory=local_directory(cfg),
            silence_logs=logging.ERROR,
            preload=["rapids_engage.worker_setup"],
        )


def _cuda_cluster(cfg: ClusterConfig, backend: Backend) -> Any:
    from dask_cuda import LocalCUDACluster

    devices = (cuda_visible_devices() or [str(i) for i in range(backend.n_gpus)])[: backend.n_gpus]
    if cfg.memory_limit != "auto":  # dask-cuda's auto: the host memory shared by the GPUs, not by the cores
        check_memory_limit(cfg, len(devices), cfg.threads_per_worker or 1)
    # one worker per GPU: dask-cuda refuses more workers than visible devices, and cluster.n_workers
    # of a config shared with CPU runs would otherwise leave GPUs idle
    return LocalCUDACluster(
        CUDA_VISIBLE_DEVICES=",".join(devices),
        n_workers=len(devices),
        threads_per_worker=cfg.threads_per_worker or 1,
        rmm_pool_size=cfg.rmm_pool_size,
        # with a pool, CuPy (metrics, serving matrices, cuML inputs) allocates from it instead of
        # competing with it for the memory the pool left
        rmm_allocator_external_lib_list=["cupy"] if cfg.rmm_pool_size else None,
        enable_cudf_spill=cfg.spill,
        memory_limit=cfg.memory_limit,
        local_directory=local_directory(cfg),
        dashboard_address=DASHBOARD,
        silence_logs=logging.ERROR,
        preload=["rapids_engage.worker_setup"],
    )


def local_directory(cfg: ClusterConfig) -> str | None:
    """``cluster.local_directory`` with ``~`` expanded, made if missing and checked writable, or a one-line
    :class:`ClusterError` naming the key: dask failed with a bare ``[Errno 20] Not a directory: '...'``,
    took ``~/spill`` for a directory named ``~`` under the working directory (while
    ``train.external_memory``'s cache went to the home directory), and spills elsewhere, unsaid, where it
    cannot write."""
    if cfg.local_directory is None:
        return None
    path = Path(cfg.local_directory).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ClusterError(f"cluster.local_directory: cannot write into {cfg.local_directory} ({exc.strerror or exc}); "
                           "give a writable directory (dask's spill files, train.external_memory's cache)") from None
    return str(path)


def ignored_settings(cfg: ClusterConfig, backend: Backend, workers_gpus: int = 0) -> list[str]:
    """Lines naming the ``cluster`` settings this run does not apply (a config shared by CPU and GPU
    machines, or written for a local cluster and run on an existing one). ``workers_gpus``: the GPUs an existing
    cluster's workers compute on (:attr:`ClusterInfo.n_gpus`): a ``--gpus N`` below it does not limit them."""
    if cfg.scheduler_address:
        local = [f"cluster.{k}" for k in ("n_workers", "threads_per_worker", "rmm_pool_size")
                 if getattr(cfg, k) is not None] + (["cluster.memory_limit"] if cfg.memory_limit != "auto" else []) \
            + (["cluster.spill"] if not cfg.spill else [])
        lines = [f"{', '.join(local)}: not applied, the workers of {cfg.scheduler_address} keep their own"] if local else []
        if cfg.local_directory is not None:
            lines.append(f"cluster.local_directory: the workers of {cfg.scheduler_address} spill where they were started; "
                         "it places train.external_memory's cache only")
        if backend.is_gpu and 0 < backend.n_gpus < workers_gpus and str(cfg.gpus).strip().isdigit():
            lines.append(f"the cluster's workers compute on {workers_gpus} GPU(s); --gpus {backend.n_gpus} does not limit an "
                         "existing cluster")
        return lines
    if not backend.is_gpu:
        lines = ["cluster.rmm_pool_size: GPU workers only, not applied to this CPU run"] if cfg.rmm_pool_size is not None else []
        if not cfg.spill:  # dask spills CPU workers above memory_limit whatever it says
            lines.append("cluster.spill: GPU workers only (cuDF spilling), not applied to this CPU run: CPU workers spill "
                         "above cluster.memory_limit")
        return lines
    if backend.is_gpu and cfg.n_workers is not None:
        return [f"cluster.n_workers: CPU runs only, not applied: a GPU run has one worker per GPU ({backend.n_gpus})"]
    return []


#: Seconds to wait for an existing scheduler to answer.
CONNECT_TIMEOUT_S = 30


#: Seconds every worker stays paused for memory (or the cluster stays without a worker) before the run says so.
STALL_S = 30.0


@contextlib.contextmanager
def stalls_logged(client: Any, log: Callable[[str], None] | None, limit: str, after_s: float = STALL_S,
                  poll_s: float = 2.0) -> Iterator[None]:
    """While open, ``log`` a line once workers paused for memory have held every task back for ``after_s``
    (or no worker has been left that long), once per such spell. Dask pauses a worker above 80 % of its
    memory limit until spilling frees memory; when it cannot (memory that is not dask's), the run waited
    for ever without a word (``cluster.memory_limit=400MB``: features stuck for good, one worker paused
    with the tasks, the other idle). ``limit``: the workers' memory limit, in words."""
    if log is None:
        yield
        return
    stop = threading.Event()

    def watch() -> None:
        since, said, spell = None, False, None
        while not stop.wait(poll_s):
            try:
                workers = client.scheduler_info(n_workers=-1)["workers"].values()
            except Exception:  # noqa: BLE001 - best effort: the scheduler is gone, the run ends anyway
                return
            paused = sum(str(w.get("status", "")).endswith("paused") for w in workers)
            busy = any(w.get("metrics", {}).get("task_counts", {}).get("executing") for w in workers)
            stalled = "gone" if not workers else "paused" if paused and not busy else None
            if stalled != spell:
                since, said, spell = time.monotonic(), False, stalled
            if not stalled:
                continue
            if not said and time.monotonic() - since >= after_s:
                said = True
                what = (f"{paused} of {len(workers)} dask worker(s) paused for memory (above 80 % of {limit}; spilling "
                        "frees none) and no task running" if workers else "no dask worker left (killed for memory?)")
                log(f"{what} for {after_s:.0f} s: the run waits until that changes; stop it (Ctrl-C) and raise "
                    "cluster.memory_limit or lower data.partition_rows (README, \"Data larger than memory\")")

    thread = threading.Thread(target=watch, name="stall-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()


@contextlib.contextmanager
def start_cluster(backend: Backend, cfg: ClusterConfig, log: Callable[[str], None] | None = None) -> Iterator[ClusterInfo]:
    """Start (or connect to) the cluster for ``backend``; closes what it started on exit. ``log``: where a
    cluster stalled for memory is said (:func:`stalls_logged`). A spill / P2P shuffle write that failed for a full
    local directory stops the run with a one-line error (:func:`~.spill_disk.full_disk_stops`)."""
    from distributed import Client

    from .spill_disk import full_disk_stops

    _quiet_closed_gathers()
    if cfg.scheduler_address:
        client = _connected(cfg.scheduler_address)
        import uuid

        plugin = f"rapids-engage-backend-{uuid.uuid4().hex[:12]}"  # this run's: another's on the same cluster keeps its own
        try:
            _existing_workers_ready(client, cfg.scheduler_address, backend, plugin)
            gpus = worker_gpus(client, cfg.scheduler_address, cfg.gpus) if backend.is_gpu else 0
            n = len(client.nthreads())
            with _scheduler_loss_named(client, cfg.scheduler_address), full_disk_stops(client, external=True), \
                    _worker_losses_named(client), stalls_logged(client, log, "their memory limit"):
                yield ClusterInfo(client, n, "external", _served_dashboard(client), frozenset(worker_addresses(client) or ()),
                                  gpus)
        finally:
            _plugin_removed(client, plugin)
            client.close()
        return
    from .train_locks import signals_held

    cluster = client = None
    try:
        # Ctrl-C / SIGTERM while the workers start take effect once they have, and the cluster is closed below:
        # interrupted mid-start, it was left half made, and distributed's exit hook printed a traceback closing it
        with signals_held():
            cluster = _cuda_cluster(cfg, backend) if backend.is_gpu else _cpu_cluster(cfg)
            client = Client(cluster)
        from .worker_setup import BackendSetup  # its preload ran in each worker: this needs our backend's kind

        client.register_plugin(BackendSetup(backend.kind))  # a plugin: a worker its nanny restarts is set up too
        spill_to = str(Path(cfg.local_directory).expanduser()) if cfg.local_directory else None
        with full_disk_stops(client, spill_to), _worker_losses_named(client), \
                stalls_logged(client, log, f"cluster.memory_limit {cfg.memory_limit}"):
            kind = "local-cuda" if backend.is_gpu else "local-cpu"
            yield ClusterInfo(client, len(cluster.workers), kind, client.dashboard_link, frozenset(worker_addresses(client) or ()),
                              backend.n_gpus)
    except BaseException:
        with _scheduler_quiet():  # the run ends on its own error line
            for started in (client, cluster):
                if started is not None:
                    started.close()
        raise
    else:
        client.close()
        cluster.close()


@contextlib.contextmanager
def _scheduler_quiet() -> Iterator[None]:
    """No ``distributed`` log while a run that failed or was stopped closes its cluster: the scheduler
    (in this process) logged the work the close cancelled as errors, with tracebacks (a shuffle's
    ``shuffle_barrier`` KeyError after a Ctrl-C during the history features)."""
    log = logging.getLogger("distributed")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


class _ClosedGathers(logging.Filter):
    """Drops asyncio's "Task exception was never retrieved" of a gather the client's close ended
    (``distributed.client.AllExit``): a run stopped mid-stage (Ctrl-C) printed it as a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and record.exc_info[0] is not None and record.exc_info[0].__name__ == "AllExit")


def _quiet_closed_gathers() -> None:
    from .worker_setup import add_log_filter

    add_log_filter("asyncio", _ClosedGathers)


@contextlib.contextmanager
def _scheduler_loss_named(client: Any, address: str) -> Iterator[None]:
    """Re-raise an error of the block as a one-line :class:`ClusterError` when the client has lost the existing cluster's
    scheduler meanwhile (restarted, the network cut): the run ended after distributed's reconnecting with a traceback of
    its own (``FutureCancelledError: ... cancelled for reason: scheduler-connection-lost``)."""
    try:
        yield
    except (ClusterError, WorkerLostError):
        raise
    except Exception as exc:
        if client.status == "running":
            raise
        raise ClusterError(f"lost the dask scheduler at {address} during the run ({_one_line(exc)}); once it answers again, "
                           "run the same command to resume from what was published") from exc


@contextlib.contextmanager
def _worker_losses_named(client: Any, grace_s: float = 1.0) -> Iterator[None]:
    """Re-raise an error of the block as :class:`WorkerLostError` when a worker died meanwhile.

    A worker restarted by its nanny comes back under a new address, so a death shows as an
    address of the start missing at the end. The scheduler may learn of the death a moment after
    the error reaches us: we look again for up to ``grace_s`` (only on the error path).
    """
    started = worker_addresses(client)
    try:
        yield
    except WorkerLostError:
        raise
    except Exception as exc:
        deadline = time.monotonic() + grace_s
        while True:
            now = worker_addresses(client)
            lost = started - now if started and now is not None else set()
            if lost or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        if lost:
            raise WorkerLostError(
                f"{len(lost)} dask worker(s) died during the run ({', '.join(sorted(lost))}: {_one_line(exc)}); "
                "run the same command again to resume from what was published (if they were killed for memory: a larger "
                "cluster.memory_limit, more workers, or the out-of-core settings of the README's \"Data larger than memory\")"
            ) from exc
        raise


def while_workers_live(client: Any, fn: Callable[[], Any], poll_s: float = 0.5, workers: set[str] | None = None,
                       what: str = "training") -> Any:
    """``fn()`` (a call that holds state on every worker, e.g. ``xgboost.dask.train``), raising
    :class:`WorkerLostError` as soon as one of ``workers`` (default: those connected now) is gone.

    Without this a collective whose ranks died waits for them forever: both workers killed for
    memory in one training hung the run. So do tasks of partitions pinned to a worker
    (:func:`pin_partitions`) once it is gone: pass the workers of the pinning as ``workers``.
    ``fn`` runs in a daemon thread, abandoned on a loss (the run is ending; closing the cluster
    releases it). ``what``: the work, for the message.
    """
    started = set(workers) if workers is not None else worker_addresses(client)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="while-workers-live", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(poll_s)
        now = worker_addresses(client) if thread.is_alive() else None
        lost = started - now if started and now is not None else set()
        if lost:
            raise WorkerLostError(
                f"{len(lost)} dask worker(s) died during {what} ({', '.join(sorted(lost))}); run the same command again to resume "
                "from what was published (if they were killed for memory: a larger cluster.memory_limit or more workers)"
            )
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def spilled_bytes(client: Any) -> int:
    """Bytes the workers have written to their spill directories so far (a restarted worker's count starts
    again; 0 when the workers cannot be asked or have no memory limit)."""

    def rapids_engage_spilled(dask_worker: Any) -> int:  # nested: pickled by value, any worker runs it
        return int(getattr(dask_worker.data, "cumulative_metrics", {}).get(("disk-write", "bytes"), 0))

    try:
        return sum(client.run(rapids_engage_spilled).values())
    except Exception:  # noqa: BLE001 - best effort: the figure is informative
        return 0


def worker_addresses(client: Any) -> set[str] | None:
    """Addresses of the connected workers, or None when the scheduler cannot be asked."""
    try:
        return set(client.nthreads())
    except Exception:  # noqa: BLE001 - the scheduler is gone too: nothing to compare against
        return None


def _unreachable(address: str, timeout_s: float = 3.0) -> str | None:
    """Why a TCP scheduler address cannot be reached now, in words (dask says only "Timed out trying to
    connect"), or None: nothing listening there, an unknown host; a host that does not answer, or a probe
    (name lookup included) not done within ``timeout_s``, is left to dask's words."""
    from concurrent.futures import ThreadPoolExecutor
    from concurrent.futures import TimeoutError as Late

    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(_probe, address, timeout_s).result(timeout=timeout_s)
    except Late:  # a slow name server: the lookup keeps its thread, the run does not wait for it
        return None
    finally:
        pool.shutdown(wait=False)


def _probe(address: str, timeout_s: float) -> str | None:
    """:func:`_unreachable`'s TCP connection attempt."""
    import socket

    from distributed.comm import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address)
        host, port = parse_host_port(location)
        if scheme not in ("tcp", "tls"):
            return None
        socket.create_connection((host, port), timeout=timeout_s).close()
    except ConnectionRefusedError:
        return f"nothing listens at {host}:{port}: connection refused"
    except socket.gaierror:
        return f"unknown host {host!r}"
    except (OSError, ValueError, TypeError):
        return None
    return None


#: XGBoost's prefixes of a native error line: ``[12:00:00] /workspace/src/collective/comm.cc:84: `` and,
#: on the lines of a chained collective error, ``- [comm.cc:193|12:00:00]: ``; a line may start with both
#: (a worker killed mid-training: ``[12:00:00] .../result.cc:83: [cat_container.cc:308|12:00:00]:``).
_NATIVE_PREFIX = re.compile(r"^((\[\d{1,2}:\d{2}:\d{2}\]\s+\S+:\d+:|-?\s*\[[\w./-]+:\d+\|[\d:]+\]:)\s*)+")


def native_words(exc: BaseException) -> str:
    """The first line of ``exc`` that says something, XGBoost's time / source-file prefixes and stack trace dropped."""
    lines = str(exc).split("Stack trace:")[0].splitlines()
    return next((text for line in lines if (text := _NATIVE_PREFIX.sub("", line.strip()).strip())), "")


def _one_line(exc: BaseException, limit: int = 200) -> str:
    """``Type: first line`` of ``exc`` (XGBoost's time / source-file prefixes and stack trace dropped),
    at most ``limit`` characters."""
    first = native_words(exc)
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _served_dashboard(client: Any) -> str | None:
    """The dashboard link of an existing scheduler, or None when it serves none (``dask scheduler
    --no-dashboard``, or no bokeh there): its HTTP server still runs, and the link was a 404."""

    def rapids_engage_has_dashboard() -> bool:  # nested: pickled by value, any scheduler runs it
        import sys

        return "distributed.dashboard.scheduler" in sys.modules  # the scheduler imports it to serve one

    try:
        served = client.run_on_scheduler(rapids_engage_has_dashboard)
    except Exception:  # noqa: BLE001 - best effort: give the link
        served = True
    return client.dashboard_link if served else None


def _connected(address: str) -> Any:
    """A client of the existing scheduler at ``address``, or a one-line :class:`ClusterError`."""
    from distributed import Client

    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S)
    except OSError as exc:  # no scheduler there (distributed says so as a timeout): one line
        raise ClusterError(f"no dask scheduler answered at {address} within {CONNECT_TIMEOUT_S} s "
                           f"({_unreachable(address) or _one_line(exc)}); start one (dask scheduler) "
                           "or fix --scheduler-address") from None


def _a_worker_joined(client: Any, address: str, start: str, timeout_s: float = 60.0) -> None:
    """Wait for a worker of the existing cluster at ``address``, or a one-line :class:`ClusterError` saying to start
    some (``start``: the command)."""
    try:
        client.wait_for_workers(1, timeout=timeout_s)
    except TimeoutError:
        raise ClusterError(f"no worker joined the scheduler at {address} within {timeout_s:.0f} s; start workers "
                           f"({start} {address})") from None


def _existing_workers_ready(client: Any, address: str, backend: Backend, plugin: str | None = None,
                            timeout_s: float = 60.0) -> None:
    """Wait for a worker of an existing cluster, set its backend up as ours (the worker plugin named ``plugin``, default
    :class:`~.worker_setup.BackendSetup`'s name) and check it runs our code; one-line errors."""
    _a_worker_joined(client, address, "dask cuda worker" if backend.is_gpu else "dask worker", timeout_s)
    from .worker_setup import BackendSetup
    from .worker_versions import check_same_code, check_same_python

    check_same_python(client, address)  # first: what follows ships this Python's pickles and bytecode
    try:  # a plugin, not one client.run: a worker its nanny restarts, or one that joins later, is set up too
        client.register_plugin(BackendSetup(backend.kind, plugin))
    except Exception as exc:  # noqa: BLE001 - whatever the workers lack, say it in one line
        raise ClusterError(f"the workers at {address} cannot run the {backend.kind} backend: {_one_line(exc)}") from None
    check_same_code(client, address)  # after the setup: it reads GPU libraries only where that imported them


def worker_gpus(client: Any, address: str, asked: str | int) -> int:
    """The GPUs the workers of the existing cluster at ``address`` compute on (:func:`~.backend.worker_gpu`: one per
    dask-cuda worker; workers on one device count it once), or a one-line :class:`ClusterError` when they are fewer than
    ``asked`` (``--gpus``: N, or ``auto``: one). ``--gpus N`` counted this process's GPUs instead, where a cluster's
    driver (a login node) often has none, and report.json's ``n_gpus`` was that count."""
    from .backend import worker_gpu

    seen = client.run(worker_gpu)  # NVML or CUDA_VISIBLE_DEVICES there: no CUDA context, here or there
    gpus = _distinct(seen)
    wanted = 1 if str(asked).strip().lower() == "auto" else int(asked)
    if len(gpus) < wanted:
        without = sum(not gpu for gpu in seen.values())
        use = f"--gpus {len(gpus)}, or " if gpus else ""
        raise ClusterError(f"--gpus (cluster.gpus) {asked} asked, but the {len(seen)} worker(s) of the cluster at {address} "
                           f"compute on {len(gpus)} GPU(s) ({without} worker(s) without one): start a dask-cuda worker per GPU "
                           f"(dask cuda worker {address}), or use {use}--gpus 0 for the CPU backend")
    return len(gpus)


def _distinct(seen: dict[str, str | None]) -> set[str]:
    """The distinct GPUs of ``seen`` (worker -> :func:`~.backend.worker_gpu`)."""
    return {gpu for gpu in seen.values() if gpu}


def run_backend(cfg: ClusterConfig) -> tuple[Backend, str | None]:
    """The backend of a run on ``cfg``'s cluster (not yet initialised) and, for ``--gpus auto`` with
    ``--scheduler-address``, the line saying which and why: there the workers' GPUs decide (asked over a connection of
    its own, before the run's), with RAPIDS installed here (this process builds the dask_cudf graphs). ``auto`` counted
    this process's GPUs instead: a login node without any drove a GPU cluster on the CPU, unsaid. Otherwise
    :func:`~.backend.resolve`."""
    from . import backend as backends

    address = cfg.scheduler_address
    if not address or not (cfg.gpus is None or str(cfg.gpus).strip().lower() == "auto"):
        return backends.resolve(cfg.gpus, address), None
    if not backends.rapids_available():
        return backends.CPU, (f"--gpus auto: CPU backend, RAPIDS (cudf, dask_cudf, dask_cuda) is not installed here, on "
                              f"the driver, so the GPUs of the workers at {address} were not asked; install it here for a "
                              "GPU run")
    return auto_backend(_workers_gpus_seen(address), address)


def auto_backend(seen: dict[str, str | None], address: str) -> tuple[Backend, str]:
    """``--gpus auto``'s backend on the existing cluster at ``address`` whose workers ``seen`` (worker ->
    :func:`~.backend.worker_gpu`), RAPIDS installed here, and the line saying which and why."""
    from .backend import CPU

    gpus = _distinct(seen)
    if gpus:
        return Backend("gpu", len(gpus)), (f"--gpus auto: GPU backend, the {len(seen)} worker(s) of the cluster at "
                                           f"{address} compute on {len(gpus)} GPU(s) and RAPIDS is installed here")
    return CPU, f"--gpus auto: CPU backend, none of the {len(seen)} worker(s) of the cluster at {address} has a GPU"


def _workers_gpus_seen(address: str) -> dict[str, str | None]:
    """Worker -> :func:`~.backend.worker_gpu` of the existing cluster at ``address`` (once a worker joined), asked
    over a connection closed after; one-line :class:`ClusterError` s."""
    from .backend import worker_gpu
    from .worker_versions import check_same_python

    client = _connected(address)
    try:
        _a_worker_joined(client, address, "dask cuda worker or dask worker")
        check_same_python(client, address)  # first: the question is shipped as this Python's pickle
        try:
            return client.run(worker_gpu)
        except Exception as exc:  # noqa: BLE001 - whatever the workers lack, say it in one line
            raise ClusterError(f"--gpus auto: the workers at {address} could not say their GPUs ({_one_line(exc)}); "
                               "give --gpus N or --gpus 0") from None
    finally:
        client.close()


def _plugin_removed(client: Any, name: str) -> None:
    """Unregister the run's worker plugin ``name`` from an existing cluster's scheduler (best effort: none registered, or
    the scheduler gone). Left there, every worker joining that cluster later had to unpickle it: one whose environment
    lacks rapids_engage (another job's) failed to start (``No module named 'rapids_engage'``) until the scheduler
    restarted. The workers keep what its setup did (imports, quieter logs)."""
    try:
        if client.status == "running":
            client.unregister_worker_plugin(name)
    except Exception:  # noqa: BLE001 - not registered (no worker joined in time), or the scheduler is gone
        pass


def check_shared_paths(client: Any, address: str, read: Iterable[str | Path] = (), write: Iterable[str | Path] = ()) -> None:
    """Fail in one line unless every worker of the existing cluster at ``address`` sees ``read`` and can write
    into ``write`` as this process does: the same files at the same place (a shared filesystem).

    The workers read the input and write the feature store (and ``predict``'s predictions) themselves;
    a worker that could not see them failed mid-stage with the bare name of a file
    (``error: /data/.../part-00022.parquet``), or wrote the store's scratch files onto its own disk. A
    file this process writes into each ``write`` directory must be there for every worker, so a
    directory of the same name on another disk does not pass. Relative paths are this process's.
    """
    import uuid

    token = uuid.uuid4().hex
    reads = [str(Path(p).expanduser().absolute()) for p in read]
    probes: list[Path] = []
    try:
        for directory in write:
            directory = Path(directory).expanduser().absolute()
            directory.mkdir(parents=True, exist_ok=True)
            probes.append(directory / f".rapids-engage-probe-{token}")
            probes[-1].write_text(token)

        def look(reads: list[str], probes: list[str], token: str) -> list[tuple[str, str]]:  # nested: travels by value
            import os

            problems = [(path, "does not see") for path in reads if not os.path.exists(path)]
            for probe in probes:
                try:
                    with open(probe) as f:
                        same = f.read() == token
                except OSError:
                    same = False
                directory = os.path.dirname(probe)
                if not same:
                    problems.append((directory, "does not see"))
                elif not os.access(directory, os.W_OK):
                    problems.append((directory, "cannot write"))
            return problems

        seen = client.run(look, reads, [str(p) for p in probes], token)
    finally:
        for probe in probes:
            probe.unlink(missing_ok=True)
    if first := first_worker(seen):
        worker, problems, others = first
        path, what = problems[0]
        raise ClusterError(
            f"worker {worker}{others} of the cluster at {address} {what} {path} as this process does: an existing "
            "cluster's workers read the input and write the outputs (feature store, predictions) themselves, so put the "
            "input (data.path, data.cache_dir, predict --input) and the outputs (--out, --store) on a filesystem every "
            "worker mounts at the same path, writable by the workers' user"
        )


def first_worker(found: dict[str, Any]) -> tuple[str, Any, str] | None:
    """Of the workers whose value in ``found`` (worker address -> what is wrong there) is not empty: the first by
    address, its value and `` (and N more worker(s))`` (or ""), for a one-line error; None when there is none."""
    bad = sorted((worker, value) for worker, value in found.items() if value)
    if not bad:
        return None
    more = f" (and {len(bad) - 1} more worker(s))" if len(bad) > 1 else ""
    return bad[0][0], bad[0][1], more


def _worker_names(dask_scheduler: Any) -> dict[str, Any]:
    """The scheduler's workers: address -> name (run on the scheduler)."""
    return {address: ws.name for address, ws in dask_scheduler.workers.items()}


def rank_order(client: Any) -> list[str]:
    """The workers' addresses in the order xgboost.dask ranks them (its task ids, sorted). Asked of the scheduler
    itself: ``client.scheduler_info()`` returns the client's cached identity, which its periodic refresh (totals,
    no workers) can replace between the fetch and the read, and then held no worker."""
    names = client.run_on_scheduler(_worker_names)
    return sorted(names, key=lambda address: f"[xgboost.dask-{names[address]}]:{address}")


def pin_partitions(client: Any, frame: Any) -> Any:
    """``frame`` computed with partition *i* on worker *i mod n*, workers in xgboost.dask's rank order.

    xgboost.dask trains on the partitions where they lie and ranks its workers by the task id
    ``[xgboost.dask-<worker name>]:<address>``. Pinning partitions in that order gives every rank the
    same rows from run to run (worker names are stable, ports are not), and so the same model,
    instead of one that depends on task scheduling or on which worker got the lower port.
    """
    import dask.dataframe as dd

    workers = rank_order(client)
    parts = frame.to_delayed()
    futures = [
        client.compute(part, workers=[workers[i % len(workers)]], allow_other_workers=False)
        for i, part in enumerate(parts)
    ]
    return dd.from_delayed(futures, meta=frame._meta, verify_meta=False)
