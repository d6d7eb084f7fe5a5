"""Boolean circuits on XOR-shared, bit-sliced words: AND/OR/NOT, comparisons, equality, B2A.

* AND uses a dealer bit triple per 64 bits and opens ``x ^ u`` and ``y ^ v`` (uniform).
* ``ltz(x)`` (x < 0) is the MSB of ``x_0 + x_1``: ``a_63 ^ b_63 ^ carry_63`` where ``a`` and ``b``
  are the parties' share bits. Generate bits ``g_i = a_i & b_i`` (63 ANDs), propagate bits
  ``p_i = a_i ^ b_i`` (local), and combine ``(G, P) o (G', P') = (G ^ (P & G'), P & P')`` in a
  log-depth tree that computes only the final carry: 7 rounds, about 180 ANDs per comparison.
* ``eqz(x)``: ``x_0 == -x_1`` iff all 64 XNOR bits are 1; an AND tree of 63 gates and 6 rounds.
* comparisons against a public or shared ``y`` are ``ltz``/``eqz`` of ``x - y``; values and public
  constants must lie in [-2^62, 2^62) (public constants are checked; shares are the caller's duty).
* ``b2a``: open ``c = b ^ r`` for a dealer daBit ``r``, then ``[b] = c + [r] - 2c[r]``.

Nothing is opened except uniformly masked values; the result stays shared until revealed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mpc.sharing import kernels, ring
from mpc.sharing.arithmetic import sub
from mpc.sharing.runtime import Party
from mpc.sharing.types import ArithmeticShare, BooleanShare, Public

__all__ = [
    "COMPARISON_GATES",
    "and_",
    "and_words",
    "b2a",
    "comparison_triple_words",
    "eq",
    "eqz",
    "eqz_triple_words",
    "ge",
    "gt",
    "le",
    "lt",
    "ltz",
    "ltz_triple_words",
    "ne",
    "not_",
    "or_",
    "xor",
]


def and_words(party: Party, x: np.ndarray, y: np.ndarray, name: str = "and") -> np.ndarray:
    """XOR shares of ``x & y`` for equally long word arrays (one round, one bit triple per word)."""
    u, v, w = party.correlations.bit_triples(x.shape[0])
    mine = kernels.and_open(x, y, u, v)
    theirs = party.channel.exchange(party.label(name), mine)
    return kernels.and_close(mine, theirs, u, v, w, party.first)


def _same(x: BooleanShare, y: BooleanShare) -> None:
    if x.party is not y.party:
        raise ValueError("shares belong to different parties or sessions")
    if x.length != y.length:
        raise ValueError(f"boolean batches differ in length: {x.length} and {y.length}")


def xor(x: BooleanShare, y: BooleanShare) -> BooleanShare:
    _same(x, y)
    return BooleanShare(x.party, x.words ^ y.words, x.length)


def not_(x: BooleanShare) -> BooleanShare:
    """Local: party 0 flips its share."""
    words = ~x.words if x.party.first else x.words.copy()
    return BooleanShare(x.party, words, x.length)


def and_(x: BooleanShare, y: BooleanShare) -> BooleanShare:
    _same(x, y)
    return BooleanShare(x.party, and_words(x.party, x.words, y.words), x.length)


def or_(x: BooleanShare, y: BooleanShare) -> BooleanShare:
    """``x | y = x ^ y ^ (x & y)``."""
    _same(x, y)
    both = and_words(x.party, x.words, y.words, "or")
    return BooleanShare(x.party, x.words ^ y.words ^ both, x.length)


def ltz(x: ArithmeticShare) -> BooleanShare:
    """Shares of ``x < 0`` for signed values in [-2^63, 2^63) (7 rounds)."""
    party, n = x.party, len(x)
    planes = kernels.bitplanes(x.value)  # (64, W): this party's share bits
    words = planes.shape[1]
    zero = np.zeros(63 * words, dtype=np.uint64)
    mine = planes[:63].reshape(-1)
    # g_i = a_i & b_i: party 0 contributes a as the left input, party 1 contributes b as the right.
    left, right = (mine, zero) if party.first else (zero, mine)
    g = and_words(party, left, right, "ltz-generate").reshape(63, words)
    p = planes[:63]
    level = 0
    while g.shape[0] > 1:
        level += 1
        gx, gy = kernels.carry_gate_inputs(g, p, False)
        z = and_words(party, gx, gy, f"ltz-carry{level}")
        g, p = kernels.carry_merge(g, p, z, False)
    msb = planes[63] ^ g[0]
    return BooleanShare(party, msb, n)


def eqz(x: ArithmeticShare) -> BooleanShare:
    """Shares of ``x == 0`` (6 rounds): party 0 holds bits of ``x_0``, party 1 bits of ``-x_1``."""
    party, n = x.party, len(x)
    rows = ~kernels.bitplanes(x.value) if party.first else kernels.bitplanes(np.uint64(0) - x.value)
    level = 0
    while rows.shape[0] > 1:
        level += 1
        ax, ay = kernels.and_tree_inputs(rows)
        rows = and_words(party, ax, ay, f"eqz-{level}").reshape(rows.shape[0] // 2, rows.shape[1])
    return BooleanShare(party, rows[0], n)


def ltz_triple_words(n: int) -> int:
    """Bit-triple words :func:`ltz` of ``n`` values takes (the generate layer and the carry tree)."""
    gates, rows = 63, 63
    while rows > 1:
        pairs = rows // 2
        gates += 2 * pairs - 1  # the lowest group's P is never needed
        rows = pairs + rows % 2
    return gates * _words(n)


def eqz_triple_words(n: int) -> int:
    """Bit-triple words :func:`eqz` of ``n`` values takes (an AND tree over 64 rows)."""
    return 63 * _words(n)


def comparison_triple_words(op: str, n: int) -> int:
    """Bit-triple words of one comparison gate (``<``, ``<=``, ``>``, ``>=``, ``==``, ``!=``)."""
    return eqz_triple_words(n) if op in ("==", "!=") else ltz_triple_words(n)


def _words(n: int) -> int:
    return (n + 63) // 64


def _difference(x: ArithmeticShare, y: ArithmeticShare | Public) -> ArithmeticShare:
    if isinstance(y, ArithmeticShare):
        return sub(x, y)
    if isinstance(y, np.ndarray):
        ring.encode(y)  # range check of every public constant
        return sub(x, y)
    return sub(x, ring.check_public(int(y)))


def _reverse_difference(x: ArithmeticShare, y: ArithmeticShare | Public) -> ArithmeticShare:
    """``y - x``."""
    d = _difference(x, y)
    return ArithmeticShare(d.party, np.uint64(0) - d.value)


def lt(x: ArithmeticShare, y: ArithmeticShare | Public) -> BooleanShare:
    """``x < y``."""
    return ltz(_difference(x, y))


def gt(x: ArithmeticShare, y: ArithmeticShare | Public) -> BooleanShare:
    """``x > y`` as ``y - x < 0``."""
    return ltz(_reverse_difference(x, y))


def le(x: ArithmeticShare, y: ArithmeticShare | Public) -> BooleanShare:
    """``x <= y`` as ``not (x > y)``."""
    return not_(gt(x, y))


def ge(x: ArithmeticShare, y: ArithmeticShare | Public) -> BooleanShare:
    """``x >= y`` as ``not (x < y)``."""
    return not_(lt(x, y))


def eq(x: ArithmeticShare, y: ArithmeticShare | Public) -> BooleanShare:
    return eqz(_difference(x, y))


def ne(x: ArithmeticShare, y: ArithmeticShare | Public) -> BooleanShare:
    return not_(eq(x, y))


COMPARISON_GATES: dict[str, Callable[[ArithmeticShare, ArithmeticShare | int], BooleanShare]] = {
    "<": lt,
    "<=": le,
    ">": gt,
    ">=": ge,
    "==": eq,
    "!=": ne,
}
"""The six comparison gates by operator (``<``, ``<=``, ``>``, ``>=``, ``==``, ``!=``)."""


def b2a(b: BooleanShare) -> ArithmeticShare:
    """Arithmetic shares (0 or 1) of shared bits, with one daBit each and one round."""
    party = b.party
    rb, ra = party.correlations.dabits(b.length)
    mine = b.words ^ rb
    c = mine ^ party.channel.exchange(party.label("b2a"), mine)
    return ArithmeticShare(party, kernels.b2a_combine(c, ra, party.first))
