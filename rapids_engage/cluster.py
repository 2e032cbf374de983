"""Dask clusters: local CPU processes, one dask-cuda worker per GPU, or a client of an existing scheduler
(:mod:`.existing_cluster`); what a run sees of them: stalls for memory, lost workers, spilling."""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backend import Backend, cuda_visible_devices
from .cluster_errors import ClusterError, WorkerLostError, _one_line
from .config import MIN_MEMORY_LIMIT, ClusterConfig
from .existing_cluster import _connected, _existing_workers_ready, _plugin_removed, _served_dashboard, worker_gpus
from .periodic import every


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
    since, said, spell = 0.0, False, None

    def watch() -> bool:
        nonlocal since, said, spell
        try:
            workers = client.scheduler_info(n_workers=-1)["workers"].values()
        except Exception:  # noqa: BLE001 - best effort: the scheduler is gone, the run ends anyway
            return False
        paused = sum(str(w.get("status", "")).endswith("paused") for w in workers)
        busy = any(w.get("metrics", {}).get("task_counts", {}).get("executing") for w in workers)
        stalled = "gone" if not workers else "paused" if paused and not busy else None
        if stalled != spell:
            since, said, spell = time.monotonic(), False, stalled
        if stalled and not said and time.monotonic() - since >= after_s:
            said = True
            what = (f"{paused} of {len(workers)} dask worker(s) paused for memory (above 80 % of {limit}; spilling "
                    "frees none) and no task running" if workers else "no dask worker left (killed for memory?)")
            log(f"{what} for {after_s:.0f} s: the run waits until that changes; stop it (Ctrl-C) and raise "
                "cluster.memory_limit or lower data.partition_rows (README, \"Data larger than memory\")")
        return True

    with every(poll_s, watch, "stall-watch", join=False):  # a reply the scheduler never sends is not waited for
        yield


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
