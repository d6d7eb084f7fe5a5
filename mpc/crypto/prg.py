"""Seed expansion: AES-128-CTR keystream from ``cryptography`` read as uint64 words.

A dealer ships a party a 16-byte seed instead of megabytes of randomness; both sides expand the same
``(seed, stream)`` pair to the same words. Distinct streams of one seed never overlap: the stream
number fills the high 64 bits of the 128-bit counter block, so each stream has 2^64 blocks.
"""

from __future__ import annotations

import secrets

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["SEED_BYTES", "expand_words", "new_seed", "random_permutation", "random_words"]

SEED_BYTES = 16


def new_seed() -> bytes:
    return secrets.token_bytes(SEED_BYTES)


def expand_words(seed: bytes, stream: int, count: int) -> np.ndarray:
    """``count`` pseudo-random uint64 words of stream ``stream`` under ``seed`` (read-only array)."""
    if len(seed) != SEED_BYTES:
        raise ValueError(f"PRG seeds are {SEED_BYTES} bytes")
    if not 0 <= stream < 2**64:
        raise ValueError("stream number must fit in 64 bits")
    if count == 0:
        return np.zeros(0, dtype=np.uint64)
    nonce = stream.to_bytes(8, "big") + bytes(8)
    encryptor = Cipher(algorithms.AES(seed), modes.CTR(nonce)).encryptor()
    return np.frombuffer(encryptor.update(bytes(8 * count)), dtype=np.uint64)


def random_words(count: int) -> np.ndarray:
    """Fresh uniform uint64 words from a one-time random seed."""
    return expand_words(new_seed(), 0, count)


def random_permutation(count: int) -> np.ndarray:
    """A uniformly random permutation of ``range(count)`` from the system CSPRNG (int64): random
    64-bit keys sorted, a collision (probability below count^2 / 2^65) only ties two keys."""
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    order: np.ndarray = np.argsort(np.frombuffer(secrets.token_bytes(8 * count), dtype="<u8"), kind="stable")
    return order.astype(np.int64)
