"""Masked lookup into secret shares: the core of P3 (bucketed lookup) and P1 (aligned shares).

Steps, as in PROTOCOLS.md:

1. The owner O publishes, per row ``j``, an OPRF tag ``tau_j = F_b(id_j)`` and
   ``C_j = Enc_O(row_j << position_j * row_bits)``: the row's columns in consecutive slots of a
   :class:`RowLayout`, placed at the row's *position* in the plaintext, a
   number in ``[0, g)`` derived from its tag (:meth:`RowLayout.position`). Slots are as narrow as
   the columns' declared bounds allow (value width + 40-bit mask + 1 carry bit), so one plaintext
   holds ``g`` rows.
2. The requester R, which learned ``F_b(q)`` for its own ids by the OPRF, finds its rows by tag.
   It adds a fresh encryption of a random mask over *every* slot of the plaintext and sends the
   result back; its shares are the negated masks.

   - *P3, one row per ciphertext* (:func:`mask_rows`): the row's position is never revealed. Every
     position other than the row's holds zeros, so both parties sum their shares over the ``g``
     positions (:func:`unmask`): a local step that picks the row's values obliviously.
   - *P1, packed* (:func:`mask_groups`): R multiplies up to ``g`` selected ciphertexts with
     distinct positions into one (one multiplication mod n^2 each), so one decryption yields
     ``g`` rows' shares. R tells O, per row of its own, which ciphertext and which position
     holds it (ciphertexts drawn at random, :func:`plan_groups`). O thereby learns each row's
     position: a value in ``[0, g)`` derived from the tag, i.e. a class of about n/g of its rows,
     never the row.
3. O decrypts; its shares are the slot values mod 2^64 plus the column minimum (values are stored
   as ``v - min``). O sees ``v - min + r`` per slot, which hides ``v`` up to statistical distance
   2^-40. Absent ids and padding rows select no ciphertext: their slots decrypt to the mask alone
   and R subtracts the minimum on its side, so they read as zero values.

Presence is not encrypted at all: R learns it by finding (or not finding) each tag, which the
design allows, and enters it into later programs as its own secret input where a rule needs it.

What is revealed: R learns presence per own row; O learns the bucket fetched (P3) or, for P1, the
position class of each row and the number of rows. The values stay secret-shared.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from gmpy2 import mpz

from mpc.crypto.paillier import PaillierCiphertext, PaillierPublicKey
from mpc.crypto.prg import random_permutation
from mpc.parallel import backend, split

__all__ = [
    "DEFAULT_ANONYMITY_SET",
    "PRODUCTS_SERIAL_BELOW",
    "STATISTICAL_SECURITY",
    "TAG_PREFIX_BITS",
    "BucketIndex",
    "Groups",
    "RowLayout",
    "bucket_array",
    "bucket_bits_for",
    "bucket_of",
    "mask_groups",
    "mask_rows",
    "plan_groups",
    "unmask",
]

STATISTICAL_SECURITY = 40  # bits of mask beyond a value's width: statistical distance 2^-40
# P1: with fewer matched rows than this, the group products are computed in this process (one
# modular multiplication each, cheaper than a chunk's dispatch); from it on, on the compute backend.
PRODUCTS_SERIAL_BELOW = 2048
PRODUCTS_CHUNK_ROWS = 512  # P1 products on the backend: at least about this many matched rows a chunk
_RING = 2**64


@dataclass(frozen=True)
class RowLayout:
    """How one table row sits in a Paillier plaintext.

    Column ``k`` stores ``v - minimums[k]`` in ``value_bits[k]`` bits; its slot is
    ``value_bits[k] + 40 + 1`` bits wide so that value + mask never carries into the next slot.
    A plaintext (``modulus_bits - 1`` usable bits) holds :attr:`rows_per_plaintext` rows.
    """

    columns: tuple[str, ...]
    value_bits: tuple[int, ...]
    minimums: tuple[int, ...]
    modulus_bits: int
    slot_bits: tuple[int, ...] = field(init=False)
    row_bits: int = field(init=False)
    rows_per_plaintext: int = field(init=False)

    def __post_init__(self) -> None:
        if not self.columns:
            raise ValueError("a row layout needs at least one column")
        if not len(self.columns) == len(self.value_bits) == len(self.minimums):
            raise ValueError("one value width and one minimum per column")
        if any(not 1 <= b <= 64 for b in self.value_bits):  # shares are the slots mod 2^64
            raise ValueError("value widths must be 1 to 64 bits")
        slot_bits = tuple(b + STATISTICAL_SECURITY + 1 for b in self.value_bits)
        row_bits = sum(slot_bits)
        rows = (self.modulus_bits - 1) // row_bits
        if rows < 1:
            raise ValueError(
                f"{len(self.columns)} columns ({row_bits} bits) do not fit a {self.modulus_bits}-bit plaintext"
            )
        object.__setattr__(self, "slot_bits", slot_bits)
        object.__setattr__(self, "row_bits", row_bits)
        object.__setattr__(self, "rows_per_plaintext", rows)

    @classmethod
    def for_bounds(
        cls,
        columns: Sequence[str],
        bounds: Sequence[tuple[int, int]],
        modulus_bits: int,
    ) -> RowLayout:
        """A layout for columns with inclusive bounds ``(min, max)``."""
        if len(columns) != len(bounds):
            raise ValueError("one (min, max) per column")
        widths, minimums = [], []
        for name, (lo, hi) in zip(columns, bounds, strict=True):
            if lo > hi:
                raise ValueError(f"column {name}: min {lo} > max {hi}")
            widths.append(max(1, (hi - lo).bit_length()))
            minimums.append(lo)
        return cls(tuple(columns), tuple(widths), tuple(minimums), modulus_bits)

    @classmethod
    def for_columns(
        cls, columns: Sequence[str], declared: Sequence[tuple[str, int | None, int | None]], modulus_bits: int
    ) -> RowLayout:
        """A layout from declared columns ``(type, min, max)``: a bool spans 0..1, an int its
        bounds, a category its codes ``0..labels - 1`` (given as its bounds)."""
        bounds = []
        for name, (kind, lo, hi) in zip(columns, declared, strict=True):
            if kind == "bool":
                bounds.append((0, 1))
            elif kind in ("int", "category", "date", "code") and lo is not None and hi is not None:
                bounds.append((lo, hi))
            else:
                raise ValueError(f"column {name} is a {kind} column without bounds: it cannot be looked up")
        return cls.for_bounds(columns, bounds, modulus_bits)

    @property
    def width(self) -> int:
        return len(self.columns)

    # ------------------------------------------------------------------ owner: rows to plaintexts
    def position(self, tag: bytes) -> int:
        """A row's position in its plaintext: from tag bytes 4..8 (the bucket uses bytes 0..4)."""
        return int.from_bytes(tag[4:8], "big") % self.rows_per_plaintext

    def positions(self, tags: Sequence[bytes] | np.ndarray) -> np.ndarray:
        """:meth:`position` of many tags (as bytes, or :func:`tag_words`' input)."""
        return tag_words(tags)[:, 1] % self.rows_per_plaintext

    def plaintexts(self, values: np.ndarray, positions: np.ndarray) -> list[int]:
        """Owner: one plaintext per row of ``values`` (rows x columns): ``v - min`` in the row's
        slots at its position, zeros elsewhere."""
        if values.ndim != 2 or values.shape[1] != self.width or values.shape[0] != len(positions):
            raise ValueError(
                f"values of shape {values.shape} do not match {self.width} columns and {len(positions)} positions"
            )
        shifted = values.astype(object) - np.array(self.minimums, dtype=object)
        limits = [1 << b for b in self.value_bits]
        out = []
        for row, position in zip(shifted.tolist(), positions.tolist(), strict=True):
            packed, shift = 0, 0
            for k, (value, limit, bits) in enumerate(zip(row, limits, self.slot_bits, strict=True)):
                if not 0 <= value < limit:
                    raise ValueError(
                        f"column {self.columns[k]}: value {value + self.minimums[k]} does not fit "
                        f"its {self.value_bits[k]}-bit slot (declared bounds?)"
                    )
                packed |= value << shift
                shift += bits
            out.append(packed << (position * self.row_bits))
        return out

    # ------------------------------------------------------------------ masks and slots
    def _mask_pattern(self) -> int:
        row, shift = 0, 0
        for value_bits, bits in zip(self.value_bits, self.slot_bits, strict=True):
            row |= ((1 << (value_bits + STATISTICAL_SECURITY)) - 1) << shift
            shift += bits
        return sum(row << (p * self.row_bits) for p in range(self.rows_per_plaintext))

    def random_masks(self, count: int) -> list[int]:
        """``count`` packed masks: every slot uniform in ``[0, 2^(value_bits + 40))``."""
        pattern = self._mask_pattern()
        size = (pattern.bit_length() + 7) // 8
        raw = os.urandom(size * count)
        return [int.from_bytes(raw[i * size : (i + 1) * size], "big") & pattern for i in range(count)]

    def slots(self, packed: Sequence[int]) -> np.ndarray:
        """Slot values mod 2^64: (len(packed), rows_per_plaintext, width) uint64."""
        out = np.empty((len(packed), self.rows_per_plaintext, self.width), dtype=np.uint64)
        offsets = [sum(self.slot_bits[:k]) for k in range(self.width)]
        flat = out.reshape(len(packed), self.rows_per_plaintext * self.width)
        # a slot's value mod 2^64: its low min(slot_bits, 64) bits
        cuts = [
            (p * self.row_bits + o, (1 << min(b, 64)) - 1)
            for p in range(self.rows_per_plaintext)
            for o, b in zip(offsets, self.slot_bits, strict=True)
        ]
        for i, value in enumerate(packed):
            flat[i] = [(value >> s) & m for s, m in cuts]
        return out

    def to_message(self) -> tuple[list[int], list[int]]:
        return list(self.value_bits), list(self.minimums)


