"""Paillier encryption over n = pq with g = n + 1 (PROTOCOLS.md section 2.1).

The owner of a table keeps the private key; requesters hold only the public key. Ciphertexts are
standard Paillier ciphertexts: python-paillier's ``raw_decrypt`` decrypts ours and we decrypt its
ones (``tests/crypto/test_paillier.py`` checks both directions).

Encryption is ``c = (1 + m*n) * rho mod n^2`` where ``rho`` is an *obfuscator*, a random n-th
residue. How obfuscators are produced (textbook, short exponent, CRT, pooled) is a separate concern,
see :mod:`mpc.crypto.obfuscators`; a public key encrypts with whichever :class:`Obfuscator` it is
given and defaults to the textbook one.

Serialisation is compact and never uses pickle: keys are length-prefixed big-endian integers behind a
one-byte format tag, ciphertexts are fixed-width big-endian integers of ``2 * |n| / 8`` bytes.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import gmpy2
from gmpy2 import mpz

__all__ = [
    "DEFAULT_KEY_BITS",
    "SUPPORTED_KEY_BITS",
    "Obfuscating",
    "PaillierCiphertext",
    "PaillierPrivateKey",
    "PaillierPublicKey",
    "generate_keypair",
]

DEFAULT_KEY_BITS = 2048
SUPPORTED_KEY_BITS = (1024, 2048, 3072, 4096)  # 1024 only for fast tests
_PUBLIC_TAG = b"P1"
_PRIVATE_TAG = b"S1"


class Obfuscating(Protocol):
    """Anything that yields random n-th residues mod n^2 (see :mod:`mpc.crypto.obfuscators`)."""

    def next(self) -> mpz: ...


def _pack_ints(tag: bytes, *values: int) -> bytes:
    out = [tag]
    for v in values:
        raw = int(v).to_bytes((int(v).bit_length() + 7) // 8, "big")
        out.append(struct.pack(">I", len(raw)))
        out.append(raw)
    return b"".join(out)


def _unpack_ints(tag: bytes, data: bytes, count: int) -> list[int]:
    if data[: len(tag)] != tag:
        raise ValueError(f"not a serialised key of this kind (expected tag {tag!r})")
    pos, values = len(tag), []
    for _ in range(count):
        if pos + 4 > len(data):
            raise ValueError("truncated key encoding")
        (length,) = struct.unpack_from(">I", data, pos)
        pos += 4
        if pos + length > len(data):
            raise ValueError("truncated key encoding")
        values.append(int.from_bytes(data[pos : pos + length], "big"))
        pos += length
    if pos != len(data):
        raise ValueError("trailing bytes after key encoding")
    return values


class PaillierPublicKey:
    """Public key ``n`` (``g = n + 1``); encrypts and evaluates homomorphic operations."""

    __slots__ = ("_obfuscator", "ciphertext_bytes", "n", "nsquare")

    def __init__(self, n: int) -> None:
        if n < 3 or n % 2 == 0:
            raise ValueError("Paillier modulus must be an odd integer > 2")
        self.n = mpz(n)
        self.nsquare = self.n * self.n
        self.ciphertext_bytes = (int(self.nsquare).bit_length() + 7) // 8
        self._obfuscator: Obfuscating | None = None

    # ----------------------------------------------------------------- identity and encoding
    @property
    def bits(self) -> int:
        return int(self.n.bit_length())

    def fingerprint(self) -> str:
        """Short stable identifier of the key (SHA-256 of its encoding, 16 hex digits)."""
        return hashlib.sha256(self.to_bytes()).hexdigest()[:16]

    def to_bytes(self) -> bytes:
        return _pack_ints(_PUBLIC_TAG, int(self.n))

    @classmethod
    def from_bytes(cls, data: bytes) -> PaillierPublicKey:
        (n,) = _unpack_ints(_PUBLIC_TAG, data, 1)
        return cls(n)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PaillierPublicKey) and self.n == other.n

    def __hash__(self) -> int:
        return hash(int(self.n))

    def __repr__(self) -> str:
        return f"PaillierPublicKey(bits={self.bits}, fingerprint={self.fingerprint()})"

    # ----------------------------------------------------------------- obfuscators
    def use_obfuscator(self, obfuscator: Obfuscating) -> None:
        """Encrypt from now on with ``obfuscator`` (textbook, short-exponent, CRT or a pool)."""
        self._obfuscator = obfuscator

    @property
    def obfuscator(self) -> Obfuscating:
        if self._obfuscator is None:
            from mpc.crypto.obfuscators import TextbookObfuscator

            self._obfuscator = TextbookObfuscator(self)
        return self._obfuscator

    def random_unit(self) -> mpz:
        """Uniform element of Z_n^* (rejection of the negligible non-units)."""
        while True:
            r = mpz(secrets.randbelow(int(self.n) - 1) + 1)
            if gmpy2.gcd(r, self.n) == 1:
                return r

    # ----------------------------------------------------------------- encryption
    def check_plaintext(self, m: int) -> None:
        if not 0 <= m < self.n:
            raise ValueError(f"plaintext must lie in [0, n); got {m.bit_length()}-bit value {m}")

    def encode(self, m: int) -> mpz:
        """The deterministic part ``g^m = 1 + m*n mod n^2`` of an encryption of ``m``."""
        self.check_plaintext(m)
        return (self.n * m + 1) % self.nsquare

    def encrypt(self, m: int, obfuscator: mpz | None = None) -> PaillierCiphertext:
        """Encrypt ``0 <= m < n`` with a fresh obfuscator (or the one given)."""
        rho = self.obfuscator.next() if obfuscator is None else obfuscator
        return PaillierCiphertext(self, self.encode(m) * rho % self.nsquare)

    def encrypt_batch(self, messages: Iterable[int]) -> list[PaillierCiphertext]:
        """Encrypt many plaintexts; each gets its own obfuscator."""
        n, nsq, next_rho = self.n, self.nsquare, self.obfuscator.next
        out = []
        for m in messages:
            if not 0 <= m < n:
                self.check_plaintext(m)
            out.append(PaillierCiphertext(self, (n * m + 1) * next_rho() % nsq))
        return out

    def rerandomize(self, c: PaillierCiphertext) -> PaillierCiphertext:
        """Same plaintext, fresh randomness: multiply by a new obfuscator."""
        self._check_same_key(c)
        return PaillierCiphertext(self, c.value * self.obfuscator.next() % self.nsquare)

    # ----------------------------------------------------------------- wire format
    def ciphertext_from_bytes(self, data: bytes) -> PaillierCiphertext:
        if len(data) != self.ciphertext_bytes:
            raise ValueError(f"ciphertext must be {self.ciphertext_bytes} bytes for this key, got {len(data)}")
        value = mpz(int.from_bytes(data, "big"))
        if not 0 < value < self.nsquare:
            raise ValueError("ciphertext out of range [1, n^2)")
        return PaillierCiphertext(self, value)

    def ciphertexts_to_bytes(self, ciphertexts: Sequence[PaillierCiphertext]) -> bytes:
        """Concatenate fixed-width encodings (no length prefixes needed)."""
        width = self.ciphertext_bytes
        return b"".join(int(c.value).to_bytes(width, "big") for c in ciphertexts)

    def ciphertexts_from_bytes(self, data: bytes) -> list[PaillierCiphertext]:
        width = self.ciphertext_bytes
        if len(data) % width:
            raise ValueError(f"ciphertext batch length {len(data)} is not a multiple of {width}")
        return [self.ciphertext_from_bytes(data[i : i + width]) for i in range(0, len(data), width)]

    def _check_same_key(self, c: PaillierCiphertext) -> None:
        if c.public_key.n != self.n:
            raise ValueError("ciphertext belongs to a different Paillier key")


@dataclass(frozen=True, slots=True)
class PaillierCiphertext:
    """A ciphertext under ``public_key``; ``+`` adds plaintexts, ``*`` multiplies by a public int."""

    public_key: PaillierPublicKey
    value: mpz

    def __add__(self, other: PaillierCiphertext | int) -> PaillierCiphertext:
        pk = self.public_key
        if isinstance(other, PaillierCiphertext):
            pk._check_same_key(other)
            return PaillierCiphertext(pk, self.value * other.value % pk.nsquare)
        if isinstance(other, int):
            return PaillierCiphertext(pk, self.value * pk.encode(other % int(pk.n)) % pk.nsquare)
        return NotImplemented

    __radd__ = __add__

    def __mul__(self, k: int) -> PaillierCiphertext:
        if not isinstance(k, int):
            return NotImplemented
        pk = self.public_key
        return PaillierCiphertext(pk, gmpy2.powmod(self.value, k % int(pk.n), pk.nsquare))

    __rmul__ = __mul__

    def to_bytes(self) -> bytes:
        return int(self.value).to_bytes(self.public_key.ciphertext_bytes, "big")


class PaillierPrivateKey:
    """Factorisation of ``n``; decrypts with CRT (mod p^2 and q^2 separately)."""

    __slots__ = ("_hp", "_hq", "_p_inv_q", "_psquare", "_qsquare", "p", "public_key", "q")

    def __init__(self, public_key: PaillierPublicKey, p: int, q: int) -> None:
        if p == q or mpz(p) * mpz(q) != public_key.n:
            raise ValueError("p and q are not two distinct factors of the public modulus")
        p, q = min(p, q), max(p, q)
        self.public_key = public_key
        self.p, self.q = mpz(p), mpz(q)
        self._psquare, self._qsquare = self.p * self.p, self.q * self.q
        self._p_inv_q = gmpy2.invert(self.p, self.q)
        self._hp = self._h(self.p, self._psquare)
        self._hq = self._h(self.q, self._qsquare)

    def _h(self, x: mpz, xsquare: mpz) -> mpz:
        g = self.public_key.n + 1
        return gmpy2.invert((gmpy2.powmod(g, x - 1, xsquare) - 1) // x, x)

    def decrypt_raw(self, c: int) -> int:
        """Decrypt an integer ciphertext in [1, n^2) to its plaintext in [0, n)."""
        p, q = self.p, self.q
        mp = (gmpy2.powmod(c, p - 1, self._psquare) - 1) // p * self._hp % p
        mq = (gmpy2.powmod(c, q - 1, self._qsquare) - 1) // q * self._hq % q
        return int(mp + ((mq - mp) * self._p_inv_q % q) * p)

    def decrypt(self, c: PaillierCiphertext) -> int:
        self.public_key._check_same_key(c)
        return self.decrypt_raw(c.value)

    def decrypt_batch(self, ciphertexts: Iterable[PaillierCiphertext]) -> list[int]:
        return [self.decrypt(c) for c in ciphertexts]

    def decrypt_parallel(self, ciphertexts: Sequence[PaillierCiphertext], serial_below: int = 32) -> list[int]:
        """:meth:`decrypt_batch` on the compute backend (:mod:`mpc.parallel`) for batches of
        ``serial_below`` or more; the factors travel to its workers, which must be this owner's own
        (its process pool, or its own Ray cluster)."""
        for c in ciphertexts:
            self.public_key._check_same_key(c)
        if len(ciphertexts) < serial_below:
            return [self.decrypt_raw(c.value) for c in ciphertexts]
        from mpc.parallel import backend, split

        compute, pk = backend(), self.public_key
        calls = (
            (int(self.p), int(self.q), pk.ciphertexts_to_bytes(list(ciphertexts[lo:hi])))
            for lo, hi in split(len(ciphertexts), 4 * compute.workers)
        )
        out: list[int] = []
        plain = (int(pk.n).bit_length() + 7) // 8
        for blob in compute.map(_decrypt_chunk, calls):
            out.extend(int.from_bytes(blob[i : i + plain], "big") for i in range(0, len(blob), plain))
        return out

    def to_bytes(self) -> bytes:
        """Secret: store only in the owner's state directory with restrictive permissions."""
        return _pack_ints(_PRIVATE_TAG, int(self.p), int(self.q))

    @classmethod
    def from_bytes(cls, data: bytes) -> PaillierPrivateKey:
        p, q = _unpack_ints(_PRIVATE_TAG, data, 2)
        return cls(PaillierPublicKey(p * q), p, q)

    def __repr__(self) -> str:
        return f"PaillierPrivateKey(<secret>, public={self.public_key!r})"


