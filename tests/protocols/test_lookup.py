"""P3 and P1 masked lookups, in process, against plaintext; row layouts; bucket arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpc.crypto.curve25519 import OprfServer
from mpc.crypto.paillier import PaillierCiphertext, PaillierPrivateKey, PaillierPublicKey
from mpc.protocols import lookup
from mpc.sharing import ring
from mpc.sharing.runtime import run_in_process
from tests.protocols import threshold
from tests.sharing.strategies import EDGES

KeyPair = tuple[PaillierPublicKey, PaillierPrivateKey]
BOUNDS = (-(2**62), 2**62 - 1)


def test_bucket_bits_keep_the_anonymity_set() -> None:
    assert lookup.bucket_bits_for(0) == 0
    assert lookup.bucket_bits_for(1023) == 0
    assert lookup.bucket_bits_for(2048) == 1
    assert lookup.bucket_bits_for(1_000_000) == 9  # 1 953 rows per bucket on average
    for rows in (1, 500, 5000, 123_456):
        bits = lookup.bucket_bits_for(rows, 256)
        assert rows >> bits >= 256 or bits == 0


def test_bucket_index_partitions_rows() -> None:
    tags = OprfServer.generate().evaluate_ids([str(i) for i in range(3000)], parallel=False)
    index = lookup.BucketIndex.build(tags, 3)
    seen = np.concatenate([index.rows(b) for b in range(8)])
    assert sorted(seen.tolist()) == list(range(3000))
    for b in range(8):
        assert all(lookup.bucket_of(tags[i], 3) == b for i in index.rows(b).tolist())


def test_bucket_array_equals_bucket_of() -> None:
    tags = OprfServer.generate().evaluate_ids([str(i) for i in range(500)], parallel=False)
    for bits in (0, 1, 5, 12):
        assert lookup.bucket_array(tags, bits).tolist() == [lookup.bucket_of(t, bits) for t in tags]


def test_row_layout_widths_follow_the_bounds() -> None:
    layout = lookup.RowLayout.for_bounds(["income", "flag"], [(-(10**12), 10**12), (0, 1)], 2048)
    assert layout.columns == ("income", "flag")
    assert layout.value_bits == (41, 1)
    assert layout.slot_bits == (82, 42)
    assert layout.rows_per_plaintext == 2047 // 124
    wide = lookup.RowLayout.for_bounds(["v"], [BOUNDS], 2048)
    assert wide.value_bits == (63,) and wide.rows_per_plaintext == 2047 // 104
    with pytest.raises(ValueError, match="do not fit"):
        lookup.RowLayout.for_bounds([f"c{i}" for i in range(20)], [BOUNDS] * 20, 2048)
    with pytest.raises(ValueError, match="does not fit"):
        layout.plaintexts(np.array([[2**42 - 10**12, 0]], dtype=np.int64), np.zeros(1, dtype=np.int64))


def test_plan_groups_gives_distinct_cells_and_keeps_fixed_positions() -> None:
    rng = np.random.default_rng(5)
    fixed = np.where(rng.random(500) < 0.7, rng.integers(0, 9, 500), -1)
    plan = lookup.plan_groups(fixed, 9)
    mean = 500 / 9
    assert plan.count == int(np.ceil(mean + 5 * np.sqrt(mean))) + 1  # the row count alone sets it
    cells = plan.groups * 9 + plan.positions
    assert len(set(cells.tolist())) == 500 and plan.groups.min() >= 0 and plan.groups.max() < plan.count
    assert (plan.positions[fixed >= 0] == fixed[fixed >= 0]).all()
    assert lookup.plan_groups(np.zeros(0, dtype=np.int64), 9).count == 0
    crowded = np.zeros(100, dtype=np.int64)  # every row in one position class: one ciphertext each
    assert lookup.plan_groups(crowded, 9).count == 100


def test_plan_groups_hides_order_and_presence() -> None:
    """Which ciphertext a row lands in is independent of its place in the batch and of whether it
    matched: no rank correlation with the row index, and matched and free rows spread alike."""
    rng = np.random.default_rng(9)
    fixed = np.where(np.arange(6000) < 3000, rng.integers(0, 24, 6000), -1)  # first half matched
    plan = lookup.plan_groups(fixed, 24)
    rank = np.argsort(np.argsort(plan.groups))
    assert abs(np.corrcoef(np.arange(6000), rank)[0, 1]) < 0.05
    matched_mean, free_mean = plan.groups[:3000].mean() / plan.count, plan.groups[3000:].mean() / plan.count
    assert abs(matched_mean - free_mean) < 0.05


def _owner_table(
    pk: PaillierPublicKey, layout: lookup.RowLayout, values: list[int]
) -> tuple[list[bytes], list[PaillierCiphertext]]:
    tags = OprfServer.generate().evaluate_ids([str(i) for i in range(len(values))], parallel=False)
    plain = layout.plaintexts(np.array(values, dtype=np.int64).reshape(-1, 1), layout.positions(tags))
    return tags, pk.encrypt_batch(plain)


@settings(max_examples=12, deadline=None)
@given(
    values=st.lists(st.one_of(st.sampled_from(EDGES), st.integers(-(2**40), 2**40)), min_size=1, max_size=30),
    t=st.integers(-(2**40), 2**40),
    op=st.sampled_from(sorted(threshold.COMPARISONS)),
    packed=st.booleans(),
    bounded=st.booleans(),
    data=st.data(),
)
def test_lookup_then_threshold_matches_plaintext(
    keypair_1024: KeyPair, values: list[int], t: int, op: str, packed: bool, bounded: bool, data: st.DataObject
) -> None:
    """P3 (one row per ciphertext, positions summed away) and P1 (rows packed by position) give
    shares of the value for every asked row, absent and padding rows reading as zero; presence is
    what the requester learned from the tags."""
    pk, sk = keypair_1024
    bounds = (min(values), max(values)) if bounded else BOUNDS
    layout = lookup.RowLayout.for_bounds(["v"], [bounds], int(pk.n).bit_length())
    tags, ciphertexts = _owner_table(pk, layout, values)
    table = dict(zip(tags, ciphertexts, strict=True))
    asked = data.draw(st.lists(st.integers(-1, len(values) + 2), min_size=1, max_size=40))  # -1: padding, >= n: absent
    selected = [table[tags[i]] if 0 <= i < len(values) else None for i in asked]
    if packed:
        fixed = np.array([layout.positions([tags[i]])[0] if 0 <= i < len(values) else -1 for i in asked])
        plan = lookup.plan_groups(fixed, layout.rows_per_plaintext)
        masked, mine = lookup.mask_groups(pk, layout, selected, plan)
        assert len(masked) == plan.count
        owner = lookup.unmask(layout, sk.decrypt_parallel(masked), plan.groups, plan.positions)
    else:
        masked, mine = lookup.mask_rows(pk, layout, selected)
        owner = lookup.unmask(layout, sk.decrypt_parallel(masked))
    opened = ring.decode(mine + owner)
    assert opened.tolist() == [[values[i]] if 0 <= i < len(values) else [0] for i in asked]
    present = np.array([c is not None for c in selected], dtype=np.uint8)
    bits, nothing = run_in_process(
        lambda p: threshold.threshold_program(
            p,
            mine if p.index == 0 else owner,
            op,
            requester=0,
            threshold=t if p.index == 0 else None,
            present=present if p.index == 0 else None,
        )
    )
    assert nothing is None
    plain = {"<": int.__lt__, "<=": int.__le__, ">": int.__gt__, ">=": int.__ge__, "==": int.__eq__, "!=": int.__ne__}[
        op
    ]
    assert bits is not None and bits.tolist() == [
        int(0 <= i < len(values) and bool(plain(values[i], t))) for i in asked
    ]


def test_owner_checks_the_row_map(keypair_1024: KeyPair) -> None:
    pk, sk = keypair_1024
    layout = lookup.RowLayout.for_bounds(["v"], [(0, 9)], int(pk.n).bit_length())
    masked, _ = lookup.mask_groups(pk, layout, [None, None], lookup.Groups(np.array([0, 0]), np.array([0, 1]), 1))
    plaintexts = sk.decrypt_batch(masked)
    with pytest.raises(ValueError, match="same slot"):
        lookup.unmask(layout, plaintexts, np.array([0, 0]), np.array([1, 1]))
    with pytest.raises(ValueError, match="outside"):
        lookup.unmask(layout, plaintexts, np.array([0, 1]), np.array([0, 1]))
    with pytest.raises(ValueError, match="position outside"):
        lookup.unmask(layout, plaintexts, np.array([0, 0]), np.array([0, layout.rows_per_plaintext]))


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_rows_at_every_position_add_and_decode_exactly(keypair_1024: KeyPair, data: st.DataObject) -> None:
    """Slot boundaries: values at both ends of their bounds plus the largest masks, one row at each
    position of a plaintext, added homomorphically and decoded exactly (no carry between slots)."""
    pk, sk = keypair_1024
    bounds = [(-(2**40), 2**40), (0, 1), (-5, 1000)]
    layout = lookup.RowLayout.for_bounds(["a", "b", "c"], bounds, int(pk.n).bit_length())
    g = layout.rows_per_plaintext
    values = np.array(
        [[data.draw(st.sampled_from([lo, hi, (lo + hi) // 2])) for lo, hi in bounds] for _ in range(g)], dtype=np.int64
    )
    rows = pk.encrypt_batch(layout.plaintexts(values, np.arange(g)))
    largest = layout.random_masks(1)[0] | layout._mask_pattern()  # every mask bit set
    total = sum(rows[1:], rows[0]) + pk.encrypt(largest)
    slots = layout.slots([sk.decrypt(total)])[0]
    masks = layout.slots([largest])[0]
    shifted = values - np.array([lo for lo, _ in bounds])
    assert (slots - masks).astype(np.int64).tolist() == shifted.tolist()
