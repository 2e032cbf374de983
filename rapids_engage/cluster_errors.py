"""The one-line errors of a cluster run: a cluster that cannot be used, a worker lost, XGBoost's native words."""

from __future__ import annotations

import re
from typing import Any


class ClusterError(RuntimeError):
    """The cluster cannot be used as configured (an existing scheduler without usable workers)."""


class WorkerLostError(RuntimeError):
    """A dask worker died during the run and what failed could not be recovered.

    Dask recomputes the tasks of a dead worker (the nanny restarts it), so most deaths cost only
    time; what holds state on one worker (an ``xgboost.dask`` training, a scattered booster)
    fails instead. Its message is one line; running the same command again resumes from what
    was published.
    """


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


def first_worker(found: dict[str, Any]) -> tuple[str, Any, str] | None:
    """Of the workers whose value in ``found`` (worker address -> what is wrong there) is not empty: the first by
    address, its value and `` (and N more worker(s))`` (or ""), for a one-line error; None when there is none."""
    bad = sorted((worker, value) for worker, value in found.items() if value)
    if not bad:
        return None
    more = f" (and {len(bad) - 1} more worker(s))" if len(bad) > 1 else ""
    return bad[0][0], bad[0][1], more
