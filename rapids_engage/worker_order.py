"""Partitions pinned to workers in the order xgboost.dask ranks them: the same rows on each rank from run to run."""

from __future__ import annotations

from typing import Any


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
