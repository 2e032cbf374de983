"""The synthetic generator's chunk runner: up to ``workers`` threads draw, engage and write the chunks of a
plan, each holding one chunk; a day's engagements wait only for the previous day's labels (the history),
handed over in plan order, so the output is the same bytes for any ``workers``."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import write_file
from .chunk import Today, Yesterday, draw_chunk, engage
from .files import chunk_paths, write_parquet, write_tsv
from .spec import Step, SyntheticSpec
from .world import World, moods

#: Default threads at most: past ~8 the serial part (world, calibration, the day-to-day history) bounds the
#: speed-up, while each thread holds a chunk (~0.54 GB per 1M rows).
MAX_DEFAULT_WORKERS = 8


def resolve_workers(workers: int | None) -> int:
    """The threads to generate with: ``workers``, or the cores this process may use (at most
    :data:`MAX_DEFAULT_WORKERS`)."""
    if workers is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return min(cores, MAX_DEFAULT_WORKERS)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return workers


@dataclass(frozen=True)
class Job:
    """What every chunk of a run shares."""

    world: World
    spec: SyntheticSpec
    out: Path
    fmt: str
    schema: pa.Schema


def _make_chunk(job: Job, k: int, step: Step, mood: np.ndarray, yesterday: Future, labels: Future) -> None:
    """Draw, engage (once ``yesterday`` is known) and write the ``k``-th chunk; its (users, labels) go to
    ``labels`` before the files are written (the next day waits for them, not for the writes)."""
    try:
        drawn = draw_chunk(job.world, job.spec, step, mood)
        cols, truth, engaged = engage(job.world, drawn, yesterday.result())
    except BaseException as exc:
        labels.set_exception(exc)
        raise
    labels.set_result((drawn.u, engaged))
    data_path, truth_path = chunk_paths(job.out, job.fmt, k, step)
    if job.fmt == "raw":
        write_tsv(cols, data_path)
    else:
        write_parquet(cols, job.schema, data_path)
    write_file(truth_path, lambda p: pq.write_table(truth, p))


def _done(fn: Callable, *args: object) -> Future:
    """``fn(*args)`` called now, as a finished future (the serial path)."""
    future: Future = Future()
    future.set_result(fn(*args))
    return future


class _Stopped(RuntimeError):
    """Given to the chunks still waiting for a previous day when a run stops early."""


class _Chunks:
    """The chunks of a run in flight (at most ``workers``): submitted in plan order with their day's mood and
    yesterday, finished (written) in plan order."""

    def __init__(self, job: Job, plan: list[Step], workers: int, turns: list[Future],
                 on_chunk: Callable[[int, int], None] | None) -> None:
        self.job, self.plan, self.workers, self.turns, self.on_chunk = job, plan, workers, turns, on_chunk
        self.pool = ThreadPoolExecutor(min(workers, len(plan)), thread_name_prefix="synthetic") if workers > 1 else None
        self.moods, self.mood, self.mood_turn = moods(job.world, job.spec), job.world.mood, -1
        self.labels: dict[int, Future] = {}
        self.pending: deque[tuple[int, Future]] = deque()
        self.submitted = 0

    def labels_of(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(users, labels) of chunk ``k``, once drawn and engaged; chunks up to ``workers`` ahead submitted."""
        while self.submitted <= k or (len(self.pending) < self.workers and self.submitted < len(self.plan)):
            if len(self.pending) == self.workers:
                self.finish_oldest()
            self._submit()
        return self.labels.pop(k).result()

    def _submit(self) -> None:
        k, step = self.submitted, self.plan[self.submitted]
        while self.mood_turn < step.turn:
            self.mood, self.mood_turn = next(self.moods), self.mood_turn + 1
        self.labels[k] = Future()
        task = (_make_chunk, self.job, k, step, self.mood, self.turns[step.turn], self.labels[k])
        self.pending.append((k, self.pool.submit(*task) if self.pool else _done(*task)))
        self.submitted += 1

    def finish_oldest(self) -> None:
        """Wait for the oldest chunk in flight to be written (raising its error), then report progress."""
        k, future = self.pending.popleft()
        future.result()
        if self.on_chunk is not None:
            self.on_chunk(self.plan[k].first_row + self.plan[k].rows, self.job.spec.rows)

    def close(self) -> None:
        """Release the chunks waiting for a day that will not come; wait for the threads."""
        for turn in self.turns:
            if not turn.done():
                turn.set_exception(_Stopped("an earlier chunk failed or the run was interrupted"))
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def run_chunks(job: Job, plan: list[Step], workers: int, on_chunk: Callable[[int, int], None] | None) -> np.ndarray:
    """Make every chunk of ``plan``, at most ``workers`` at once; the history in plan order. Positives per target."""
    users = job.spec.users
    turns = [Future() for _ in range(plan[-1].turn + 1)]  # each turn's yesterday, set when the previous ends
    turns[0].set_result(Yesterday.none(users))
    today, positives = Today.empty(users), np.zeros(4, dtype=np.int64)
    chunks = _Chunks(job, plan, workers, turns, on_chunk)
    try:
        for k, step in enumerate(plan):
            u, engaged = chunks.labels_of(k)
            today.add(u, engaged)
            positives += engaged.sum(axis=0)
            if step.turn + 1 < len(turns) and plan[k + 1].turn > step.turn:  # the last chunk of its day
                turns[step.turn + 1].set_result(today.close())
                today = Today.empty(users)
        while chunks.pending:
            chunks.finish_oldest()
    finally:
        chunks.close()
    return positives

