"""Masked lookup into secret shares: the core of P3 (and of P1's aligned shares).

Steps, as in PROTOCOLS.md:

1. The owner O publishes, per row ``j``, an OPRF tag ``tau_j = F_b(id_j)`` and
   ``C_j = Enc_O(pack(v_j))`` (columns of row ``j`` in consecutive 105-bit slots):
   :class:`EncryptedTable`.
2. The requester R finds its row by tag (it learned ``F_b(q)`` by the OPRF), adds a fresh encryption
   of a mask ``r`` (per slot uniform in [0, 2^104)) and sends ``C_j + Enc_O(pack(r))`` back:
   :func:`mask_row`. R's shares are ``-r mod 2^64``. A missing row is replaced by ``Enc_O(0)`` and a
   presence column of 0, so O cannot tell the difference.
3. O decrypts; its shares are the slot values mod 2^64: :func:`unmask_row`. O sees ``v + r``, which
   hides ``v`` up to statistical distance 2^-40.

What is revealed: O learns which bucket was asked for (here: the whole table is one bucket), R
learns only whether the id is present. The values stay secret-shared.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mpc.crypto.packing import SHARE_BITS, STATISTICAL_SECURITY, SlotPacking
from mpc.crypto.paillier import PaillierCiphertext, PaillierPrivateKey, PaillierPublicKey
from mpc.sharing import ring

MASK_BITS = SHARE_BITS + STATISTICAL_SECURITY  # 104
_RING = 2**64


@dataclass(frozen=True)
class EncryptedTable:
    """An owner's rows as (tag, ciphertext) pairs; the first column is a presence flag of 1."""

    public_key: PaillierPublicKey
    packing: SlotPacking
    columns: tuple[str, ...]
    rows: dict[bytes, PaillierCiphertext]

    @classmethod
    def build(
        cls,
        public_key: PaillierPublicKey,
        columns: Sequence[str],
        tags: Sequence[bytes],
        values: np.ndarray,
    ) -> EncryptedTable:
        """Encrypt ``values`` (rows x columns, signed, in [-2^62, 2^62)) with a presence column."""
        packing = SlotPacking.for_modulus(int(public_key.n))
        if len(columns) + 1 > packing.slots:
            raise ValueError(f"{len(columns)} columns do not fit in {packing.slots - 1} slots")
        if values.shape != (len(tags), len(columns)):
            raise ValueError(f"values have shape {values.shape}, expected ({len(tags)}, {len(columns)})")
        encoded = ring.encode(values.reshape(-1)).reshape(values.shape)
        plaintexts = [packing.encode([1, *map(int, row)]) for row in encoded]
        ciphertexts = public_key.encrypt_batch(plaintexts)
        return cls(public_key, packing, ("present", *columns), dict(zip(tags, ciphertexts, strict=True)))


def mask_row(table: EncryptedTable, tag: bytes) -> tuple[PaillierCiphertext, np.ndarray]:
    """Requester: pick the row for ``tag`` (or an encryption of zeros), add a fresh masked encryption.

    Returns the ciphertext to send to the owner and the requester's shares (uint64, one per column,
    presence first).
    """
    pk, width = table.public_key, len(table.columns)
    masks = [secrets.randbits(MASK_BITS) for _ in range(width)]
    selected = table.rows.get(tag)
    if selected is None:
        selected = pk.encrypt(0)
    masked = selected + pk.encrypt(table.packing.encode(masks))
    mine = np.array([(-m) % _RING for m in masks], dtype=np.uint64)
    return masked, mine


def unmask_row(private_key: PaillierPrivateKey, packing: SlotPacking, masked: PaillierCiphertext, width: int) -> np.ndarray:
    """Owner: decrypt and keep each slot mod 2^64 as its shares (uint64, one per column)."""
    slots = packing.decode(private_key.decrypt(masked), width)
    return np.array([s % _RING for s in slots], dtype=np.uint64)


# ----------------------------------------------------------------------------- buckets (P3)
TAG_PREFIX_BITS = 32
DEFAULT_ANONYMITY_SET = 1024


def bucket_bits_for(rows: int, anonymity_set: int = DEFAULT_ANONYMITY_SET) -> int:
    """The most prefix bits that still leave about ``anonymity_set`` rows per bucket (0: one bucket)."""
    if anonymity_set < 1:
        raise ValueError("the anonymity set must be at least 1")
    bits = 0
    while bits < TAG_PREFIX_BITS and rows >> (bits + 1) >= anonymity_set:
        bits += 1
    return bits


def bucket_of(tag: bytes, bucket_bits: int) -> int:
    """Bucket of a tag: its top ``bucket_bits`` bits."""
    if bucket_bits == 0:
        return 0
    return int.from_bytes(tag[:4], "big") >> (TAG_PREFIX_BITS - bucket_bits)


def bucket_array(tags: Sequence[bytes], bucket_bits: int) -> np.ndarray:
    """:func:`bucket_of` for many tags at once (tags are 8 bytes; the bucket is in the first 4)."""
    if bucket_bits == 0 or not tags:
        return np.zeros(len(tags), dtype=np.int64)
    prefixes = np.frombuffer(b"".join(t[:4] for t in tags), dtype=">u4").astype(np.int64)
    return prefixes >> (TAG_PREFIX_BITS - bucket_bits)


def unmask_rows(private_key: PaillierPrivateKey, packing: SlotPacking, masked: Sequence[PaillierCiphertext],
                width: int) -> np.ndarray:
    """Owner: :func:`unmask_row` for a batch; one row of ``width`` shares per ciphertext."""
    shares = np.empty((len(masked), width), dtype=np.uint64)
    for i, ciphertext in enumerate(masked):
        shares[i] = unmask_row(private_key, packing, ciphertext, width)
    return shares


@dataclass(frozen=True)
class BucketIndex:
    """Owner side: every row's OPRF tag and which rows fall into each bucket."""

    tags: list[bytes]
    bucket_bits: int
    order: np.ndarray   # row indexes sorted by bucket
    starts: np.ndarray  # bucket b holds order[starts[b]:starts[b + 1]]

    @classmethod
    def build(cls, tags: list[bytes], bucket_bits: int) -> BucketIndex:
        buckets = bucket_array(tags, bucket_bits)
        order = np.argsort(buckets, kind="stable")
        starts = np.searchsorted(buckets[order], np.arange((1 << bucket_bits) + 1))
        return cls(tags, bucket_bits, order, starts)

    def rows(self, bucket: int) -> np.ndarray:
        return self.order[self.starts[bucket] : self.starts[bucket + 1]]
