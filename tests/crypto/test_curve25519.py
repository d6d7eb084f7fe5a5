"""Curve25519: RFC 7748 known answers, hash-to-curve, commutativity and the OPRF."""

from __future__ import annotations

import gmpy2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpc.crypto import curve25519 as c25519
from mpc.crypto.curve25519 import (
    CommutativeCipher,
    InvalidPointError,
    OprfClient,
    OprfServer,
    hash_and_multiply,
    hash_to_curve,
    x25519,
)

RFC7748_VECTORS = [
    (
        "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
        "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
        "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
    ),
    (
        "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
        "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
        "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
    ),
]
BASE = bytes([9]) + bytes(31)
ids = st.lists(st.one_of(st.text(max_size=20), st.binary(max_size=24)), max_size=12)


@pytest.mark.parametrize(("scalar", "u", "expected"), RFC7748_VECTORS)
def test_rfc7748_scalar_multiplication(scalar: str, u: str, expected: str) -> None:
    assert x25519(bytes.fromhex(scalar), bytes.fromhex(u)).hex() == expected


@pytest.mark.parametrize(
    ("iterations", "expected"),
    [
        (1, "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079"),
        (1000, "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51"),
    ],
)
def test_rfc7748_iterated(iterations: int, expected: str) -> None:
    k = u = BASE
    for _ in range(iterations):
        k, u = x25519(k, u), k
    assert k.hex() == expected


def test_rfc7748_diffie_hellman() -> None:
    alice = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    bob = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    alice_pub, bob_pub = x25519(alice, BASE), x25519(bob, BASE)
    assert alice_pub.hex() == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    assert bob_pub.hex() == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
    shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    assert x25519(alice, bob_pub).hex() == x25519(bob, alice_pub).hex() == shared


@given(identifier=st.binary(max_size=64), domain=st.binary(max_size=16))
def test_hash_to_curve_lands_on_the_curve_not_the_twist(identifier: bytes, domain: bytes) -> None:
    u_bytes = hash_to_curve(identifier, domain)
    u = int.from_bytes(u_bytes, "little")
    assert u < c25519.FIELD_PRIME
    rhs = (u**3 + c25519.MONTGOMERY_A * u**2 + u) % c25519.FIELD_PRIME
    assert gmpy2.legendre(rhs, c25519.FIELD_PRIME) == 1
    assert hash_to_curve(identifier, domain) == u_bytes  # deterministic


def test_hash_to_curve_is_domain_separated() -> None:
    assert hash_to_curve(b"110101199003077777", b"tax") != hash_to_curve(b"110101199003077777", b"housing")
    assert hash_to_curve(b"a") != hash_to_curve(b"b")


@given(items=ids)
def test_commutative_cipher_commutes(items: list[str | bytes]) -> None:
    a, b = CommutativeCipher.generate(b"psi"), CommutativeCipher.generate(b"psi")
    assert b.encrypt_points(a.encrypt_ids(items)) == a.encrypt_points(b.encrypt_ids(items))


@given(items=ids)
def test_oprf_unblinded_equals_direct_evaluation(items: list[str | bytes]) -> None:
    server, client = OprfServer.generate(b"tax"), OprfClient(b"tax")
    query = client.blind(items)
    assert len(query.points) == len(set(i.encode() if isinstance(i, str) else i for i in items))
    tags = client.finalize(query, server.evaluate_blinded(query.points))
    assert tags == server.evaluate_ids(items)
    assert all(len(t) == 8 for t in tags)


def test_oprf_depends_on_key_and_domain() -> None:
    server = OprfServer.generate(b"tax")
    other = OprfServer.generate(b"tax")
    assert server.evaluate_ids(["x"]) != other.evaluate_ids(["x"])
    client = OprfClient(b"housing")  # wrong domain: no match
    query = client.blind(["x"])
    assert client.finalize(query, server.evaluate_blinded(query.points)) != server.evaluate_ids(["x"])


def test_blinding_pair_inverts_mod_group_order() -> None:
    for _ in range(50):
        a_bytes, s_bytes = c25519._blinding_pair()
        a, s = int.from_bytes(a_bytes, "little"), int.from_bytes(s_bytes, "little")
        assert c25519.is_clamped(a) and c25519.is_clamped(s)
        assert a * s % c25519.GROUP_ORDER == 1


@pytest.mark.parametrize(
    ("point", "message"),
    [(bytes(32), "not a valid"), ((1).to_bytes(32, "little"), "not a valid"), (b"short", "has 5 bytes")],
)
def test_invalid_peer_points_are_rejected(point: bytes, message: str) -> None:
    server = OprfServer.generate()
    with pytest.raises(InvalidPointError, match=message):
        server.evaluate_blinded([hash_to_curve(b"ok"), point])


def test_parallel_batches_equal_sequential() -> None:
    items = [f"{i:018d}" for i in range(c25519.PARALLEL_THRESHOLD + 100)]
    key = CommutativeCipher.generate().scalar
    assert hash_and_multiply(key, items, parallel=True) == hash_and_multiply(key, items, parallel=False)


@pytest.mark.slow
def test_rfc7748_iterated_one_million() -> None:
    k = u = BASE
    for _ in range(1_000_000):
        k, u = x25519(k, u), k
    assert k.hex() == "7c3911e0ab2586fd864497297e575e6f3bc601c0883c30df5f4dd2d24f665424"


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_x25519_agrees_with_openssl(scalar: bytes, u: bytes) -> None:
    """libsodium (ours) and OpenSSL (through ``cryptography``) compute the same X25519 on any
    input, low-order points included (both refuse them)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

    try:
        expected = X25519PrivateKey.from_private_bytes(scalar).exchange(X25519PublicKey.from_public_bytes(u))
    except ValueError:
        with pytest.raises(InvalidPointError):
            x25519(scalar, u)
    else:
        assert x25519(scalar, u) == expected


def test_tags_in_the_workers_equal_tags_of_points() -> None:
    points = [hash_to_curve(f"{i}".encode()) for i in range(c25519.PARALLEL_THRESHOLD + 7)]
    key = CommutativeCipher.generate()
    blob = key.tag_points(points)
    assert blob == b"".join(c25519.oprf_tag(p) for p in key.encrypt_points(points, parallel=False))
    assert blob == key.tag_points(points, parallel=False)
