"""Obfuscators for Paillier encryption: random n-th residues ``rho`` mod n^2 (PROTOCOLS.md 2.1).

An encryption is ``(1 + m*n) * rho``; ``rho`` does not depend on ``m``, which is what makes the
choices below interchangeable and poolable:

* :class:`TextbookObfuscator` -- ``r^n`` for uniform ``r`` in Z_n^*: one full-size exponentiation.
* :class:`ShortExponentObfuscator` -- Damgard-Jurik-Nielsen: ``h_s^x`` with ``h_s = y^n`` fixed and
  ``x`` uniform of ``|n|/2`` bits, from a fixed-base window table (about |n|/(2w) multiplications
  mod n^2). Extra assumption: such short-exponent powers are indistinguishable from uniform n-th
  residues (docs/crypto.md). The encryptor draws ``y`` itself, so a key owner cannot plant a
  small-order base.
* :class:`CrtObfuscator` -- for the key owner only: ``x^p mod p^2`` and ``x^q mod q^2`` recombined
  by CRT give a uniform n-th residue with no extra assumption, at about 4x textbook speed.
* :class:`ObfuscatorPool` -- a background thread fills a queue from any of the above, so that online
  encryption costs one multiplication mod n^2. The pool can be persisted and reloaded; loading
  consumes the file, so an obfuscator is never used twice.
"""

from __future__ import annotations

import mmap
import os
import secrets
import struct
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, overload

import gmpy2
import numpy as np
from gmpy2 import mpz

from mpc.crypto.paillier import PaillierPrivateKey, PaillierPublicKey
from mpc.files import write_atomic

__all__ = [
    "DEFAULT_WINDOW_BITS",
    "CrtObfuscator",
    "Obfuscator",
    "ObfuscatorPool",
    "ShortExponentObfuscator",
    "TextbookObfuscator",
    "encrypt_parallel",
    "parallel_obfuscators",
]

DEFAULT_WINDOW_BITS = 12


class Obfuscator(Protocol):
    """Produces uniform (or computationally uniform) n-th residues mod n^2 for one public key."""

    public_key: PaillierPublicKey

    def next(self) -> mpz:
        """One fresh obfuscator; never returns the same value twice (except with negligible odds)."""
        ...


class TextbookObfuscator:
    """``r^n mod n^2`` with ``r`` uniform in Z_n^*: the textbook Paillier randomness."""

    def __init__(self, public_key: PaillierPublicKey) -> None:
        self.public_key = public_key

    def next(self) -> mpz:
        pk = self.public_key
        return gmpy2.powmod(pk.random_unit(), pk.n, pk.nsquare)


