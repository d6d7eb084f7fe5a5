"""P5 on the owner's side: aggregates over a join of a requester's table with ours, computed on
shares (:mod:`mpc.protocols.aggregate`), and the gateway's jobs over our tables.

``CheckAggregate`` answers whether our policy admits a request before anything is computed; the
aggregate program runs as party 1 on the shares our masked decryption left us; ``RunAggregate``
lets the gateway have us initiate a join with another owner (through the requester's client the
daemon is given: the owner's package never imports the requester's) or compute over one table of
ours alone; ``GetResultShare`` hands the gateway our noised share of the cells.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import grpc
import numpy as np
from pydantic import ValidationError

from mpc.audit import AuditEvent
from mpc.data.sources import Dataset
from mpc.files import write_atomic
from mpc.protocols import aggregate as agg
from mpc.protocols import privacy
from mpc.protocols.programs import AGGREGATE, AggregateParams
from mpc.sharing.runtime import Party
from parties.config import format_validation_error
from parties.owner.gate import Gate
from parties.owner.sessions import HeldResult, check_session_id
from parties.rpc import wire
from parties.rpc.boundary import Call, ServiceError
from protos import common_pb2, party_pb2

if TYPE_CHECKING:
    from parties.owner.server import PartyDaemon

__all__ = ["Aggregates", "JoinInitiator"]


class JoinInitiator(Protocol):
    """Runs the initiator's side of a join for the gateway (the requester's client, given to the
    daemon by whoever composes it): our share of the cells, the peer's session, the rows."""

    def __call__(
        self, daemon: PartyDaemon, call: Call, peer: str, request: agg.AggregateRequest
    ) -> tuple[agg.CellShares, str, int]: ...


