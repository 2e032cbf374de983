"""Atomic writes: a file or a directory is seen whole or not at all; a killed run leaves the old one.

Each goes through a temporary name in the same directory (same filesystem), then ``os.replace``.
What is read back may still be damaged (a copy cut short, a disk error, an edit): :func:`read_json`
reads a JSON file the tool wrote, or says in one line which file is damaged and how.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .failures import naming

#: Prefix of the directories a replaced directory is renamed to before it is deleted (``store --tmp`` deletes
#: what a killed run left of them).
OLD_PREFIX = ".tmp-old-"


def write_file(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path`` (:func:`part_path`), then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = part_path(path)
    try:
        with naming(path):
            write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def part_path(path: Path) -> Path:
    """A temporary name for a write of ``path``: ``.<name>.<random>.<pid>.part``, its own (two threads of one process
    writing ``path`` at once wrote the same ``.<name>.<pid>.part``: one renamed or deleted the other's)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.{os.getpid()}.part")


def pid_namespace() -> str | None:
    """This process's PID namespace (Linux: ``pid:[4026531836]``), None where none can be read. Containers sharing
    the host's name (host networking) number their processes apart: a process id is checked only in its namespace."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


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


class DamagedFile(ValueError):
    """A JSON file the tool wrote that does not read back as written (``path``, ``why``)."""

    def __init__(self, path: str | os.PathLike, why: str, hint: str = "") -> None:
        self.path, self.why = Path(path), why
        super().__init__(f"{path} is damaged ({why})" + (f": {hint}" if hint else ""))


#: Types as JSON names them, for :class:`DamagedFile` messages.
_JSON_TYPES = {dict: "an object", list: "an array", tuple: "an array", str: "a string", int: "a number",
               float: "a number", bool: "true or false", type(None): "null"}


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def read_json(path: str | os.PathLike, fields: dict[str, type | tuple[type, ...]] | None = None, hint: str = "") -> dict:
    """The JSON object the tool wrote to ``path``, checked by :func:`check_fields`; a :class:`DamagedFile`
    (a ValueError: one line naming the file, what is wrong and ``hint``, what to do) when it is empty, not
    JSON (cut short, another format) or of another shape. A file that is not there raises its OSError."""
    text = Path(path).read_bytes()
    try:
        data = json.loads(text)
    except ValueError as exc:  # UnicodeDecodeError too
        raise DamagedFile(path, "empty" if not text.strip() else f"{exc}: not JSON, cut short or another format", hint) from None
    return check_fields(data, fields or {}, path, hint)


def check_fields(data: object, fields: dict[str, type | tuple[type, ...]], path: str | os.PathLike, hint: str = "",
                 where: str = "") -> dict:
    """``data`` when it is a JSON object whose ``fields`` (key -> the type(s) of its value; a key whose types
    include ``NoneType`` may be absent) are there with those types (other keys, a newer version's, are
    ignored); else a :class:`DamagedFile` naming ``path`` (and ``where``: the object's key in it)."""
    if not isinstance(data, dict):
        raise DamagedFile(path, f"{where or 'it'} is {_json_type(data)}, not an object", hint)
    for key, types in fields.items():
        types = types if isinstance(types, tuple) else (types,)
        if key not in data:
            if type(None) in types:
                continue
            raise DamagedFile(path, f"key {where}{'.' if where else ''}{key} is missing", hint)
        if not isinstance(data[key], types) or (isinstance(data[key], bool) and bool not in types):
            expected = " or ".join(dict.fromkeys(_JSON_TYPES.get(t, t.__name__) for t in types))
            raise DamagedFile(path, f"key {where}{'.' if where else ''}{key} is {_json_type(data[key])}, not {expected}", hint)
    return data


def remove_tree(path: str | os.PathLike) -> str | None:
    """Delete the directory ``path`` as far as it can be; None when it is gone, else the first refusal
    (``Read-only file system: <file>``: a read-only store or cache), what is left staying. A link to a directory (one
    moved to another disk and linked back): the link goes, not what it points to (rmtree refuses a link)."""
    if os.path.islink(path):
        try:
            os.unlink(path)
        except OSError as exc:
            if os.path.lexists(path):
                return f"{exc.strerror or exc}: {os.fspath(path)}"
        return None
    refusals: list[str] = []

    def refused(_func: object, name: str, error: BaseException) -> None:
        refusals.append(f"{getattr(error, 'strerror', None) or error}: {name}")

    if sys.version_info >= (3, 12):  # onerror is deprecated there
        shutil.rmtree(path, onexc=refused)
    else:
        shutil.rmtree(path, onerror=lambda func, name, info: refused(func, name, info[1]))
    return None if not os.path.lexists(path) else (refusals[0] if refusals else "not deleted")


def staging_dir(final: str | os.PathLike) -> Path:
    """A new empty directory beside ``final`` to build its replacement in (then :func:`replace_dir`):
    ``.tmp-<name>-<random>-<pid>``, its own whatever else stages ``final`` (another process, or another call in this
    one: each deleted the other's, named by the process id alone).

    What killed runs left there first goes: their staging directories (by process id) and, while
    ``final`` exists, the old ones they had renamed away.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    for d in final.parent.glob(f".tmp-{final.name}-*"):
        pid = d.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)
    if final.exists():
        for d in final.parent.glob(f"{OLD_PREFIX}{final.name}-*"):
            shutil.rmtree(d, ignore_errors=True)
    tmp = final.with_name(f".tmp-{final.name}-{uuid.uuid4().hex[:8]}-{os.getpid()}")
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
