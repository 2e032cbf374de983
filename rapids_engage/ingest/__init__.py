"""Ingest into the canonical parquet store: raw RecSys Challenge 2021 files (:mod:`.recsys`), generic event tables (:mod:`.table`)."""

from __future__ import annotations

from .ids import InvalidHexIdError, hex_id_to_int64, parse_hex_ids
from .quarantine import Quarantine, StrictModeError
from .reader import IngestError
from .recsys import CPU_BACKEND, IngestResult, ingest_recsys
from .records import RecordReader
from .table import hash_strings, ingest_table

__all__ = [
    "CPU_BACKEND",
    "IngestError",
    "IngestResult",
    "InvalidHexIdError",
    "Quarantine",
    "RecordReader",
    "StrictModeError",
    "hash_strings",
    "hex_id_to_int64",
    "ingest_recsys",
    "ingest_table",
    "parse_hex_ids",
]
