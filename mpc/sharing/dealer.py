"""Correlated randomness from a dealer that never sees data (PROTOCOLS.md 2.3).

The dealer (the coordinator in a deployment) gives each compute party a PRG seed. Party 0 expands
everything it needs from its seed alone; party 1 expands part of its material from its seed and
receives one *correction word* array per request, which fixes the correlation:

* bit triple ``(u, v, w)`` with ``w = u & v`` on XOR shares (for AND gates, 64 per word);
* Beaver triple ``(a, b, c)`` with ``c = a * b mod 2^64`` on additive shares (for multiplication);
* daBit ``r`` shared both ways: bits XOR-shared, values additively shared (for B2A).

Requests are numbered; both parties make the same requests in the same order (their programs are
identical), so request ``k`` is stream ``k`` of each seed and streams are never reused.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from mpc.crypto.prg import expand_words, new_seed
from mpc.sharing import kernels

BIT_TRIPLE = "bit-triple"
BEAVER_TRIPLE = "beaver-triple"
DABIT = "dabit"
KINDS = (BIT_TRIPLE, BEAVER_TRIPLE, DABIT)


class CorrectionSource(Protocol):
    """Where party 1 gets its correction words: the in-process dealer, or the coordinator over gRPC."""

    def correction(self, kind: str, stream: int, size: int) -> np.ndarray: ...


def _words(count: int) -> int:
    return (count + 63) // 64


def _party0_material(seed: bytes, kind: str, stream: int, size: int) -> tuple[np.ndarray, ...]:
    if kind in (BIT_TRIPLE, BEAVER_TRIPLE):
        raw = expand_words(seed, stream, 3 * size)
        return raw[:size], raw[size : 2 * size], raw[2 * size :]
    if kind == DABIT:
        w = _words(size)
        raw = expand_words(seed, stream, w + size)
        return raw[:w], raw[w:]
    raise ValueError(f"unknown correlation kind {kind!r}")


def _party1_material(seed: bytes, kind: str, stream: int, size: int) -> tuple[np.ndarray, ...]:
    if kind in (BIT_TRIPLE, BEAVER_TRIPLE):
        raw = expand_words(seed, stream, 2 * size)
        return raw[:size], raw[size:]
    if kind == DABIT:
        return (expand_words(seed, stream, _words(size)),)
    raise ValueError(f"unknown correlation kind {kind!r}")


class Correlations:
    """One party's supply of correlated randomness for one session."""

    def __init__(self, party: int, seed: bytes, corrections: CorrectionSource | None = None) -> None:
        if party not in (0, 1):
            raise ValueError("party index must be 0 or 1")
        if party == 1 and corrections is None:
            raise ValueError("party 1 needs a correction source (the dealer)")
        self.party = party
        self._seed = seed
        self._corrections = corrections
        self._next_stream = 0
        self.words_used = {kind: 0 for kind in KINDS}

    def _request(self, kind: str, size: int) -> tuple[np.ndarray, ...]:
        stream = self._next_stream
        self._next_stream += 1
        self.words_used[kind] += size
        if self.party == 0:
            return _party0_material(self._seed, kind, stream, size)
        assert self._corrections is not None
        fix = self._corrections.correction(kind, stream, size)
        return (*_party1_material(self._seed, kind, stream, size), fix)

    def bit_triples(self, words: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``words`` packed bit triples: shares of ``u``, ``v`` and ``w = u & v``."""
        u, v, w = self._request(BIT_TRIPLE, words)
        return u, v, w

    def beaver_triples(self, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``count`` shares of ``a``, ``b`` and ``c = a * b mod 2^64``."""
        a, b, c = self._request(BEAVER_TRIPLE, count)
        return a, b, c

    def dabits(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """``count`` daBits: packed XOR shares of bits ``r`` and additive shares of the same ``r``."""
        rb, ra = self._request(DABIT, count)
        return rb, ra


class TrustedDealer:
    """Deals seeds and computes party 1's corrections. Holds no data and sees no data."""

    def __init__(self, seeds: tuple[bytes, bytes] | None = None) -> None:
        self._seeds = seeds or (new_seed(), new_seed())
        self.words_dealt = 0

    def seed_for(self, party: int) -> bytes:
        return self._seeds[party]

    def correlations_for(self, party: int) -> Correlations:
        return Correlations(party, self._seeds[party], self if party == 1 else None)

    def correction(self, kind: str, stream: int, size: int) -> np.ndarray:
        if size < 0 or size > 1 << 32:
            raise ValueError(f"correlation request size {size} out of range")
        mine = _party0_material(self._seeds[0], kind, stream, size)
        theirs = _party1_material(self._seeds[1], kind, stream, size)
        self.words_dealt += size
        if kind == BIT_TRIPLE:
            return kernels.bit_triple_correction(mine[0], mine[1], mine[2], theirs[0], theirs[1])
        if kind == BEAVER_TRIPLE:
            return kernels.beaver_correction(mine[0], mine[1], mine[2], theirs[0], theirs[1])
        return kernels.dabit_correction(mine[0], theirs[0], mine[1], size)
