"""Where the owner's daemon and the requester's client meet: a join the gateway asks an owner to
initiate runs through the requester's client, with the daemon's identity, datasets and policy.
(The two packages never import each other; ``mpc-party serve`` composes them here.)"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mpc.protocols import aggregate as agg
from parties.requester import Client, RemoteError
from parties.rpc.boundary import Call, ServiceError

if TYPE_CHECKING:
    from parties.owner.server import PartyDaemon

__all__ = ["initiate_join"]


def initiate_join(
    daemon: PartyDaemon, call: Call, peer: str, request: agg.AggregateRequest
) -> tuple[agg.CellShares, str, int]:
    """Our share of the cells of a join with ``peer`` for the gateway (noised by us), the session
    the peer keeps its share under, and the rows of the intersection."""
    client = Client(
        daemon.name,
        daemon.config.tls,
        daemon.config.party.coordinator,
        call.purpose,
        call.case,
        config=daemon.config,
        datasets=daemon.datasets,
        coordinator_name=daemon.config.party.coordinator_name,
    )
    try:
        outcome = client.aggregate_shares(peer, request)
        assert isinstance(outcome.result, agg.CellShares)
        return outcome.result, outcome.session_id, outcome.rows
    except RemoteError as exc:
        raise ServiceError(exc.code, str(exc)) from None
    finally:
        client.close()
