"""Obfuscators: every kind yields n-th residues (encryptions of 0) and the pool never reuses one."""

from __future__ import annotations

from pathlib import Path

import pytest
from gmpy2 import mpz
from hypothesis import given, settings
from hypothesis import strategies as st

from mpc.crypto.obfuscators import (
    CrtObfuscator,
    Obfuscator,
    ObfuscatorPool,
    ShortExponentObfuscator,
    TextbookObfuscator,
    encrypt_parallel,
)
from mpc.crypto.paillier import PaillierPrivateKey, PaillierPublicKey, generate_keypair

KeyPair = tuple[PaillierPublicKey, PaillierPrivateKey]


def _fresh(pk: PaillierPublicKey) -> PaillierPublicKey:
    return PaillierPublicKey(int(pk.n))


@pytest.mark.parametrize("kind", ["textbook", "short-w4", "short-w8", "short-w12-partial", "crt"])
def test_obfuscators_are_distinct_nth_residues(keypair_1024: KeyPair, kind: str) -> None:
    pk, sk = keypair_1024
    pk = _fresh(pk)
    ob: Obfuscator
    if kind == "textbook":
        ob = TextbookObfuscator(pk)
    elif kind == "short-w4":
        ob = ShortExponentObfuscator(pk, window_bits=4)
    elif kind == "short-w8":
        ob = ShortExponentObfuscator(pk, window_bits=8)
    elif kind == "short-w12-partial":
        ob = ShortExponentObfuscator(pk, window_bits=12, exponent_bits=100)  # partial top window
    else:
        ob = CrtObfuscator(sk)
    rhos = [ob.next() for _ in range(20)]
    assert len({int(r) for r in rhos}) == 20
    # An n-th residue is an encryption of zero.
    assert all(sk.decrypt_raw(r) == 0 for r in rhos)
    pk.use_obfuscator(ob)
    assert sk.decrypt_batch(pk.encrypt_batch([0, 1, 12345, int(pk.n) - 1])) == [0, 1, 12345, int(pk.n) - 1]


def test_short_exponent_matches_plain_power(keypair_1024: KeyPair) -> None:
    pk, _ = keypair_1024
    ob = ShortExponentObfuscator(pk, window_bits=5, exponent_bits=64)
    digits = ob._random_digits(3)
    for row, power in zip(digits.tolist(), ob._powers(digits), strict=True):
        x = sum(d << (5 * i) for i, d in enumerate(row))
        assert x < 2**64
        assert power == pow(int(ob.base), x, int(pk.nsquare))


def test_short_exponent_rejects_bad_window(keypair_1024: KeyPair) -> None:
    with pytest.raises(ValueError, match="window_bits"):
        ShortExponentObfuscator(keypair_1024[0], window_bits=0)


def test_pool_serves_fills_and_counts_misses(keypair_1024: KeyPair) -> None:
    pk, sk = keypair_1024
    pool = ObfuscatorPool(ShortExponentObfuscator(pk, window_bits=6), capacity=8, background=False)
    assert len(pool) == 0
    first = pool.next()
    assert pool.misses == 1 and sk.decrypt_raw(first) == 0
    pool.fill()
    assert len(pool) == 8
    drawn = {int(pool.next()) for _ in range(8)}
    assert len(drawn) == 8 and pool.misses == 1 and len(pool) == 0


def test_pool_background_worker_refills(keypair_1024: KeyPair) -> None:
    pk, _ = keypair_1024
    pool = ObfuscatorPool(ShortExponentObfuscator(pk, window_bits=6), capacity=16)
    try:
        import time

        deadline = time.monotonic() + 30
        while len(pool) < 16 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(pool) == 16
    finally:
        pool.stop()


def test_pool_persistence_consumes_the_file(keypair_1024: KeyPair, tmp_path: Path) -> None:
    pk, sk = keypair_1024
    source = ShortExponentObfuscator(pk, window_bits=6)
    pool = ObfuscatorPool(source, capacity=10, background=False)
    pool.fill()
    before = list(pool._items)
    path = tmp_path / "pool.bin"
    assert pool.save(path) == 10
    assert len(pool) == 0  # saved obfuscators left memory: no double use
    assert path.stat().st_mode & 0o777 == 0o600
    restored = ObfuscatorPool(source, capacity=10, background=False)
    assert restored.load(path) == 10
    assert not path.exists()  # consumed
    assert list(restored._items) == before
    assert all(sk.decrypt_raw(restored.next()) == 0 for _ in range(10))


