"""The ``mpc.v1.Party`` service: each RPC wired, behind the daemon's boundary, to the handler of
its protocol.

    catalogue    GetCapabilities, ListDatasets, GetAuditHead
    oprf         EvaluateOprf, EvaluateOprfBatch, GetPredicateFilter        (P2, P3)
    psi          PsiRound, GetTags                                          (P1)
    lookup       GetEncryptedBucket, MaskedDecrypt                          (P3, P1 batches)
    rules        ForwardShares, ReceiveShares, the rule program             (P4)
    aggregate    CheckAggregate, RunAggregate, GetResultShare, its program  (P5)
    programs     ShareExchange: any program of the registry, as party 1

Each RPC method runs its handler behind the daemon's :class:`~parties.rpc.boundary.Boundary`.
Every handler takes its policy decisions from the one :class:`~parties.owner.gate.Gate`; none
logs or returns values; the audit entry (written by the boundary) records row counts only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from parties.owner.aggregate import Aggregates, JoinInitiator
from parties.owner.catalogue import Catalogue
from parties.owner.gate import Gate
from parties.owner.lookup import Lookup
from parties.owner.oprf import Oprf
from parties.owner.programs import Programs
from parties.owner.psi import Psi
from parties.owner.rules import Rules

if TYPE_CHECKING:
    from parties.owner.server import PartyDaemon

__all__ = ["party_service"]


def party_service(daemon: PartyDaemon, initiator: JoinInitiator | None = None) -> dict[str, Callable[..., Any]]:
    """Each RPC's behaviour: its protocol's handler behind the daemon's boundary (what
    :func:`parties.rpc.registration.add_service` registers)."""
    gate = Gate(daemon)
    catalogue, oprf, psi, lookup = Catalogue(daemon, gate), Oprf(daemon, gate), Psi(daemon, gate), Lookup(daemon, gate)
    rules, aggregates = Rules(daemon, gate), Aggregates(daemon, gate, initiator)
    programs = Programs(daemon, gate, rules, aggregates)
    b = daemon.boundary
    return {
        "GetCapabilities": b.unary("GetCapabilities")(catalogue.capabilities),
        "ListDatasets": b.unary("ListDatasets")(catalogue.list_datasets),
        "GetAuditHead": b.unary("GetAuditHead")(catalogue.audit_head),
        "EvaluateOprf": b.streaming("EvaluateOprf", "oprf")(oprf.evaluate),
        "EvaluateOprfBatch": b.unary("EvaluateOprfBatch", "oprf")(oprf.evaluate_batch),
        "GetPredicateFilter": b.streaming("GetPredicateFilter", "oprf-filter")(oprf.predicate_filter),
        "PsiRound": b.streaming("PsiRound", "P1")(psi.round),
        "GetTags": b.streaming("GetTags", "P1")(psi.tags),
        "GetEncryptedBucket": b.streaming("GetEncryptedBucket", "lookup")(lookup.encrypted_rows),
        "MaskedDecrypt": b.unary("MaskedDecrypt", "lookup")(lookup.masked_decrypt),
        "ForwardShares": b.unary("ForwardShares", "forward")(rules.forward_shares),
        "ReceiveShares": b.unary("ReceiveShares", "forward")(rules.receive_shares),
        "ShareExchange": b.streaming("ShareExchange", "share-exchange")(programs.share_exchange),
        "CheckAggregate": b.unary("CheckAggregate", "P5")(aggregates.check),
        "RunAggregate": b.unary("RunAggregate", "P5")(aggregates.run_for_gateway),
        "GetResultShare": b.unary("GetResultShare", "P5")(aggregates.result_share),
    }