# ----------------------------------------------------------------------------- requester side
def _encrypt_masks(
    public_key: PaillierPublicKey, masks: Sequence[int], obfuscators: Sequence[object] | None
) -> list[int]:
    nsq = public_key.nsquare
    if obfuscators is None:
        return [public_key.encrypt(m).value for m in masks]
    return [public_key.encode(m) * rho % nsq for m, rho in zip(masks, obfuscators, strict=True)]


def mask_rows(
    public_key: PaillierPublicKey,
    layout: RowLayout,
    selected: Sequence[PaillierCiphertext | None],
    obfuscators: Sequence[object] | None = None,
) -> tuple[list[PaillierCiphertext], np.ndarray]:
    """P3 requester: one masked ciphertext per row (``None``: absent or padding, nothing selected).

    Returns the ciphertexts for the owner and our shares (rows x width, uint64), summed over every
    position like the owner's, so the row's position is never revealed.
    """
    masks = layout.random_masks(len(selected))
    encrypted = _encrypt_masks(public_key, masks, obfuscators)
    nsq = public_key.nsquare
    out = [
        PaillierCiphertext(public_key, m if c is None else c.value * m % nsq)
        for c, m in zip(selected, encrypted, strict=True)
    ]
    mine = (np.uint64(0) - layout.slots(masks).sum(axis=1, dtype=np.uint64)).astype(np.uint64)
    _absent_minimums(layout, mine, np.array([c is None for c in selected], dtype=bool))
    return out, mine


