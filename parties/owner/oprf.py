"""The owner's OPRF (P2 predicates, P3 lookups, PSI against its key): it evaluates blinded points.

Per dataset the key rotates every ``oprf_epoch_hours`` (only the current epoch's key is ever
applied); per predicate, the key of the requester's filter epoch (current or previous). Each
point is counted against the key's budget before the key is applied. The owner sees blinded
points only: nothing of the ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import grpc

from mpc.crypto.curve25519 import OprfServer
from parties.owner.gate import Handlers
from parties.rpc.boundary import Call, ServiceError
from parties.rpc.points import split_points
from protos import party_pb2

if TYPE_CHECKING:
    pass

__all__ = ["Oprf"]


class Oprf(Handlers):
    def evaluate(
        self, requests: Iterator[party_pb2.PointBatch], context: grpc.ServicerContext, call: Call
    ) -> Iterator[party_pb2.PointBatch]:
        key: OprfServer | None = None
        limit = self.daemon.config.party.max_points_per_request
        budget = ("", 0.0)  # the key's budget name and epoch length
        epoch = 0  # the key's epoch, reported in the first reply
        for batch in requests:
            first = key is None
            if key is None:
                if batch.predicate:  # P2: the predicate's key for the epoch of the requester's filter
                    spec = self.gate.predicate(call, batch.predicate)
                    current = self.daemon.current_epoch(spec)
                    if batch.epoch not in (current, current - 1):
                        raise ServiceError(
                            grpc.StatusCode.FAILED_PRECONDITION,
                            f"epoch {batch.epoch} of predicate {spec.name} has expired (now {current}); "
                            f"fetch the filter again",
                        )
                    key, epoch = self.daemon.predicate_key(spec, batch.epoch), batch.epoch
                    budget = (f"predicate={spec.name}", spec.epoch_hours * 3600)
                    call.protocol, call.detail = "P2", f"predicate={spec.name} epoch={batch.epoch}"
                else:
                    self.gate.dataset(call, batch.dataset, psi=True)
                    epoch = self.daemon.dataset_epoch()  # only the current epoch's key, ever
                    key = self.daemon.oprf_key(batch.dataset, epoch)
                    budget = (f"dataset={batch.dataset}", self.daemon.config.party.oprf_epoch_hours * 3600)
                    call.detail = f"dataset={batch.dataset} epoch={epoch}"
            points = split_points(batch.points, batch.count)
            call.rows += len(points)
            if call.rows > limit:
                raise ServiceError(grpc.StatusCode.RESOURCE_EXHAUSTED, f"more than {limit} points in one request")
            self.daemon.budgets.oprf(call, budget[0], budget[1], len(points), epoch)  # before the key is applied
            evaluated = key.evaluate_blinded(points)
            yield party_pb2.PointBatch(points=b"".join(evaluated), count=len(evaluated), epoch=epoch if first else 0)

    def evaluate_batch(
        self, request: party_pb2.PointBatch, context: grpc.ServicerContext, call: Call
    ) -> party_pb2.PointBatch:
        replies = list(self.evaluate(iter([request]), context, call))
        return replies[0]

    def predicate_filter(
        self, request: party_pb2.PredicateRequest, context: grpc.ServicerContext, call: Call
    ) -> Iterator[party_pb2.FilterChunk]:
        spec = self.gate.predicate(call, request.predicate)
        epoch = self.daemon.current_epoch(spec)
        tags = self.daemon.predicate_filter(spec, epoch)
        call.rows, call.protocol, call.detail = len(tags), "P2", f"predicate={spec.name} epoch={epoch}"
        step = 65_536
        for start in range(0, max(1, len(tags)), step):
            part = tags[start : start + step]
            yield party_pb2.FilterChunk(epoch=epoch, total=len(tags), tags=b"".join(part), count=len(part))
