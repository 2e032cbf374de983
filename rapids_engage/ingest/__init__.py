"""Ingest of raw RecSys Challenge 2021 files into the canonical parquet store (see :mod:`.recsys`)."""

from __future__ import annotations

from .ids import InvalidHexIdError, hex_id_to_int64, parse_hex_ids
from .quarantine import Quarantine, StrictModeError
from .reader import IngestError
from .recsys import CPU_BACKEND, IngestResult, ingest_recsys

__all__ = [
    "CPU_BACKEND",
    "IngestError",
    "IngestResult",
    "InvalidHexIdError",
    "Quarantine",
    "StrictModeError",
    "hex_id_to_int64",
    "ingest_recsys",
    "parse_hex_ids",
]
