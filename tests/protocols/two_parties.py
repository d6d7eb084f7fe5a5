"""Both parties of a two-party program in two threads of this process, their correlations dealt by
one trusted dealer with a reservation: what each role returned, and the two parties (to check
what they drew from the dealer). An exception in either role is raised here; the other party's
channel is aborted so that it stops at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from mpc.sharing.channel import InProcessChannel
from mpc.sharing.dealer import Reservation, TrustedDealer
from mpc.sharing.runtime import Party

__all__ = ["run_parties"]


def run_parties(
    roles: tuple[Callable[[Party], Any], Callable[[Party], Any]], reservation: Reservation
) -> tuple[tuple[Any, Any], tuple[Party, Party]]:
    dealer = TrustedDealer()
    left, right = InProcessChannel.pair()
    parties = (
        Party(0, left, dealer.correlations_for(0, reservation)),
        Party(1, right, dealer.correlations_for(1, reservation)),
    )
    out: list[Any] = [None, None]
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            out[i] = roles[i](parties[i])
        except BaseException as exc:
            errors.append(exc)
            parties[i].channel.abort(str(exc))

    threads = [threading.Thread(target=body, args=(i,), name=f"party-{i}") for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return (out[0], out[1]), parties
