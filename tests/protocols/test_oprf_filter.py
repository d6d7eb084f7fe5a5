"""P2 in process: the filter probe equals the plaintext predicate; keys rotate with the epoch."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mpc.crypto.curve25519 import OprfClient
from mpc.protocols import oprf_filter

ids = st.lists(st.text(alphabet="0123456789", min_size=1, max_size=18), max_size=30, unique=True)


@given(members=ids, asked=ids)
def test_probe_matches_membership(members: list[str], asked: list[str]) -> None:
    key = oprf_filter.epoch_key(b"m" * 32, "public-security", "local-resident", 7)
    published = oprf_filter.build_filter(key, members)
    assert published == sorted(published) and all(len(t) == 8 for t in published)
    client = OprfClient(domain=oprf_filter.domain("public-security", "local-resident"))
    query = client.blind(asked, parallel=False)
    tags = client.finalize(query, key.evaluate_blinded(query.points, parallel=False), parallel=False)
    assert oprf_filter.probe(published, tags) == [int(a in set(members)) for a in asked]


def test_keys_rotate_per_epoch_and_predicate() -> None:
    master = b"k" * 32
    a = oprf_filter.epoch_key(master, "o", "p", 1).evaluate_ids(["x"], parallel=False)
    assert a == oprf_filter.epoch_key(master, "o", "p", 1).evaluate_ids(["x"], parallel=False)
    assert a != oprf_filter.epoch_key(master, "o", "p", 2).evaluate_ids(["x"], parallel=False)
    assert a != oprf_filter.epoch_key(master, "o", "q", 1).evaluate_ids(["x"], parallel=False)
    assert oprf_filter.epoch_of(86_400 * 3 + 5, 24) == 3
