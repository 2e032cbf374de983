"""The parquet footers of ``predict --input``, read once per file.

Predict's checks before the cluster starts (rows at all, columns, partition sizes, the earliest
time, rows earlier than the serving state's end) all read the input files' footers; each file's
is read once (:func:`read_footer`) and the one :class:`Footer` passed to all of them: on a
network filesystem every read of thousands of footers costs seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from .data import DataError
from .store import ends_with_parquet_magic

#: What predict says of input that is not canonical parquet rows.
RAW_INPUT = ("raw files (CSV, TSV, JSONL, RecSys text) are read by `ingest` first (with --unlabelled when they have no "
             "target columns), whose output predict takes")


@dataclass(frozen=True)
class Footer:
    """One parquet file's footer: its path, column names (as ``pq.read_schema`` gives them) and metadata
    (``pyarrow.parquet.FileMetaData``: the row groups and their column statistics)."""

    path: Path
    names: tuple[str, ...]
    metadata: Any = field(repr=False, compare=False)

    @property
    def num_rows(self) -> int:
        return self.metadata.num_rows

    def row_groups(self, column: str) -> Iterator[tuple[int, int, Any]]:
        """(index, rows, statistics of ``column`` or None) of each row group; ``column`` must be a top-level
        column of the file (:meth:`leaf_index` not None)."""
        at = self.leaf_index(column)
        for g in range(self.metadata.num_row_groups):
            group = self.metadata.row_group(g)
            yield g, group.num_rows, group.column(at).statistics

    def leaf_index(self, column: str) -> int | None:
        """The index of top-level ``column`` among the row groups' columns (None: the file has none)."""
        schema = self.metadata.schema
        return next((i for i in range(self.metadata.num_columns) if schema.column(i).path == column), None)


def not_parquet(path: Path) -> DataError:
    """The error of a ``predict`` input file that is not parquet."""
    return DataError(f"{path} is not a parquet file (no parquet footer: another format, or cut short): {RAW_INPUT}")


def damaged_parquet(path: Path, exc: BaseException) -> DataError:
    """The error of a file that ends as parquet does but whose footer pyarrow cannot read (``exc``: its error)."""
    why = (str(exc).strip().splitlines() or [type(exc).__name__])[0].strip().rstrip(":").rstrip()
    return DataError(f"{path} is a damaged parquet file (its footer cannot be read: {why}): write it again, "
                     "or ingest its source again")


def unreadable(path: Path, exc: OSError) -> DataError:
    """The error of a file that cannot be opened (``exc``: why; a symlink loop or a dangling link, no permission)."""
    return DataError(f"{path} cannot be read ({exc.strerror or exc}): fix the file or the link, or move it out of the input")


def read_footer(path: Path) -> Footer:
    """``path``'s footer, the file opened once; :func:`not_parquet` when it does not end with parquet's magic bytes,
    :func:`damaged_parquet` when its footer cannot be read, :func:`unreadable` when it cannot be opened."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        f = open(path, "rb")
    except OSError as exc:  # a symlink loop was a traceback ending in OSError: [Errno 40]
        raise unreadable(path, exc) from exc
    with f:
        if not ends_with_parquet_magic(f):
            raise not_parquet(path)
        try:
            parquet = pq.ParquetFile(f)
            names = tuple(parquet.schema_arrow.names)
        except (OSError, pa.ArrowException) as exc:  # pyarrow's "Couldn't deserialize thrift", no file named
            raise damaged_parquet(path, exc) from exc
        return Footer(Path(path), names, parquet.metadata)


def int_bounds(footer: Footer, column: str) -> list[tuple[int, int]] | None:
    """(min, max) of ``column`` in each row group of ``footer``'s file that has rows, from the statistics (no data
    read); None when they cannot tell: no such column, a group without statistics, only nulls, or values that are
    not integers (a timestamp column)."""
    if footer.leaf_index(column) is None:
        return None
    bounds = []
    for _, rows, stats in footer.row_groups(column):
        if rows == 0:
            continue
        if stats is None or not stats.has_min_max or type(stats.min) is not int or type(stats.max) is not int:
            return None
        bounds.append((stats.min, stats.max))
    return bounds


def int_range(footers: Sequence[Footer], column: str) -> tuple[int, int] | None:
    """(min, max) of ``column`` over every file of ``footers`` from their statistics (no data read); None when any
    file's cannot tell (:func:`int_bounds`) or no file has rows."""
    bounds = []
    for footer in footers:
        file_bounds = int_bounds(footer, column)
        if file_bounds is None:
            return None
        bounds += file_bounds
    return (min(lo for lo, _ in bounds), max(hi for _, hi in bounds)) if bounds else None


def null_free_int_range(footers: Sequence[Footer], column: str) -> tuple[int, int] | None:
    """:func:`int_range` of ``column`` when the statistics also say no row of any file holds a null there (a time
    split then needs no pass over the data for its span); None when they cannot tell."""
    for footer in footers:
        if footer.leaf_index(column) is None:
            return None
        for _, rows, stats in footer.row_groups(column):
            if rows and (stats is None or not stats.has_null_count or stats.null_count != 0):
                return None
    return int_range(footers, column)


def holds_later(footer: Footer, column: str, cutoff: int) -> bool:
    """Whether ``footer``'s file may hold a ``column`` value above ``cutoff``: False only when every row group with
    rows has integer statistics whose maximum is at most ``cutoff`` (:func:`int_bounds`; nulls are above no cut-off)."""
    bounds = int_bounds(footer, column)
    return bounds is None or any(high > cutoff for _, high in bounds)


def as_footers(files: Sequence[Path | Footer]) -> list[Footer]:
    """``files`` as footers: those read already as they are, paths read here (:func:`read_footer`)."""
    return [f if isinstance(f, Footer) else read_footer(f) for f in files]
