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


def _random_ciphertexts(pk: PaillierPublicKey, count: int) -> list[PaillierCiphertext]:
    """Units mod n^2 (each a ciphertext of some plaintext): the products need no real encryption."""
    return [PaillierCiphertext(pk, pk.random_unit() ** 2 % pk.nsquare) for _ in range(count)]


@st.composite
def _grouped_rows(draw: st.DrawFn) -> tuple[int, list[int | None]]:
    """A group count and, per row, its group number or None (nothing selected), with the edge
    cases drawn as often as random ones: no row at all, no matched row, every row matched, one group."""
    kind = draw(st.sampled_from(["random", "no rows", "none matched", "all matched", "one group"]))
    count = 1 if kind == "one group" else draw(st.integers(1, 12))
    if kind == "no rows":
        return draw(st.integers(0, 3)), []
    groups = st.integers(0, count - 1)
    row = (
        st.none() if kind == "none matched" else groups if kind in ("all matched", "one group") else st.none() | groups
    )
    return count, draw(st.lists(row, max_size=60))


@settings(max_examples=40, deadline=None)
@given(case=_grouped_rows(), chunk_rows=st.integers(1, 8))
def test_group_products_on_the_backend_equal_the_serial_ones(
    keypair_1024: KeyPair, case: tuple[int, list[int | None]], chunk_rows: int
) -> None:
    """P1's products of each group's selected ciphertexts with its encrypted mask: chunked by
    ranges of groups on the local pool, they are exactly the ciphertexts of the serial loop."""
    from mpc import parallel

    pk, _ = keypair_1024
    count, rows = case
    starts = [c.value for c in _random_ciphertexts(pk, count)]
    ciphertexts = _random_ciphertexts(pk, len(rows))
    selected = [c if g is not None else None for c, g in zip(ciphertexts, rows, strict=True)]
    groups = np.array([-1 if g is None else g for g in rows], dtype=np.int64)  # unmatched: any group, unused
    expected = list(starts)
    for c, g in zip(ciphertexts, rows, strict=True):
        if g is not None:
            expected[g] = expected[g] * c.value % pk.nsquare
    assert lookup._group_products(pk, starts, selected, groups, serial_below=len(rows) + 1) == expected
    before = parallel.backend().tasks
    assert lookup._group_products(pk, starts, selected, groups, serial_below=0, chunk_rows=chunk_rows) == expected
    assert parallel.backend().tasks > before or count == 0  # it ran as chunks (none for no group)


def test_group_products_refuse_a_matched_row_outside_the_groups(keypair_1024: KeyPair) -> None:
    pk, _ = keypair_1024
    starts, (c,) = [c.value for c in _random_ciphertexts(pk, 2)], _random_ciphertexts(pk, 1)
    for serial_below in (0, 10):
        for group in (-1, 2):
            with pytest.raises(ValueError, match=r"outside \[0, 2\)"):
                lookup._group_products(pk, starts, [c], np.array([group]), serial_below=serial_below)
    with pytest.raises(ValueError, match="1 selected rows but 2 group numbers"):
        lookup._group_products(pk, starts, [c], np.array([0, 1]))


@pytest.mark.parametrize("case", ["mixed", "none matched", "all matched", "one group", "no rows"])
def test_mask_groups_on_the_backend_equals_in_process(
    keypair_1024: KeyPair, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """mask_groups forced onto the backend (threshold 0) returns the very ciphertexts and shares of
    its in-process path for the same masks and obfuscators, and they decrypt to the rows' values."""
    pk, sk = keypair_1024
    layout = lookup.RowLayout.for_bounds(["v"], [(-5, 1000)], int(pk.n).bit_length())
    g, rows = layout.rows_per_plaintext, {"no rows": 0, "one group": 7}.get(case, 90)
    rng = np.random.default_rng(17)
    values = rng.integers(-5, 1001, rows)
    fixed = np.where(rng.random(rows) < 0.6, rng.integers(0, g, rows), -1)
    fixed = {"none matched": np.full(rows, -1), "all matched": rng.integers(0, g, rows)}.get(case, fixed)
    plan = lookup.plan_groups(fixed, g)
    if case == "one group":  # every row, matched or not, in one ciphertext
        positions = rng.permutation(g)[:rows]
        fixed = np.where(np.arange(rows) % 2 == 0, positions, -1)
        plan = lookup.Groups(np.zeros(rows, dtype=np.int64), positions, 1)
    plain = layout.plaintexts(values.reshape(-1, 1), np.maximum(fixed, 0))
    selected = [pk.encrypt(m) if f >= 0 else None for m, f in zip(plain, fixed.tolist(), strict=True)]
    masks = layout.random_masks(plan.count)
    obfuscators = [pk.obfuscator.next() for _ in range(plan.count)]
    monkeypatch.setattr(lookup.RowLayout, "random_masks", lambda self, count: masks)
    results = []
    for threshold_ in (10**9, 0):
        monkeypatch.setattr(lookup, "PRODUCTS_SERIAL_BELOW", threshold_)
        results.append(lookup.mask_groups(pk, layout, selected, plan, obfuscators))
    (serial, serial_mine), (chunked, chunked_mine) = results
    assert [c.value for c in chunked] == [c.value for c in serial] and len(chunked) == plan.count
    assert (chunked_mine == serial_mine).all()
    owner = lookup.unmask(layout, sk.decrypt_batch(chunked), plan.groups, plan.positions)
    opened = ring.decode(chunked_mine + owner).reshape(-1)
    assert opened.tolist() == [int(v) if f >= 0 else 0 for v, f in zip(values, fixed.tolist(), strict=True)]
