"""Secret-sharing programs on the owner's side: ``ShareExchange`` looks the program up in the
registry (:mod:`mpc.protocols.programs`), parses its typed parameters, has the program's handler
admit it through the gate and take what it consumes, and only then runs party 1 against the
requester while the dealer's correlations arrive.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc

from mpc.protocols.programs import AGGREGATE, RULE, SELFTEST_COMPARE, ProgramParams, SelftestParams
from mpc.sharing.channel import ChannelError
from mpc.sharing.runtime import Party
from parties.owner.aggregate import Aggregates
from parties.owner.gate import Gate
from parties.owner.rules import Rules
from parties.owner.sessions import check_session_id
from parties.rpc.boundary import Call, ServiceError
from parties.rpc.dealer_client import DealerSession, reservation_of
from parties.rpc.share_channel import ShareServerChannel
from protos import party_pb2

if TYPE_CHECKING:
    from parties.owner.server import PartyDaemon

__all__ = ["Programs"]

# A program's co-party side, ready to run: it was admitted and took what it consumes.
Prepared = Callable[[Party], dict[str, Any]]


class Programs:
    def __init__(self, daemon: PartyDaemon, gate: Gate, rules: Rules, aggregates: Aggregates) -> None:
        self.daemon, self.gate = daemon, gate
        # each registry entry's handler on this side (what it checks and takes before any dealing)
        self._handlers: dict[str, Callable[[Any, Call, str, int], Prepared]] = {
            SELFTEST_COMPARE.name: self._selftest,
            RULE.name: lambda params, call, session_id, initiator: rules.co_party(params, call, session_id),
            AGGREGATE.name: lambda params, call, session_id, initiator: aggregates.co_party(params, call, session_id),
        }

    def share_exchange(
        self, requests: Iterator[party_pb2.ShareMessage], context: grpc.ServicerContext, call: Call
    ) -> Iterator[party_pb2.ShareMessage]:
        first = next(requests, None)
        if first is None or first.WhichOneof("body") != "start":
            raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, "ShareExchange must start with a ShareStart message")
        start = first.start
        entry = self.gate.program(call, start.program)
        if start.initiator_index not in (0, 1):
            raise ValueError("initiator_index must be 0 or 1")
        initiator = int(start.initiator_index)
        if entry.requester_starts and initiator != 0:
            raise ValueError(f"the requester starts a {entry.name} program as party 0")
        check_session_id(start.session_id)
        params: ProgramParams = entry.parse(start.params)
        me = 1 - initiator
        reservation = reservation_of(start.reserve)
        order = (call.peer, self.daemon.name) if initiator == 0 else (self.daemon.name, call.peer)
        metadata = (("x-purpose", call.purpose), ("x-case", call.case))
        # the dealer's reply (with our reserved corrections) arrives while we admit the program
        dealer = DealerSession(self.daemon.coordinator_stub(), start.session_id, order, reservation, metadata)
        try:
            program = self._handlers[entry.name](params, call, start.session_id, initiator)
        except (KeyError, TypeError, AttributeError, AssertionError, IndexError) as exc:  # parameters that do not fit
            dealer.close()
            raise ValueError(f"bad parameters for {entry.name}: {type(exc).__name__}: {exc}") from None
        except BaseException:
            dealer.close()
            raise
        channel = ShareServerChannel(requests, peer=call.peer)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                try:
                    correlations = dealer.correlations()
                except grpc.RpcError as exc:
                    raise ServiceError(
                        exc.code(), f"the dealer refused session {start.session_id}: {exc.details()}"
                    ) from None
                summary = program(Party(me, channel, correlations))
                channel.finish({"program": start.program, **summary})
            except BaseException as exc:
                failure.append(exc)
                channel.abort(f"{self.daemon.name} failed: {type(exc).__name__}: {exc}")
            finally:
                dealer.close()

        worker = threading.Thread(target=run, name=f"program-{uuid.uuid4().hex[:6]}", daemon=True)
        worker.start()
        yield from channel.responses()
        worker.join()
        if failure:
            error = failure[0]
            if isinstance(error, ChannelError):
                raise ServiceError(grpc.StatusCode.ABORTED, f"session {start.session_id} with {call.peer}: {error}")
            raise error

    def _selftest(self, params: SelftestParams, call: Call, session_id: str, initiator: int) -> Prepared:
        self.gate.admit(call, SELFTEST_COMPARE.requirements(params))
        call.rows = params.n

        def compare(party: Party) -> dict[str, Any]:
            SELFTEST_COMPARE.run(party, params, initiator)
            return {"n": params.n, "learned": SELFTEST_COMPARE.learned}

        return compare
