"""Paillier: correctness against plaintext, homomorphisms, serialisation, python-paillier interop."""

from __future__ import annotations

import phe
import pytest
from gmpy2 import mpz
from hypothesis import given
from hypothesis import strategies as st

from mpc.crypto.paillier import (
    PaillierCiphertext,
    PaillierPrivateKey,
    PaillierPublicKey,
    generate_keypair,
)

KeyPair = tuple[PaillierPublicKey, PaillierPrivateKey]


def plaintexts(pk: PaillierPublicKey) -> st.SearchStrategy[int]:
    n = int(pk.n)
    return st.one_of(st.sampled_from([0, 1, 2, n - 1, n - 2, n // 2]), st.integers(0, n - 1))


@pytest.mark.parametrize("bits", [2048, 3072])
def test_keygen_sizes(bits: int) -> None:
    pk, sk = generate_keypair(bits)
    assert pk.bits == bits
    assert sk.p * sk.q == pk.n and sk.p != sk.q
    assert sk.decrypt(pk.encrypt(123456789)) == 123456789


def test_keygen_rejects_unsupported_size() -> None:
    with pytest.raises(ValueError, match="key size"):
        generate_keypair(1000)


@given(data=st.data())
def test_roundtrip_and_homomorphisms(keypair_1024: KeyPair, data: st.DataObject) -> None:
    pk, sk = keypair_1024
    n = int(pk.n)
    a = data.draw(plaintexts(pk))
    b = data.draw(plaintexts(pk))
    k = data.draw(st.one_of(st.sampled_from([0, 1, -1, 2]), st.integers(-(2**80), 2**80)))
    ca, cb = pk.encrypt(a), pk.encrypt(b)
    assert sk.decrypt(ca) == a
    assert sk.decrypt(ca + cb) == (a + b) % n
    assert sk.decrypt(ca + b) == (a + b) % n
    assert sk.decrypt(b + ca) == (a + b) % n
    assert sk.decrypt(ca * k) == (a * k) % n
    assert sk.decrypt(k * ca) == (a * k) % n
    assert sk.decrypt(pk.rerandomize(ca)) == a


def test_encryption_is_randomised(keypair_1024: KeyPair) -> None:
    pk, _ = keypair_1024
    assert pk.encrypt(7).value != pk.encrypt(7).value
    assert pk.rerandomize(pk.encrypt(7)).value != pk.encrypt(7).value


@pytest.mark.parametrize("bad", [-1, "n"])
def test_plaintext_out_of_range_is_rejected(keypair_1024: KeyPair, bad: object) -> None:
    pk, _ = keypair_1024
    value = int(pk.n) if bad == "n" else bad
    with pytest.raises(ValueError, match=r"plaintext must lie in \[0, n\)"):
        pk.encrypt(value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"plaintext must lie in \[0, n\)"):
        pk.encrypt_batch([1, value])  # type: ignore[list-item]


def test_batch_encrypt_decrypt(keypair_1024: KeyPair) -> None:
    pk, sk = keypair_1024
    values = [0, 1, 2**64, int(pk.n) - 1, 42]
    assert sk.decrypt_batch(pk.encrypt_batch(values)) == values


def test_mixing_keys_is_rejected(keypair_1024: KeyPair, keypair_2048: KeyPair) -> None:
    pk1, sk1 = keypair_1024
    pk2, _ = keypair_2048
    with pytest.raises(ValueError, match="different Paillier key"):
        _ = pk1.encrypt(1) + pk2.encrypt(1)
    with pytest.raises(ValueError, match="different Paillier key"):
        sk1.decrypt(pk2.encrypt(1))


def test_key_serialisation_roundtrip(keypair_1024: KeyPair) -> None:
    pk, sk = keypair_1024
    pk2 = PaillierPublicKey.from_bytes(pk.to_bytes())
    sk2 = PaillierPrivateKey.from_bytes(sk.to_bytes())
    assert pk2 == pk and pk2.fingerprint() == pk.fingerprint()
    assert sk2.decrypt(pk2.encrypt(99)) == 99
    assert len(pk.to_bytes()) <= 2 + 4 + 1024 // 8
    assert "<secret>" in repr(sk) and str(int(sk.p)) not in repr(sk)


@pytest.mark.parametrize(
    "blob", [b"", b"P1", b"P1\x00\x00\x00\x09abc", b"S1\x00\x00\x00\x01\x05", b"XX\x00\x00\x00\x01\x05"]
)
def test_malformed_key_bytes_are_rejected(blob: bytes) -> None:
    with pytest.raises(ValueError):
        PaillierPublicKey.from_bytes(blob)


def test_ciphertext_serialisation(keypair_1024: KeyPair) -> None:
    pk, sk = keypair_1024
    cts = pk.encrypt_batch([5, 6, 7])
    blob = pk.ciphertexts_to_bytes(cts)
    assert len(blob) == 3 * pk.ciphertext_bytes == 3 * 256
    assert sk.decrypt_batch(pk.ciphertexts_from_bytes(blob)) == [5, 6, 7]
    assert sk.decrypt(pk.ciphertext_from_bytes(cts[0].to_bytes())) == 5
    with pytest.raises(ValueError, match="multiple of"):
        pk.ciphertexts_from_bytes(blob[:-1])
    with pytest.raises(ValueError, match="out of range"):
        pk.ciphertext_from_bytes(bytes(pk.ciphertext_bytes))
    with pytest.raises(ValueError, match="out of range"):
        pk.ciphertext_from_bytes(b"\xff" * pk.ciphertext_bytes)


@given(data=st.data())
def test_interop_with_python_paillier_both_ways(keypair_1024: KeyPair, data: st.DataObject) -> None:
    pk, sk = keypair_1024
    their_pk = phe.PaillierPublicKey(int(pk.n))
    their_sk = phe.PaillierPrivateKey(their_pk, int(sk.p), int(sk.q))
    m = data.draw(plaintexts(pk))
    # ours -> theirs
    assert their_sk.raw_decrypt(int(pk.encrypt(m).value)) == m
    # theirs -> ours
    theirs = their_pk.raw_encrypt(m)
    assert sk.decrypt(PaillierCiphertext(pk, mpz(theirs))) == m
    # homomorphic mix of their ciphertext and ours
    mixed = PaillierCiphertext(pk, mpz(theirs)) + pk.encrypt(5)
    assert their_sk.raw_decrypt(int(mixed.value)) == (m + 5) % int(pk.n)


def test_interop_with_python_paillier_generated_keys() -> None:
    their_pk, their_sk = phe.generate_paillier_keypair(n_length=1024)
    pk = PaillierPublicKey(their_pk.n)
    sk = PaillierPrivateKey(pk, their_sk.p, their_sk.q)
    enc = their_pk.encrypt(31337)
    assert sk.decrypt(PaillierCiphertext(pk, mpz(enc.ciphertext()))) == 31337
    assert their_sk.decrypt(phe.EncryptedNumber(their_pk, int(pk.encrypt(2718).value))) == 2718
