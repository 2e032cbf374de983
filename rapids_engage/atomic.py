"""Atomic writes: a file or a directory is seen whole or not at all; a killed run leaves the old one.

Each goes through a temporary name in the same directory (same filesystem), then ``os.replace``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

#: Prefix of the directories a replaced directory is renamed to before it is deleted (``store --tmp`` deletes
#: what a killed run left of them).
OLD_PREFIX = ".tmp-old-"


def write_file(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def process_alive(pid: int) -> bool:
    """Whether a process of this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_partials(directory: str | os.PathLike) -> int:
    """Delete the temporary files :func:`write_file` left under ``directory`` (recursively) in
    processes no longer running (killed mid-write); returns how many."""
    stale = [f for f in Path(directory).rglob(".*.part")
             if (pid := f.name.rsplit(".", 2)[-2]).isdigit() and int(pid) != os.getpid() and not process_alive(int(pid))]
    for f in stale:
        f.unlink(missing_ok=True)
    return len(stale)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_file(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def staging_dir(final: str | os.PathLike) -> Path:
    """A new empty directory beside ``final`` to build its replacement in (then :func:`replace_dir`).

    What killed runs left there first goes: their staging directories (by process id) and, while
    ``final`` exists, the old ones they had renamed away.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    for d in final.parent.glob(f".tmp-{final.name}-*"):
        pid = d.name.rsplit("-", 1)[-1]
        if pid.isdigit() and (int(pid) == os.getpid() or not process_alive(int(pid))):
            shutil.rmtree(d, ignore_errors=True)
    if final.exists():
        for d in final.parent.glob(f"{OLD_PREFIX}{final.name}-*"):
            shutil.rmtree(d, ignore_errors=True)
    tmp = final.with_name(f".tmp-{final.name}-{os.getpid()}")
    tmp.mkdir()
    return tmp


@contextmanager
def staged_dir(final: str | os.PathLike) -> Iterator[Path]:
    """:func:`staging_dir` of ``final``, deleted on leaving unless :func:`replace_dir` has published it."""
    tmp = staging_dir(final)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def replace_dir(tmp: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Rename the finished directory ``tmp`` to ``final``; an existing ``final`` is renamed away first
    and deleted after, so ``final`` is the old directory or the new one, never a mix (a run killed between
    the two renames leaves none, and the old one under :data:`OLD_PREFIX`)."""
    tmp, final = Path(tmp), Path(final)
    old = None
    if final.exists():
        old = final.with_name(f"{OLD_PREFIX}{final.name}-{uuid.uuid4().hex[:8]}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final
