"""P1: ECDH-PSI between a requester R (m ids) and an owner O (n ids), with fresh keys per session.

Steps, each over chunks of at most :data:`CHUNK` elements so that memory stays bounded and both
sides' curve work runs on every core (the batch helpers of :mod:`mpc.crypto.curve25519`):

1. R draws a fresh key ``a`` and sends ``[a]H(x)`` for its distinct ids, in its own order
   (:meth:`Requester.encrypt`); duplicates are removed first, since they would show O repeats.
2. O draws a fresh key ``b`` and sends ``[b]H(y)`` for its ids in a random order
   (:meth:`Owner.encrypt_own`).
3. O answers each of R's points with the 8-byte tag of ``[b][a]H(x)`` (:meth:`Owner.answer`):
   in R's order in *intersection* mode, shuffled over the whole set in *cardinality* mode.
4. R raises O's points to ``a``, tags them (:meth:`Requester.owner_tags`) and compares:
   which of its ids O holds (:func:`intersection`) or only how many (:func:`cardinality`).

Revealed: R learns n and the intersection (or, in cardinality mode, only its size: the shuffled
answers cannot be linked to R's ids); O learns m. Nothing else, under DDH on Curve25519; tags are
8 bytes, a false match per pair with probability 2^-64. Aligned shares (P1's third mode) match on
the owner's OPRF tags instead, see :mod:`mpc.protocols.lookup`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from mpc.crypto.curve25519 import POINT_BYTES, CommutativeCipher, hash_ids
from mpc.crypto.prg import random_permutation

__all__ = [
    "CHUNK",
    "MODES",
    "PSI_DOMAIN",
    "Mode",
    "Owner",
    "Requester",
    "as_tags",
    "cardinality",
    "chunks",
    "intersection",
    "shuffle",
]

PSI_DOMAIN = b"mpc-agencies/psi/v1"
CHUNK = 65_536  # points per step and per message (2 MiB)
Mode = Literal["intersection", "cardinality"]
MODES: tuple[Mode, ...] = ("intersection", "cardinality")


def as_tags(blob: bytes) -> np.ndarray:
    """Concatenated 8-byte tags as little-endian uint64 (what both sides compare)."""
    return np.frombuffer(blob, dtype="<u8").astype(np.uint64)


def chunks(count: int, size: int = CHUNK) -> Iterator[slice]:
    for start in range(0, count, size):
        yield slice(start, min(count, start + size))


@dataclass
class Requester:
    """R's side of one session: its distinct ids (in first-seen order) and its fresh key ``a``."""

    ids: list[str]
    cipher: CommutativeCipher = field(default_factory=lambda: CommutativeCipher.generate(PSI_DOMAIN))

    @classmethod
    def for_ids(cls, ids: Sequence[str]) -> Requester:
        return cls(list(dict.fromkeys(ids)))

    def encrypt(self, part: slice) -> list[bytes]:
        """Step 1, one chunk: ``[a]H(x)`` for ``ids[part]``."""
        return self.cipher.encrypt_ids(self.ids[part])

    def owner_tags(self, owner_points: Sequence[bytes]) -> np.ndarray:
        """Step 4, one chunk: tags of ``[a][b]H(y)`` for O's points."""
        return as_tags(self.cipher.tag_points(owner_points))


@dataclass
class Owner:
    """O's side of one session: its ids hashed to the curve (``H(y)``, (n, 32) uint8: they do not
    depend on the key, so the daemon keeps them on disk), their random order and a fresh key ``b``."""

    hashed: np.ndarray
    cipher: CommutativeCipher = field(default_factory=lambda: CommutativeCipher.generate(PSI_DOMAIN))
    order: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.order = random_permutation(len(self.hashed))

    @classmethod
    def for_ids(cls, ids: Sequence[str]) -> Owner:
        blob = hash_ids(list(ids), PSI_DOMAIN)
        return cls(np.frombuffer(blob, dtype=np.uint8).reshape(len(ids), POINT_BYTES))

    @property
    def count(self) -> int:
        return len(self.hashed)

    def encrypt_own(self, part: slice) -> list[bytes]:
        """Step 2, one chunk: ``[b]H(y)`` for the ids at positions ``part`` of the random order."""
        blob = self.hashed[self.order[part]].tobytes()
        return self.cipher.encrypt_points([blob[i : i + POINT_BYTES] for i in range(0, len(blob), POINT_BYTES)])

    def answer(self, requester_points: Sequence[bytes]) -> np.ndarray:
        """Step 3, one chunk: tags of ``[b][a]H(x)`` in the order received (cardinality mode
        shuffles the whole answer with :func:`shuffle` before sending it)."""
        return as_tags(self.cipher.tag_points(requester_points))


def shuffle(tags: np.ndarray) -> np.ndarray:
    """A uniformly random permutation of the answer (cardinality mode)."""
    shuffled: np.ndarray = tags[random_permutation(len(tags))]
    return shuffled


def intersection(owner_tags: np.ndarray, answers: np.ndarray) -> np.ndarray:
    """Intersection mode: for each of R's distinct ids (in order), whether O holds it."""
    theirs = np.sort(owner_tags)
    if not len(theirs):
        return np.zeros(len(answers), dtype=bool)
    nearest = theirs[np.minimum(np.searchsorted(theirs, answers), len(theirs) - 1)]
    found: np.ndarray = nearest == answers
    return found


def cardinality(owner_tags: np.ndarray, answers: np.ndarray) -> int:
    """Cardinality mode: how many of R's ids O holds."""
    return int(intersection(owner_tags, answers).sum())