class ShortExponentObfuscator:
    """``h_s^x`` with a ``w``-bit fixed-base window table of ``h_s`` (Damgard-Jurik-Nielsen).

    The table holds ``h_s^(d * 2^(w*i))`` for every window ``i`` and digit ``d``; an obfuscator is
    the product of one entry per window: ``ceil(exponent_bits / w) - 1`` multiplications mod n^2.
    Memory is ``ceil(exponent_bits / w) * 2^w`` residues (w = 12, 2048-bit key: about 180 MB;
    w = 8: about 17 MB).
    """

    def __init__(
        self,
        public_key: PaillierPublicKey,
        window_bits: int = DEFAULT_WINDOW_BITS,
        exponent_bits: int | None = None,
        base: int | None = None,
        table: list[Sequence[mpz]] | None = None,
    ) -> None:
        if not 1 <= window_bits <= 16:
            raise ValueError("window_bits must be in [1, 16]")
        self.public_key = public_key
        self.window_bits = window_bits
        self.exponent_bits = exponent_bits or public_key.bits // 2
        nsq = public_key.nsquare
        self.base = mpz(base) if base is not None else gmpy2.powmod(public_key.random_unit(), public_key.n, nsq)
        windows = -(-self.exponent_bits // window_bits)
        self._table: list[Sequence[mpz]] = table if table is not None else []
        step = self.base
        for _ in range(windows if table is None else 0):
            row: list[mpz] = [mpz(1), step]
            for _ in range(2, 1 << window_bits):
                row.append(row[-1] * step % nsq)
            self._table.append(row)
            step = row[-1] * step % nsq  # step^(2^w)
        # Digit masks: the top window may be partial so that x has exactly exponent_bits bits.
        top_bits = self.exponent_bits - (windows - 1) * window_bits
        self._masks = np.full(windows, (1 << window_bits) - 1, dtype=np.uint16)
        self._masks[-1] = (1 << top_bits) - 1
        self.buffer_size = 256
        self._buffer: list[mpz] = []

    def _random_digits(self, count: int) -> np.ndarray:
        """``count`` rows of independent uniform window digits (= a uniform short exponent)."""
        windows = len(self._table)
        raw = np.frombuffer(os.urandom(2 * windows * count), dtype=np.uint16)
        return raw.reshape(count, windows) & self._masks

    def next(self) -> mpz:
        """One obfuscator, served from a buffer that :meth:`batch` refills (input-independent)."""
        if not self._buffer:
            self._buffer = self.batch(self.buffer_size)
        return self._buffer.pop()

    def save(self, path: Path) -> None:
        """Write the table (owner-only) so that another process of ours skips building it: the
        key's modulus, the window and exponent sizes, then every entry at the width of n^2."""
        width = (int(self.public_key.nsquare).bit_length() + 7) // 8
        n = int(self.public_key.n).to_bytes(width, "big")
        header = _TABLE_MAGIC + struct.pack(">HIII", self.window_bits, self.exponent_bits, width, len(self._table))
        entries = b"".join(int(v).to_bytes(width, "big") for row in self._table for v in row)
        write_atomic(path, [header, n, entries], 0o600)

    @classmethod
    def load(cls, path: Path, public_key: PaillierPublicKey, window_bits: int) -> ShortExponentObfuscator | None:
        """The table :meth:`save` wrote for this key and window, or None (missing, for another key
        or window, truncated, or inconsistent: each row must hold the powers of its second entry).
        The file is mapped and its entries converted when first drawn (:class:`_StoredRow`): a
        process that draws a few obfuscators reads and converts a few entries of each row. (The
        file is replaced, never rewritten in place, so the mapping stays valid.)"""
        try:
            with path.open("rb") as f:  # mapped: only the pages of the entries drawn are read
                data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # ValueError: an empty file
            return None
        head = len(_TABLE_MAGIC) + struct.calcsize(">HIII")
        if len(data) < head or data[: len(_TABLE_MAGIC)] != _TABLE_MAGIC:
            return None
        window, exponent_bits, width, windows = struct.unpack(">HIII", data[len(_TABLE_MAGIC) : head])
        size = 1 << window
        if window != window_bits or len(data) != head + width + width * windows * size:
            return None
        if int.from_bytes(data[head : head + width], "big") != int(public_key.n):
            return None
        body, nsq = memoryview(data)[head + width :], public_key.nsquare
        table: list[Sequence[mpz]] = [
            _StoredRow(body[r * size * width : (r + 1) * size * width], width) for r in range(windows)
        ]
        for row in table:  # a row is 1, g, g^2, ...: check its start (cheap) before trusting the file
            if row[0] != 1 or (size > 2 and row[2] != row[1] * row[1] % nsq):
                return None
        return cls(public_key, window_bits, exponent_bits, base=int(table[0][1]), table=table)

    def batch(self, count: int) -> list[mpz]:
        """``count`` fresh obfuscators."""
        return self._powers(self._random_digits(count)) if count > 0 else []

    def _powers(self, digits: np.ndarray) -> list[mpz]:
        """Products of one table entry per window for each row of ``digits`` (count x windows),
        computed window by window so that one table row stays in cache for the whole batch."""
        nsq, table = self.public_key.nsquare, self._table
        columns = digits.T.tolist()
        first = table[0]
        accs = [first[d] for d in columns[0]]
        for row, column in zip(table[1:], columns[1:], strict=True):
            accs = [a * row[d] % nsq for a, d in zip(accs, column, strict=True)]
        return accs


class _StoredRow(Sequence[mpz]):
    """One row of a saved window table, each entry converted from its bytes when first read."""

    __slots__ = ("_bytes", "_values", "_width")

    def __init__(self, data: memoryview, width: int) -> None:
        self._bytes, self._width = data, width
        self._values: list[mpz | None] = [None] * (len(data) // width)

    def __len__(self) -> int:
        return len(self._values)

    @overload
    def __getitem__(self, index: int) -> mpz: ...

    @overload
    def __getitem__(self, index: slice) -> list[mpz]: ...

    def __getitem__(self, index: int | slice) -> mpz | list[mpz]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self._values)))]
        value = self._values[index]  # IndexError beyond the row
        if value is None:
            start = (index % len(self._values)) * self._width
            value = self._values[index] = mpz(int.from_bytes(self._bytes[start : start + self._width], "big"))
        return value


