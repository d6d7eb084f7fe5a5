"""numba kernels for the heavy local work of secret sharing on large arrays (PROTOCOLS.md 2.3).

:mod:`mpc.sharing.kernels` is the interface: it computes small arrays with numpy and imports this
module (and numba: about a second to import and to load the kernels from the cache) only for
large ones. Every kernel is compiled once and cached on disk (``cache=True``), and releases the
GIL (``nogil=True``) so that two parties running in threads of one process use two cores.

Bit-sliced layout: a batch of N values becomes 64 *bit-planes* of W = ceil(N/64) words; bit ``i``
of word ``k`` of plane ``j`` is bit ``j`` of value ``64*k + i``. A boolean share of N bits uses the
same word layout as a single plane.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "and_close",
    "and_open",
    "and_tree_inputs",
    "b2a_combine",
    "beaver_correction",
    "bit_triple_correction",
    "bitplanes",
    "carry_gate_inputs",
    "carry_merge",
    "dabit_correction",
    "pack_bits",
    "unpack_bits",
    "warm_up",
]

_TRANSPOSE_MASKS = np.array(
    [
        0x00000000FFFFFFFF,
        0x0000FFFF0000FFFF,
        0x00FF00FF00FF00FF,
        0x0F0F0F0F0F0F0F0F,
        0x3333333333333333,
        0x5555555555555555,
    ],
    dtype=np.uint64,
)
_TRANSPOSE_SHIFTS = np.array([32, 16, 8, 4, 2, 1], dtype=np.int64)


@njit(cache=True, nogil=True)
def _bitplanes(values: np.ndarray, masks: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    n = values.shape[0]
    words = (n + 63) // 64
    planes = np.zeros((64, words), dtype=np.uint64)
    block = np.zeros(64, dtype=np.uint64)
    for k in range(words):
        base = 64 * k
        for r in range(64):
            block[r] = values[base + r] if base + r < n else np.uint64(0)
        # 64x64 bit-matrix transpose by recursive 2x2 block swaps (LSB-first convention).
        for level in range(6):
            j = shifts[level]
            m = masks[level]
            sj = np.uint64(j)
            for r in range(64):
                if (r & j) == 0:
                    t = ((block[r] >> sj) ^ block[r + j]) & m
                    block[r + j] ^= t
                    block[r] ^= t << sj
        for j in range(64):
            planes[j, k] = block[j]
    return planes


def bitplanes(values: np.ndarray) -> np.ndarray:
    """Transpose N uint64 values into a (64, ceil(N/64)) array of bit-planes."""
    return _bitplanes(np.ascontiguousarray(values, dtype=np.uint64), _TRANSPOSE_MASKS, _TRANSPOSE_SHIFTS)


@njit(cache=True, nogil=True)
def and_open(x: np.ndarray, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Beaver AND, step 1: the message ``[x ^ u | y ^ v]`` this party opens (one buffer)."""
    n = x.shape[0]
    out = np.empty(2 * n, dtype=np.uint64)
    for i in range(n):
        out[i] = x[i] ^ u[i]
        out[n + i] = y[i] ^ v[i]
    return out


@njit(cache=True, nogil=True)
def and_close(
    mine: np.ndarray, theirs: np.ndarray, u: np.ndarray, v: np.ndarray, w: np.ndarray, first: bool
) -> np.ndarray:
    """Beaver AND, step 2: ``z = w ^ (d & v) ^ (e & u) [^ (d & e) for party 0]``."""
    n = u.shape[0]
    z = np.empty(n, dtype=np.uint64)
    for i in range(n):
        d = mine[i] ^ theirs[i]
        e = mine[n + i] ^ theirs[n + i]
        r = w[i] ^ (d & v[i]) ^ (e & u[i])
        if first:
            r ^= d & e
        z[i] = r
    return z


@njit(cache=True, nogil=True)
def carry_gate_inputs(g: np.ndarray, p: np.ndarray, lowest_needs_p: bool) -> tuple[np.ndarray, np.ndarray]:
    """One level of the carry tree: AND-gate inputs for merging adjacent (G, P) groups.

    Groups are rows, lowest bit first. Pair ``m`` merges rows ``2m`` (low) and ``2m+1`` (high):
    ``G' = G_hi ^ (P_hi & G_lo)`` and ``P' = P_hi & P_lo``. The lowest group's ``P`` is never needed
    (there is no carry into bit 0), so its second gate is skipped unless ``lowest_needs_p``.
    Returns ``X, Y`` flattened: first the ``P_hi & G_lo`` gates, then the ``P_hi & P_lo`` gates.
    """
    pairs = g.shape[0] // 2
    words = g.shape[1]
    skip = 0 if lowest_needs_p else 1
    gates = pairs + pairs - skip
    x = np.empty(gates * words, dtype=np.uint64)
    y = np.empty(gates * words, dtype=np.uint64)
    for m in range(pairs):
        for k in range(words):
            x[m * words + k] = p[2 * m + 1, k]
            y[m * words + k] = g[2 * m, k]
    for m in range(skip, pairs):
        row = pairs + m - skip
        for k in range(words):
            x[row * words + k] = p[2 * m + 1, k]
            y[row * words + k] = p[2 * m, k]
    return x, y


