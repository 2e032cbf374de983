"""One input file's output, whichever process ingests it, merged in input order by the ingest's process.

Each input file ``F`` (its position among the inputs) has its own :class:`.DayWriter` (parts
``day=D/part-FFFFF-KKKKK.parquet``: they sort in input order) and its own :class:`.Quarantine`
(spilled as ``.quarantine-FFFFF-NNNNN.parquet``), so the bytes written are a function of that file
alone: the same whether it is ingested in the ingest's process or in a worker, and whatever the worker
count. :meth:`FileOutput.done` closes them and returns a :class:`FileDone` (small, picklable);
:class:`Written` sums those in input order and hands their quarantines to the ingest's. Once all are written,
the ingest merges each day's runs of small parts into one file named as the run's first (:mod:`.compact`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .parallel import by_file, ordered_map
from .quarantine import Quarantine, QuarantinePart
from .writer import DayWriter


@dataclass
class FileDone:
    """What ingesting one input file did: its input and ingested rows, the rows and parts it wrote, its quarantine."""

    rows: int
    ingested: int
    rows_per_day: dict[str, int]
    files: int
    quarantine: QuarantinePart
    test_file: bool = False  #: a RecSys file of 20 fields (no engagements)


class FileOutput:
    """The day writer (into ``root``) and the quarantine (spilled into ``spill_dir``) of input file ``index``."""

    def __init__(self, index: int, root: Path, spill_dir: Path, schema: Any, **writer_options: Any) -> None:
        self.writer = DayWriter(root, schema, prefix=f"part-{index:05d}-", **writer_options)
        self.quarantine = Quarantine(spill_dir=spill_dir, spill_name=f".quarantine-{index:05d}")
        self.result: FileDone | None = None

    def done(self, rows: int, ingested: int, test_file: bool = False) -> FileDone:
        """Close the parts, spill the bad rows (once; later calls return the same)."""
        if self.result is None:
            self.writer.close()
            self.result = FileDone(rows, ingested, dict(self.writer.rows_per_day), self.writer.files,
                                   self.quarantine.hand_over(), test_file)
        return self.result


@dataclass
class Written:
    """The files' outputs summed in input order: rows per day and parts written (as a closed :class:`.DayWriter`
    has them), the input and ingested rows; each file's quarantine taken over by ``quarantine``."""

    quarantine: Quarantine
    rows_per_day: dict[str, int] = field(default_factory=dict)
    files: int = 0
    rows: int = 0
    ingested: int = 0
    per_file: list[FileDone] = field(default_factory=list)

    def add(self, done: FileDone) -> None:
        for day, n in done.rows_per_day.items():
            self.rows_per_day[day] = self.rows_per_day.get(day, 0) + n
        self.files += done.files
        self.rows += done.rows
        self.ingested += done.ingested
        self.per_file.append(done)
        self.quarantine.take_over(done.quarantine)

    def empty(self, paths: list[Path]) -> list[str]:
        """The input files (``paths``, in input order) that held no row."""
        return [str(p) for p, d in zip(paths, self.per_file) if d.rows == 0]


def files_progress(sizes: list[int], on_progress: Callable[[int, int], None] | None) -> Callable[[int, int], None]:
    """``progress(file index, its on-disk bytes done)`` calling ``on_progress(bytes done of all files, their total)``
    (the files before the index done); nothing when ``on_progress`` is None."""
    before = [sum(sizes[:i]) for i in range(len(sizes))]
    total = sum(sizes)

    def progress(index: int, bytes_done: int) -> None:
        if on_progress is not None:
            on_progress(before[index] + bytes_done, total)

    return progress


def ingest_in_order(paths: list[Path], workers: int, quarantine: Quarantine, on_progress: Callable[[int, int], None] | None,
                    whole_file: tuple[Callable[[Any, Any], FileDone], Callable[..., Any], tuple, Callable[[int, Path], Any]],
                    blockwise: Callable[[Callable[[int, int], None]], Iterable[FileDone]]) -> Written:
    """Every input file's :class:`FileDone`, summed in input order. As many files as ``workers`` or more
    (:func:`.parallel.by_file`): ``whole_file`` = (work, setup, setup_args, task of (index, path)) maps
    ``work(state, task)`` over the files on the workers (progress after each file); else ``blockwise(progress)``
    ingests them here, its blocks parsed on the workers (progress as it reports it)."""
    sizes = [p.stat().st_size for p in paths]
    progress = files_progress(sizes, on_progress)
    written = Written(quarantine)
    if by_file(workers, len(paths)):
        work, setup, setup_args, task = whole_file
        for i, done in ordered_map(work, setup, setup_args, ((i, task(i, p)) for i, p in enumerate(paths)), workers):
            written.add(done)
            progress(i, sizes[i])
    else:
        for done in blockwise(progress):
            written.add(done)
    return written


__all__ = ["FileDone", "FileOutput", "Written", "files_progress", "ingest_in_order"]
