"""The local work of secret sharing on word arrays (PROTOCOLS.md 2.3): bit transpose, Beaver AND,
the carry and AND trees, the dealer's corrections, B2A, bit packing.

Two implementations with identical results (tests/sharing/test_kernels.py compares them on random
inputs): :mod:`mpc.sharing.numpy_kernels` and the numba kernels of :mod:`mpc.sharing.jit_kernels`,
which are much faster per call and release the GIL (two parties in threads of one process use two
cores) but cost about a second to import and to load from their on-disk cache. A process uses

* numba for arrays of at least :data:`JIT_MIN_WORDS` words (imported on first such array);
* numpy for smaller ones, so that a process checking one application (a command line) never
  imports numba;
* numba for every size once :func:`use_jit` has loaded the kernels: a long-running process (the
  daemons, the requester's service) calls it, or its :data:`JIT_AFTER_CALLS`-th small call starts
  it in a background thread.

Bit-sliced layout: a batch of N values becomes 64 *bit-planes* of W = ceil(N/64) words; bit ``i``
of word ``k`` of plane ``j`` is bit ``j`` of value ``64*k + i``. A boolean share of N bits uses the
same word layout as a single plane.
"""

from __future__ import annotations

import logging
import threading
from types import ModuleType

import numpy as np

from mpc.sharing import numpy_kernels as _np

__all__ = [
    "JIT_AFTER_CALLS",
    "JIT_MIN_WORDS",
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
    "jit",
    "jit_in_use",
    "pack_bits",
    "unpack_bits",
    "use_jit",
]

log = logging.getLogger(__name__)

JIT_MIN_WORDS = 1 << 14
"""Arrays of at least this many uint64 words (values; bits for the bit kernels) use numba."""
JIT_AFTER_CALLS = 2_000
"""After this many calls on small arrays (about 15 one-application checks) numba is loaded in the
background and then used for every size: the process is not a one-off."""

_jit_ready = False  # every kernel loaded: numba for every size
_small_calls = 0
_loading = threading.Lock()


def jit() -> ModuleType:
    """The numba kernels (:mod:`mpc.sharing.jit_kernels`), imported on first use."""
    from mpc.sharing import jit_kernels

    return jit_kernels


def use_jit() -> None:
    """Import numba and load every kernel from its cache (about a second; compiled on the first run
    of a checkout), then use the numba kernels for arrays of every size. Idempotent, thread-safe."""
    global _jit_ready
    with _loading:
        if not _jit_ready:
            jit().warm_up()
            _jit_ready = True


def jit_in_use() -> bool:
    """Whether the numba kernels serve arrays of every size (after :func:`use_jit`)."""
    return _jit_ready


def _load_in_background() -> None:
    def load() -> None:
        try:
            use_jit()
        except Exception:  # numpy keeps serving: same results, slower
            log.exception("the numba kernels could not be loaded")

    threading.Thread(target=load, name="numba-kernels", daemon=True).start()


def _numba(words: int) -> bool:
    """Whether an array of ``words`` words goes to the numba kernels (counts the small calls)."""
    global _small_calls
    if _jit_ready or words >= JIT_MIN_WORDS:
        return True
    _small_calls += 1
    if _small_calls == JIT_AFTER_CALLS:
        _load_in_background()
    return False


def bitplanes(values: np.ndarray) -> np.ndarray:
    """Transpose N uint64 values into a (64, ceil(N/64)) array of bit-planes."""
    if _numba(values.shape[0]):
        return jit().bitplanes(values)  # type: ignore[no-any-return]
    return _np.bitplanes(values)


