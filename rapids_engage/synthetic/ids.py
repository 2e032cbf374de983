"""The synthetic data's 32-hex-char ids (the raw RecSys 2021 form of the canonical int64 ids).

The first 16 hex chars of an id are the two's-complement bits of the int64 id, the last 16 those of a
mix of it; :func:`hex_to_ids` inverts :func:`hex_ids`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..hashing import splitmix64

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _hex16(u: np.ndarray, out: np.ndarray) -> None:
    """Write the 16 lowercase hex chars of each uint64 of ``u`` into ``out`` (n, 16) uint8."""
    for i in range(16):
        out[:, i] = _HEX[(u >> np.uint64(60 - 4 * i)) & np.uint64(15)]


def _hex32_bytes(ids: np.ndarray) -> np.ndarray:
    """(n, 32) ASCII bytes: the id's own 16 hex chars, then 16 of a mix of it."""
    u = np.ascontiguousarray(ids, dtype=np.int64).view(np.uint64)
    out = np.empty((len(u), 32), dtype=np.uint8)
    _hex16(u, out[:, :16])
    _hex16(splitmix64(u ^ np.uint64(0x5EED5EED5EED5EED)), out[:, 16:])
    return out


def hex_ids(ids: np.ndarray) -> np.ndarray:
    """32-char lowercase hex ids (numpy str) of int64 ids; see :func:`hex_to_ids`."""
    return _hex32_bytes(ids).view("S32").ravel().astype(str)


def hex_to_ids(hex_strings: np.ndarray | list[str]) -> np.ndarray:
    """The int64 id of each 32-hex-char id (either case): its first 16 hex chars as uint64, viewed as
    int64, as the ingest reads them; a ValueError (:class:`~.ingest.ids.InvalidHexIdError`) for a string
    that is not such an id."""
    from ..ingest.ids import hex_id_to_int64

    return np.asarray(hex_id_to_int64(np.asarray(hex_strings, dtype=str)), dtype=np.int64)


def arrow_hex(ids: np.ndarray) -> pa.Array:
    """:func:`hex_ids` as an Arrow large_string array, built from one bytes buffer."""
    data = _hex32_bytes(ids)
    offsets = np.arange(0, 32 * (len(data) + 1), 32, dtype=np.int64)
    return pa.Array.from_buffers(pa.large_string(), len(data), [None, pa.py_buffer(offsets), pa.py_buffer(data)])