def _absent_minimums(layout: RowLayout, mine: np.ndarray, absent: np.ndarray) -> None:
    """The owner adds each column's minimum to its share; for rows that selected nothing (so hold
    v - min = 0) we subtract it, so that they read as zero values."""
    minimums = np.array([m % _RING for m in layout.minimums], dtype=np.uint64)
    mine[absent] -= minimums


@dataclass(frozen=True)
class Groups:
    """P1 packing: row ``i`` sits at position ``positions[i]`` of ciphertext ``groups[i]``."""

    groups: np.ndarray  # int64 per row
    positions: np.ndarray  # int64 per row
    count: int  # number of ciphertexts


def plan_groups(fixed: np.ndarray, rows_per_plaintext: int) -> Groups:
    """Assign rows to ciphertexts so that positions within one are distinct.

    ``fixed[i]`` is the position of the owner row that row ``i`` selected, or -1 for a row that
    selects nothing (absent id, padding), which may take any free position. Every choice is
    random (from the system CSPRNG): the rows of one position class go to distinct random
    ciphertexts and the other rows to random free cells, so which rows share a ciphertext says
    nothing about which ones matched or about their order. The number of ciphertexts is
    ``rows/g + 5 sqrt(rows/g) + 1``, a function of the row count alone, unless a position class
    holds more matched rows than that (for tag-derived positions, a 5-sigma event).
    """
    g, rows = rows_per_plaintext, len(fixed)
    mean = rows / g
    counts = np.bincount(fixed[fixed >= 0], minlength=g) if rows else np.zeros(g, dtype=np.int64)
    count = max(math.ceil(mean + 5 * math.sqrt(mean)) + 1 if rows else 0, int(counts.max(initial=0)))
    groups = np.full(rows, -1, dtype=np.int64)
    positions = fixed.astype(np.int64).copy()
    taken = np.zeros((count, g), dtype=bool)
    for p in range(g):
        members = np.flatnonzero(fixed == p)
        chosen = random_permutation(count)[: len(members)]  # distinct random ciphertexts for this class
        groups[members] = chosen
        taken[chosen, p] = True
    free_rows = np.flatnonzero(fixed < 0)
    cells = np.flatnonzero(~taken.reshape(-1))
    chosen = cells[random_permutation(len(cells))[: len(free_rows)]]
    groups[free_rows], positions[free_rows] = chosen // g, chosen % g
    return Groups(groups, positions, count)


