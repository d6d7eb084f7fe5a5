"""Paillier, 2048-bit, one core: our obfuscators and decryption against python-paillier."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import phe

from benchmarks.report import Result, compare
from mpc.crypto.obfuscators import ObfuscatorPool, ShortExponentObfuscator, TextbookObfuscator
from mpc.crypto.paillier import PaillierCiphertext, PaillierPublicKey, generate_keypair


def per_op_us(fn: Callable[[], object], count: int, repeats: int = 3) -> float:
    """Best of ``repeats`` runs of ``count`` calls, in microseconds per call."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(count):
            fn()
        best = min(best, time.perf_counter() - start)
    return best / count * 1e6


def run(quick: bool = False) -> list[Result]:
    scale = 0.2 if quick else 1.0
    pk, sk = generate_keypair(2048)
    their_pk = phe.PaillierPublicKey(int(pk.n))
    their_sk = phe.PaillierPrivateKey(their_pk, int(sk.p), int(sk.q))
    message = secrets.randbits(64)
    peer = "python-paillier 1.5 (gmpy2)"

    phe_encrypt = per_op_us(lambda: their_pk.encrypt(message), max(10, int(100 * scale)))
    their_ct = their_pk.encrypt(message)
    phe_decrypt = per_op_us(lambda: their_sk.decrypt(their_ct), max(20, int(300 * scale)))

    textbook_pk = PaillierPublicKey(int(pk.n))
    textbook_pk.use_obfuscator(TextbookObfuscator(textbook_pk))
    textbook = per_op_us(lambda: textbook_pk.encrypt(message), max(10, int(100 * scale)))

    short_pk = PaillierPublicKey(int(pk.n))
    short_ob = ShortExponentObfuscator(short_pk)  # default window: 12 bits
    short_pk.use_obfuscator(short_ob)
    short = per_op_us(lambda: short_pk.encrypt(message), max(100, int(1000 * scale)))

    pooled_pk = PaillierPublicKey(int(pk.n))
    count = max(500, int(4000 * scale))
    pool = ObfuscatorPool(short_ob, capacity=3 * count, background=False)
    pool.fill()  # offline phase, not timed
    pooled_pk.use_obfuscator(pool)
    pooled = per_op_us(lambda: pooled_pk.encrypt(message), count)
    assert pool.misses == 0, "pool ran dry during the online measurement"

    ours_ct = PaillierCiphertext(pk, short_pk.encrypt(message).value)
    decrypt = per_op_us(lambda: sk.decrypt(ours_ct), max(20, int(300 * scale)))
    assert sk.decrypt(ours_ct) == message == their_sk.decrypt(their_ct)

    unit = "us/op"
    return [
        compare("paillier_encrypt_short_exponent", unit, short, peer, phe_encrypt, 25),
        compare("paillier_encrypt_textbook", unit, textbook, peer, phe_encrypt),
        compare("paillier_encrypt_pooled", unit, pooled, peer, phe_encrypt, 1000),
        compare("paillier_decrypt", unit, decrypt, peer, phe_decrypt, 1.0),
    ]
