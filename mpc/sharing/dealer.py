"""Correlated randomness from a dealer that never sees data (PROTOCOLS.md 2.3).

The dealer (the coordinator in a deployment) gives each compute party a PRG seed. Party 0 expands
everything it needs from its seed alone; party 1 expands part of its material from its seed and
receives one *correction word* array per request, which fixes the correlation:

* bit triple ``(u, v, w)`` with ``w = u & v`` on XOR shares (for AND gates, 64 per word);
* Beaver triple ``(a, b, c)`` with ``c = a * b mod 2^64`` on additive shares (for multiplication);
* daBit ``r`` shared both ways: bits XOR-shared, values additively shared (for B2A).

Both parties make the same requests in the same order (their programs are identical). A session
may take a :class:`Reservation` up front: one block per kind (streams 0, 1 and 2 of each seed),
dealt with the seed itself, from which requests are served in order while they fit, so that a small
program never waits for the dealer between rounds (the design's offline phase). Every other request
is its own stream, numbered from 3; no stream is ever used twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from mpc.crypto.prg import expand_words, new_seed
from mpc.sharing import kernels

__all__ = [
    "BEAVER_TRIPLE",
    "BIT_TRIPLE",
    "DABIT",
    "FIRST_REQUEST_STREAM",
    "KINDS",
    "MAX_RESERVED",
    "RESERVED_STREAM",
    "CorrectionSource",
    "Correlations",
    "Reservation",
    "TrustedDealer",
]

BIT_TRIPLE = "bit-triple"
BEAVER_TRIPLE = "beaver-triple"
DABIT = "dabit"
KINDS = (BIT_TRIPLE, BEAVER_TRIPLE, DABIT)
RESERVED_STREAM = {kind: index for index, kind in enumerate(KINDS)}  # each kind's reserved block
FIRST_REQUEST_STREAM = len(KINDS)  # requests beyond the reservation take streams 3, 4, ...
MAX_RESERVED = 1 << 18  # words (bit triples) or elements (Beaver triples, daBits) per kind: 2 MiB


@dataclass(frozen=True)
class Reservation:
    """What a session takes from the dealer up front, per kind: bit-triple words, Beaver triples
    and daBits (a multiple of 64, so that every request starts on a word of packed bits)."""

    bit_triple_words: int = 0
    beaver_triples: int = 0
    dabits: int = 0

    def __post_init__(self) -> None:
        for kind, size in self.sizes().items():
            if not 0 <= size <= MAX_RESERVED:
                raise ValueError(f"reservation of {size} {kind} outside [0, {MAX_RESERVED}]")
        if self.dabits % 64:
            raise ValueError("daBits are reserved in multiples of 64")

    @classmethod
    def covering(cls, bit_triple_words: int = 0, beaver_triples: int = 0, dabits: int = 0) -> Reservation:
        """The reservation for these needs, capped at :data:`MAX_RESERVED` per kind (what does
        not fit is dealt request by request)."""
        return cls(
            min(bit_triple_words, MAX_RESERVED),
            min(beaver_triples, MAX_RESERVED),
            min(_words(dabits) * 64, MAX_RESERVED),
        )

    def __add__(self, other: Reservation) -> Reservation:
        return Reservation.covering(
            self.bit_triple_words + other.bit_triple_words,
            self.beaver_triples + other.beaver_triples,
            self.dabits + other.dabits,
        )

    def sizes(self) -> dict[str, int]:
        return {BIT_TRIPLE: self.bit_triple_words, BEAVER_TRIPLE: self.beaver_triples, DABIT: self.dabits}

    def size(self, kind: str) -> int:
        return self.sizes()[kind]


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


def _slice(kind: str, block: tuple[np.ndarray, ...], offset: int, size: int) -> tuple[np.ndarray, ...]:
    """Request ``[offset, offset + size)`` of a reserved block. Every array is elementwise, except a
    daBit block's packed bits (the first array), sliced by words (``offset`` is a multiple of 64)."""
    if kind == DABIT:
        first = block[0][offset // 64 : offset // 64 + _words(size)]
        return (first, *(a[offset : offset + size] for a in block[1:]))
    return tuple(a[offset : offset + size] for a in block)


class Correlations:
    """One party's supply of correlated randomness for one session."""

    def __init__(
        self,
        party: int,
        seed: bytes,
        corrections: CorrectionSource | None = None,
        reservation: Reservation | None = None,
    ) -> None:
        if party not in (0, 1):
            raise ValueError("party index must be 0 or 1")
        if party == 1 and corrections is None:
            raise ValueError("party 1 needs a correction source (the dealer)")
        self.party = party
        self._seed = seed
        self._corrections = corrections
        self.reservation = reservation or Reservation()
        self._blocks: dict[str, tuple[np.ndarray, ...]] = {}
        self._offsets = {kind: 0 for kind in KINDS}
        self._next_stream = FIRST_REQUEST_STREAM
        self.words_used = {kind: 0 for kind in KINDS}
        self.requests_beyond_reservation = 0

    def _material(self, kind: str, stream: int, size: int) -> tuple[np.ndarray, ...]:
        if self.party == 0:
            return _party0_material(self._seed, kind, stream, size)
        assert self._corrections is not None
        fix = self._corrections.correction(kind, stream, size)
        return (*_party1_material(self._seed, kind, stream, size), fix)

    def _request(self, kind: str, size: int) -> tuple[np.ndarray, ...]:
        self.words_used[kind] += size
        offset, reserved = self._offsets[kind], self.reservation.size(kind)
        taken = _words(size) * 64 if kind == DABIT else size
        if offset + taken <= reserved:  # from the reserved block: no dealer round trip
            if kind not in self._blocks:
                self._blocks[kind] = self._material(kind, RESERVED_STREAM[kind], reserved)
            self._offsets[kind] += taken
            return _slice(kind, self._blocks[kind], offset, size)
        stream = self._next_stream
        self._next_stream += 1
        self.requests_beyond_reservation += 1
        return self._material(kind, stream, size)

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

    def correlations_for(self, party: int, reservation: Reservation | None = None) -> Correlations:
        return Correlations(party, self._seeds[party], self if party == 1 else None, reservation)

    def reserved_corrections(self, reservation: Reservation) -> dict[str, np.ndarray]:
        """Party 1's corrections for the reserved blocks (what the session's seed comes with)."""
        return {
            kind: self.correction(kind, RESERVED_STREAM[kind], size)
            for kind, size in reservation.sizes().items()
            if size
        }

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
