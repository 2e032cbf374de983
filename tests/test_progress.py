"""Stage progress: a stage that follows the cluster shows and counts the tasks it ran."""

from __future__ import annotations

import io
import time

import dask.dataframe as dd
import pandas as pd
from distributed import Client, LocalCluster
from rich.console import Console

from rapids_engage.progress import StageProgress


def _slow(part: pd.DataFrame) -> pd.DataFrame:
    time.sleep(0.15)
    return part


def test_a_followed_stage_shows_and_counts_the_clusters_tasks():
    frame = dd.from_pandas(pd.DataFrame({"x": range(1000)}), npartitions=10)
    out = io.StringIO()
    prog = StageProgress(Console(file=out, force_terminal=True, width=120))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, Client(cluster) as client:
        client.submit(sum, [1, 2]).result()  # tasks before the stage are not its own
        with prog, prog.stage("features", client=client):
            total = frame.map_partitions(_slow, meta=frame._meta).x.sum().compute()
    assert total == sum(range(1000))
    assert 10 <= prog.tasks["features"] < 100  # the ten slow partitions and their reduction, not the earlier task
    assert "tasks done, " in out.getvalue() and "✓" in out.getvalue()


class _NoScheduler:
    def run_on_scheduler(self, fn):  # noqa: ARG002 - the client API's signature
        raise OSError("scheduler gone")


def test_progress_never_fails_a_stage():
    prog = StageProgress(quiet=True)
    with prog, prog.stage("features", client=_NoScheduler()):
        pass
    assert prog.tasks["features"] == 0 and "features" in prog.timings
