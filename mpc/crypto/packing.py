"""Fixed-width slot packing of several non-negative integers into one Paillier plaintext.

A slot that carries a 64-bit share plus a sigma = 40-bit statistical mask needs 64 + 40 + 1 = 105
bits (the extra bit absorbs the carry of value + mask), so a 2048-bit plaintext holds 19 slots
(PROTOCOLS.md 2.1). Slot ``i`` occupies bits ``[i*w, (i+1)*w)``; encode and decode are exact, and
values that do not fit their slot are rejected rather than allowed to spill into a neighbour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

SHARE_BITS = 64
STATISTICAL_SECURITY = 40
DEFAULT_SLOT_BITS = SHARE_BITS + STATISTICAL_SECURITY + 1  # 105


@dataclass(frozen=True)
class SlotPacking:
    """Layout of ``slots`` slots of ``slot_bits`` bits each inside one plaintext."""

    slot_bits: int = DEFAULT_SLOT_BITS
    slots: int = 19

    def __post_init__(self) -> None:
        if self.slot_bits < 1 or self.slots < 1:
            raise ValueError("slot_bits and slots must be positive")

    @classmethod
    def for_modulus(cls, n: int, slot_bits: int = DEFAULT_SLOT_BITS) -> SlotPacking:
        """As many slots as fit strictly below ``n`` (the packed value must stay < n)."""
        slots = (int(n).bit_length() - 1) // slot_bits
        if slots < 1:
            raise ValueError(f"a {int(n).bit_length()}-bit modulus cannot hold a {slot_bits}-bit slot")
        return cls(slot_bits, slots)

    @property
    def total_bits(self) -> int:
        return self.slot_bits * self.slots

    @property
    def slot_limit(self) -> int:
        """Exclusive upper bound of a slot value."""
        return 1 << self.slot_bits

    def encode(self, values: Sequence[int], offset: int = 0) -> int:
        """Pack ``values`` into slots ``offset, offset+1, ...`` (other slots are zero)."""
        if offset < 0 or offset + len(values) > self.slots:
            raise ValueError(
                f"{len(values)} values at slot offset {offset} do not fit in {self.slots} slots"
            )
        limit, width, packed = self.slot_limit, self.slot_bits, 0
        for i, v in enumerate(values):
            v = int(v)
            if not 0 <= v < limit:
                raise ValueError(f"slot value {v} outside [0, 2^{width})")
            packed |= v << ((offset + i) * width)
        return packed

    def decode(self, packed: int, count: int | None = None, offset: int = 0) -> list[int]:
        """Unpack ``count`` slots starting at ``offset`` (default: all remaining slots)."""
        count = self.slots - offset if count is None else count
        if offset < 0 or count < 0 or offset + count > self.slots:
            raise ValueError(f"cannot read {count} slots at offset {offset} of {self.slots}")
        if not 0 <= packed < 1 << self.total_bits:
            raise ValueError("packed value is wider than the packing layout")
        mask, width = self.slot_limit - 1, self.slot_bits
        return [(packed >> ((offset + i) * width)) & mask for i in range(count)]
