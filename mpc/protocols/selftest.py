"""A two-party program for self-tests and benchmarks: compare the initiator's values with values
the co-party derives from a public seed, reveal the bits to the initiator only.

Both parties run :func:`compare_program`; the initiator passes its values, the co-party ``None``.
The co-party learns nothing but ``n``; the initiator learns the comparison bits (and, because the
seed is public, could compute them itself: this program exists to exercise the machinery).
"""

from __future__ import annotations

import numpy as np

from mpc.sharing.boolean import ltz_triple_words
from mpc.sharing.dealer import Reservation
from mpc.sharing.ring import VALUE_MAX, VALUE_MIN
from mpc.sharing.runtime import Party

__all__ = ["MAX_SELFTEST_VALUES", "compare_program", "compare_reservation", "public_values"]

MAX_SELFTEST_VALUES = 10_000_000


def public_values(seed: int, n: int) -> np.ndarray:
    """The co-party's deterministic inputs."""
    return np.random.default_rng(seed).integers(VALUE_MIN, VALUE_MAX, n, dtype=np.int64)


def compare_reservation(n: int) -> Reservation:
    """What :func:`compare_program` takes from the dealer: one ``<`` of ``n`` values."""
    return Reservation.covering(bit_triple_words=ltz_triple_words(n))


def compare_program(
    party: Party, n: int, seed: int, initiator: int, values: np.ndarray | None = None
) -> np.ndarray | None:
    """``x < y`` for the initiator's ``x`` and the co-party's ``public_values(seed, n)``."""
    if not 0 <= n <= MAX_SELFTEST_VALUES:
        raise ValueError(f"selftest size {n} outside [0, {MAX_SELFTEST_VALUES}]")
    mine = values if party.index == initiator else public_values(seed, n)
    if mine is not None and len(mine) != n:
        raise ValueError(f"expected {n} values, got {len(mine)}")
    x = party.share(mine if party.index == initiator else None, owner=initiator)
    y = party.share(mine if party.index != initiator else None, owner=1 - initiator)
    return party.reveal_bits(x < y, to=initiator)
