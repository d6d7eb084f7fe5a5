"""What an owner holds between calls: bounded per peer, so one requester cannot crowd out the others."""

from __future__ import annotations

import time

import numpy as np
import pytest


def test_one_peer_cannot_fill_the_owners_session_table() -> None:
    from parties.owner.sessions import (
        MAX_SESSIONS_PER_PEER,
        HeldShares,
        SessionShares,
        TooManySessions,
    )

    held: SessionShares[HeldShares] = SessionShares()
    empty = np.zeros((0, 1), dtype=np.uint64)
    for k in range(MAX_SESSIONS_PER_PEER):
        held.put(f"{k:032x}", HeldShares("curious", "income", ("v",), empty, time.monotonic()))
    with pytest.raises(TooManySessions, match=f"curious holds {MAX_SESSIONS_PER_PEER} open sessions"):
        held.put("f" * 32, HeldShares("curious", "income", ("v",), empty, time.monotonic()))
    held.put("e" * 32, HeldShares("housing", "income", ("v",), empty, time.monotonic()))  # others still can
