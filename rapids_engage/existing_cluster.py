"""An existing Dask(-CUDA) cluster at ``--scheduler-address``: connecting, its workers set up and checked, their GPUs.

We never write a scheduler: a user who outgrows one machine points ``--scheduler-address`` at an existing
Dask(-CUDA) cluster.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .backend import Backend
from .cluster_errors import ClusterError, _one_line, first_worker
from .config import ClusterConfig


#: Seconds to wait for an existing scheduler to answer.
CONNECT_TIMEOUT_S = 30


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
    from .backend import gpus_auto, worker_gpu

    seen = client.run(worker_gpu)  # NVML or CUDA_VISIBLE_DEVICES there: no CUDA context, here or there
    gpus = _distinct(seen)
    wanted = 1 if gpus_auto(asked) else int(asked)
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
    if not address or not backends.gpus_auto(cfg.gpus):
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
