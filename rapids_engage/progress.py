"""Progress display and stage timing (rich), shared by every stage of a run."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from .memory import MemoryWatch


class StageProgress:
    """Shows one line per stage (spinner, then a check mark and its seconds) and keeps the timings
    (and, with ``memory``, each stage's peak memory)."""

    def __init__(self, console: Console | None = None, quiet: bool = False, memory: MemoryWatch | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.quiet = quiet
        self.memory = memory
        self.timings: dict[str, float] = {}
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=30),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=self.console,
            disable=quiet,
            transient=True,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> StageProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    @contextlib.contextmanager
    def stage(self, name: str, total: float | None = None) -> Iterator[StageProgress]:
        """Time ``name``; the body may call :meth:`update` to move its bar."""
        start = time.perf_counter()
        self._task = self._progress.add_task(name, total=total, detail="")
        if self.memory is not None:
            self.memory.begin(name)
        try:
            yield self
        finally:
            if self.memory is not None:
                self.memory.end(name)
            elapsed = time.perf_counter() - start
            self.timings[name] = self.timings.get(name, 0.0) + elapsed
            self._progress.remove_task(self._task)
            self._task = None
        if not self.quiet:
            peak = self.memory.host_peak.get(name) if self.memory is not None else None
            tail = f"   peak RSS {peak / 2**30:6.2f} GiB" if peak else ""
            self.console.print(f"[green]✓[/green] {name:<10} {elapsed:8.1f} s{tail}")

    def update(self, completed: float | None = None, total: float | None = None, detail: str = "") -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=completed, total=total, detail=detail)

    def log(self, message: str) -> None:
        if not self.quiet:
            self.console.print(f"  {message}")
