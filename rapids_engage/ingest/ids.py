"""RecSys 32-hex-char ids -> int64 keys, vectorized and identical on CPU and GPU.

The first 16 hex chars (64 bits) of an id are read as a uint64 and
reinterpreted as int64 (two's complement), so ``"ffff...."`` gives a negative
key. The remaining 16 chars must still be hex (the whole id is validated) but
do not enter the key: 64 random bits make collisions negligible at RecSys
scale (~1e-8 expected colliding pairs for 1e6 distinct users).

* CPU (numpy / pandas / pyarrow input): the ids are laid out as fixed-width
  32-byte rows, viewed as a ``(n, 32)`` uint8 matrix and mapped through a
  256-entry nibble lookup table; nibble pairs form bytes, 8 bytes are viewed as
  one big-endian uint64. No per-row Python.
* GPU (cudf input): the two 8-char halves are parsed with ``str.htoi()`` (each
  < 2**32, so fits int64), combined as ``(hi << 32) | lo`` in uint64 and viewed
  as int64.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ID_LENGTH = 32
_ZERO_ID = b"0" * ID_LENGTH

#: byte -> nibble value, 255 for a byte that is not a hex digit.
_NIBBLE = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _NIBBLE[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _NIBBLE[_c] = 10 + _i


class InvalidHexIdError(ValueError):
    """Some ids are not 32 hex chars; ``positions`` holds their (0-based) positions."""

    def __init__(self, positions: np.ndarray, example: object) -> None:
        self.positions = positions
        super().__init__(f"{len(positions)} invalid hex id(s), first at position {int(positions[0])}: {example!r}")


def _is_cudf(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] == "cudf"


def _as_binary(strings: Any) -> pa.Array:
    """Any CPU sequence of ids as one pyarrow binary array (nulls kept)."""
    if isinstance(strings, pa.ChunkedArray):
        strings = strings.combine_chunks()
    if not isinstance(strings, pa.Array):
        kind = getattr(getattr(strings, "dtype", None), "kind", None)
        strings = pa.array(strings, pa.binary()) if kind == "S" else pa.array(strings)
    if pa.types.is_null(strings.type):
        strings = strings.cast(pa.string())
    if not pa.types.is_binary(strings.type):
        strings = strings.cast(pa.binary())
    if isinstance(strings, pa.ChunkedArray):  # pa.array of an arrow-backed pandas Series may be chunked
        strings = strings.combine_chunks()
    return strings


def _parse_cpu(strings: Any) -> tuple[np.ndarray, np.ndarray]:
    arr = _as_binary(strings)
    n = len(arr)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    ok_len = pc.fill_null(pc.equal(pc.binary_length(arr), ID_LENGTH), False)
    fixed = pc.if_else(ok_len, arr, pa.scalar(_ZERO_ID, pa.binary()))
    offsets = np.frombuffer(fixed.buffers()[1], np.int32)[fixed.offset : fixed.offset + n + 1]
    raw = np.frombuffer(fixed.buffers()[2], np.uint8)[offsets[0] : offsets[-1]].reshape(n, ID_LENGTH)
    nib = _NIBBLE[raw]
    valid = ok_len.to_numpy(zero_copy_only=False) & (nib < 16).all(axis=1)
    packed = (nib[:, 0:16:2] << 4) | (nib[:, 1:16:2] & 15)
    keys = np.ascontiguousarray(packed).view(">u8").ravel().astype(np.uint64).view(np.int64)
    return np.where(valid, keys, 0), valid


def _parse_gpu(strings: Any) -> tuple[Any, Any]:
    import cupy as cp

    valid = strings.str.match(r"^[0-9a-fA-F]{32}$").fillna(False)
    safe = strings.where(valid, _ZERO_ID.decode())
    hi = cp.asarray(safe.str.slice(0, 8).str.htoi().values).astype(cp.uint64)
    lo = cp.asarray(safe.str.slice(8, 16).str.htoi().values).astype(cp.uint64)
    keys = ((hi << cp.uint64(32)) | lo).view(cp.int64)
    return type(strings)(keys, index=strings.index, name=strings.name), valid


def parse_hex_ids(strings: Any) -> tuple[Any, Any]:
    """``(keys, valid)``: int64 keys (0 where invalid) and a bool validity mask.

    cudf input gives cudf Series; pandas input gives pandas Series on its
    index; anything else (numpy, list, pyarrow) gives numpy arrays.
    """
    if _is_cudf(strings):
        return _parse_gpu(strings)
    keys, valid = _parse_cpu(strings)
    import pandas as pd

    if isinstance(strings, pd.Series):
        return pd.Series(keys, index=strings.index, name=strings.name), pd.Series(valid, index=strings.index, name=strings.name)
    return keys, valid


def hex_id_to_int64(strings: Any) -> Any:
    """32-hex-char ids -> int64 keys (first 16 hex chars as uint64, viewed as int64).

    Raises :class:`InvalidHexIdError` if any id is not exactly 32 hex chars
    (use :func:`parse_hex_ids` for a validity mask instead).
    """
    keys, valid = parse_hex_ids(strings)
    ok = np.asarray(valid.to_numpy() if _is_cudf(valid) else valid, dtype=bool)
    if not ok.all():
        bad = np.flatnonzero(~ok)
        example = strings.iloc[int(bad[0])] if hasattr(strings, "iloc") else strings[int(bad[0])]
        raise InvalidHexIdError(bad, example)
    return keys


__all__ = ["InvalidHexIdError", "hex_id_to_int64", "parse_hex_ids"]
