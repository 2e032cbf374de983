"""Input data of a run: the cached synthetic dataset or a canonical parquet store.

Both are day-partitioned parquet in the canonical schema (:mod:`.schema`),
read lazily with dask (dask_cudf on GPU) a file per partition (small consecutive
files merged, large ones split: :func:`sized_partitions`), so data larger than
memory stream through the cluster.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from .atomic import DamagedFile, read_json
from .backend import Backend
from .config import Config, DataConfig
from .digests import CACHE_FILE, content_digests
from .failures import is_disk_full
from .layout import LAYOUT_FILE, RECSYS, Layout, table_layout
from .schema import DTYPES, RAW_COLUMNS


class DataError(ValueError):
    """The input data are missing or do not have the expected schema."""


@dataclass(frozen=True)
class Dataset:
    """A canonical dataset on disk; ``truth`` holds the synthetic true probabilities, if any."""

    data_dir: Path
    truth_dir: Path | None
    description: str
    ingest: dict | None = None  # raw sources: the ingest summary (rows in / kept / quarantined)
    layout: Layout = RECSYS


def _synthetic_spec(cfg: Config) -> Any:
    from .synthetic import SyntheticSpec

    s = cfg.synthetic
    return SyntheticSpec(rows=s.rows, days=s.days, seed=s.seed, n_users=s.n_users, chunk_rows=s.chunk_rows)


def synthetic_dataset(cfg: Config, on_chunk: Callable[[int, int], None] | None = None) -> Dataset:
    """The synthetic dataset for ``cfg.synthetic``, generated once into the cache and reused."""
    from .synthetic import VERSION, generate

    spec = _synthetic_spec(cfg)
    spec_json = json.dumps(asdict(spec), sort_keys=True)
    digest = hashlib.sha256(spec_json.encode()).hexdigest()[:12]
    root = Path(cfg.data.cache_dir).expanduser() / f"synthetic-{digest}"
    info = root / "synthetic.json"
    try:
        held, damaged = (read_json(info) if info.is_file() else {}), ""
    except DamagedFile as exc:  # a cache: generated again, not an error
        held, damaged = {}, f", its synthetic.json was damaged ({exc.why})"
    cached = held.get("spec") == asdict(spec) and held.get("version") == VERSION
    if not cached:  # absent, cut off before synthetic.json (written last) or of another generator: generated again
        try:
            generate(root, spec, on_chunk=on_chunk)
        except OSError as exc:  # a full disk: what was written goes, not left filling it until a run of this spec
            if is_disk_full(exc):
                shutil.rmtree(root, ignore_errors=True)
            raise
    how = "by an earlier run: cached" if cached else f"generated{damaged}"
    return Dataset(root / "data", root / "truth", f"synthetic {spec.rows:,} rows, seed {spec.seed} ({how}; {root})")


def parquet_dataset(cfg: Config) -> Dataset:
    if not cfg.data.path:
        raise DataError("data.source is 'parquet' but data.path is not set")
    root = Path(cfg.data.path).expanduser()
    data = root / "data" if (root / "data").is_dir() else root
    if not data.is_dir():
        raise DataError(f"data.path {root} is not a directory of parquet files")
    home = _output_dir(root, data)
    truth = home / "truth"
    layout = Layout.load(home) or RECSYS
    return Dataset(data, truth if truth.is_dir() else None, f"parquet {root}", layout=layout)


def _output_dir(root: Path, data: Path) -> Path:
    """The directory holding ``layout.json`` and ``truth/`` beside ``data``: ``root``, or its parent where
    ``data.path`` names the ``data/`` folder of an ingest or synthetic output (as report.json's
    ``split.data_dir`` does)."""
    if data != root or root.name != "data" or (root / LAYOUT_FILE).is_file():
        return root
    return root.parent if (root.parent / LAYOUT_FILE).is_file() or (root.parent / "truth").is_dir() else root


def recsys_dataset(cfg: Config, backend: Any = None, on_chunk: Callable[[int, int], None] | None = None) -> Dataset:
    """Raw RecSys 2021 files (``data.path`` glob) ingested once into the cache, then reused.

    The cache entry is keyed by the files' names and contents and the strict flag; bad rows are
    quarantined there (``quarantine.parquet``). Test files (20 fields: no engagements) are refused:
    their rows would train and validate as engaged with by no one.
    """
    from .ingest import CPU_BACKEND, ingest_recsys
    from .ingest.recsys import files_without_engagements

    files, root = _raw_files(cfg, "recsys", f"strict={cfg.data.strict}")
    if tests := files_without_engagements([Path(f) for f in files]):  # before the ingest: hours of it, at scale
        raise DataError(f"data.path matches {len(tests)} test file(s) of 20 fields, without engagements ({tests[0]}"
                        f"{', ...' if len(tests) > 1 else ''}): a run trains on labelled files, and their rows would count "
                        "as not engaged with; leave them out of data.path and score them with `ingest` then `predict`")
    summary = _ingest_once(root, lambda: ingest_recsys(
        files, root, backend=backend or CPU_BACKEND, strict=cfg.data.strict, on_progress=on_chunk,
        workers=cfg.data.ingest_workers))
    return _ingested(root, summary, f"recsys {len(files)} file(s)", RECSYS)


def table_dataset(cfg: Config, on_chunk: Callable[[int, int], None] | None = None) -> Dataset:
    """Generic CSV/TSV/JSONL/parquet files (``data.path`` glob, roles in ``data.table``) ingested once into the cache."""
    from .ingest import ingest_table

    spec = cfg.data.table
    if spec is None:
        raise DataError("data.source is 'table' but the data.table section (format and column roles) is missing")
    table_layout(spec)  # validates the target kinds before any file is read
    files, root = table_cache(cfg)
    summary = _ingest_once(root, lambda: ingest_table(files, root, spec, strict=cfg.data.strict, on_progress=on_chunk,
                                                      workers=cfg.data.ingest_workers))
    return _ingested(root, summary, f"table {len(files)} file(s)", Layout.load(root))


def table_cache(cfg: Config) -> tuple[list[str], Path]:
    """(the table files ``data.path`` matches, their ingest cache directory: keyed by their names and contents, the
    ``data.table`` spec, the contents of its side tables and ``data.strict``)."""
    salt = [_spec_key(cfg.data.table), cfg.data.strict]
    sides = _side_digests(cfg)
    return _raw_files(cfg, "table", json.dumps(salt + ([sides] if sides else []), sort_keys=True))


def _side_digests(cfg: Config) -> list[str | None]:
    """The content digest of each ``data.table.join`` side table (None: not a readable file; the ingest names it): an
    edited side table (new item properties at the same path) is another ingest, not the rows joined to the old one."""
    paths = [Path(j.path).expanduser() for j in cfg.data.table.join]
    found = [p for p in paths if p.is_file()]
    digests = content_digests(found, Path(cfg.data.cache_dir).expanduser() / CACHE_FILE) if found else {}
    return [digests.get(p) for p in paths]


#: A side table's keys (``data.table.join``) left out of the ingest cache key while unset: side tables joined
#: before point-in-time joins (or ``prefix``) existed keep their cache entry.
_AS_OF_KEYS = ("time", "time_format", "property", "value", "prefix")


def _spec_key(spec: Any) -> dict:
    """``spec`` as its part of the ingest cache key: without ``events`` when it has none, nor a side table's unset
    point-in-time keys, so tables ingested before ``data.table.events`` or them existed keep their cache entry."""
    key = asdict(spec)
    if key.get("events") is None:
        key.pop("events", None)
    key["join"] = [{k: v for k, v in j.items() if k not in _AS_OF_KEYS or v} for j in key.get("join", [])]
    return key


#: Part of the ingest cache key: bump it when ingest writes other rows or columns for the same input
#: (2: null keys stay null, missing row ids, out-of-range times and non-finite targets quarantined;
#: 3: "NaN", "null", ... in a ``present`` target are absent, records an unclosed quote ran over quarantined;
#: 4: tables keep the text of their ``row_id`` columns as ``raw_<column>``;
#: 5: an unclosed quote quarantines only its line (``unclosed_quote``), the lines it ran over are rows,
#: a count target that is not a number is ``bad_target``;
#: 6: a file with old Mac line ends (bare ``\r``) is read line by line, not as one line; a RecSys line's
#: ``\r\n`` end is a line end, not a ``\r`` in its last field;
#: 7: a CSV record whose quote is still open at the end of the file is quarantined (``unclosed_quote``);
#: 8: ``true`` / ``false`` in a numeric column is 1 / 0, not ``bad_number``;
#: 9: read line by line (after a record longer than a read block), a quote left open on its line is ``unclosed_quote``;
#: 10: a JSONL float that is an integer (``123.0``) reads as the integer's text, as parquet's; a parquet float of
#: 10 digits or more as the integer's text, not ``1.2e+10``; a CSV / TSV header naming a declared column twice is
#: an error, not its first copy read;
#: 11: a JSONL object giving a declared column twice (``{"user": 1, "user": 2}``) is quarantined (``duplicate_key``),
#: not read with its last value;
#: 12: a parquet, JSONL or record list's float items read as its float columns (``12345670000``, not ``1.234567e+10``
#: nor ``-0``; ``1e-7``, not ``1e-07``), a null item of a parquet list as no item, not a null list;
#: 13: a parquet timestamp or date time column read with a ``time_format`` pattern holding ``%z`` / ``%Z`` is
#: its instant, not ``bad_time`` on every row;
#: 14: a parquet fixed_size_list, list_view or large_list_view column reads as a list (its items, not JSON text
#: ``[1.0, 2.5]`` split into ``[1.0,`` and ``2.5]``), a list of lists as the items of its inner lists, as JSONL's;
#: 15: a parquet timestamp or date time column (or a record's datetime) read with a ``time_format`` pattern holding
#: ``%f`` is its instant, not ``bad_time`` on every row;
#: 16: each input file written to parts of its own (``day=D/part-<file>-<k>.parquet``, ingested by one worker
#: process), not the rows of all files through one writer: the same rows, other files; old caches are ingested
#: again once;
#: 17: a blank, null or ``nan`` side-table key joins nothing (the row's side columns null), not the table's rows
#: with a blank key; an event log's labelled rows come in staged order (file by file, rows as typed), not the
#: labelling shuffle's order: the same rows and labels);
#: 18: an event log's labelled rows keep each target's labelling event time (``<target>_time``, unix seconds, null
#: where 0: new columns), from which history features count a positive (``label_time: engagement``).
INGEST_RULES = 18


def _raw_files(cfg: Config, kind: str, salt: str) -> tuple[list[str], Path]:
    """(the files ``data.path`` matches, their cache directory keyed by their names, contents and ``salt``: the
    same files copied or moved elsewhere are not ingested again)."""
    import glob

    from .ingest.recsys import input_paths

    if not cfg.data.path:
        raise DataError(f"data.source is {kind!r} but data.path (a glob of raw files) is not set")
    pattern = str(Path(cfg.data.path).expanduser())
    files = sorted(glob.glob(pattern, recursive=True)) or ([pattern] if Path(pattern).is_file() else [])
    if not files:
        relative = "" if Path(pattern).is_absolute() else f" (relative paths start from the current directory, {Path.cwd()})"
        raise DataError(f"data.path {cfg.data.path!r} matches no file{relative}")
    input_paths(files)  # each a readable file: one line naming it, not the hashing's OSError
    cache = Path(cfg.data.cache_dir).expanduser()
    digests = content_digests([Path(f) for f in files], cache / CACHE_FILE)
    h = hashlib.sha256(f"{INGEST_RULES}|{salt}".encode())
    for f in files:
        h.update(f"{Path(f).name}|{digests[Path(f)]}\n".encode())
    return files, cache / f"{kind}-{h.hexdigest()[:12]}"


#: The keys of a cached ingest summary (``ingest.json``) a run reads, with their types (:func:`.atomic.check_fields`).
SUMMARY_FIELDS = {"files": int, "input_rows": int, "ingested_rows": int, "quarantined_rows": int, "quarantine_counts": dict,
                  "empty_files": (list, type(None)), "output_rows": (int, type(None)), "events": (dict, type(None))}


def _ingest_once(root: Path, ingest: Callable[[], Any]) -> dict:
    """The ingest summary of ``root``, running ``ingest`` first when the cache has none, or a damaged one
    (a cache: ingested again, and the data line says why)."""
    summary_file = root / "ingest.json"
    damaged = None
    if summary_file.is_file():
        try:
            return read_json(summary_file, SUMMARY_FIELDS) | {"reused": True}
        except DamagedFile as exc:
            damaged = f"its ingest.json was damaged ({exc.why}): ingested again"
    return asdict(ingest()) | ({"damaged": damaged} if damaged else {})


def check_some_ingested(summary: dict, what: str, root: Path) -> None:
    """A :class:`DataError` saying why when an ingest (``summary``: its :class:`IngestResult` as a dict)
    kept no row: nothing to read, so say why rather than "no parquet files"."""
    events = summary.get("events")
    if summary["ingested_rows"] and events and not summary.get("output_rows"):  # events, but none to score
        raise DataError(f"{what}: no {events['anchor']!r} row to score of the {summary['ingested_rows']:,} events ingested "
                        f"({events['anchors']:,} {events['anchor']!r} rows, {events['anchors_in_last_horizon']:,} of them "
                        f"within the last {events['horizon_hours']:g} h of the log, left out: their label is not final); "
                        "data.table.events.anchor names the event type of the rows to score")
    if summary["ingested_rows"]:
        return
    if not summary["input_rows"]:  # nothing was quarantined either: no quarantine file to point at
        empty = ", ".join(summary.get("empty_files") or []) or "every file"
        raise DataError(f"{what}: no input rows ({empty}: empty or a header alone)")
    reasons = ", ".join(f"{k} {v:,}" for k, v in summary["quarantine_counts"].items() if v)
    first = f"; the first: {summary['first_quarantined']}" if summary.get("first_quarantined") else ""
    raise DataError(f"{what}: none of the {summary['input_rows']:,} input rows was ingested ({reasons or 'no input rows'}{first}); "
                    f"the quarantine ({root / 'quarantine.parquet'}) has each row's file, line, column and reason")


def _ingested(root: Path, summary: dict, what: str, layout: Layout | None) -> Dataset:
    if layout is None:
        raise DataError(f"{root}: ingest output without layout.json; delete it to ingest again")
    keep = ("files", "input_rows", "ingested_rows", "quarantined_rows", "quarantine_counts")
    info = {k: summary[k] for k in keep} | {"quarantine": str(root / "quarantine.parquet") if summary["quarantined_rows"] else None}
    if summary.get("events"):  # an event log: the anchors labelled, left out, positives
        info["events"] = summary["events"] | {"rows": summary["output_rows"]}
    check_some_ingested(summary, what, root)
    reasons = ", ".join(f"{k} {v:,}" for k, v in summary["quarantine_counts"].items() if v)
    desc = (f"{what}: {summary['ingested_rows']:,} rows ingested{' (by an earlier run: cached)' if summary.get('reused') else ''}, "
            f"{summary['quarantined_rows']:,} quarantined")
    if summary.get("output_rows", summary["ingested_rows"]) != summary["ingested_rows"] and not summary.get("events"):  # explode
        desc += f", {summary['output_rows']:,} event rows"
    if summary["quarantined_rows"]:  # why, and where to look
        desc += f" ({reasons}: {info['quarantine']})"
    if empty := summary.get("empty_files"):  # a truncated download, say
        desc += f", {len(empty)} empty file(s) ({empty[0]}{', ...' if len(empty) > 1 else ''})"
    if summary.get("events"):  # an event log: its anchors are the rows
        from .ingest.recsys import events_line

        desc += f"; {events_line(summary['events'], summary['output_rows'])}"
    if summary.get("damaged"):
        desc += f", {summary['damaged']}"
    if summary.get("workers", 1) > 1:
        desc += f", parsed on {summary['workers']} processes"
    desc += f" ({root})"
    return Dataset(root / "data", None, desc, info, layout)


def resolve_dataset(cfg: Config, backend: Any = None, on_chunk: Callable[[int, int], None] | None = None) -> Dataset:
    source = cfg.data.source
    if source == "synthetic":
        return synthetic_dataset(cfg, on_chunk)
    if source == "parquet":
        return parquet_dataset(cfg)
    if source == "recsys":
        return recsys_dataset(cfg, backend, on_chunk)
    if source == "table":
        return table_dataset(cfg, on_chunk)
    raise DataError(f"data.source must be 'synthetic', 'parquet', 'recsys' or 'table', got {source!r}")


def ignored_data_settings(cfg: DataConfig) -> list[str]:
    """Lines naming the ``data`` settings this run's source does not read (a config switched between sources)."""
    lines = []
    if cfg.table is not None and cfg.source != "table":
        lines.append(f"data.table: read by data.source table only, not applied to this {cfg.source} run")
    if cfg.path is not None and cfg.source == "synthetic":
        lines.append("data.path: not read by data.source synthetic, which generates its data into data.cache_dir")
    if cfg.strict and cfg.source in ("synthetic", "parquet"):
        lines.append(f"data.strict (--strict): raw input only (recsys, table), not applied to this {cfg.source} run")
    return lines


