"""Synthetic RecSys Challenge 2021 data with planted signal and known true probabilities.

The embedded default dataset and the benchmark input. Engaging users and
creators are Zipf-distributed over one id space; each engagement's logit is a
sum of effects of the engaging user, the creator, the (user, creator) pair,
language, tweet type, media, the follow flag, text length, the user's
engagements on the previous day and a slowly drifting per-user "mood". The
true probability of every row is written beside the data (``truth/``), so
reports can show the oracle RCE. Generation runs day by day in chunks of at
most ``chunk_rows`` rows, each of its own random stream; threads (one per core,
at most 8, by default) draw and write up to ``workers`` chunks at once, so at most
``workers × chunk_rows`` rows sit in memory, never 100M+. A day's engagements
wait only for the previous day's (the history term): the output depends only
on the spec (deterministic per seed, the same bytes for any ``workers``).

Layout (``fmt="parquet"``)::

    <out>/data/day=YYYY-MM-DD/part-NNNNN.parquet    canonical schema (schema.py), no day column
    <out>/truth/day=YYYY-MM-DD/part-NNNNN.parquet   tweet_id, p_like, p_retweet, p_reply, p_quote
    <out>/synthetic.json                            spec, rows, positive rates (written last)

``fmt="raw"`` writes ``<out>/raw/part-NNNNN.tsv`` in the official text format
(24 ``\\x01``-separated fields, 32-hex-char ids, ``true``/``false`` flags,
empty engagement field = no engagement) instead of ``data/``; the first 16 hex
chars of an id are the two's-complement bits of the canonical int64 id
(:func:`hex_to_ids` inverts :func:`hex_ids`).

This package's entry point (:func:`generate`, :func:`write_raw`, ``synthetic.json``); its parts: ``spec``
(the spec and its chunk plan), ``world`` (constants, effects and the fixed :class:`~.world.World`), ``chunk``
(one chunk's draws and engagements), ``calibration`` (the intercepts), ``run`` (the threads), ``files``
(paths and writers), ``ids`` (the hex ids).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from ..atomic import write_file
from ..hashing import splitmix64
from .calibration import calibrate
from .files import canonical_schema, chunk_paths, remove_stale
from .ids import hex_ids, hex_to_ids
from .run import Job, resolve_workers, run_chunks
from .spec import SyntheticSpec, day_sizes, plan_chunks
from .world import TARGET_RATES, T, World

VERSION = 1


def _check(spec: SyntheticSpec, fmt: str) -> None:
    if fmt not in ("parquet", "raw"):
        raise ValueError(f"fmt must be 'parquet' or 'raw', got {fmt!r}")
    if spec.rows < 1 or spec.days < 1 or spec.chunk_rows < 1 or spec.users < 1:
        raise ValueError(f"rows, days, chunk_rows and n_users must be >= 1: {spec}")
    if spec.seed < 0:
        raise ValueError(f"seed must be >= 0, got {spec.seed}")
    dt.date.fromisoformat(spec.start)


def generate(
    out_dir: str | Path,
    spec: SyntheticSpec,
    *,
    fmt: str = "parquet",
    on_chunk: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> dict:
    """Write the dataset of ``spec`` under ``out_dir`` in ``fmt`` ("parquet" or "raw").

    ``workers`` threads (default: the cores this process may use; 1: serial) make up to that many chunks
    at once, the same bytes in any case. ``on_chunk(rows_done, rows_total)`` is called after each chunk,
    in order. Returns the info also written (last) to ``<out_dir>/synthetic.json``. Part files of an
    earlier run in the same folders are replaced or removed.
    """
    _check(spec, fmt)
    workers = resolve_workers(workers)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "synthetic.json").unlink(missing_ok=True)
    world = World(spec)
    calibrate(world, spec)
    job, plan = Job(world, spec, out, fmt, canonical_schema()), plan_chunks(spec)
    positives = run_chunks(job, plan, workers, on_chunk)
    remove_stale(out, {p for k, step in enumerate(plan) for p in chunk_paths(out, fmt, k, step)})
    info = {
        "spec": asdict(spec),
        "format": fmt,
        "rows": spec.rows,
        "positive_rates": {t: float(positives[j] / max(spec.rows, 1)) for j, t in enumerate(T)},
        "files": len(plan),
        "version": VERSION,
    }
    write_file(out / "synthetic.json", lambda p: p.write_text(json.dumps(info, indent=1)))
    return info


def write_raw(
    out_dir: str | Path,
    spec: SyntheticSpec,
    *,
    on_chunk: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> dict:
    """:func:`generate` in the official RecSys 2021 text format (``<out_dir>/raw/*.tsv``)."""
    return generate(out_dir, spec, fmt="raw", on_chunk=on_chunk, workers=workers)


__all__ = [
    "SyntheticSpec",
    "TARGET_RATES",
    "day_sizes",
    "generate",
    "hex_ids",
    "hex_to_ids",
    "splitmix64",
    "write_raw",
]