def and_open(x: np.ndarray, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Beaver AND, step 1: the message ``[x ^ u | y ^ v]`` this party opens (one buffer)."""
    if _numba(x.shape[0]):
        return jit().and_open(x, y, u, v)  # type: ignore[no-any-return]
    return _np.and_open(x, y, u, v)


def and_close(
    mine: np.ndarray, theirs: np.ndarray, u: np.ndarray, v: np.ndarray, w: np.ndarray, first: bool
) -> np.ndarray:
    """Beaver AND, step 2: ``z = w ^ (d & v) ^ (e & u) [^ (d & e) for party 0]``."""
    if _numba(u.shape[0]):
        return jit().and_close(mine, theirs, u, v, w, first)  # type: ignore[no-any-return]
    return _np.and_close(mine, theirs, u, v, w, first)


def carry_gate_inputs(g: np.ndarray, p: np.ndarray, lowest_needs_p: bool) -> tuple[np.ndarray, np.ndarray]:
    """One level of the carry tree: AND-gate inputs for merging adjacent (G, P) groups.

    Groups are rows, lowest bit first. Pair ``m`` merges rows ``2m`` (low) and ``2m+1`` (high):
    ``G' = G_hi ^ (P_hi & G_lo)`` and ``P' = P_hi & P_lo``. The lowest group's ``P`` is never needed
    (there is no carry into bit 0), so its second gate is skipped unless ``lowest_needs_p``.
    Returns ``X, Y`` flattened: first the ``P_hi & G_lo`` gates, then the ``P_hi & P_lo`` gates.
    """
    if _numba(g.size):
        return jit().carry_gate_inputs(g, p, lowest_needs_p)  # type: ignore[no-any-return]
    return _np.carry_gate_inputs(g, p, lowest_needs_p)


def carry_merge(g: np.ndarray, p: np.ndarray, z: np.ndarray, lowest_needs_p: bool) -> tuple[np.ndarray, np.ndarray]:
    """One level of the carry tree: combine gate outputs ``z`` into the next level's (G, P) rows."""
    if _numba(g.size):
        return jit().carry_merge(g, p, z, lowest_needs_p)  # type: ignore[no-any-return]
    return _np.carry_merge(g, p, z, lowest_needs_p)


def and_tree_inputs(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One level of an AND tree (EQZ): pair rows 2m and 2m+1 into gate inputs."""
    if _numba(rows.size):
        return jit().and_tree_inputs(rows)  # type: ignore[no-any-return]
    return _np.and_tree_inputs(rows)


def bit_triple_correction(u0: np.ndarray, v0: np.ndarray, w0: np.ndarray, u1: np.ndarray, v1: np.ndarray) -> np.ndarray:
    """Dealer: party 1's correction ``w1 = ((u0 ^ u1) & (v0 ^ v1)) ^ w0`` for bit triples."""
    if _numba(u0.shape[0]):
        return jit().bit_triple_correction(u0, v0, w0, u1, v1)  # type: ignore[no-any-return]
    return _np.bit_triple_correction(u0, v0, w0, u1, v1)


def beaver_correction(a0: np.ndarray, b0: np.ndarray, c0: np.ndarray, a1: np.ndarray, b1: np.ndarray) -> np.ndarray:
    """Dealer: party 1's correction ``c1 = (a0 + a1)(b0 + b1) - c0 mod 2^64``."""
    if _numba(a0.shape[0]):
        return jit().beaver_correction(a0, b0, c0, a1, b1)  # type: ignore[no-any-return]
    return _np.beaver_correction(a0, b0, c0, a1, b1)


def dabit_correction(rb0: np.ndarray, rb1: np.ndarray, ra0: np.ndarray, count: int) -> np.ndarray:
    """Dealer: party 1's arithmetic share ``ra1 = r - ra0`` of the daBit ``r = rb0 ^ rb1``."""
    if _numba(count):
        return jit().dabit_correction(rb0, rb1, ra0, count)  # type: ignore[no-any-return]
    return _np.dabit_correction(rb0, rb1, ra0, count)


def unpack_bits(words: np.ndarray, count: int) -> np.ndarray:
    """Packed bits (LSB first within each word) to one uint64 0/1 per element."""
    if _numba(count):
        return jit().unpack_bits(words, count)  # type: ignore[no-any-return]
    return _np.unpack_bits(words, count)


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """One 0/1 value per element to packed words (inverse of :func:`unpack_bits`)."""
    if _numba(bits.shape[0]):
        return jit().pack_bits(bits)  # type: ignore[no-any-return]
    return _np.pack_bits(bits)


def b2a_combine(c_words: np.ndarray, ra: np.ndarray, first: bool) -> np.ndarray:
    """B2A: ``[b] = c + [r] - 2c[r]`` from the opened ``c = b ^ r`` and this party's ``[r]``."""
    if _numba(ra.shape[0]):
        return jit().b2a_combine(c_words, ra, first)  # type: ignore[no-any-return]
    return _np.b2a_combine(c_words, ra, first)