class Aggregates:
    def __init__(self, daemon: PartyDaemon, gate: Gate, initiator: JoinInitiator | None = None) -> None:
        self.daemon, self.gate, self.initiator = daemon, gate, initiator

    def check(self, request: party_pb2.AggregateCheck, context: grpc.ServicerContext, call: Call) -> common_pb2.Empty:
        """Whether our policy admits the request (the same gate the program passes)."""
        query, data = self.gate.aggregate(call, request.request, int(request.rows))
        self._describe(call, query, data, int(request.rows))
        return common_pb2.Empty()

    @staticmethod
    def _describe(call: Call, request: agg.AggregateRequest, data: Dataset, rows: int) -> None:
        uses = request.uses("peer")
        call.rows = rows
        call.detail = (
            f"dataset={data.name} uses={ {c: sorted(u) for c, u in sorted(uses.items())} } "
            f"groups={[str(k) for k in request.group_by]} reveal_to={request.reveal_to}"
        )

    def co_party(self, params: AggregateParams, call: Call, session_id: str) -> Callable[[Party], dict[str, Any]]:
        """The aggregate program as the peer: our shares of the looked-up columns, the request
        admitted by the gate, our own declaration of our columns (never the requester's)."""
        admission = self.gate.admit(call, AGGREGATE.requirements(params))
        data = admission.dataset
        assert data is not None
        request, rows = params.request, params.rows
        self._describe(call, request, data, rows)
        schemas = params.schemas(peer=agg.ColumnInfo.declared(data))
        request.check(schemas, rows)
        columns = request.peer_columns()
        if params.session:
            held = self.daemon.sessions.take(params.session, call.peer)
            if (held.dataset, held.columns, held.shares.shape[0], held.source) != (data.name, columns, rows, ""):
                raise ValueError(
                    f"session {params.session} holds {held.dataset}{list(held.columns)} x {held.shares.shape[0]}, "
                    f"not what the aggregate reads"
                )
            shares = held.shares
        elif columns:
            raise ValueError("the aggregate reads our columns: name the session of their masked decryption")
        else:
            shares = np.zeros((rows, 0), dtype=np.uint64)
        noise = privacy.own_noise(request, schemas, recipient=request.reveal_to == "peer")
        self.gate.epsilon_cost(admission, schemas)
        admission.charge()

        def run(party: Party) -> dict[str, Any]:
            result = AGGREGATE.run(party, params, schemas, shares, noise=noise)
            if isinstance(result, agg.CellShares):  # the gateway fetches it (GetResultShare)
                self.daemon.results.put(session_id, HeldResult(request.gateway, result, rows, time.monotonic()))
                return {"rows": rows, "learned": "nothing (shares only); our noised share waits for the gateway"}
            if not isinstance(result, agg.AggregateResult):
                return {"rows": rows, "learned": AGGREGATE.learned}
            return {
                "rows": rows,
                "stored": self._store(call, session_id, request, rows, result),
                "groups": len(result.groups),
            }

        return run

    def _store(
        self, call: Call, session_id: str, request: agg.AggregateRequest, rows: int, result: agg.AggregateResult
    ) -> str:
        """Cells revealed to us: written to our state directory, under a name we choose (nothing
        the requester sent is part of the path), and audited."""
        results = self.daemon.config.party.state_dir / "results"
        path = results / f"aggregate-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}.json"
        results.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(
            path,
            [
                json.dumps(
                    {"request": request.model_dump(mode="json"), "rows": rows, "cells": result.table(request)},
                    indent=1,
                ).encode()
            ],
        )
        self.daemon.audit_log.append(
            AuditEvent(
                peer=call.peer,
                action="result:aggregate",
                purpose=call.purpose,
                case=call.case,
                protocol="P5",
                rows=rows,
                detail=f"session={session_id} cells stored in results/{path.name}",
            )
        )
        return f"results/{path.name}"

    def run_for_gateway(
        self, request: party_pb2.AggregateJob, context: grpc.ServicerContext, call: Call
    ) -> party_pb2.CellShares:
        """For the gateway: our share of the cells (noised by us) as the initiator of a join with
        ``peer``, or over one of our tables alone (computed in the clear, then noised)."""
        try:
            job = agg.AggregateRequest.model_validate_json(request.request)
        except ValidationError as exc:
            raise ValueError(f"malformed aggregate request: {format_validation_error(exc, 'request')}") from None
        admission = self.gate.gateway_job(call, job)
        data = admission.dataset
        assert data is not None
        call.detail = (
            f"dataset={data.name} peer={request.peer or '-'} epsilon={job.epsilon} "
            f"groups={[str(k) for k in job.group_by]}"
        )
        if job.single_table:
            if request.peer:
                raise ValueError("an aggregate over one table names no peer")
            schemas: dict[agg.Side, dict[str, agg.ColumnInfo]] = {
                "initiator": agg.ColumnInfo.declared(data),
                "peer": {},
            }
            job.check(schemas, len(data.ids))
            admission.charge()
            values = {c: agg.clamp(data.values(c), schemas["initiator"][c]) for c in job.uses("initiator")}
            noise = privacy.own_noise(job, schemas)
            assert noise is not None  # job.reveal_to is the gateway, checked by the gate
            noised = agg.table_cells(job, schemas, values) + noise
            call.rows = len(data.ids)
            return party_pb2.CellShares(
                cells=job.cells(), values=wire.to_message(noised.astype(np.uint64)), rows=len(data.ids)
            )
        if self.initiator is None:
            raise ServiceError(grpc.StatusCode.UNIMPLEMENTED, f"{self.daemon.name} does not initiate joins")
        admission.charge()  # the peer's CheckAggregate and the join follow
        shares, session_id, rows = self.initiator(self.daemon, call, request.peer, job)
        call.rows = rows
        return party_pb2.CellShares(
            session_id=session_id, cells=list(shares.cells), values=wire.to_message(shares.values), rows=rows
        )

    def result_share(
        self, request: party_pb2.ResultRequest, context: grpc.ServicerContext, call: Call
    ) -> party_pb2.CellShares:
        check_session_id(request.session_id)
        try:
            held = self.daemon.results.take(request.session_id, call.peer)
        except LookupError:
            raise ServiceError(
                grpc.StatusCode.NOT_FOUND,
                f"no result share of session {request.session_id!r} for "
                f"{call.peer} (expired, fetched already, or not yours)",
            ) from None
        call.rows, call.detail = held.rows, f"session={request.session_id}"
        return party_pb2.CellShares(
            session_id=request.session_id,
            cells=list(held.shares.cells),
            values=wire.to_message(held.shares.values),
            rows=held.rows,
        )
