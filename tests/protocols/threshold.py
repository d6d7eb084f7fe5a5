"""Test helper: a one-owner threshold check on looked-up shares (P3 then P4), ``present AND value OP t``.

No daemon runs it any more (the requester chose ``t``, so repeated checks read exact values);
the lookup and dealer tests use it as the smallest program over looked-up shares.

Both parties hold additive shares of each looked-up ``value`` from the masked lookup; the
requester's threshold ``t`` and the presence bits (which the requester learned in the lookup) are
its secret inputs; the single result bit per row is revealed to the requester only. The owner
learns nothing (not ``t``, not presence, not the result).
"""

from __future__ import annotations

import numpy as np

from mpc.sharing.boolean import COMPARISON_GATES, comparison_triple_words
from mpc.sharing.dealer import Reservation
from mpc.sharing.runtime import Party
from mpc.sharing.types import ArithmeticShare

COMPARISONS = COMPARISON_GATES


def threshold_reservation(op: str, rows: int) -> Reservation:
    """What :func:`threshold_program` takes from the dealer: the comparison and the presence AND."""
    return Reservation.covering(bit_triple_words=comparison_triple_words(op, rows) + (rows + 63) // 64)


def threshold_program(
    party: Party,
    shares: np.ndarray,
    op: str,
    requester: int,
    threshold: int | None = None,
    present: np.ndarray | None = None,
) -> np.ndarray | None:
    """``shares``: this party's (rows x 1) uint64 shares of the value; ``threshold`` and
    ``present`` (one bit per row) come from the requester only."""
    if op not in COMPARISONS:
        raise ValueError(f"unknown comparison {op!r}; use one of {sorted(COMPARISONS)}")
    if shares.ndim != 2 or shares.shape[1] != 1 or shares.dtype != np.uint64:
        raise ValueError(f"expected (rows, 1) uint64 shares, got {shares.shape} {shares.dtype}")
    rows = shares.shape[0]
    value = ArithmeticShare(party, np.ascontiguousarray(shares[:, 0]))
    limits: list[int] | None = None
    known: list[int] | None = None
    if party.index == requester:
        if threshold is None or present is None or len(present) != rows:
            raise ValueError("the requester supplies the threshold and one presence bit per row")
        limits, known = [threshold] * rows, np.asarray(present, dtype=np.uint8).tolist()
    limit = party.share(limits, owner=requester)
    result = COMPARISONS[op](value, limit) & party.share_bits(known, owner=requester)
    return party.reveal_bits(result, to=requester)