@njit(cache=True, nogil=True)
def carry_merge(g: np.ndarray, p: np.ndarray, z: np.ndarray, lowest_needs_p: bool) -> tuple[np.ndarray, np.ndarray]:
    """One level of the carry tree: combine gate outputs ``z`` into the next level's (G, P) rows."""
    rows, words = g.shape
    pairs = rows // 2
    odd = rows % 2
    skip = 0 if lowest_needs_p else 1
    g2 = np.empty((pairs + odd, words), dtype=np.uint64)
    p2 = np.zeros((pairs + odd, words), dtype=np.uint64)
    for m in range(pairs):
        for k in range(words):
            g2[m, k] = g[2 * m + 1, k] ^ z[m * words + k]
    for m in range(skip, pairs):
        row = pairs + m - skip
        for k in range(words):
            p2[m, k] = z[row * words + k]
    if odd:
        for k in range(words):
            g2[pairs, k] = g[rows - 1, k]
            p2[pairs, k] = p[rows - 1, k]
    return g2, p2


@njit(cache=True, nogil=True)
def and_tree_inputs(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One level of an AND tree (EQZ): pair rows 2m and 2m+1 into gate inputs."""
    pairs = rows.shape[0] // 2
    words = rows.shape[1]
    x = np.empty(pairs * words, dtype=np.uint64)
    y = np.empty(pairs * words, dtype=np.uint64)
    for m in range(pairs):
        for k in range(words):
            x[m * words + k] = rows[2 * m, k]
            y[m * words + k] = rows[2 * m + 1, k]
    return x, y


@njit(cache=True, nogil=True)
def bit_triple_correction(u0: np.ndarray, v0: np.ndarray, w0: np.ndarray, u1: np.ndarray, v1: np.ndarray) -> np.ndarray:
    """Dealer: party 1's correction ``w1 = ((u0 ^ u1) & (v0 ^ v1)) ^ w0`` for bit triples."""
    n = u0.shape[0]
    w1 = np.empty(n, dtype=np.uint64)
    for i in range(n):
        w1[i] = ((u0[i] ^ u1[i]) & (v0[i] ^ v1[i])) ^ w0[i]
    return w1


@njit(cache=True, nogil=True)
def beaver_correction(a0: np.ndarray, b0: np.ndarray, c0: np.ndarray, a1: np.ndarray, b1: np.ndarray) -> np.ndarray:
    """Dealer: party 1's correction ``c1 = (a0 + a1)(b0 + b1) - c0 mod 2^64``."""
    n = a0.shape[0]
    c1 = np.empty(n, dtype=np.uint64)
    for i in range(n):
        c1[i] = (a0[i] + a1[i]) * (b0[i] + b1[i]) - c0[i]
    return c1


@njit(cache=True, nogil=True)
def dabit_correction(rb0: np.ndarray, rb1: np.ndarray, ra0: np.ndarray, count: int) -> np.ndarray:
    """Dealer: party 1's arithmetic share ``ra1 = r - ra0`` of the daBit ``r = rb0 ^ rb1``."""
    ra1 = np.empty(count, dtype=np.uint64)
    for i in range(count):
        bit = ((rb0[i >> 6] ^ rb1[i >> 6]) >> np.uint64(i & 63)) & np.uint64(1)
        ra1[i] = bit - ra0[i]
    return ra1


@njit(cache=True, nogil=True)
def unpack_bits(words: np.ndarray, count: int) -> np.ndarray:
    """Packed bits (LSB first within each word) to one uint64 0/1 per element."""
    out = np.empty(count, dtype=np.uint64)
    for i in range(count):
        out[i] = (words[i >> 6] >> np.uint64(i & 63)) & np.uint64(1)
    return out


@njit(cache=True, nogil=True)
def pack_bits(bits: np.ndarray) -> np.ndarray:
    """One 0/1 value per element to packed words (inverse of :func:`unpack_bits`)."""
    n = bits.shape[0]
    out = np.zeros((n + 63) // 64, dtype=np.uint64)
    for i in range(n):
        if bits[i] & 1:
            out[i >> 6] |= np.uint64(1) << np.uint64(i & 63)
    return out


@njit(cache=True, nogil=True)
def b2a_combine(c_words: np.ndarray, ra: np.ndarray, first: bool) -> np.ndarray:
    """B2A: ``[b] = c + [r] - 2c[r]`` from the opened ``c = b ^ r`` and this party's ``[r]``."""
    n = ra.shape[0]
    out = np.empty(n, dtype=np.uint64)
    for i in range(n):
        c = (c_words[i >> 6] >> np.uint64(i & 63)) & np.uint64(1)
        r = ra[i]
        v = r - np.uint64(2) * c * r
        if first:
            v += c
        out[i] = v
    return out


def warm_up() -> None:
    """Load every kernel from the on-disk cache (compile it where the cache has none) by calling it
    once with the argument types the protocols pass: a later call pays no loading."""
    one = np.ones(1, dtype=np.uint64)
    rows = np.ones((3, 1), dtype=np.uint64)
    bitplanes(one)
    opened = and_open(one, one, one, one)
    for first in (True, False):
        and_close(opened, opened, one, one, one, first)
        b2a_combine(one, one, first)
    carry_gate_inputs(rows, rows, False)
    carry_merge(rows, rows, np.ones(1, dtype=np.uint64), False)
    and_tree_inputs(rows)
    bit_triple_correction(one, one, one, one, one)
    beaver_correction(one, one, one, one, one)
    dabit_correction(one, one, one, 1)
    unpack_bits(one, 1)
    pack_bits(one)