def expected_layout(cfg: Config) -> Layout | None:
    """The layout a run's data will have, known from the config alone (``parquet`` sources: None, it is in the files);
    a ``data.table`` the ingest would refuse is refused here (IngestError), before the keys that use its columns."""
    if cfg.data.source in ("synthetic", "recsys"):
        return RECSYS
    if cfg.data.source == "table" and cfg.data.table is not None:
        from .ingest.table import plan_of

        plan_of(cfg.data.table)
        return table_layout(cfg.data.table)
    return None


def _partition_keys(path: Path, root: str) -> tuple[str, ...]:
    """The keys of the ``key=value`` directories between ``root`` and ``path`` (``('day',)``)."""
    return tuple(part.split("=", 1)[0] for part in path.parent.relative_to(root).parts if "=" in part)


def _placed(path: Path, root: str) -> str:
    """``path`` and the ``key=value`` directories it lies under."""
    keys = _partition_keys(path, root)
    return f"{path} (under {', '.join(k + '=...' for k in keys)})" if keys else f"{path} (under no key=value directory)"


def check_partitioning(files: list[Path]) -> None:
    """A :class:`DataError` naming two of ``files`` that lie under different ``key=value`` directories (``day=X/a.parquet``
    and ``b.parquet``): dask reads those keys as columns, which the other files lack, and stopped with a
    ``KeyError: 'day'`` traceback."""
    import os

    if len(files) < 2:
        return
    root = os.path.commonpath([str(f.parent) for f in files])
    first = _partition_keys(files[0], root)
    other = next((f for f in files if _partition_keys(f, root) != first), None)
    if other is not None:
        raise DataError(f"parquet files of two layouts: {_placed(files[0], root)} and {_placed(other, root)}; dask reads a key=value "
                        "directory as a column, which files outside it lack: move the files so that all lie under the "
                        "same kind of directories")


