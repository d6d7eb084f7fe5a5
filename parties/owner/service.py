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

from collections.abc import Iterator
from typing import TYPE_CHECKING

import grpc

from parties.owner.aggregate import Aggregates, JoinInitiator
from parties.owner.catalogue import Catalogue
from parties.owner.gate import Gate
from parties.owner.lookup import Lookup
from parties.owner.oprf import Oprf
from parties.owner.programs import Programs
from parties.owner.psi import Psi
from parties.owner.rules import Rules
from protos import common_pb2, party_pb2, party_pb2_grpc

if TYPE_CHECKING:
    from parties.owner.server import PartyDaemon

__all__ = ["PartyService"]


class PartyService(party_pb2_grpc.PartyServicer):
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
        self._rpc_get_capabilities = b.unary("GetCapabilities")(catalogue.capabilities)
        self._rpc_list_datasets = b.unary("ListDatasets")(catalogue.list_datasets)
        self._rpc_get_audit_head = b.unary("GetAuditHead")(catalogue.audit_head)
        self._rpc_evaluate_oprf = b.streaming("EvaluateOprf", "oprf")(oprf.evaluate)
        self._rpc_evaluate_oprf_batch = b.unary("EvaluateOprfBatch", "oprf")(oprf.evaluate_batch)
        self._rpc_get_predicate_filter = b.streaming("GetPredicateFilter", "oprf-filter")(oprf.predicate_filter)
        self._rpc_psi_round = b.streaming("PsiRound", "P1")(psi.round)
        self._rpc_get_tags = b.streaming("GetTags", "P1")(psi.tags)
        self._rpc_get_encrypted_bucket = b.streaming("GetEncryptedBucket", "lookup")(lookup.encrypted_rows)
        self._rpc_masked_decrypt = b.unary("MaskedDecrypt", "lookup")(lookup.masked_decrypt)
        self._rpc_forward_shares = b.unary("ForwardShares", "forward")(rules.forward_shares)
        self._rpc_receive_shares = b.unary("ReceiveShares", "forward")(rules.receive_shares)
        self._rpc_share_exchange = b.streaming("ShareExchange", "share-exchange")(programs.share_exchange)
        self._rpc_check_aggregate = b.unary("CheckAggregate", "P5")(aggregates.check)
        self._rpc_run_aggregate = b.unary("RunAggregate", "P5")(aggregates.run_for_gateway)
        self._rpc_get_result_share = b.unary("GetResultShare", "P5")(aggregates.result_share)

    # ------------------------------------------------------------------ catalogue
    def GetCapabilities(self, request: common_pb2.Empty, context: grpc.ServicerContext) -> party_pb2.Capabilities:
        return self._rpc_get_capabilities(request, context)

    def ListDatasets(self, request: common_pb2.Empty, context: grpc.ServicerContext) -> party_pb2.DatasetList:
        return self._rpc_list_datasets(request, context)

    def GetAuditHead(self, request: common_pb2.Empty, context: grpc.ServicerContext) -> common_pb2.AuditHead:
        return self._rpc_get_audit_head(request, context)

    # ------------------------------------------------------------------ oprf
    def EvaluateOprf(
        self, request_iterator: Iterator[party_pb2.PointBatch], context: grpc.ServicerContext
    ) -> Iterator[party_pb2.PointBatch]:
        return self._rpc_evaluate_oprf(request_iterator, context)

    def EvaluateOprfBatch(self, request: party_pb2.PointBatch, context: grpc.ServicerContext) -> party_pb2.PointBatch:
        return self._rpc_evaluate_oprf_batch(request, context)

    def GetPredicateFilter(
        self, request: party_pb2.PredicateRequest, context: grpc.ServicerContext
    ) -> Iterator[party_pb2.FilterChunk]:
        return self._rpc_get_predicate_filter(request, context)

    # ------------------------------------------------------------------ psi
    def PsiRound(
        self, request_iterator: Iterator[party_pb2.PsiMessage], context: grpc.ServicerContext
    ) -> Iterator[party_pb2.PsiMessage]:
        return self._rpc_psi_round(request_iterator, context)

    def GetTags(self, request: party_pb2.TagsRequest, context: grpc.ServicerContext) -> Iterator[party_pb2.TagBatch]:
        return self._rpc_get_tags(request, context)

    # ------------------------------------------------------------------ lookup
    def GetEncryptedBucket(
        self, request: party_pb2.BucketRequest, context: grpc.ServicerContext
    ) -> Iterator[party_pb2.EncryptedRows]:
        return self._rpc_get_encrypted_bucket(request, context)

    def MaskedDecrypt(
        self, request_iterator: Iterator[party_pb2.MaskedRows], context: grpc.ServicerContext
    ) -> party_pb2.DecryptReceipt:
        return self._rpc_masked_decrypt(request_iterator, context)

    # ------------------------------------------------------------------ rules
    def ForwardShares(
        self, request: party_pb2.ForwardRequest, context: grpc.ServicerContext
    ) -> party_pb2.DecryptReceipt:
        return self._rpc_forward_shares(request, context)

    def ReceiveShares(
        self, request_iterator: Iterator[party_pb2.SharesChunk], context: grpc.ServicerContext
    ) -> party_pb2.DecryptReceipt:
        return self._rpc_receive_shares(request_iterator, context)

    # ------------------------------------------------------------------ programs
    def ShareExchange(
        self, request_iterator: Iterator[party_pb2.ShareMessage], context: grpc.ServicerContext
    ) -> Iterator[party_pb2.ShareMessage]:
        return self._rpc_share_exchange(request_iterator, context)

    # ------------------------------------------------------------------ aggregate
    def CheckAggregate(self, request: party_pb2.AggregateCheck, context: grpc.ServicerContext) -> common_pb2.Empty:
        return self._rpc_check_aggregate(request, context)

    def RunAggregate(self, request: party_pb2.AggregateJob, context: grpc.ServicerContext) -> party_pb2.CellShares:
        return self._rpc_run_aggregate(request, context)

    def GetResultShare(self, request: party_pb2.ResultRequest, context: grpc.ServicerContext) -> party_pb2.CellShares:
        return self._rpc_get_result_share(request, context)