class CrtObfuscator:
    """Owner-side obfuscators from the factorisation: uniform n-th residues without extra assumption.

    The n-th residues mod p^2 are exactly the p-th powers (a subgroup of order p - 1) when
    gcd(q, p - 1) = 1, so ``x^p mod p^2`` for uniform ``x`` is uniform among them; the same mod q^2;
    CRT gives a uniform n-th residue mod n^2. Two half-size exponentiations instead of one full one.
    """

    def __init__(self, private_key: PaillierPrivateKey) -> None:
        p, q = private_key.p, private_key.q
        if gmpy2.gcd(q, p - 1) != 1 or gmpy2.gcd(p, q - 1) != 1:
            raise ValueError("CRT obfuscators need gcd(q, p-1) = gcd(p, q-1) = 1 for this key")
        self.public_key = private_key.public_key
        self._p, self._q = p, q
        self._psq, self._qsq = p * p, q * q
        self._psq_inv = gmpy2.invert(self._psq, self._qsq)

    def _unit(self, modulus: mpz, prime: mpz) -> mpz:
        while True:
            x = mpz(secrets.randbelow(int(modulus)))
            if x % prime:
                return x

    def next(self) -> mpz:
        rp = gmpy2.powmod(self._unit(self._psq, self._p), self._p, self._psq)
        rq = gmpy2.powmod(self._unit(self._qsq, self._q), self._q, self._qsq)
        return rp + self._psq * ((rq - rp) * self._psq_inv % self._qsq)


_POOL_MAGIC = b"MPCOBFP1"
_TABLE_MAGIC = b"MPCSEXT1"


