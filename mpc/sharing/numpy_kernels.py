"""The kernels of :mod:`mpc.sharing.kernels` in numpy: for small arrays, where importing numba and
loading its compiled kernels (about a second) would cost far more than the work. Each function
gives exactly the result of its namesake in :mod:`mpc.sharing.jit_kernels` (uint64 arithmetic
wraps mod 2^64 in both); tests/sharing/test_kernels.py compares them on random inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

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
]

_ONE = np.uint64(1)
_LOW6 = np.uint64(63)
_SHIFTS = np.arange(64, dtype=np.uint64)


def _u64(array: Any) -> np.ndarray:
    """A result as a uint64 array (no copy when it is one; operators on arrays are typed Any)."""
    return np.asarray(array, dtype=np.uint64)


def _words(array: np.ndarray) -> np.ndarray:
    """``array`` as a C-contiguous uint64 array (no copy when it is one)."""
    return np.ascontiguousarray(array, dtype=np.uint64)


def _pack(bits: np.ndarray) -> np.ndarray:
    """Rows of 0/1 bytes (..., N) to packed uint64 words (..., ceil(N/64)), LSB first."""
    n = bits.shape[-1]
    padded = np.zeros((*bits.shape[:-1], 64 * ((n + 63) // 64)), dtype=np.uint8)
    padded[..., :n] = bits
    return np.packbits(padded, axis=-1, bitorder="little").view("<u8").astype(np.uint64, copy=False)


def _unpack(words: np.ndarray, count: int) -> np.ndarray:
    """Packed words to ``count`` uint64 0/1 values, LSB first (the inverse of :func:`_pack`)."""
    index = np.arange(count, dtype=np.uint64)
    return _u64((words[index >> np.uint64(6)] >> (index & _LOW6)) & _ONE)


def bitplanes(values: np.ndarray) -> np.ndarray:
    """Transpose N uint64 values into a (64, ceil(N/64)) array of bit-planes."""
    values = _words(values)
    bits = ((values[np.newaxis, :] >> _SHIFTS[:, np.newaxis]) & _ONE).astype(np.uint8)  # (64, N)
    return _pack(bits)


def and_open(x: np.ndarray, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Beaver AND, step 1: the message ``[x ^ u | y ^ v]`` this party opens (one buffer)."""
    n = x.shape[0]
    return _u64(np.concatenate((x ^ u[:n], y[:n] ^ v[:n])))


def and_close(
    mine: np.ndarray, theirs: np.ndarray, u: np.ndarray, v: np.ndarray, w: np.ndarray, first: bool
) -> np.ndarray:
    """Beaver AND, step 2: ``z = w ^ (d & v) ^ (e & u) [^ (d & e) for party 0]``."""
    n = u.shape[0]
    d = mine[:n] ^ theirs[:n]
    e = mine[n : 2 * n] ^ theirs[n : 2 * n]
    z = w[:n] ^ (d & v) ^ (e & u)
    if first:
        z ^= d & e
    return _u64(z)


def carry_gate_inputs(g: np.ndarray, p: np.ndarray, lowest_needs_p: bool) -> tuple[np.ndarray, np.ndarray]:
    """One level of the carry tree: AND-gate inputs for merging adjacent (G, P) groups.

    Groups are rows, lowest bit first. Pair ``m`` merges rows ``2m`` (low) and ``2m+1`` (high):
    ``G' = G_hi ^ (P_hi & G_lo)`` and ``P' = P_hi & P_lo``. The lowest group's ``P`` is never needed
    (there is no carry into bit 0), so its second gate is skipped unless ``lowest_needs_p``.
    Returns ``X, Y`` flattened: first the ``P_hi & G_lo`` gates, then the ``P_hi & P_lo`` gates.
    """
    pairs = g.shape[0] // 2
    skip = 0 if lowest_needs_p else 1
    x = np.concatenate((p[1 : 2 * pairs : 2].ravel(), p[2 * skip + 1 : 2 * pairs : 2].ravel()))
    y = np.concatenate((g[0 : 2 * pairs : 2].ravel(), p[2 * skip : 2 * pairs : 2].ravel()))
    return _u64(x), _u64(y)


def carry_merge(g: np.ndarray, p: np.ndarray, z: np.ndarray, lowest_needs_p: bool) -> tuple[np.ndarray, np.ndarray]:
    """One level of the carry tree: combine gate outputs ``z`` into the next level's (G, P) rows."""
    rows, words = g.shape
    pairs = rows // 2
    odd = rows % 2
    skip = 0 if lowest_needs_p else 1
    g2 = np.empty((pairs + odd, words), dtype=np.uint64)
    p2 = np.zeros((pairs + odd, words), dtype=np.uint64)
    g2[:pairs] = g[1 : 2 * pairs : 2] ^ z[: pairs * words].reshape(pairs, words)
    p2[skip:pairs] = z[pairs * words : (2 * pairs - skip) * words].reshape(pairs - skip, words)
    if odd:
        g2[pairs] = g[rows - 1]
        p2[pairs] = p[rows - 1]
    return g2, p2


def and_tree_inputs(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One level of an AND tree (EQZ): pair rows 2m and 2m+1 into gate inputs."""
    pairs = rows.shape[0] // 2
    x = np.ascontiguousarray(rows[0 : 2 * pairs : 2], dtype=np.uint64).ravel()
    y = np.ascontiguousarray(rows[1 : 2 * pairs : 2], dtype=np.uint64).ravel()
    return x, y


def bit_triple_correction(u0: np.ndarray, v0: np.ndarray, w0: np.ndarray, u1: np.ndarray, v1: np.ndarray) -> np.ndarray:
    """Dealer: party 1's correction ``w1 = ((u0 ^ u1) & (v0 ^ v1)) ^ w0`` for bit triples."""
    n = u0.shape[0]
    return _u64(((u0 ^ u1[:n]) & (v0[:n] ^ v1[:n])) ^ w0[:n])


def beaver_correction(a0: np.ndarray, b0: np.ndarray, c0: np.ndarray, a1: np.ndarray, b1: np.ndarray) -> np.ndarray:
    """Dealer: party 1's correction ``c1 = (a0 + a1)(b0 + b1) - c0 mod 2^64``."""
    n = a0.shape[0]
    a, b, c = _words(a0), _words(b0[:n]), _words(c0[:n])
    return _u64((a + _words(a1[:n])) * (b + _words(b1[:n])) - c)  # uint64 arrays wrap mod 2^64


def dabit_correction(rb0: np.ndarray, rb1: np.ndarray, ra0: np.ndarray, count: int) -> np.ndarray:
    """Dealer: party 1's arithmetic share ``ra1 = r - ra0`` of the daBit ``r = rb0 ^ rb1``."""
    words = (count + 63) // 64
    return _u64(_unpack(_words(rb0[:words]) ^ _words(rb1[:words]), count) - _words(ra0[:count]))


def unpack_bits(words: np.ndarray, count: int) -> np.ndarray:
    """Packed bits (LSB first within each word) to one uint64 0/1 per element."""
    return _unpack(_words(words), count)


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """One 0/1 value per element to packed words (inverse of :func:`unpack_bits`)."""
    return _pack((bits & 1).astype(np.uint8))


def b2a_combine(c_words: np.ndarray, ra: np.ndarray, first: bool) -> np.ndarray:
    """B2A: ``[b] = c + [r] - 2c[r]`` from the opened ``c = b ^ r`` and this party's ``[r]``."""
    n = ra.shape[0]
    c = _unpack(_words(c_words), n)
    r = _words(ra)
    v = r - np.uint64(2) * c * r
    if first:
        v += c
    return _u64(v)
