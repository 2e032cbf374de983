"""Progress display and stage timing (rich), shared by every stage of a run."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from .periodic import every

if TYPE_CHECKING:
    from .memory import MemoryWatch


def byte_size(n: int) -> str:
    """``n`` bytes for a log line or report: GiB, or MiB below a GiB, KiB below a MiB, bytes below a KiB (a few
    MiB said "0.00 GiB", a few KiB "0.0 MiB": nothing)."""
    if n < 2**20:
        return f"{n / 2**10:.1f} KiB" if n >= 2**10 else f"{n:,} bytes"
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def read_detail(done: int, total: int, unit: str = "bytes") -> str:
    """A bar's detail for work counted in ``unit``: ``3.2 MiB of 16.7 MiB`` (bytes), else ``1,000/5,000 rows``
    (the bytes of an ingest were shown as bare numbers, read as rows)."""
    if unit == "bytes":
        return f"{byte_size(done)} of {byte_size(total)}"
    return f"{done:,}/{total:,} {unit}"


class StageProgress:
    """Shows one line per stage (spinner, then a check mark and its seconds) and keeps the timings
    (and, with ``memory``, each stage's peak memory). Without a bar (a log, a dumb terminal), a stage still running
    after ``heartbeat`` seconds gets a line then and every ``heartbeat`` seconds after: its name, seconds and the
    bar's detail (a long stage was a silent stretch in the log)."""

    #: seconds between a stage's lines in a log (no bar), the first after as many
    HEARTBEAT = 15.0

    def __init__(self, console: Console | None = None, quiet: bool = False, memory: MemoryWatch | None = None,
                 heartbeat: float | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.quiet = quiet
        self.memory = memory
        self.heartbeat = self.HEARTBEAT if heartbeat is None else heartbeat
        self._detail = ""  # the running stage's last detail, for its lines in a log
        self.timings: dict[str, float] = {}
        # rich draws no bar on a dumb terminal (TERM=dumb / unknown: Emacs' shell, a CI pty) either: such a terminal
        # gets a log's lines (it got neither, a whole stage silent)
        self._bar = not quiet and self.console.is_terminal and not self.console.is_dumb_terminal
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=30),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=self.console,
            disable=not self._bar,  # a log gets the stage lines, not a bar's last frame
            transient=True,
        )
        self._task: TaskID | None = None
        self.tasks: dict[str, int] = {}  # tasks the cluster finished per followed stage
        self.task_seconds: dict[str, dict[str, float]] = {}  # per followed stage: compute seconds per task prefix

    def __enter__(self) -> StageProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    @contextlib.contextmanager
    def stage(self, name: str, total: float | None = None, client: Any = None) -> Iterator[StageProgress]:
        """Time ``name``; the body may call :meth:`update` to move its bar. With a dask ``client``
        the bar follows the cluster's tasks instead (:class:`TaskWatch`): for stages made of many
        dask computations, such as the feature build."""
        start = time.perf_counter()
        self._task = self._progress.add_task(name, total=total, detail="")
        self._detail = ""
        if self.memory is not None:
            self.memory.begin(name)
        watch = TaskWatch(client, self._show_tasks) if client is not None else contextlib.nullcontext()
        beats = self._beats(name, start) if not (self.quiet or self._bar) else contextlib.nullcontext()
        try:
            with beats, watch:
                yield self
        finally:
            if client is not None:
                self.tasks[name] = watch.done
                if watch.seconds:
                    self.task_seconds[name] = watch.seconds
            if self.memory is not None:
                self.memory.end(name)
            elapsed = time.perf_counter() - start
            self.timings[name] = self.timings.get(name, 0.0) + elapsed
            self._progress.remove_task(self._task)
            self._task = None
        if not self.quiet:
            peak = self.memory.host_peak.get(name) if self.memory is not None else None
            # on an existing cluster the workers are elsewhere: the figure is the driver's alone, say so
            whose = " (driver)" if self.memory is not None and self.memory.external else ""
            tail = f"   peak RSS{whose} {peak / 2**30:6.2f} GiB" if peak else ""
            self.console.print(f"[green]✓[/green] {name:<10} {elapsed:8.1f} s{tail}")

    @contextlib.contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Add the seconds of the body to ``name``'s timing, with no line of its own (closing the cluster)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start

    def account(self, name: str, wall: float) -> None:
        """Time ``name`` as what ``wall`` seconds hold beyond the timed stages (never below 0), so the timings add up
        to ``wall``."""
        self.timings[name] = max(0.0, wall - sum(v for k, v in self.timings.items() if k != name))

    def _show_tasks(self, done: int, waiting: int) -> None:
        self.update(done, done + waiting, f"{done:,} tasks done, {waiting:,} to run")

    def _beats(self, name: str, start: float) -> contextlib.AbstractContextManager[None]:
        """While open, :meth:`beat` every :attr:`heartbeat` seconds (from a thread)."""
        return every(self.heartbeat, lambda: self.beat(name, time.perf_counter() - start), "stage-heartbeat")

    def beat(self, name: str, elapsed: float) -> None:
        """A running stage's line in a log: ``  … features    60 s: 1,234 tasks done, 56 to run``."""
        detail = f": {self._detail}" if self._detail else ""
        self.console.print(f"  … {name:<10} {elapsed:6.0f} s{detail}", highlight=False)

    def update(self, completed: float | None = None, total: float | None = None, detail: str = "") -> None:
        self._detail = detail
        if self._task is not None:
            self._progress.update(self._task, completed=completed, total=total, detail=detail)

    def log(self, message: str) -> None:
        if not self.quiet:
            self.console.print(f"  {message}")


