"""Deterministic 64-bit hashing that gives the same bits on numpy and cupy.

Used wherever a value must not depend on the backend, the partitioning or the
worker count: fold assignment, synthetic ids. Both array libraries wrap uint64
arithmetic identically, so ``splitmix64`` is bit-identical on CPU and GPU.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def splitmix64(x: Any) -> Any:
    """The splitmix64 finalizer of a uint64 array (numpy or cupy); wraps modulo 2**64."""
    with np.errstate(over="ignore"):
        z = x + _GAMMA
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def combine(arrays: list[Any], seed: int = 0) -> Any:
    """One uint64 hash per row of several int64 arrays (order matters), mixed with ``seed``."""
    h = splitmix64(arrays[0].astype(np.uint64) ^ np.uint64(operator.index(seed) & 0xFFFFFFFFFFFFFFFF))
    for arr in arrays[1:]:
        h = splitmix64(h ^ arr.astype(np.uint64))
    return h