def test_pool_load_rejects_other_key_and_damage(keypair_1024: KeyPair, tmp_path: Path) -> None:
    pk, _ = keypair_1024
    other_pk, _ = generate_keypair(1024)
    pool = ObfuscatorPool(TextbookObfuscator(pk), capacity=2, background=False)
    pool.fill()
    path = tmp_path / "pool.bin"
    pool.save(path)
    with pytest.raises(ValueError, match="another Paillier key"):
        ObfuscatorPool(TextbookObfuscator(other_pk), background=False).load(path)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(ValueError, match="truncated"):
        ObfuscatorPool(TextbookObfuscator(pk), background=False).load(path)
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not an obfuscator pool"):
        ObfuscatorPool(TextbookObfuscator(pk), background=False).load(path)


def test_parallel_obfuscators_are_distinct_nth_residues(keypair_1024: KeyPair) -> None:
    from mpc.crypto.obfuscators import parallel_obfuscators

    pk, sk = keypair_1024
    rhos = parallel_obfuscators(pk, 37, window_bits=6)
    assert len(rhos) == 37 and len({int(r) for r in rhos}) == 37
    assert all(sk.decrypt_raw(r) == 0 for r in rhos)
    assert parallel_obfuscators(pk, 0) == []


def test_backend_obfuscators_from_threads_are_distinct_nth_residues(keypair_1024: KeyPair) -> None:
    """The service's source: batches from the compute backend's workers, drawn by several threads."""
    from concurrent.futures import ThreadPoolExecutor

    from mpc.crypto.obfuscators import BackendObfuscator

    pk, sk = keypair_1024
    source = BackendObfuscator(pk, batch=16, window_bits=6)
    with ThreadPoolExecutor(4) as threads:
        rhos = list(threads.map(lambda _: source.next(), range(40)))  # three batches and part of a fourth
    assert len({int(r) for r in rhos}) == 40
    assert all(sk.decrypt_raw(r) == 0 for r in rhos)
    c = pk.encrypt(123456, obfuscator=source.next())
    assert sk.decrypt(c) == 123456


def test_a_saved_table_is_read_back_only_for_its_key_and_window(keypair_1024: KeyPair, tmp_path: Path) -> None:
    """A short-exponent table saved by one process is read by the next (same obfuscators' law:
    n-th residues, encryptions decrypt); another key, another window, a truncated or altered
    file is not used."""
    pk, sk = keypair_1024
    pk = _fresh(pk)
    built = ShortExponentObfuscator(pk, window_bits=4)
    path = tmp_path / "table.bin"
    built.save(path)
    loaded = ShortExponentObfuscator.load(path, pk, 4)
    assert loaded is not None and loaded.base == built.base and [list(r) for r in loaded._table] == built._table
    assert all(sk.decrypt_raw(loaded.next()) == 0 for _ in range(10))
    other_pk, _ = generate_keypair(1024)
    assert ShortExponentObfuscator.load(path, other_pk, 4) is None
    assert ShortExponentObfuscator.load(path, pk, 8) is None
    data = path.read_bytes()
    (tmp_path / "short.bin").write_bytes(data[:-1])
    assert ShortExponentObfuscator.load(tmp_path / "short.bin", pk, 4) is None
    width, windows, size = (int(pk.nsquare).bit_length() + 7) // 8, len(built._table), 16
    entry = len(data) - width * windows * size + ((windows - 1) * size + 2) * width  # last row's g^2
    altered = bytearray(data)
    altered[entry + width - 1] ^= 1  # no longer the square of its row's generator
    (tmp_path / "altered.bin").write_bytes(bytes(altered))
    assert ShortExponentObfuscator.load(tmp_path / "altered.bin", pk, 4) is None
    assert ShortExponentObfuscator.load(tmp_path / "missing.bin", pk, 4) is None


@settings(deadline=None, max_examples=20)
@given(data=st.data())
def test_encrypt_parallel_decrypts_to_the_plaintexts(keypair_1024: KeyPair, data: st.DataObject) -> None:
    """A whole table's encryption on the compute backend: fixed-width ciphertexts, in order, each
    decrypting to its plaintext (edges included: 0, 1, n - 1)."""
    pk, sk = keypair_1024
    n = int(pk.n)
    plaintexts = data.draw(st.lists(st.one_of(st.sampled_from([0, 1, n - 1]), st.integers(0, n - 1)), max_size=80))
    blob = encrypt_parallel(pk, plaintexts, window_bits=6)
    width = pk.ciphertext_bytes
    assert len(blob) == len(plaintexts) * width
    ciphertexts = [int.from_bytes(blob[i : i + width], "big") for i in range(0, len(blob), width)]
    assert [sk.decrypt_raw(mpz(c)) for c in ciphertexts] == plaintexts
    assert len(set(ciphertexts)) == len(ciphertexts)  # fresh randomness for each, even for equal plaintexts


def test_encrypt_parallel_refuses_a_plaintext_outside_the_key(keypair_1024: KeyPair) -> None:
    pk, _ = keypair_1024
    with pytest.raises(ValueError):
        encrypt_parallel(pk, [int(pk.n)])
