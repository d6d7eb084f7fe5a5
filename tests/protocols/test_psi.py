"""P1 cardinality against a plaintext intersection, including empty and full overlaps."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mpc.protocols import psi

ids = st.lists(st.text(alphabet="0123456789X", min_size=1, max_size=18), max_size=40)


@given(mine=ids, theirs=ids)
def test_cardinality_matches_plaintext(mine: list[str], theirs: list[str]) -> None:
    state, sent = psi.requester_encrypt(mine)
    assert len(sent) == len(set(mine))
    cipher, own = psi.owner_encrypt_own(list(dict.fromkeys(theirs)))
    double = psi.owner_respond(cipher, sent)
    assert psi.requester_count(state, own, double) == len(set(mine) & set(theirs))


def test_all_and_none_matching() -> None:
    people = [f"{i:018d}" for i in range(50)]
    for theirs, expected in ((people, 50), ([f"x{i}" for i in range(50)], 0), ([], 0)):
        state, sent = psi.requester_encrypt(people)
        cipher, own = psi.owner_encrypt_own(theirs)
        assert psi.requester_count(state, own, psi.owner_respond(cipher, sent)) == expected


def test_shuffle_is_a_permutation() -> None:
    items = [bytes([i]) for i in range(100)]
    out = psi.shuffled(items)
    assert sorted(out) == items and out != items
