"""P1 ECDH-PSI (intersection and cardinality modes) against a plaintext intersection, including
empty and full overlaps, duplicates on the requester's side and chunked runs."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mpc.crypto.prg import random_permutation
from mpc.protocols import psi

ids = st.lists(st.text(alphabet="0123456789X", min_size=1, max_size=18), max_size=40)


def run(mine: list[str], theirs: list[str], chunk: int = psi.CHUNK) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Both sides in one process, chunk by chunk as between daemons."""
    requester, owner = psi.Requester.for_ids(mine), psi.Owner.for_ids(list(dict.fromkeys(theirs)))
    owner_tags = np.concatenate(
        [np.zeros(0, np.uint64)]
        + [requester.owner_tags(owner.encrypt_own(part)) for part in psi.chunks(owner.count, chunk)]
    )
    answers = np.concatenate(
        [np.zeros(0, np.uint64)]
        + [owner.answer(requester.encrypt(part)) for part in psi.chunks(len(requester.ids), chunk)]
    )
    return requester.ids, owner_tags, answers


@settings(deadline=None)
@given(mine=ids, theirs=ids, chunk=st.integers(1, 50))
def test_intersection_and_cardinality_match_plaintext(mine: list[str], theirs: list[str], chunk: int) -> None:
    distinct, owner_tags, answers = run(mine, theirs, chunk)
    assert distinct == list(dict.fromkeys(mine)) and len(owner_tags) == len(set(theirs))
    found = psi.intersection(owner_tags, answers)
    assert [i for i, f in zip(distinct, found, strict=True) if f] == [i for i in distinct if i in set(theirs)]
    assert psi.cardinality(owner_tags, psi.shuffle(answers)) == len(set(mine) & set(theirs))


def test_all_and_none_matching() -> None:
    people = [f"{i:018d}" for i in range(50)]
    for theirs, expected in ((people, 50), ([f"x{i}" for i in range(50)], 0), ([], 0)):
        _, owner_tags, answers = run(people, theirs)
        assert psi.cardinality(owner_tags, answers) == expected
    _, owner_tags, answers = run([], people)
    assert psi.intersection(owner_tags, answers).shape == (0,)


def test_owner_points_are_shuffled_and_fresh_per_session() -> None:
    people = [f"{i:018d}" for i in range(64)]
    first, second = psi.Owner.for_ids(people), psi.Owner.for_ids(people)
    assert sorted(first.order.tolist()) == list(range(64)) and first.order.tolist() != list(range(64))
    assert set(first.encrypt_own(slice(0, 64))).isdisjoint(second.encrypt_own(slice(0, 64)))  # fresh keys


def test_random_permutation() -> None:
    order = random_permutation(1000)
    assert sorted(order.tolist()) == list(range(1000)) and order.tolist() != list(range(1000))
    assert random_permutation(0).shape == (0,)
