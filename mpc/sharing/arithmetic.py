"""Arithmetic on additive shares over Z_2^64.

Addition, subtraction and multiplication by a public value are local. Multiplication of two shares
uses one Beaver triple ``(a, b, c)`` and one round: both parties open ``d = x - a`` and
``e = y - b`` (uniform, reveal nothing) and set ``z = c + d*b + e*a (+ d*e for party 0)``.
Results are exact mod 2^64; for signed values to compare correctly they must stay in [-2^62, 2^62).
"""

from __future__ import annotations

import numpy as np

from mpc.sharing import ring
from mpc.sharing.types import ArithmeticShare, Public

__all__ = ["add", "mul", "mul_public", "neg", "sub", "sum_shares"]


def _public_ring(value: Public, length: int) -> np.ndarray | np.uint64:
    if isinstance(value, np.ndarray):
        if value.shape != (length,):
            raise ValueError(f"public operand has shape {value.shape}, shares have ({length},)")
        if not np.issubdtype(value.dtype, np.integer):
            raise TypeError(f"public operands must be integers, got dtype {value.dtype}")
        return value.astype(np.int64).astype(np.uint64)
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"public operands must be integers, got {type(value).__name__}")
    return ring.ring_constant(int(value))


def _same_party(x: ArithmeticShare, y: ArithmeticShare) -> None:
    if x.party is not y.party:
        raise ValueError("shares belong to different parties or sessions")
    if len(x) != len(y):
        raise ValueError(f"share batches differ in length: {len(x)} and {len(y)}")


def add(x: ArithmeticShare, y: ArithmeticShare | Public) -> ArithmeticShare:
    """``x + y``; a public ``y`` is added by party 0 only."""
    if isinstance(y, ArithmeticShare):
        _same_party(x, y)
        return ArithmeticShare(x.party, x.value + y.value)
    if not x.party.first:
        _public_ring(y, len(x))  # validate on both sides
        return ArithmeticShare(x.party, x.value.copy())
    return ArithmeticShare(x.party, x.value + _public_ring(y, len(x)))


def neg(x: ArithmeticShare) -> ArithmeticShare:
    return ArithmeticShare(x.party, np.uint64(0) - x.value)


def sub(x: ArithmeticShare, y: ArithmeticShare | Public) -> ArithmeticShare:
    """``x - y``."""
    if isinstance(y, ArithmeticShare):
        _same_party(x, y)
        return ArithmeticShare(x.party, x.value - y.value)
    if not x.party.first:
        _public_ring(y, len(x))
        return ArithmeticShare(x.party, x.value.copy())
    return ArithmeticShare(x.party, x.value - _public_ring(y, len(x)))


def mul_public(x: ArithmeticShare, k: Public) -> ArithmeticShare:
    """``k * x`` for a public integer (or array of integers) ``k``: local."""
    return ArithmeticShare(x.party, x.value * _public_ring(k, len(x)))


def mul(x: ArithmeticShare, y: ArithmeticShare) -> ArithmeticShare:
    """``x * y`` with one Beaver triple and one round (opens only uniformly masked values)."""
    _same_party(x, y)
    party, n = x.party, len(x)
    a, b, c = party.correlations.beaver_triples(n)
    mine = np.concatenate([x.value - a, y.value - b])
    theirs = party.channel.exchange(party.label("mul"), mine)
    opened = mine + theirs
    d, e = opened[:n], opened[n:]
    z = c + d * b + e * a
    if party.first:
        z = z + d * e
    return ArithmeticShare(party, z)


def sum_shares(x: ArithmeticShare) -> ArithmeticShare:
    """Sum of a batch, as a batch of one (local)."""
    return ArithmeticShare(x.party, np.array([x.value.sum(dtype=np.uint64)], dtype=np.uint64))
