"""P4 on the owner's side: forwarding shares to a rule's co-party, receiving them as co-party, and
running the approved rule on shares as party 1 (:mod:`mpc.protocols.rules`).

Every step is for one approved rule (name and fingerprint), one batch size and exactly the columns
the rule reads; shares forwarded by another owner carry that owner's approval and consent, and
run only in that rule. The co-party learns nothing but the batch's size and slots.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np
from pydantic import ValidationError

from mpc.protocols import rules
from mpc.protocols.programs import RULE, RuleParams
from mpc.sharing.runtime import Party
from parties.config import format_validation_error
from parties.owner.gate import Handlers
from parties.owner.sessions import HeldShares, check_session_id
from parties.rpc import wire
from parties.rpc.boundary import Call, ServiceError
from protos import party_pb2

if TYPE_CHECKING:
    pass

__all__ = ["Rules"]


class Rules(Handlers):
    # ------------------------------------------------------------------ an owner forwarding its shares
    def forward_shares(
        self, request: party_pb2.ForwardRequest, context: grpc.ServicerContext, call: Call
    ) -> party_pb2.DecryptReceipt:
        """Hand the shares of a masked decryption to the rule's co-party (which learns nothing from
        them: each is the value plus the requester's mask), only for a rule we approved for the
        caller, reading exactly these columns; the co-party runs only that rule on them."""
        check_session_id(request.session_id)
        try:  # taken first: a refused forward leaves nothing held for another try
            held = self.daemon.sessions.take(request.session_id, call.peer)
        except LookupError as exc:
            raise ServiceError(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None
        if request.co_party == call.peer:  # both shares at the requester would reveal the values
            raise ServiceError(grpc.StatusCode.PERMISSION_DENIED, "shares are never forwarded to the requester itself")
        if request.co_party == self.daemon.name:
            raise ValueError("forwarding to ourselves")
        reveal_allowed = self.gate.forward(call, request.co_party)
        rule = _parse_rule(request.rule)
        applications, slots = int(request.applications), int(request.slots)
        if slots < 1:
            raise ValueError(f"{slots} member slots per application")
        admission = self.gate.admit(call, RULE.forwarding(request.rule_name, rule, applications, slots))
        if rule.co_party_for(call.peer) != request.co_party:
            raise ServiceError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"rule {request.rule_name!r} computes with {rule.co_party_for(call.peer)!r}, not {request.co_party!r}",
            )
        if held.source:  # shares another owner forwarded to us stay with us
            raise ServiceError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"session {request.session_id} holds {held.source}'s shares: they are never forwarded again",
            )
        self._check_own_table(request.rule_name, rule, held, applications, slots)
        admission.charge()
        metadata = (("x-purpose", call.purpose), ("x-case", call.case))

        def chunks() -> Iterator[party_pb2.SharesChunk]:
            first = True
            for piece, more in wire.chunks(held.shares):
                chunk = party_pb2.SharesChunk(shares=wire.to_message(piece), more=more)
                if first:
                    chunk.session_id, chunk.requester, chunk.dataset = request.session_id, call.peer, held.dataset
                    chunk.reveal_allowed = reveal_allowed
                    chunk.rule_name, chunk.rule_fingerprint = request.rule_name, admission.fingerprint
                    chunk.applications, chunk.slots = applications, slots
                    chunk.columns.extend(held.columns)
                    chunk.rows, first = held.shares.shape[0], False
                yield chunk

        try:
            receipt = self.daemon.peer_stub(request.co_party).ReceiveShares(chunks(), metadata=metadata, timeout=300)
        except grpc.RpcError as exc:
            raise ServiceError(exc.code(), f"co-party {request.co_party} refused the shares: {exc.details()}") from None
        call.rows = int(receipt.rows)
        call.detail = (
            f"session={request.session_id} co_party={request.co_party} dataset={held.dataset} "
            f"rule={request.rule_name} fingerprint={admission.fingerprint[:16]}"
        )
        return party_pb2.DecryptReceipt(rows=receipt.rows)

    # ------------------------------------------------------------------ the co-party receiving them
    def receive_shares(
        self, requests: Iterator[party_pb2.SharesChunk], context: grpc.ServicerContext, call: Call
    ) -> party_pb2.DecryptReceipt:
        self.gate.receive(call)
        header: party_pb2.SharesChunk | None = None
        pieces = []
        received = 0
        for chunk in requests:
            if header is None:
                header = chunk
                if not header.columns or not header.rule_fingerprint:
                    raise ValueError(
                        "ReceiveShares needs a header chunk with session, requester, dataset, columns and rule"
                    )
                check_session_id(header.session_id)
                if not 0 <= header.rows <= self.daemon.config.party.max_points_per_request * rules.MAX_MEMBERS:
                    raise ServiceError(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{header.rows} rows of forwarded shares")
            pieces.append(wire.from_message(chunk.shares))
            received += pieces[-1].size
            if received > header.rows * len(header.columns):  # never more than announced
                raise ValueError(f"more forwarded shares than the announced {header.rows} x {len(header.columns)}")
            if not chunk.more:
                break
        if header is None:
            raise ValueError("ReceiveShares needs a header chunk with session, requester, dataset, columns and rule")
        shares = wire.join(pieces).reshape(int(header.rows), len(header.columns)) if pieces else None
        if shares is None or shares.dtype != np.uint64:
            raise ValueError("forwarded shares must be uint64")
        self.daemon.sessions.put(
            header.session_id,
            HeldShares(
                header.requester,
                header.dataset,
                tuple(header.columns),
                shares,
                time.monotonic(),
                source=call.peer,
                reveal_allowed=header.reveal_allowed,
                rule=(header.rule_name, header.rule_fingerprint, int(header.applications), int(header.slots)),
            ),
        )
        call.rows = int(header.rows)
        call.detail = (
            f"session={header.session_id} requester={header.requester} from={call.peer} dataset={header.dataset} "
            f"rule={header.rule_name}"
        )
        return party_pb2.DecryptReceipt(rows=header.rows)

    # ------------------------------------------------------------------ the rule program, party 1
    def co_party(self, params: RuleParams, call: Call, session_id: str) -> Callable[[Party], dict[str, Any]]:
        """Evaluate a rule we approved on the shares our masked decryptions left us and those other
        owners forwarded for the same approved rule and size."""
        me, name, rule = self.daemon.name, params.name, params.rule
        admission = self.gate.admit(call, RULE.requirements(params))
        if rule.co_party_for(call.peer) != me:
            raise ServiceError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"rule {name!r} computes with {rule.co_party_for(call.peer)!r}, not {me!r}",
            )
        layout = rules.table_columns(rule)
        tables: dict[rules.TableKey, rules.ShareTable] = {}
        consent: dict[str, bool] = {}  # the forwarding owners' consent to reveal their clause bits
        for ref in params.tables:
            key = (ref.owner, ref.dataset)
            try:
                held = self.daemon.sessions.take(ref.session, call.peer)
            except LookupError as exc:
                raise ServiceError(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None
            if (held.source or me) != key[0] or held.dataset != key[1]:
                raise ValueError(
                    f"session {ref.session} holds shares of {held.source or me}.{held.dataset}, not {key[0]}.{key[1]}"
                )
            if held.source:  # the forwarding owner checked them against its approval of this very rule
                if held.rule != (name, admission.fingerprint, params.applications, params.slots):
                    raise ServiceError(
                        grpc.StatusCode.PERMISSION_DENIED,
                        f"{held.source} forwarded session {ref.session} for rule {held.rule[0]!r} "
                        f"({held.rule[1][:16]}, {held.rule[2]} x {held.rule[3]}), not this one",
                    )
                if held.columns != layout.get(key):
                    raise ValueError(f"session {ref.session} holds {list(held.columns)}, not what the rule reads")
                consent[held.source] = consent.get(held.source, True) and held.reveal_allowed
            else:
                self._check_own_table(name, rule, held, params.applications, params.slots)
            tables[key] = rules.ShareTable(held.columns, held.shares)
        missing = sorted(set(layout) - set(tables))
        if missing:
            raise ValueError(f"no shares supplied for {missing}")
        for clause_name in params.reveal:  # our own clauses' consent the gate checked; the others' came with them
            owner = rule.clauses[clause_name].owner
            if owner != me and not consent.get(owner, False):
                raise ServiceError(
                    grpc.StatusCode.PERMISSION_DENIED, f"{owner} does not let {call.peer} see clause {clause_name!r}"
                )
        admission.charge()
        call.rows = params.applications
        call.detail = (
            f"rule={name} fingerprint={admission.fingerprint[:16]} applications={params.applications} "
            f"slots={params.slots}"
        )

        def evaluate(party: Party) -> dict[str, Any]:
            RULE.run(party, params, tables)
            return {
                "applications": params.applications,
                "revealed_clauses": list(params.reveal),
                "learned": RULE.learned,
            }

        return evaluate

    def _check_own_table(self, name: str, rule: rules.Rule, held: HeldShares, applications: int, slots: int) -> None:
        """Our shares are exactly what the approved rule reads of our dataset, row for row (the
        gate checked that our policy lets the caller compare those columns)."""
        key = (self.daemon.name, held.dataset)
        columns = rules.table_columns(rule).get(key)
        if columns is None or held.columns != columns:
            raise ServiceError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"rule {name!r} reads {list(columns or ())} of {held.dataset}, not {list(held.columns)}",
            )
        expected = rules.table_rows(rule, key, applications, slots)
        if held.shares.shape[0] != expected:
            raise ValueError(f"the session holds {held.shares.shape[0]} rows; rule {name!r} reads {expected}")


def _parse_rule(raw: bytes) -> rules.Rule:
    try:
        return rules.Rule.model_validate_json(raw)
    except ValidationError as exc:
        raise ValueError(f"malformed rule: {format_validation_error(exc, 'rule')}") from None
