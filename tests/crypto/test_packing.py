"""Slot packing: exact at slot boundaries, and compatible with homomorphic addition."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpc.crypto.packing import DEFAULT_SLOT_BITS, SlotPacking
from mpc.crypto.paillier import PaillierPrivateKey, PaillierPublicKey

LIMIT = 1 << DEFAULT_SLOT_BITS
slot_values = st.one_of(st.sampled_from([0, 1, LIMIT - 1, LIMIT - 2, 2**64 - 1, 2**64]), st.integers(0, LIMIT - 1))


def test_default_layout_for_2048_bits() -> None:
    packing = SlotPacking.for_modulus((1 << 2047) + 1)
    assert (packing.slot_bits, packing.slots) == (105, 19)
    assert packing.total_bits == 1995 < 2047


@given(values=st.lists(slot_values, min_size=0, max_size=19), data=st.data())
def test_encode_decode_exact(values: list[int], data: st.DataObject) -> None:
    packing = SlotPacking(105, 19)
    offset = data.draw(st.integers(0, 19 - len(values)))
    packed = packing.encode(values, offset)
    assert packing.decode(packed, len(values), offset) == values
    everything = packing.decode(packed)
    assert everything[:offset] == [0] * offset
    assert everything[offset + len(values) :] == [0] * (19 - offset - len(values))


@pytest.mark.parametrize("bad", [-1, LIMIT, LIMIT + 5])
def test_values_that_do_not_fit_are_rejected(bad: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        SlotPacking().encode([0, bad])


def test_too_many_values_or_bad_offset_are_rejected() -> None:
    packing = SlotPacking(8, 4)
    with pytest.raises(ValueError, match="do not fit"):
        packing.encode([1] * 5)
    with pytest.raises(ValueError, match="do not fit"):
        packing.encode([1, 2], offset=3)
    with pytest.raises(ValueError, match="cannot read"):
        packing.decode(0, 2, offset=3)
    with pytest.raises(ValueError, match="wider"):
        packing.decode(1 << 32)


@given(
    left=st.lists(st.integers(0, 2**104 - 1), min_size=9, max_size=9),
    right=st.lists(st.integers(0, 2**104 - 1), min_size=9, max_size=9),
)
def test_slotwise_homomorphic_addition(
    keypair_1024: tuple[PaillierPublicKey, PaillierPrivateKey], left: list[int], right: list[int]
) -> None:
    pk, sk = keypair_1024
    packing = SlotPacking.for_modulus(int(pk.n))
    assert packing.slots == 9
    total = pk.encrypt(packing.encode(left)) + pk.encrypt(packing.encode(right))
    assert packing.decode(sk.decrypt(total)) == [a + b for a, b in zip(left, right, strict=True)]


def test_slot_staggered_groups_add_without_overlap(
    keypair_1024: tuple[PaillierPublicKey, PaillierPrivateKey],
) -> None:
    pk, sk = keypair_1024
    packing = SlotPacking.for_modulus(int(pk.n))
    rows = [[11, 12], [21, 22], [31, 32]]
    cts = [pk.encrypt(packing.encode(r, offset=2 * j)) for j, r in enumerate(rows)]
    total = cts[0] + cts[1] + cts[2]
    assert packing.decode(sk.decrypt(total), 6) == [11, 12, 21, 22, 31, 32]