def mask_groups(
    public_key: PaillierPublicKey,
    layout: RowLayout,
    selected: Sequence[PaillierCiphertext | None],
    plan: Groups,
    obfuscators: Sequence[object] | None = None,
) -> tuple[list[PaillierCiphertext], np.ndarray]:
    """P1 requester: multiply each group's selected ciphertexts with one encrypted mask over all
    slots. Returns ``plan.count`` ciphertexts and our shares (rows x width, uint64).

    The products (one multiplication mod n^2 per matched row) run on the compute backend
    (:mod:`mpc.parallel`) in chunks of whole groups from :data:`PRODUCTS_SERIAL_BELOW` matched rows
    on, in this process below it; the ciphertexts, shares and leakage are the same either way. A
    chunk carries only ciphertexts under the owner's public key: our encrypted masks (which the
    owner receives anyway, multiplied in) and the owner's ciphertexts we selected, with their group
    numbers. No key and no plaintext: the mask plaintexts and our shares never leave this process.
    Which of the owner's rows we selected, and into which group, is ours and is not revealed to the
    owner (the masks re-randomise each product); it travels only to our own backend (our process
    pool, or our own Ray cluster, ``docs/scaling.md``), like every chunk of ours.
    """
    masks = layout.random_masks(plan.count)
    products = _group_products(public_key, _encrypt_masks(public_key, masks, obfuscators), selected, plan.groups)
    slots = layout.slots(masks)
    mine = (np.uint64(0) - slots[plan.groups, plan.positions]).astype(np.uint64)
    _absent_minimums(layout, mine, np.array([c is None for c in selected], dtype=bool))
    return [PaillierCiphertext(public_key, v) for v in products], mine


