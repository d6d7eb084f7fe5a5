"""Secret-sharing programs, the requester's role: open the dealer session, start the program on
the co-party's daemon with its typed parameters (:mod:`mpc.protocols.programs`), and run party 0
while the dealer's correlations arrive. The results are revealed to us alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import numpy as np

from mpc.protocols.programs import SELFTEST_COMPARE, Program, ProgramParams, SelftestParams
from mpc.sharing.channel import ChannelError
from mpc.sharing.dealer import Reservation
from mpc.sharing.runtime import Party
from parties.requester.results import RemoteError
from parties.rpc.dealer_client import DealerSession, reservation_message
from parties.rpc.share_channel import ShareClientChannel
from protos import party_pb2

if TYPE_CHECKING:
    from parties.requester.client import Client

__all__ = ["dealer_session", "revealed", "run", "selftest_compare"]

T = TypeVar("T")
P = TypeVar("P", bound=ProgramParams)


def dealer_session(client: Client, co_party: str, reservation: Reservation) -> DealerSession:
    """Open a dealer session with ``co_party`` (by certificate name) for a program that takes
    ``reservation``; the call runs while we go on (see :func:`run`)."""
    return DealerSession(
        client.coordinator_stub(), uuid.uuid4().hex, (client.name, co_party), reservation, client.metadata()
    )


def run(
    client: Client, party: str, dealer: DealerSession, program: Program[P], params: P, body: Callable[[Party], T]
) -> tuple[T, dict[str, Any]]:
    """Run ``body`` as party 0 of ``program`` against the co-party's daemon, the coordinator
    dealing; returns what ``body`` returned and what the co-party reported learning."""
    session_id = dealer.session_id
    start = party_pb2.ShareStart(
        session_id=session_id,
        program=program.name,
        params=params.model_dump_json().encode(),
        initiator_index=0,
        reserve=reservation_message(dealer.reservation),
    )
    channel = ShareClientChannel(client.party_stub(party), start, peer=dealer.parties[1], metadata=client.metadata())
    try:
        try:
            correlations = dealer.correlations()
        except grpc.RpcError as exc:
            raise RemoteError("coordinator", exc.code(), exc.details() or "") from None
        result = body(Party(0, channel, correlations))
    except ChannelError as exc:
        channel.abort(f"{client.name} gave up: {exc}")
        # the co-party's own status when its refusal or failure ended the stream, else ABORTED
        raise RemoteError(
            party, channel.failed_with or grpc.StatusCode.ABORTED, f"session {session_id}: {exc}"
        ) from None
    except BaseException as exc:
        channel.abort(f"{client.name} failed: {type(exc).__name__}")
        raise
    finally:
        dealer.close()
    channel.close()
    return result, channel.result or {}


def revealed(value: T | None) -> T:
    """What a program revealed to us (the requester is always the recipient of its own results)."""
    if value is None:
        raise RuntimeError("the program revealed nothing to the requester")
    return value


def selftest_compare(client: Client, party: str, values: np.ndarray, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Secret-shared ``values < public_values(seed)`` with ``party`` as co-party, the coordinator
    dealing. Returns the bits and what the co-party reported learning."""
    name = party if ":" not in party else client.capabilities(party).party
    params = SelftestParams(n=len(values), seed=seed)
    dealer = dealer_session(client, name, SELFTEST_COMPARE.reservation(params))
    return run(
        client,
        party,
        dealer,
        SELFTEST_COMPARE,
        params,
        lambda p: revealed(SELFTEST_COMPARE.run(p, params, 0, values)),
    )