def read_events(
    data_dir: Path, layout: Layout = RECSYS, columns: list[str] | None = None, partition_rows: int | None = None,
    min_partition_rows: int | None = None, min_partitions: int = 1, later_than: int | None = None,
    footers: list[Any] | None = None,
) -> Any:
    """Lazy dask frame of the canonical events (cudf partitions when the backend is GPU): a partition
    per file (``blocksize=None``: neither dask's nor dask_cudf's own splitting or merging), sized by
    :func:`sized_partitions`. Each file's footer is read at most once (:func:`.footers.read_footer`).

    ``later_than``: only rows whose time is above it are wanted (a split's validation side): a file whose footer
    statistics show none is not read but stands as an empty partition of the frame's dtypes, so the partitions are
    those of the whole frame, holding every such row; the caller filters the rows. ``footers``: every input file's,
    read already (:func:`input_footers`; a frame and its ``later_than`` one read each footer once)."""
    import dask.dataframe as dd

    from .footers import holds_later, read_footer  # it imports this module
    from .store import parquet_files

    files = parquet_files(data_dir) if footers is None else [f.path for f in footers]
    if not files:
        raise DataError(f"no parquet files under {data_dir}")
    check_partitioning(files)
    recsys = layout.kind == "recsys"
    sizing = partition_rows is not None or min_partition_rows is not None
    if footers is None:
        footers = [read_footer(f) for f in (files if sizing or later_than is not None else files[:1] if layout.raw_ids else [])]
    if columns is None and layout.raw_ids:  # a table's raw id text: for predictions only, never read to train
        columns = [c for c in footers[0].names if c not in layout.raw_ids]
    frame = dd.read_parquet([str(f) for f in files], columns=columns or (list(RAW_COLUMNS) if recsys else None), blocksize=None)
    if recsys:
        check_schema(frame, str(files[0]))
    else:
        needed = [*layout.row_key, layout.time, *(t.column for t in layout.targets)]
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise DataError(f"{files[0]}: missing column(s) {missing} of its layout.json")
    rows = [f.num_rows for f in footers] if sizing else None
    if later_than is not None:
        frame = empty_partitions(frame, [not holds_later(f, layout.time, later_than) for f in footers])
    return sized_partitions(frame, files, partition_rows, min_partition_rows, min_partitions, rows=rows)


