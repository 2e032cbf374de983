"""The files an input path names (``data.path``, ``ingest --input``, ``predict --input``): a file, a glob (``**``
any depth) or a directory, meaning every data file under it at any depth as the glob ``dir/**/*.<ext>`` does,
skipping names that start with ``.`` or ``_`` (Spark's and dask's ``_SUCCESS``, ``_metadata``, ``.crc``, ``_temporary/``).
Backend-free: only paths are listed."""

from __future__ import annotations

import glob
import os
from collections import Counter
from pathlib import Path

#: Leading characters of the names a directory's listing skips, as pyarrow, dask and Spark do.
HIDDEN_PREFIXES = (".", "_")
#: Compression endings that belong to a file's format ending (``.csv.gz``).
COMPRESSIONS = (".gz", ".bz2", ".zst")


class InputPathError(ValueError):
    """An input directory holding no data files, or files of several formats."""


def is_glob(spec: str | os.PathLike) -> bool:
    """Whether ``spec`` is a glob: it holds ``*``, ``?`` or ``[`` and names no path as it is (``events[1].csv``, a
    file there, is that file)."""
    return glob.has_magic(str(spec)) and not os.path.lexists(spec)


def expand(spec: str | os.PathLike) -> list[Path]:
    """The files ``spec`` names, sorted by path: a glob's matches (``**``: any depth; :func:`is_glob`), a directory's
    data files (:func:`directory_files`), else ``spec`` itself (checked by the caller)."""
    text = str(spec)
    if is_glob(text):
        return [Path(p) for p in sorted(glob.glob(text, recursive=True))]
    return directory_files(Path(text)) if os.path.isdir(text) else [Path(text)]


def directory_files(folder: Path) -> list[Path]:
    """Every file under ``folder`` at any depth (:func:`walk`), sorted by path, skipping paths with a part below
    ``folder`` that starts with ``.`` or ``_``; an :class:`InputPathError` naming ``folder`` when none is left, or when
    they end in more than one format (``.csv`` and ``.json``: name the ones to read by a glob)."""
    files = sorted(f for f in walk(folder) if os.path.isfile(f))
    if not files:
        raise InputPathError(f"{folder}: a directory holding no data files (names starting with '.' or '_', Spark's and "
                             "dask's markers, are skipped)")
    formats = Counter(file_format(Path(f)) for f in files)
    if len(formats) > 1:
        held = ", ".join(f"{n} {fmt or 'without an ending'}" for fmt, n in formats.most_common())
        first = formats.most_common(1)[0][0]
        raise InputPathError(f"{folder}: a directory holding files of mixed formats ({held}); name the ones to read by a "
                             f"glob, e.g. '{os.path.join(folder, '**', '*' + first)}'")
    return [Path(f) for f in files]


def walk(folder: str | os.PathLike) -> list[str]:
    """What lies under ``folder`` at any depth but folders (files, and links to nothing or in a loop, for a reader to
    name), skipping names below it that start with ``.`` or ``_``, following linked folders (``ln -s /disk/day2
    data/day2``; ``Path.rglob`` skipped their files), each real folder once (a link back up is no loop); the one
    listing of a directory (:func:`directory_files`, :func:`.store.parquet_files`), in walk order."""
    files, seen = [], set()
    for top, folders, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            folders[:] = []
            continue
        seen.add(real)
        folders[:] = [f for f in folders if not f.startswith(HIDDEN_PREFIXES)]
        files += [os.path.join(top, n) for n in names if not n.startswith(HIDDEN_PREFIXES)]
    return files


def file_format(path: Path) -> str:
    """The ending of ``path`` naming its format, lower case, its compression left out (``.csv`` of ``a.CSV.gz``;
    ``""`` for none)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def glob_root(spec: str | os.PathLike) -> Path:
    """The directory a glob's matches lie under (its leading parts without a wildcard); ``spec`` itself when it
    is not a glob."""
    if not is_glob(spec):
        return Path(spec)
    parts = Path(spec).parts
    fixed = parts[:next((i for i, p in enumerate(parts) if glob.has_magic(p)), len(parts))]
    return Path(*fixed) if fixed else Path(".")


def hive_hint(path: Path, missing: list[str] | tuple[str, ...]) -> str:
    """``"; 'day' is named by the folder day=2021-02-05 above it, ..."`` when a ``missing`` column is the key of a
    ``key=value`` folder above ``path`` (a hive partition column: not read, only the files' own columns are), else ``""``."""
    folders = [p for p in Path(path).parent.parts if "=" in p and p.split("=", 1)[0] in missing]
    if not folders:
        return ""
    keys = ", ".join(repr(f.split("=", 1)[0]) for f in folders)
    return (f"; {keys} is named by the folder{'s' if len(folders) > 1 else ''} {', '.join(folders)} above it, but hive "
            "partition columns (key=value folders) are not read: write the column into the files")
