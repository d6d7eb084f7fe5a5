"""P3 masked lookup + threshold check, in process, against plaintext; bucket arithmetic."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mpc.crypto.curve25519 import OprfServer
from mpc.crypto.paillier import PaillierPrivateKey, PaillierPublicKey
from mpc.protocols import lookup, threshold
from mpc.sharing.runtime import run_in_process
from tests.sharing.strategies import EDGES

KeyPair = tuple[PaillierPublicKey, PaillierPrivateKey]


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


@settings(max_examples=15)
@given(values=st.lists(st.one_of(st.sampled_from(EDGES), st.integers(-(2**40), 2**40)), min_size=1, max_size=12),
       t=st.integers(-(2**40), 2**40), op=st.sampled_from(sorted(threshold.COMPARISONS)), data=st.data())
def test_lookup_then_threshold_matches_plaintext(keypair_1024: KeyPair, values: list[int], t: int, op: str,
                                                 data: st.DataObject) -> None:
    pk, sk = keypair_1024
    tags = [bytes([i]) * 8 for i in range(len(values))]
    table = lookup.EncryptedTable.build(pk, ["v"], tags, np.array(values, dtype=np.int64).reshape(-1, 1))
    asked = data.draw(st.lists(st.integers(0, len(values) + 2), min_size=1, max_size=8))  # some absent
    asked_tags = [bytes([i]) * 8 for i in asked]
    masked, requester = zip(*(lookup.mask_row(table, tag) for tag in asked_tags), strict=True)
    owner = lookup.unmask_rows(sk, table.packing, list(masked), 2)
    mine = np.array(requester, dtype=np.uint64)
    bits, nothing = run_in_process(
        lambda p: threshold.threshold_program(p, mine if p.index == 0 else owner, op, requester=0, threshold=t if p.index == 0 else None)
    )
    assert nothing is None
    plain = {"<": int.__lt__, "<=": int.__le__, ">": int.__gt__, ">=": int.__ge__, "==": int.__eq__, "!=": int.__ne__}[op]
    expected = [int(i < len(values) and bool(plain(values[i], t))) for i in asked]
    assert bits is not None and bits.tolist() == expected


def test_bucket_array_equals_bucket_of() -> None:
    tags = OprfServer.generate().evaluate_ids([str(i) for i in range(500)], parallel=False)
    for bits in (0, 1, 5, 12):
        assert lookup.bucket_array(tags, bits).tolist() == [lookup.bucket_of(t, bits) for t in tags]
