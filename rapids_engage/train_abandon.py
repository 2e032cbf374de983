"""A training its run gives up (Ctrl-C, SIGTERM, a lost worker, any error) stops on the workers at once.

Dask cannot stop a running task, and XGBoost's tracker (on the scheduler) keeps the group it forms: the abandoned
training's tasks ran on, and a rerun on the same cluster queued behind them, until their last boosting round (3,000
rounds of a small training: 13 s) or, for a group that never formed (a worker lost as training started), until the
tracker's timeout (:data:`.train_shared_matrix.TRACKER_TIMEOUT_S`). Now:

* on the driver, :func:`stop_tracker` and the tasks cancelled (:class:`.train_locks.Abandonment` runs them): the tasks
  still waiting for their group are let go as the tracker stops;
* on the workers, :func:`leave_if_abandoned` (before each target and after each boosting round, :func:`stop_callback`):
  the tasks ask, all together through the collective, whether one of them was cancelled (by the driver, or by the
  scheduler when the driver's client went away: a driver killed outright too), and leave their group at the same point;
  an external-memory training (one task, no collective) asks its own task (:func:`stop_if_cancelled`).
"""

from __future__ import annotations

from typing import Any


class TrainingAbandoned(RuntimeError):
    """The run that started this training task gave it up."""


def task_cancelled() -> bool:
    """On a worker, in a task: whether the scheduler no longer wants the task (its future was cancelled or released)."""
    import distributed

    worker = distributed.get_worker()
    task = worker.state.tasks.get(worker.get_current_task())
    return task is None or task.state == "cancelled"


def leave_if_abandoned() -> None:
    """On every worker of a collective at the same point: :class:`TrainingAbandoned` on all of them when one's task was
    cancelled, so that they leave the group together (one leaving alone broke its peers' next allreduce)."""
    import numpy as np
    from xgboost import collective

    if collective.allreduce(np.array([task_cancelled()], dtype=np.int32), collective.Op.MAX)[0]:
        raise TrainingAbandoned("the run gave this training up")


def stop_if_cancelled() -> None:
    """In a training of one task outside any collective (external memory's): :class:`TrainingAbandoned` when the task
    was cancelled; nothing when not run as a task (called in process)."""
    import distributed

    try:
        distributed.get_worker()
    except ValueError:
        return
    if task_cancelled():
        raise TrainingAbandoned("the run gave this training up")


def stop_callback(alone: bool = False) -> Any:
    """An XGBoost training callback calling :func:`leave_if_abandoned` after each boosting round (``alone``: a training
    outside any collective, :func:`stop_if_cancelled`)."""
    import xgboost as xgb

    check = stop_if_cancelled if alone else leave_if_abandoned

    class LeaveIfAbandoned(xgb.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            check()
            return False

    return LeaveIfAbandoned()


#: The scheduler's attribute listing the trackers :func:`.train_shared_matrix.start_tracker` started that have not
#: ended: :data:`TRACKER_ID` -> an event set when it ends. Not by port: a later tracker may have an ended one's (every
#: tracker has the port dask's ``xgboost.scheduler_address`` names), and a run given up after its tracker ended
#: stopped that later one, another run's.
TRACKERS = "rapids_engage_trackers"

#: The key, among a tracker's worker arguments (:func:`.train_shared_matrix.start_tracker`), of its id in
#: :data:`TRACKERS`; not one of XGBoost's (:func:`worker_args`).
TRACKER_ID = "rapids_engage_tracker_id"


def worker_args(coll_args: dict[str, Any]) -> dict[str, Any]:
    """A tracker's worker arguments as XGBoost's collective takes them: without :data:`TRACKER_ID`."""
    return {k: v for k, v in coll_args.items() if k != TRACKER_ID}


#: Seconds an abandoned training's tracker is left to end by itself (its group's tasks leave it within a boosting
#: round) before :func:`stop_tracker` stops it: a task closing its group once the tracker is gone retried for ~6 s.
STOP_GRACE_S = 3.0


def stop_tracker(client: Any, coll_args: dict[str, Any], grace_s: float = STOP_GRACE_S) -> None:
    """Stop the XGBoost tracker of ``coll_args`` (its worker arguments: its :data:`TRACKER_ID`, where it listens), on
    the scheduler, unless it has ended or ends by itself within ``grace_s``; the call does not wait. It stops as it
    stops itself: its listening socket shut down, its accept loop then ends and closes the connections of the workers
    waiting for their group, which fail at once. XGBoost has no call for it (``RabitTracker.free`` waits for the tracker to end)."""

    def stop(tracker: str, port: int, host: str, grace_s: float, listed: str, dask_scheduler: Any) -> None:
        import ipaddress  # nested: travels by value
        import os
        import socket
        import threading

        import psutil

        ended = dask_scheduler.__dict__.get(listed, {}).get(tracker)  # None: it ended (its port may be another's now)
        if ended is None:
            return
        try:
            ipaddress.ip_address(host)
        except ValueError:
            host = ""  # a host name: the port alone tells the socket

        def unless_ended() -> None:
            if ended.wait(grace_s):
                return
            process = psutil.Process()
            for conn in (getattr(process, "net_connections", None) or process.connections)(kind="tcp"):  # psutil < 6
                if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.fd >= 0 \
                        and (not host or conn.laddr.ip == host):
                    with socket.socket(fileno=os.dup(conn.fd)) as listener:  # a copy of the tracker's: closed alone
                        listener.shutdown(socket.SHUT_RDWR)  # the socket itself, the tracker's too

        threading.Thread(target=unless_ended, name="stop-xgboost-tracker", daemon=True).start()

    client.run_on_scheduler(stop, str(coll_args[TRACKER_ID]), int(coll_args["dmlc_tracker_port"]),
                            str(coll_args["dmlc_tracker_uri"]), grace_s, TRACKERS)
