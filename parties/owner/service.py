"""The ``mpc.v1.Party`` service: each RPC wired, behind the daemon's boundary, to the handler of
its protocol.

    catalogue    GetCapabilities, ListDatasets, GetAuditHead
    oprf         EvaluateOprf, EvaluateOprfBatch, GetPredicateFilter        (P2, P3)
    psi          PsiRound, GetTags                                          (P1)
    lookup       GetEncryptedBucket, MaskedDecrypt                          (P3, P1 batches)
    rules        ForwardShares, ReceiveShares, the rule program             (P4)
    aggregate    CheckAggregate, RunAggregate, GetResultShare, its program  (P5)
    programs     ShareExchange: any program of the registry, as party 1

Every handler takes its policy decisions from the one :class:`~parties.owner.gate.Gate`; none
logs or returns values; the audit entry (written by the boundary) records row counts only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from parties.owner.aggregate import Aggregates, JoinInitiator
from parties.owner.catalogue import Catalogue
from parties.owner.gate import Gate
from parties.owner.lookup import Lookup
from parties.owner.oprf import Oprf
from parties.owner.programs import Programs
from parties.owner.psi import Psi
from parties.owner.rules import Rules
from protos import party_pb2_grpc

if TYPE_CHECKING:
    from parties.owner.server import PartyDaemon

__all__ = ["PartyService"]


class PartyService(party_pb2_grpc.PartyServicer):  # type: ignore[misc]
    def __init__(self, daemon: PartyDaemon, initiator: JoinInitiator | None = None) -> None:
        self.daemon = daemon
        gate = Gate(daemon)
        catalogue, oprf, psi, lookup = (
            Catalogue(daemon, gate),
            Oprf(daemon, gate),
            Psi(daemon, gate),
            Lookup(daemon, gate),
        )
        rules, aggregates = Rules(daemon, gate), Aggregates(daemon, gate, initiator)
        programs = Programs(daemon, gate, rules, aggregates)
        b = daemon.boundary
        self.GetCapabilities = b.unary("GetCapabilities")(catalogue.capabilities)
        self.ListDatasets = b.unary("ListDatasets")(catalogue.list_datasets)
        self.GetAuditHead = b.unary("GetAuditHead")(catalogue.audit_head)
        self.EvaluateOprf = b.streaming("EvaluateOprf", "oprf")(oprf.evaluate)
        self.EvaluateOprfBatch = b.unary("EvaluateOprfBatch", "oprf")(oprf.evaluate_batch)
        self.GetPredicateFilter = b.streaming("GetPredicateFilter", "oprf-filter")(oprf.predicate_filter)
        self.PsiRound = b.streaming("PsiRound", "P1")(psi.round)
        self.GetTags = b.streaming("GetTags", "P1")(psi.tags)
        self.GetEncryptedBucket = b.streaming("GetEncryptedBucket", "lookup")(lookup.encrypted_rows)
        self.MaskedDecrypt = b.unary("MaskedDecrypt", "lookup")(lookup.masked_decrypt)
        self.ForwardShares = b.unary("ForwardShares", "forward")(rules.forward_shares)
        self.ReceiveShares = b.unary("ReceiveShares", "forward")(rules.receive_shares)
        self.ShareExchange = b.streaming("ShareExchange", "share-exchange")(programs.share_exchange)
        self.CheckAggregate = b.unary("CheckAggregate", "P5")(aggregates.check)
        self.RunAggregate = b.unary("RunAggregate", "P5")(aggregates.run_for_gateway)
        self.GetResultShare = b.unary("GetResultShare", "P5")(aggregates.result_share)