def input_footers(data_dir: Path) -> list[Any]:
    """The footers of the parquet files under ``data_dir``, in :func:`read_events`' order."""
    from .footers import read_footer  # it imports this module
    from .store import parquet_files

    return [read_footer(f) for f in parquet_files(data_dir)]


def empty_partitions(frame: Any, empty: list[bool]) -> Any:
    """``frame`` with the partitions flagged in ``empty`` replaced by empty ones of its meta, whose input is not
    read; as many partitions, in the same order."""
    import itertools
    from functools import partial

    import dask.dataframe as dd

    if not any(empty):
        return frame
    runs, start = [], 0
    for skip, run in itertools.groupby(empty):
        end = start + len(list(run))
        runs.append(dd.from_map(partial(_meta_copy, frame._meta), range(start, end), meta=frame._meta, enforce_metadata=False)
                    if skip else frame.partitions[start:end])
        start = end
    return dd.concat(runs) if len(runs) > 1 else runs[0]


def _meta_copy(meta: Any, _: int) -> Any:
    return meta.copy()


def resolve_min_partition_rows(cfg: DataConfig, backend: Backend) -> int | None:
    """``data.min_partition_rows`` with ``auto`` resolved for ``backend``."""
    return backend.min_partition_rows if cfg.min_partition_rows == "auto" else cfg.min_partition_rows


