"""Curve25519 commutative cipher and OPRF over libsodium's X25519 (PROTOCOLS.md 2.2).

* ``hash_to_curve(id)``: SHA-512(domain || counter || id) read as a u-coordinate, retried with the
  next counter until the point lies on the curve (u^3 + A u^2 + u is a square mod p), never on the
  twist, so that scalar multiplications of different parties commute on the same group.
* :class:`CommutativeCipher`: ``[k]P``. X25519 is x-only and ``[a][b]P == [b][a]P``, which is all
  ECDH-PSI (P1) needs.
* :class:`OprfServer` / :class:`OprfClient`: the client sends ``[a]H(q)``, the server returns
  ``[b][a]H(q)``, the client removes ``a``. X25519 clamps every scalar, so the client chooses ``a``
  such that some clamp-shaped integer is congruent to ``a^-1 mod l``, and multiplies by it
  (``[s][b][a]H = [b]H`` on the prime-order subgroup, and clamping kills the cofactor part). About
  half of all ``a`` qualify; others are resampled.
* Outputs are compared as :func:`oprf_tag` values: truncated SHA-512 of the final point.

Scalar multiplication is RFC 7748's X25519 through PyNaCl's ``crypto_scalarmult`` (libsodium): one
call on raw bytes, measured 6 % faster per point than ``cryptography``'s ``X25519PrivateKey.exchange``,
which builds two key objects per point (docs/benchmarks.md). Batches above
:data:`PARALLEL_THRESHOLD` points are split over a process pool with one worker per core; workers
receive scalars and raw bytes, and where only tags are wanted they return the 8-byte tags.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Self

import gmpy2
import nacl.exceptions
from nacl.bindings import crypto_scalarmult

from mpc.parallel import backend, split

__all__ = [
    "DEFAULT_TAG_BYTES",
    "FIELD_PRIME",
    "GROUP_ORDER",
    "MONTGOMERY_A",
    "PARALLEL_THRESHOLD",
    "POINT_BYTES",
    "BlindedQuery",
    "CommutativeCipher",
    "InvalidPointError",
    "OprfClient",
    "OprfServer",
    "ScalarKey",
    "clamp",
    "hash_and_multiply",
    "hash_ids",
    "hash_to_curve",
    "is_clamped",
    "multiply_and_tag",
    "multiply_points",
    "oprf_tag",
    "x25519",
]

FIELD_PRIME = 2**255 - 19
MONTGOMERY_A = 486662
GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493  # l, order of the prime subgroup
POINT_BYTES = 32
DEFAULT_TAG_BYTES = 8
PARALLEL_THRESHOLD = 4096
_H2C_DOMAIN = b"mpc-agencies/hash-to-curve25519/v1"
_TAG_DOMAIN = b"mpc-agencies/oprf-tag/v1"
_P = gmpy2.mpz(FIELD_PRIME)


class InvalidPointError(ValueError):
    """A peer sent bytes that are not a usable Curve25519 point (wrong length or low order)."""


def clamp(scalar: bytes) -> int:
    """The integer X25519 actually multiplies by for this 32-byte scalar (RFC 7748 decodeScalar)."""
    if len(scalar) != 32:
        raise ValueError("X25519 scalars are 32 bytes")
    k = bytearray(scalar)
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    return int.from_bytes(k, "little")


def is_clamped(k: int) -> bool:
    return k % 8 == 0 and 2**254 <= k < 2**255


def x25519(scalar: bytes, u: bytes) -> bytes:
    """RFC 7748 X25519(k, u) (checked against the RFC's vectors)."""
    if len(scalar) != 32:
        raise ValueError("X25519 scalars are 32 bytes")
    if len(u) != POINT_BYTES:
        raise InvalidPointError(f"point 0 has {len(u)} bytes, expected {POINT_BYTES}")
    return _multiply_one(scalar, u, 0)


def _multiply_one(scalar: bytes, u: bytes, index: int) -> bytes:
    try:
        return crypto_scalarmult(scalar, u)
    except nacl.exceptions.RuntimeError:  # libsodium refuses low-order points (all-zero output)
        raise InvalidPointError(f"point {index} is not a valid Curve25519 point: it has low order") from None


def _on_curve(u: int) -> bool:
    x = gmpy2.mpz(u)
    rhs = x * (x * (x + MONTGOMERY_A) + 1) % _P  # u^3 + A u^2 + u
    return bool(rhs and gmpy2.jacobi(rhs, _P) == 1)


def hash_to_curve(identifier: bytes, domain: bytes = b"") -> bytes:
    """Map an identifier to the u-coordinate of a point on Curve25519 (not the twist).

    Deterministic, domain-separated; the counter loop ends after 2 tries on average.
    """
    prefix = _H2C_DOMAIN + len(domain).to_bytes(2, "big") + domain
    for counter in range(256):
        digest = hashlib.sha512(prefix + bytes([counter]) + identifier).digest()
        u = int.from_bytes(digest[:32], "little") & ((1 << 255) - 1)
        u %= FIELD_PRIME
        if _on_curve(u):
            return u.to_bytes(32, "little")
    raise RuntimeError("hash_to_curve found no curve point in 256 tries")  # probability 2^-256


def oprf_tag(point: bytes, length: int = DEFAULT_TAG_BYTES) -> bytes:
    """Truncated hash of a final OPRF/PSI point; 8 bytes give a false match rate below 1e-9 per
    query against 10 million stored tags (10^7 / 2^64 ~ 5e-13)."""
    return hashlib.sha512(_TAG_DOMAIN + point).digest()[: _tag_length(length)]


def _tag_length(length: int) -> int:
    if not 8 <= length <= 64:
        raise ValueError("tags are between 8 and 64 bytes")
    return length


def _as_bytes(identifier: bytes | str) -> bytes:
    return identifier.encode("utf-8") if isinstance(identifier, str) else identifier


# --------------------------------------------------------------------------- batch workers
def _multiply_chunk(scalar: bytes, points: bytes, first_index: int, tag_bytes: int = 0) -> bytes:
    """``[k]P`` for each 32-byte point of ``points``, or its tag when ``tag_bytes`` is set."""
    finals = (_multiply_one(scalar, points[i : i + 32], first_index + i // 32) for i in range(0, len(points), 32))
    return b"".join(oprf_tag(p, tag_bytes) for p in finals) if tag_bytes else b"".join(finals)


def _hash_chunk(domain: bytes, ids: list[bytes]) -> bytes:
    return b"".join(hash_to_curve(i, domain) for i in ids)


def _hash_multiply_chunk(scalar: bytes, domain: bytes, ids: list[bytes], tag_bytes: int = 0) -> bytes:
    """``[k]H(id)`` for each id, or its tag when ``tag_bytes`` is set."""
    finals = (crypto_scalarmult(scalar, hash_to_curve(i, domain)) for i in ids)
    return b"".join(oprf_tag(p, tag_bytes) for p in finals) if tag_bytes else b"".join(finals)


def _in_parts(
    count: int, parallel: bool, work: Callable[..., bytes], args: Callable[[int, int], tuple[Any, ...]]
) -> bytes:
    """``work(*args(lo, hi))`` over items ``[0, count)``, concatenated: in this process for small
    batches, else on the compute backend in four parts per worker."""
    compute = backend()
    if not parallel or count < PARALLEL_THRESHOLD or (compute.name == "local" and compute.workers == 1):
        return work(*args(0, count))
    return b"".join(compute.map(work, (args(lo, hi) for lo, hi in split(count, 4 * compute.workers))))


def _multiply_all(scalar: bytes, points: Sequence[bytes], parallel: bool, tag_bytes: int) -> bytes:
    for i, p in enumerate(points):
        if len(p) != POINT_BYTES:
            raise InvalidPointError(f"point {i} has {len(p)} bytes, expected {POINT_BYTES}")
    blob = b"".join(points)
    return _in_parts(
        len(points),
        parallel,
        _multiply_chunk,
        lambda lo, hi: (scalar, blob[lo * POINT_BYTES : hi * POINT_BYTES], lo, tag_bytes),
    )


def multiply_points(scalar: bytes, points: Sequence[bytes], parallel: bool = True) -> list[bytes]:
    """``[k]P`` for every point; raises :class:`InvalidPointError` naming the first bad one."""
    out = _multiply_all(scalar, points, parallel, 0)
    return [out[i : i + 32] for i in range(0, len(out), 32)]


def multiply_and_tag(
    scalar: bytes, points: Sequence[bytes], tag_bytes: int = DEFAULT_TAG_BYTES, parallel: bool = True
) -> bytes:
    """``oprf_tag([k]P)`` for every point, concatenated (the workers hash, so only tags travel back)."""
    return _multiply_all(scalar, points, parallel, _tag_length(tag_bytes))


def hash_ids(ids: Sequence[bytes | str], domain: bytes = b"", parallel: bool = True) -> bytes:
    """``H(id)`` for every identifier, concatenated (32 bytes each), on every core."""
    raw = [_as_bytes(i) for i in ids]
    return _in_parts(len(raw), parallel, _hash_chunk, lambda lo, hi: (domain, raw[lo:hi]))


def _hash_multiply_all(
    scalar: bytes, ids: Sequence[bytes | str], domain: bytes, parallel: bool, tag_bytes: int
) -> bytes:
    raw = [_as_bytes(i) for i in ids]
    return _in_parts(len(raw), parallel, _hash_multiply_chunk, lambda lo, hi: (scalar, domain, raw[lo:hi], tag_bytes))


def hash_and_multiply(
    scalar: bytes, ids: Sequence[bytes | str], domain: bytes = b"", parallel: bool = True
) -> list[bytes]:
    """``[k]H(id)`` for every identifier."""
    out = _hash_multiply_all(scalar, ids, domain, parallel, 0)
    return [out[i : i + 32] for i in range(0, len(out), 32)]


# --------------------------------------------------------------------------- recipes
@dataclass(frozen=True, repr=False)
class ScalarKey:
    """A secret X25519 scalar with the hash-to-curve domain it applies to."""

    scalar: bytes
    domain: bytes = b""

    @classmethod
    def generate(cls, domain: bytes = b"") -> Self:
        return cls(secrets.token_bytes(32), domain)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<secret>)"


class CommutativeCipher(ScalarKey):
    """ECDH-PSI key: ``encrypt_ids`` = ``[k]H(id)``, ``encrypt_points`` = ``[k]P`` on a peer's points."""

    def encrypt_ids(self, ids: Sequence[bytes | str], parallel: bool = True) -> list[bytes]:
        return hash_and_multiply(self.scalar, ids, self.domain, parallel)

    def encrypt_points(self, points: Sequence[bytes], parallel: bool = True) -> list[bytes]:
        return multiply_points(self.scalar, points, parallel)

    def tag_points(self, points: Sequence[bytes], parallel: bool = True) -> bytes:
        """8-byte tags of ``[k]P`` for a peer's points, concatenated (the last PSI step)."""
        return multiply_and_tag(self.scalar, points, DEFAULT_TAG_BYTES, parallel)


class OprfServer(ScalarKey):
    """The owner's OPRF key ``b``: F_b(id) = tag([b]H(id))."""

    def evaluate_blinded(self, blinded: Sequence[bytes], parallel: bool = True) -> list[bytes]:
        """Online step: ``[b]`` applied to the client's blinded points. Learns nothing about ids."""
        return multiply_points(self.scalar, blinded, parallel)

    def evaluate_ids(
        self, ids: Sequence[bytes | str], tag_bytes: int = DEFAULT_TAG_BYTES, parallel: bool = True
    ) -> list[bytes]:
        """Direct evaluation on the owner's own ids (filters and bucket tags)."""
        blob = _hash_multiply_all(self.scalar, ids, self.domain, parallel, _tag_length(tag_bytes))
        return [blob[i : i + tag_bytes] for i in range(0, len(blob), tag_bytes)]


@dataclass(frozen=True)
class BlindedQuery:
    """What the client keeps between :meth:`OprfClient.blind` and :meth:`OprfClient.finalize`.

    ``points`` go to the server: one per *distinct* id, so repeated ids are not visible to it.
    """

    points: list[bytes]
    positions: list[int]  # for each original id, the index of its distinct blinded point
    unblind_scalar: bytes


def _blinding_pair() -> tuple[bytes, bytes]:
    """A random clamped scalar ``a`` and a clamp-shaped ``s`` with ``s*a = 1 mod l``."""
    while True:
        a_bytes = secrets.token_bytes(32)
        a = clamp(a_bytes)
        inverse = pow(a, -1, GROUP_ORDER)
        k0 = -(-(2**254 - inverse) // GROUP_ORDER)
        for k in range(k0, k0 + 8):
            s = inverse + k * GROUP_ORDER
            if not 2**254 <= s < 2**255:
                break
            if s % 8 == 0:
                return a.to_bytes(32, "little"), s.to_bytes(32, "little")


class OprfClient:
    """The requester's side: blind ids, send, unblind the server's answers into tags."""

    def __init__(self, domain: bytes = b"", tag_bytes: int = DEFAULT_TAG_BYTES) -> None:
        self.domain = domain
        self.tag_bytes = tag_bytes

    def blind(self, ids: Sequence[bytes | str], parallel: bool = True) -> BlindedQuery:
        """Step 1: ``[a]H(q)`` for each distinct id, with one fresh ``a`` per query batch."""
        raw = [_as_bytes(i) for i in ids]
        index: dict[bytes, int] = {}
        positions = [index.setdefault(r, len(index)) for r in raw]
        a, s = _blinding_pair()
        return BlindedQuery(hash_and_multiply(a, list(index), self.domain, parallel), positions, s)

    def finalize(self, query: BlindedQuery, evaluated: Sequence[bytes], parallel: bool = True) -> list[bytes]:
        """Step 3: remove ``a`` and hash: one tag per original id, equal to the server's direct
        evaluation ``tag([b]H(id))``."""
        if len(evaluated) != len(query.points):
            raise ValueError(f"server returned {len(evaluated)} points for {len(query.points)} blinded ids")
        blob, size = multiply_and_tag(query.unblind_scalar, evaluated, self.tag_bytes, parallel), self.tag_bytes
        return [blob[i * size : (i + 1) * size] for i in query.positions]