class TaskWatch:
    """While open, polls the scheduler of ``client`` every ``interval`` s and calls
    ``on_counts(done, waiting)``: the tasks finished since it opened and those still to run (the
    total grows as the stage submits more graphs). A scheduler that cannot be asked (gone, or
    refusing ``run_on_scheduler``) ends the polling, never the stage."""

    #: task prefixes kept per stage in :attr:`seconds` (the rest summed as ``other``)
    TOP_PREFIXES = 12

    def __init__(self, client: Any, on_counts: Callable[[int, int], None], interval: float = 0.5) -> None:
        self.client, self.on_counts, self.interval = client, on_counts, interval
        self.done = 0
        self.seconds: dict[str, float] = {}  # compute seconds per task prefix while open, the largest first
        self._before: dict[str, float] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _counts(self) -> tuple[int, int] | None:
        """(tasks finished so far, tasks waiting or running) on the scheduler, from its per-prefix
        counters (``state_counts`` accumulates every transition into a state; ``states`` is current)."""

        def rapids_engage_task_counts(dask_scheduler: Any) -> tuple[int, int]:  # nested: pickled by value, any scheduler runs it
            import logging

            # the scheduler logs every call ("Run out-of-band function ...") at INFO: twice a second for as long
            # as a stage runs, in the log of a cluster the user runs. Drop the lines of this function only.
            log = logging.getLogger("distributed.worker")
            if not any(getattr(f, "rapids_engage_task_counts", False) for f in log.filters):
                class QuietTaskCounts(logging.Filter):
                    rapids_engage_task_counts = True

                    def filter(self, record: logging.LogRecord) -> bool:
                        return not (str(record.msg).startswith("Run out-of-band function")
                                    and record.args in (("rapids_engage_task_counts",), ("rapids_engage_task_seconds",)))

                log.addFilter(QuietTaskCounts())
            prefixes = list(dask_scheduler.task_prefixes.values())
            done = sum(p.state_counts.get("memory", 0) + p.state_counts.get("erred", 0) for p in prefixes)
            running = ("waiting", "queued", "processing", "no-worker")
            return done, sum(p.states.get(s, 0) for p in prefixes for s in running)

        try:
            return self.client.run_on_scheduler(rapids_engage_task_counts)
        except Exception:  # noqa: BLE001 - progress is best effort
            return None

    def _prefix_seconds(self) -> dict[str, float] | None:
        """Seconds the workers spent computing tasks of each prefix (``read_parquet``, ``merge``, ...) since the
        scheduler started, from its per-prefix totals; None when the scheduler cannot be asked."""

        def rapids_engage_task_seconds(dask_scheduler: Any) -> dict[str, float]:  # nested: pickled by value
            return {name: float(p.all_durations.get("compute", 0.0)) for name, p in dask_scheduler.task_prefixes.items()}

        try:
            return self.client.run_on_scheduler(rapids_engage_task_seconds)
        except Exception:  # noqa: BLE001 - a profile is best effort
            return None

    def _keep_seconds(self, after: dict[str, float]) -> None:
        """:attr:`seconds`: the prefixes' compute seconds since :meth:`__enter__`, the largest first, the rest as ``other``."""
        before = self._before or {}
        spent = sorted(((round(v - before.get(k, 0.0), 3), k) for k, v in after.items()), reverse=True)
        spent = [(v, k) for v, k in spent if v > 0]
        top, rest = spent[: self.TOP_PREFIXES], spent[self.TOP_PREFIXES :]
        self.seconds = {k: v for v, k in top} | ({"other": round(sum(v for v, _ in rest), 3)} if rest else {})

    def __enter__(self) -> TaskWatch:
        first = self._counts()  # first: it quiets the scheduler's log lines of both functions
        self._before = self._prefix_seconds()
        if first is not None:
            self._start = first[0]
            self._thread = threading.Thread(target=self._loop, name="task-watch", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval + 10.0)  # a poll stuck on a dying scheduler is left behind (daemon)
            if exc_type is None:
                self._poll()  # the final count
        if exc_type is None and self._before is not None:
            after = self._prefix_seconds()
            if after is not None:
                self._keep_seconds(after)

    def _poll(self) -> bool:
        counts = self._counts()
        if counts is None:
            return False
        self.done = max(self.done, counts[0] - self._start)
        self.on_counts(self.done, counts[1])
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.interval) and self._poll():
            pass