def sized_partitions(
    frame: Any, files: list[Path], max_rows: int | None, min_rows: int | None, min_partitions: int = 1,
    rows: list[int] | None = None,
) -> Any:
    """``frame`` (read from ``files``, in order) with partitions of at most about ``max_rows`` rows
    (a file with more split evenly into as few as that takes) and, where files are smaller than
    ``min_rows``, consecutive partitions merged into about ``min_rows`` (at most ``max_rows``), keeping
    at least ``min_partitions`` (fewer files: the largest split further, a partition per worker thread; never
    an empty one). Row counts come from the parquet footers (``rows``: the files' counts, their footers read
    already): nothing is read."""
    import math

    import pyarrow.parquet as pq

    for name, value in (("partition_rows", max_rows), ("min_partition_rows", min_rows)):
        if value is not None and value < 1:
            raise DataError(f"data.{name} must be >= 1, got {value}")
    if max_rows is None and min_rows is None:
        return frame
    if rows is None:
        rows = [pq.read_metadata(f).num_rows for f in files]
    if max_rows is not None and max(rows) > max_rows:
        pieces = [math.ceil(n / max_rows) if n > max_rows else 0 for n in rows]  # 0: a small file, merged
        sized = _split_large(frame, rows, pieces, max_rows, min_rows)
    else:
        sized = _merge_small(frame, rows, max_rows, min_rows, min_partitions)
    if sized.npartitions >= min_partitions or min_rows is None:  # None: a partition per file, as asked
        return sized
    # fewer than min_partitions even unmerged (few files): the files with the most rows per partition split further
    unmerged = [math.ceil(n / max_rows) if max_rows is not None and n > max_rows else 1 for n in rows]
    return _split_large(frame, rows, _spread(rows, unmerged, min_partitions), max_rows, None)


