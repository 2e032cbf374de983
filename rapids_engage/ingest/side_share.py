"""Side tables prepared once for every ingest worker: written as Arrow IPC files that each process memory-maps.

:func:`shared_sides` writes each read side table's columns (:mod:`.side_join`: numbers, strings, dictionaries) into
a scratch folder and gives them back memory-mapped; pickled (sent to a worker) such a side table is its files' names,
and the worker maps them again: the pages are the page cache's, one copy for all processes, not one per worker. The
folder is removed when the ingest leaves it, on an error or Ctrl-C too.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from .side_join import AsOfSide, KeyIndex, SideTable

Side = SideTable | AsOfSide


def _tables(side: Side) -> dict[str, pa.Table]:
    if isinstance(side, SideTable):
        return {"keys": side.keys.table, "values": side.values}
    return {"keys": side.keys.table, "times": side.times} | {f"column-{i}": t for i, t in enumerate(side.columns.values())}


def _write(table: pa.Table, path: Path) -> None:
    table = table.combine_chunks()
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def _map(path: str) -> pa.Table:
    """The table of an IPC file, its buffers those of the mapped file (no copy)."""
    with pa.memory_map(path) as source:
        return ipc.open_file(source).read_all()


def open_mapped(kind: str, on: str, names: tuple[str, ...], stem: str) -> Side:
    """The side table whose files :func:`share` wrote as ``<stem>.<table>.arrow``, memory-mapped."""
    def table(name: str) -> pa.Table:
        return _map(f"{stem}.{name}.arrow")

    if kind == "plain":
        side: Side = SideTable(on, KeyIndex(table("keys")), table("values"), names)
    else:
        side = AsOfSide(on, KeyIndex(table("keys")), table("times"),
                        {name: table(f"column-{i}") for i, name in enumerate(names)})
    object.__setattr__(side, "_mapped", (kind, on, names, stem))  # pickled as these: :func:`_reduce`
    return side


def share(side: Side, stem: Path) -> Side:
    """``side`` written as ``<stem>.<table>.arrow`` files, memory-mapped."""
    for name, table in _tables(side).items():
        _write(table, Path(f"{stem}.{name}.arrow"))
    kind = "plain" if isinstance(side, SideTable) else "as_of"
    return open_mapped(kind, side.on, side.keep, str(stem))


def mapped_bytes(folder: Path) -> int:
    """The bytes of the side tables' files in ``folder`` (what the mapped pages add up to, at most)."""
    return sum(p.stat().st_size for p in folder.glob("*.arrow"))


@contextmanager
def shared_sides(sides: list[Side], folder: Path) -> Iterator[list[Side]]:
    """``sides`` written into ``folder`` (created) and memory-mapped (:func:`share`); the folder removed on leaving."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        shared = [share(side, folder / f"side-{i}") for i, side in enumerate(sides)]
        del sides  # the read copies are freed once the caller holds only the mapped ones
        yield shared
    finally:
        shutil.rmtree(folder, ignore_errors=True)


__all__ = ["mapped_bytes", "open_mapped", "share", "shared_sides"]