class ObfuscatorPool:
    """A queue of precomputed obfuscators kept full by a background thread.

    ``next()`` pops one (one deque operation); when the pool runs dry it computes one synchronously
    from ``source`` and counts a miss. Obfuscators are input-independent, so they can be computed
    ahead of time and persisted across restarts with :meth:`save` / :meth:`load`.
    """

    def __init__(self, source: Obfuscator, capacity: int = 10_000, background: bool = True) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.public_key = source.public_key
        self.source = source
        self.capacity = capacity
        self.misses = 0
        self._items: deque[mpz] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        if background:
            self.start()

    def __len__(self) -> int:
        return len(self._items)

    def start(self) -> None:
        """Start (or restart) the background filler thread."""
        if self._worker is not None and self._worker.is_alive():
            return
        self._stop.clear()
        self._worker = threading.Thread(target=self._fill_forever, name="obfuscator-pool", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join()
            self._worker = None

    def _fill_forever(self) -> None:
        while not self._stop.is_set():
            if len(self._items) < self.capacity:
                self._items.append(self.source.next())
            else:
                self._wake.wait(timeout=1.0)
                self._wake.clear()

    def fill(self, count: int | None = None) -> None:
        """Fill synchronously up to ``count`` items (default: capacity)."""
        target = min(self.capacity, count if count is not None else self.capacity)
        while len(self._items) < target:
            self._items.append(self.source.next())

    def next(self) -> mpz:
        try:
            rho = self._items.popleft()
        except IndexError:
            self.misses += 1
            rho = self.source.next()
        if not self._wake.is_set() and len(self._items) < self.capacity // 2:
            self._wake.set()
        return rho

    # ----------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> int:
        """Move every pooled obfuscator into ``path`` (atomically); returns how many were saved.

        The saved obfuscators leave the in-memory pool, so they cannot be used twice.
        """
        pk = self.public_key
        items = []
        while True:
            try:
                items.append(self._items.popleft())
            except IndexError:
                break
        header = _POOL_MAGIC + bytes.fromhex(pk.fingerprint()) + struct.pack(">Q", len(items))
        body = b"".join(int(x).to_bytes(pk.ciphertext_bytes, "big") for x in items)
        write_atomic(Path(path), header + body, 0o600)
        return len(items)

    def load(self, path: str | Path) -> int:
        """Take the obfuscators saved at ``path`` into this pool and delete the file.

        Raises ``ValueError`` if the file was written for another key or is damaged.
        """
        target = Path(path)
        data = target.read_bytes()
        pk = self.public_key
        head = len(_POOL_MAGIC) + 8 + 8
        if data[: len(_POOL_MAGIC)] != _POOL_MAGIC or len(data) < head:
            raise ValueError(f"{target} is not an obfuscator pool file")
        if data[len(_POOL_MAGIC) : len(_POOL_MAGIC) + 8] != bytes.fromhex(pk.fingerprint()):
            raise ValueError(f"{target} holds obfuscators for another Paillier key")
        count = int(struct.unpack_from(">Q", data, len(_POOL_MAGIC) + 8)[0])
        width = pk.ciphertext_bytes
        if len(data) != head + count * width:
            raise ValueError(f"{target} is truncated or has trailing bytes")
        target.unlink()  # consume: never reuse an obfuscator
        for i in range(count):
            self._items.append(mpz(int.from_bytes(data[head + i * width : head + (i + 1) * width], "big")))
        return count


_WORKER_SOURCES: dict[tuple[int, int], ShortExponentObfuscator] = {}


def _obfuscator_chunk(n: int, count: int, window_bits: int) -> bytes:
    """Worker: ``count`` short-exponent obfuscators for modulus ``n``."""
    source = _worker_source(n, window_bits)
    width = PaillierPublicKey(n).ciphertext_bytes
    return b"".join(int(x).to_bytes(width, "big") for x in source.batch(count))


def _worker_source(n: int, window_bits: int) -> ShortExponentObfuscator:
    """A worker's short-exponent source for modulus ``n``: its own random base, its window table
    built once per worker process and key."""
    source = _WORKER_SOURCES.get((n, window_bits))
    if source is None:
        if len(_WORKER_SOURCES) >= 4:
            _WORKER_SOURCES.clear()
        source = _WORKER_SOURCES[(n, window_bits)] = ShortExponentObfuscator(
            PaillierPublicKey(n), window_bits=window_bits
        )
    return source


def _encrypt_chunk(n: int, plaintexts: bytes, window_bits: int) -> bytes:
    """Worker: ``(1 + m*n) * rho mod n^2`` for each fixed-width (|n| bytes) plaintext ``m``, each
    with a fresh short-exponent obfuscator; fixed-width ciphertexts back."""
    key = PaillierPublicKey(n)
    source, nsq, width, plain = _worker_source(n, window_bits), key.nsquare, key.ciphertext_bytes, _plain_bytes(key)
    values = [int.from_bytes(plaintexts[i : i + plain], "big") for i in range(0, len(plaintexts), plain)]
    return b"".join(
        int(key.encode(m) * rho % nsq).to_bytes(width, "big")
        for m, rho in zip(values, source.batch(len(values)), strict=True)
    )


def _plain_bytes(public_key: PaillierPublicKey) -> int:
    return (int(public_key.n).bit_length() + 7) // 8


def encrypt_parallel(public_key: PaillierPublicKey, plaintexts: Sequence[int], window_bits: int = 10) -> bytes:
    """Fixed-width ciphertexts of ``plaintexts`` (in order), encrypted on the compute backend:
    each worker packs its chunk with obfuscators of its own (a whole table's preparation)."""
    from mpc.parallel import backend, split

    for m in plaintexts:
        public_key.check_plaintext(m)
    compute, plain, n = backend(), _plain_bytes(public_key), int(public_key.n)
    calls = (
        (n, b"".join(m.to_bytes(plain, "big") for m in plaintexts[lo:hi]), window_bits)
        for lo, hi in split(len(plaintexts), 4 * compute.workers)
    )
    return b"".join(compute.map(_encrypt_chunk, calls))


class BackendObfuscator:
    """Obfuscators computed on the compute backend (:func:`parallel_obfuscators`), ``batch`` at a
    time, so that a process whose own interpreter is the bottleneck (the requester service, whose
    thread serving HTTP shares it) only unpacks them. Thread-safe."""

    def __init__(self, public_key: PaillierPublicKey, batch: int = 64, window_bits: int = 8) -> None:
        self.public_key, self.batch, self.window_bits = public_key, batch, window_bits
        self._buffer: list[mpz] = []
        self._lock = threading.Lock()

    def next(self) -> mpz:
        with self._lock:
            if not self._buffer:
                self._buffer = parallel_obfuscators(self.public_key, self.batch, self.window_bits)
            return self._buffer.pop()


def parallel_obfuscators(public_key: PaillierPublicKey, count: int, window_bits: int = 10) -> list[mpz]:
    """``count`` obfuscators computed on the compute backend (for bulk encryption of a whole table).

    Each worker draws its own base ``h_s``; every result is an n-th residue, as from one source.
    """
    from mpc.parallel import backend

    if count <= 0:
        return []
    compute = backend()
    step = max(-(-count // (4 * compute.workers)), 64)
    calls = ((int(public_key.n), min(step, count - lo), window_bits) for lo in range(0, count, step))
    width = public_key.ciphertext_bytes
    out: list[mpz] = []
    for blob in compute.map(_obfuscator_chunk, calls):
        out.extend(mpz(int.from_bytes(blob[i : i + width], "big")) for i in range(0, len(blob), width))
    return out