def _spread(rows: list[int], pieces: list[int], min_partitions: int) -> list[int]:
    """``pieces`` (each file's partitions, at least one) raised until they sum to ``min_partitions``, a piece
    more each time for the file with the most rows per piece; a file never gets more pieces than rows
    (no empty partition), so files of fewer rows in all than ``min_partitions`` stop short of it."""
    import heapq

    pieces = list(pieces)
    heap = [(-n / p, i) for i, (n, p) in enumerate(zip(rows, pieces)) if p < n]
    heapq.heapify(heap)
    for _ in range(min_partitions - sum(pieces)):
        if not heap:
            break
        _, i = heapq.heappop(heap)
        pieces[i] += 1
        if pieces[i] < rows[i]:
            heapq.heappush(heap, (-rows[i] / pieces[i], i))
    return pieces


def _split_large(frame: Any, rows: list[int], pieces: list[int], max_rows: int | None, min_rows: int | None) -> Any:
    """``frame`` with file ``i`` split into ``pieces[i]`` partitions and each run of consecutive files of
    ``pieces`` 0 merged (:func:`_merge_small`; ``min_rows`` None: a partition per file): splitting every file
    by the largest's count made a small file partitions of a row or none."""
    import dask.dataframe as dd

    parts, start = [], 0
    for end in range(1, len(rows) + 1):  # runs of files of the same split count (small files: one run)
        if end < len(rows) and pieces[end] == pieces[start]:
            continue
        run = frame.partitions[start:end]
        if pieces[start] == 1:  # as they are
            parts.append(run)
        elif pieces[start]:
            parts.append(run.repartition(npartitions=(end - start) * pieces[start]))
        else:
            parts.append(_merge_small(run, rows[start:end], max_rows, min_rows, 1))
        start = end
    return dd.concat(parts) if len(parts) > 1 else parts[0]