def _group_products(
    public_key: PaillierPublicKey,
    starts: Sequence[mpz],
    selected: Sequence[PaillierCiphertext | None],
    groups: np.ndarray,
    serial_below: int | None = None,
    chunk_rows: int | None = None,
) -> list[mpz]:
    """``starts[k]`` times every selected ciphertext of group ``k`` (``groups[i]`` for row ``i``),
    mod n^2: in this process below ``serial_below`` matched rows (default
    :data:`PRODUCTS_SERIAL_BELOW`), else on the compute backend, by contiguous ranges of groups
    (four per worker at most, of about ``chunk_rows`` matched rows at least; default
    :data:`PRODUCTS_CHUNK_ROWS`). The matched rows are sorted by group once, so that each chunk
    carries its own groups' starting values and ciphertexts alone."""
    nsq, count = public_key.nsquare, len(starts)
    if len(selected) != len(groups):
        raise ValueError(f"{len(selected)} selected rows but {len(groups)} group numbers")
    matched = np.flatnonzero(np.fromiter((c is not None for c in selected), dtype=bool, count=len(selected)))
    if len(matched) and (groups[matched].min() < 0 or groups[matched].max() >= count):
        raise ValueError(f"a matched row names a group outside [0, {count})")
    limit = PRODUCTS_SERIAL_BELOW if serial_below is None else serial_below
    if len(matched) < limit:
        products = list(starts)
        for c, group in zip(selected, groups.tolist(), strict=True):
            if c is not None:
                products[group] = products[group] * c.value % nsq
        return products
    compute, width = backend(), public_key.ciphertext_bytes
    order = matched[np.argsort(groups[matched], kind="stable")]  # matched rows, bucketed by group
    ordered = groups[order]
    per_chunk = PRODUCTS_CHUNK_ROWS if chunk_rows is None else chunk_rows
    ranges = split(count, min(4 * compute.workers, max(1, len(matched) // max(per_chunk, 1))))
    edges = np.searchsorted(ordered, [lo for lo, _ in ranges] + [count]).tolist()

    def call(k: int) -> tuple[int, bytes, bytes, bytes]:
        (lo, hi), rows = ranges[k], order[edges[k] : edges[k + 1]].tolist()
        values = [selected[i].value for i in rows]  # matched rows: never None
        return (
            int(public_key.n),
            b"".join(mpz(s).to_bytes(width, "big") for s in starts[lo:hi]),
            b"".join(v.to_bytes(width, "big") for v in values),
            (ordered[edges[k] : edges[k + 1]] - lo).astype("<i8").tobytes(),
        )

    out: list[mpz] = []
    for blob in compute.map(_products_chunk, (call(k) for k in range(len(ranges)))):
        out.extend(mpz.from_bytes(blob[i : i + width], "big") for i in range(0, len(blob), width))
    return out


def _products_chunk(n: int, starts: bytes, ciphertexts: bytes, groups: bytes) -> bytes:
    """Worker: the products mod n^2 of a range of groups. Group ``k`` of the range starts at the
    ``k``-th fixed-width ciphertext of ``starts`` and takes in every ciphertext of ``ciphertexts``
    whose entry of ``groups`` (little-endian int64, relative to the range) is ``k``; the products
    come back fixed-width, in order."""
    nsq = mpz(n) * mpz(n)
    width = (int(nsq).bit_length() + 7) // 8
    products = [mpz.from_bytes(starts[i : i + width], "big") for i in range(0, len(starts), width)]
    numbers = np.frombuffer(groups, dtype="<i8").tolist()
    if len(ciphertexts) != width * len(numbers) or len(starts) != width * len(products):
        raise ValueError("a products chunk's ciphertexts and group numbers do not match")
    for k, i in zip(numbers, range(0, len(ciphertexts), width), strict=True):
        products[k] = products[k] * mpz.from_bytes(ciphertexts[i : i + width], "big") % nsq
    return b"".join(p.to_bytes(width, "big") for p in products)


# ----------------------------------------------------------------------------- owner side
def unmask(
    layout: RowLayout, plaintexts: Sequence[int], groups: np.ndarray | None = None, positions: np.ndarray | None = None
) -> np.ndarray:
    """Owner: shares (rows x width, uint64) from the decrypted masked plaintexts: P3 (no groups)
    sums each plaintext over its positions, P1 picks row ``i`` at ``(groups[i], positions[i])``."""
    slots = layout.slots(plaintexts)
    if groups is None or positions is None:
        shares = slots.sum(axis=1, dtype=np.uint64)
    else:
        if len(groups) != len(positions):
            raise ValueError("one group and one position per row")
        if len(groups) and (groups.min() < 0 or groups.max() >= len(plaintexts)):
            raise ValueError(f"a row names a ciphertext outside [0, {len(plaintexts)})")
        if len(positions) and (positions.min() < 0 or positions.max() >= layout.rows_per_plaintext):
            raise ValueError(f"a row names a position outside [0, {layout.rows_per_plaintext})")
        cells = groups * layout.rows_per_plaintext + positions
        if len(np.unique(cells)) != len(cells):
            raise ValueError("two rows name the same slot")
        shares = slots[groups, positions]
    out: np.ndarray = shares + np.array([m % _RING for m in layout.minimums], dtype=np.uint64)
    return out


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


def tag_words(tags: Sequence[bytes] | np.ndarray) -> np.ndarray:
    """8-byte tags as (rows, 2) int64: each one's bytes 0..4 (the bucket prefix) and 4..8 (the
    position word), big-endian. ``tags``: the tags, or an array whose memory holds them back to
    back (:attr:`BucketIndex.tags`)."""
    if isinstance(tags, np.ndarray):
        raw = np.ascontiguousarray(tags).view(">u4")
    else:
        raw = np.frombuffer(b"".join(tags), dtype=">u4")
    return raw.reshape(-1, 2).astype(np.int64)


def bucket_array(tags: Sequence[bytes] | np.ndarray, bucket_bits: int) -> np.ndarray:
    """:func:`bucket_of` for many tags at once (as :func:`tag_words` takes them)."""
    prefixes = tag_words(tags)[:, 0]
    return prefixes >> (TAG_PREFIX_BITS - bucket_bits) if bucket_bits else np.zeros_like(prefixes)


@dataclass(frozen=True)
class BucketIndex:
    """Owner side: every row's OPRF tag and which rows fall into each bucket."""

    tags: np.ndarray  # every row's tag, one uint64 per row whose 8 bytes in memory are the tag's
    bucket_bits: int
    order: np.ndarray  # row indexes sorted by bucket
    starts: np.ndarray  # bucket b holds order[starts[b]:starts[b + 1]]

    @classmethod
    def build(cls, tags: bytes | Sequence[bytes], bucket_bits: int) -> BucketIndex:
        """The index of tags given back to back (``bytes``) or one by one."""
        words = np.frombuffer(tags if isinstance(tags, bytes) else b"".join(tags), dtype=np.uint64)
        buckets = bucket_array(words, bucket_bits)
        order = np.argsort(buckets, kind="stable")
        starts = np.searchsorted(buckets[order], np.arange((1 << bucket_bits) + 1))
        return cls(words, bucket_bits, order, starts)

    def __len__(self) -> int:
        return len(self.tags)

    def tag(self, row: int) -> bytes:
        return self.tags[row : row + 1].tobytes()

    def tag_bytes(self, rows: np.ndarray) -> bytes:
        """The tags of ``rows``, back to back in their order."""
        return bytes(self.tags[rows].tobytes())

    def rows(self, bucket: int) -> np.ndarray:
        return self.order[self.starts[bucket] : self.starts[bucket + 1]]