@functools.lru_cache(maxsize=16)
def _worker_key(p: int, q: int) -> PaillierPrivateKey:
    """A worker's copy of a private key, built once (its CRT constants cost two decryptions)."""
    return PaillierPrivateKey(PaillierPublicKey(p * q), p, q)


def _decrypt_chunk(p: int, q: int, blob: bytes) -> bytes:
    """Worker: decrypt fixed-width ciphertexts, return fixed-width plaintexts (|n| bytes each)."""
    key = _worker_key(p, q)
    width, plain = key.public_key.ciphertext_bytes, (int(key.public_key.n).bit_length() + 7) // 8
    return b"".join(
        key.decrypt_raw(mpz(int.from_bytes(blob[i : i + width], "big"))).to_bytes(plain, "big")
        for i in range(0, len(blob), width)
    )


def _random_prime(bits: int) -> mpz:
    """A prime of exactly ``bits`` bits with the top two bits set (so p*q has 2*bits bits)."""
    while True:
        candidate = mpz(secrets.randbits(bits)) | (mpz(3) << (bits - 2)) | 1
        p = gmpy2.next_prime(candidate)
        if p.bit_length() == bits and gmpy2.is_prime(p, 50):
            return p


def generate_keypair(bits: int = DEFAULT_KEY_BITS) -> tuple[PaillierPublicKey, PaillierPrivateKey]:
    """Fresh key pair with an exactly ``bits``-bit modulus of two equal-size primes."""
    if bits not in SUPPORTED_KEY_BITS:
        raise ValueError(f"key size must be one of {SUPPORTED_KEY_BITS}, got {bits}")
    while True:
        p, q = _random_prime(bits // 2), _random_prime(bits // 2)
        if p == q:
            continue
        n = p * q
        # Equal-size primes make gcd(n, phi(n)) = 1; check anyway, it is cheap.
        if n.bit_length() == bits and gmpy2.gcd(n, (p - 1) * (q - 1)) == 1:
            public = PaillierPublicKey(int(n))
            return public, PaillierPrivateKey(public, int(p), int(q))
