"""The ring Z_2^64 and the signed values it carries.

Signed values live in [-2^62, 2^62) as two's complement uint64, so that the difference of two of them
never wraps and ``x < y`` can be computed as the sign of ``x - y``. Inputs outside that range are
rejected with :class:`ValueRangeError`; they are never silently wrapped into a wrong answer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "RING_BITS",
    "VALUE_MAX",
    "VALUE_MIN",
    "ValueRangeError",
    "check_public",
    "decode",
    "encode",
    "ring_constant",
]

RING_BITS = 64
VALUE_MIN = -(2**62)
VALUE_MAX = 2**62  # exclusive


class ValueRangeError(ValueError):
    """A value that a comparison could not handle correctly; names the first offending element."""


def _first_bad(array: np.ndarray, bad: np.ndarray) -> str:
    index = int(np.flatnonzero(bad)[0])
    return f"element {index} = {array.reshape(-1)[index]}"


def encode(values: Sequence[int] | np.ndarray) -> np.ndarray:
    """Signed integers in [-2^62, 2^62) to ring elements (uint64, two's complement)."""
    if not isinstance(values, np.ndarray):
        ints = list(values)
        for index, v in enumerate(ints):
            if isinstance(v, bool) or not isinstance(v, int | np.integer):
                raise TypeError(f"secret-shared values must be integers, element {index} is {type(v).__name__}")
            if not VALUE_MIN <= int(v) < VALUE_MAX:
                raise ValueRangeError(f"value out of range [-2^62, 2^62): element {index} = {v}")
        return np.array([int(v) for v in ints], dtype=np.int64).astype(np.uint64)
    array = values
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"secret-shared values must be integers, got dtype {array.dtype}")
    if array.dtype == np.uint64:
        bad = array >= np.uint64(VALUE_MAX)
    else:
        array = array.astype(np.int64)
        bad = (array < VALUE_MIN) | (array >= VALUE_MAX)
    if bad.any():
        raise ValueRangeError(f"value out of range [-2^62, 2^62): {_first_bad(array, bad)}")
    return array.astype(np.int64).astype(np.uint64)


def decode(ring: np.ndarray) -> np.ndarray:
    """Ring elements back to signed int64."""
    return np.asarray(ring, dtype=np.uint64).view(np.int64)


def check_public(value: int) -> int:
    """A public constant used in a comparison must obey the same range as secret values."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"public constants must be integers, got {type(value).__name__}")
    if not VALUE_MIN <= int(value) < VALUE_MAX:
        raise ValueRangeError(f"public constant {value} out of range [-2^62, 2^62)")
    return int(value)


def ring_constant(value: int) -> np.uint64:
    """Any Python integer reduced mod 2^64 (for additions and public multipliers)."""
    return np.uint64(int(value) % 2**64)