def _merge_small(frame: Any, rows: list[int], max_rows: int | None, min_rows: int | None, min_partitions: int) -> Any:
    """``frame`` (files of ``rows`` rows, none over ``max_rows``) with consecutive partitions merged into
    about ``min_rows`` rows (at most ``max_rows``), keeping at least ``min_partitions``."""
    import math

    if min_rows is None:
        return frame
    target = min(min_rows, max_rows or min_rows)
    merged = max(math.ceil(sum(rows) / target), min_partitions)
    if max_rows is not None:  # more partitions where merging so few would put more than max_rows in one
        merged = next((n for n in range(merged, frame.npartitions) if max(_merged_rows(rows, n)) <= max_rows), frame.npartitions)
    return frame.repartition(npartitions=merged) if merged < frame.npartitions else frame


def _merged_rows(rows: list[int], n: int) -> list[int]:
    """The rows of each partition of ``frame.repartition(npartitions=n)`` for partitions of ``rows`` rows
    (n fewer): dask merges consecutive partitions by their count, ``int(i * len(rows) / n)`` the first of
    merged partition ``i``, whatever their rows."""
    import numpy as np

    cuts = [int(i * (len(rows) / n)) for i in range(n)] + [len(rows)]
    return np.add.reduceat(np.asarray(rows, dtype=np.int64), cuts[:-1]).tolist() if n else []


def check_schema(frame: Any, source: str) -> None:
    """Every canonical column present, with a compatible dtype; else a DataError naming it."""
    missing = [c for c in RAW_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing} of the canonical schema")
    for col, want in DTYPES.items():
        got = str(frame.dtypes[col])
        if not _compatible(got, want):
            raise DataError(f"{source}: column {col!r} has dtype {got}, expected {want}")


def _compatible(got: str, want: str) -> bool:
    if want == "str":
        return got in ("str", "string", "object") or got.startswith("string")
    if want == "Int64":
        return got.lower() == "int64"
    return got.lower() == want.lower()
