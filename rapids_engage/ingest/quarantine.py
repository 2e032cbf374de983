"""Bad input rows, kept with where they came from and why they were rejected.

Every row is one rejected input line: ``file``, ``line`` (1-based physical line
number), ``column`` (None when the row as a whole is bad, e.g. a wrong field
count), ``reason`` (a short stable key such as ``invalid_id``, counted in
:attr:`Quarantine.counts`), ``detail`` (human-readable) and ``raw`` (the line; a
parsed CSV row's fields as a CSV record, quoted where they need it; undecodable bytes
backslash-escaped, truncated to 1000 chars).

Rows are kept in memory up to ``spill_rows``; beyond that they are appended to a
parquet spill file, so a wholly broken multi-GB input cannot exhaust memory. One input file's
quarantine, filled in a worker process, is handed over as its spill files (:meth:`Quarantine.hand_over`)
and taken over, in input order, by the ingest's (:meth:`Quarantine.take_over`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import write_file

RAW_LIMIT = 1000

SCHEMA = pa.schema(
    [
        ("file", pa.string()),
        ("line", pa.int64()),
        ("column", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("raw", pa.string()),
    ]
)


class StrictModeError(ValueError):
    """A bad row in strict mode; the message is ``FILE:LINE:COLUMN: reason``."""

    def __init__(self, file: str, line: int, column: str | None, reason: str, detail: str = "") -> None:
        self.file, self.line, self.column, self.reason = file, line, column, reason
        msg = f"{file}:{line}:{column or '-'}: {reason}"
        super().__init__(f"{msg} ({detail})" if detail else msg)


def raw_text(raw: bytes | str) -> str:
    """``raw`` as text for the quarantine: undecodable bytes escaped, at most RAW_LIMIT chars."""
    if isinstance(raw, bytes):
        raw = raw[: 4 * RAW_LIMIT].decode("utf-8", errors="backslashreplace")
    return raw[:RAW_LIMIT]


@dataclass
class QuarantinePart:
    """A quarantine handed over (:meth:`Quarantine.hand_over`): its rows in spill files, in order, and its tallies."""

    spilled: list[str]
    counts: dict[str, int]
    total: int
    first: tuple[str, int, str | None, str, str] | None


@dataclass
class Quarantine:
    """Collects bad rows; see the module docstring for the columns.

    With ``spill_dir`` set, every ``spill_rows`` rows are moved from memory to a
    parquet file in that directory; :meth:`write` streams them all back out.
    """

    spill_dir: str | Path | None = None
    spill_rows: int = 100_000
    spill_name: str = ".quarantine-spill"  #: spill files: ``<spill_dir>/<spill_name>-NNNNN.parquet``
    counts: dict[str, int] = field(default_factory=dict, init=False)
    total: int = field(default=0, init=False)
    #: (file, line, column, reason, detail) of the first bad row: the lowest line of the first file with one
    first: tuple[str, int, str | None, str, str] | None = field(default=None, init=False)
    _rows: dict[str, list] = field(default_factory=lambda: {name: [] for name in SCHEMA.names}, init=False, repr=False)
    _spilled: list[Path] = field(default_factory=list, init=False, repr=False)

    def add(self, file: str, line: int, column: str | None, reason: str, raw: bytes | str = "", detail: str = "") -> None:
        """Record one bad row."""
        self.extend([file], [line], [column], [reason], [raw], [detail])

    def extend(self, files: list[str], lines: list[int], columns: list[str | None], reasons: list[str],
               raws: list[bytes | str], details: list[str] | None = None) -> None:
        """Record many bad rows (parallel lists; ``files`` may be a single-element list)."""
        n = len(lines)
        if not n:
            return
        rows = self._rows
        rows["file"].extend(files if len(files) == n else files * n)
        rows["line"].extend(int(x) for x in lines)
        rows["column"].extend(columns)
        rows["reason"].extend(reasons)
        rows["detail"].extend(details if details is not None else [""] * n)
        rows["raw"].extend(raw_text(r) for r in raws)
        for reason, k in Counter(reasons).items():
            self.counts[reason] = self.counts.get(reason, 0) + k
        self._first(files, lines, columns, reasons, details)
        self.total += n
        if self.spill_dir is not None and len(rows["line"]) >= self.spill_rows:
            self._spill()

    def _spill(self) -> None:
        path = Path(self.spill_dir) / f"{self.spill_name}-{len(self._spilled):05d}.parquet"
        pq.write_table(self.table(), path)
        self._spilled.append(path)
        self._rows = {name: [] for name in SCHEMA.names}

    def hand_over(self) -> QuarantinePart:
        """Every row moved to spill files (``spill_dir`` must be set), for :meth:`take_over` in another process."""
        if self._rows["line"]:
            self._spill()
        return QuarantinePart([str(p) for p in self._spilled], dict(self.counts), self.total, self.first)

    def take_over(self, part: QuarantinePart) -> None:
        """Add the rows of ``part`` (an input file's, handed over) after this quarantine's, which holds none in
        memory (it only takes over): they are written from their spill files, which :meth:`cleanup` deletes."""
        if self._rows["line"]:
            raise ValueError("a quarantine holding rows in memory cannot take over spilled ones after them")
        self._spilled += [Path(p) for p in part.spilled]
        for reason, k in part.counts.items():
            self.counts[reason] = self.counts.get(reason, 0) + k
        self.total += part.total
        if self.first is None:  # the parts come in input order: the first file with a bad row has it
            self.first = part.first

    def _first(self, files: list[str], lines: list[int], columns: list[str | None], reasons: list[str],
               details: list[str] | None) -> None:
        n = len(lines)
        one_file = len(files) != n
        for i in [min(range(n), key=lines.__getitem__)] if one_file else range(n):
            file = files[0] if one_file else files[i]
            if self.first is None or (file == self.first[0] and lines[i] < self.first[1]):
                self.first = (file, int(lines[i]), columns[i], reasons[i], details[i] if details is not None else "")

    def first_text(self, limit: int = 120) -> str | None:
        """The first bad row in short, e.g. ``events.csv:2 column ts: '2024-03-01T01:00:23' is not time_format unix``."""
        if self.first is None:
            return None
        file, line, column, reason, detail = self.first
        detail = " ".join((detail or reason).split())
        if len(detail) > limit:
            detail = detail[: limit - 3] + "..."
        return f"{Path(file).name}:{line}" + (f" column {column}" if column else "") + f": {detail}"

    def table(self) -> pa.Table:
        """The rows held in memory (all rows unless some were spilled)."""
        return pa.table(self._rows, schema=SCHEMA)

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Every bad row, spilled ones first, in the order added."""
        for path in self._spilled:
            yield from pq.ParquetFile(path).iter_batches()
        yield from self.table().to_batches()

    def write(self, path: str | Path) -> None:
        """Write every bad row to ``path`` (``.jsonl`` -> JSON lines, else parquet), atomically."""
        def jsonl(tmp: Path) -> None:
            with open(tmp, "w", encoding="utf-8") as out:
                for batch in self.batches():
                    out.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in batch.to_pylist())

        def parquet(tmp: Path) -> None:
            with pq.ParquetWriter(tmp, SCHEMA) as writer:
                for batch in self.batches():
                    writer.write_batch(batch)

        write_file(path, jsonl if Path(path).suffix == ".jsonl" else parquet)

    def cleanup(self) -> None:
        """Delete the spill files."""
        for path in self._spilled:
            path.unlink(missing_ok=True)
        self._spilled.clear()


__all__ = ["Quarantine", "QuarantinePart", "StrictModeError", "raw_text"]
