"""A one-owner threshold check on looked-up shares (P3 then P4): ``present AND value OP t``.

Both parties hold additive shares of each looked-up row (``present``, ``value``) from the masked
lookup; the requester's threshold ``t`` is secret-shared by the requester; the single result bit
per row is revealed to the requester only. The owner learns nothing (not ``t``, not the result).
"""

from __future__ import annotations

import numpy as np

from mpc.protocols.rules import COMPARISON_GATES
from mpc.sharing.runtime import Party
from mpc.sharing.types import ArithmeticShare

COMPARISONS = COMPARISON_GATES


def threshold_program(party: Party, shares: np.ndarray, op: str, requester: int,
                      threshold: int | None = None) -> np.ndarray | None:
    """``shares``: this party's (rows x 2) uint64 shares of (present, value)."""
    if op not in COMPARISONS:
        raise ValueError(f"unknown comparison {op!r}; use one of {sorted(COMPARISONS)}")
    if shares.ndim != 2 or shares.shape[1] != 2 or shares.dtype != np.uint64:
        raise ValueError(f"expected (rows, 2) uint64 shares, got {shares.shape} {shares.dtype}")
    rows = shares.shape[0]
    present = ArithmeticShare(party, np.ascontiguousarray(shares[:, 0]))
    value = ArithmeticShare(party, np.ascontiguousarray(shares[:, 1]))
    mine: list[int] | None = None
    if party.index == requester:
        if threshold is None:
            raise ValueError("the requester must supply the threshold")
        mine = [threshold] * rows
    limit = party.share(mine, owner=requester)
    result = COMPARISONS[op](value, limit) & present.eq(1)
    return party.reveal_bits(result, to=requester)
