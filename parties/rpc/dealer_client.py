"""The compute parties' side of the coordinator's dealer: seeds, reserved blocks and party 1's
correction words.

A :class:`DealerSession` sends ``OpenSession`` at once and waits for the reply only when the
program first needs its correlations, so the round trip overlaps the caller's other work. Party 1's
reply carries the corrections of the session's :class:`~mpc.sharing.dealer.Reservation`; only
requests beyond it open a ``GetCorrections`` stream.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator

import numpy as np

from mpc.sharing.dealer import KINDS, RESERVED_STREAM, Correlations, Reservation
from parties.rpc import wire
from protos import common_pb2, coordinator_pb2, coordinator_pb2_grpc

OPEN_TIMEOUT_S = 30.0


def reservation_message(reservation: Reservation) -> common_pb2.Reservation:
    return common_pb2.Reservation(
        bit_triple_words=reservation.bit_triple_words,
        beaver_triples=reservation.beaver_triples,
        dabits=reservation.dabits,
    )


def reservation_of(message: common_pb2.Reservation) -> Reservation:
    """The reservation a peer asked for (ValueError if it is out of bounds)."""
    return Reservation(int(message.bit_triple_words), int(message.beaver_triples), int(message.dabits))


class RemoteCorrections:
    """A :class:`~mpc.sharing.dealer.CorrectionSource` for party 1: the reserved blocks came with
    the seed; any other request goes over one ``GetCorrections`` stream, opened at the first."""

    def __init__(
        self,
        stub: coordinator_pb2_grpc.CoordinatorStub,
        session_id: str,
        metadata: tuple[tuple[str, str], ...],
        reserved: dict[int, np.ndarray],
    ) -> None:
        self._stub, self._session_id, self._metadata = stub, session_id, metadata
        self._reserved = reserved  # stream -> words
        self._requests: queue.Queue[coordinator_pb2.CorrectionRequest | None] = queue.Queue()
        self._responses: Iterator[coordinator_pb2.CorrectionChunk] | None = None

    def correction(self, kind: str, stream: int, size: int) -> np.ndarray:
        words = self._reserved.pop(stream) if stream in self._reserved else self._fetch(kind, stream, size)
        if words.shape != (size,) or words.dtype != np.uint64:
            raise wire.WireError(f"dealer sent {words.shape} {words.dtype} for a {size}-word {kind} request")
        return words

    def _fetch(self, kind: str, stream: int, size: int) -> np.ndarray:
        request = coordinator_pb2.CorrectionRequest(kind=kind, stream=stream, size=size)
        if self._responses is None:
            request.session_id = self._session_id
            self._responses = self._stub.GetCorrections(iter(self._requests.get, None), metadata=self._metadata)
        self._requests.put(request)
        pieces = []
        while True:
            chunk = next(self._responses)
            pieces.append(wire.from_message(chunk.words))
            if not chunk.more:
                break
        return wire.join(pieces)

    def close(self) -> None:
        self._requests.put(None)


class DealerSession:
    """This party's side of a dealer session; ``OpenSession`` is in flight from construction."""

    def __init__(
        self,
        stub: coordinator_pb2_grpc.CoordinatorStub,
        session_id: str,
        parties: tuple[str, str],
        reservation: Reservation,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.session_id, self.parties, self.reservation = session_id, parties, reservation
        self._stub, self._metadata = stub, metadata
        request = coordinator_pb2.SessionRequest(
            session_id=session_id, parties=list(parties), reserve=reservation_message(reservation)
        )
        self._reply = stub.OpenSession.future(request, metadata=metadata, timeout=OPEN_TIMEOUT_S)
        self._remote: RemoteCorrections | None = None

    def correlations(self) -> Correlations:
        """This party's correlations (waits for the dealer's reply; raises its ``grpc.RpcError``)."""
        seed = self._reply.result()
        if seed.index == 0:
            return Correlations(0, seed.seed, reservation=self.reservation)
        reserved = {}
        for block in seed.reserved:
            if block.kind not in KINDS:
                raise wire.WireError(f"dealer sent a reserved block of unknown kind {block.kind!r}")
            reserved[RESERVED_STREAM[block.kind]] = wire.from_message(block.words)
        self._remote = RemoteCorrections(self._stub, self.session_id, self._metadata, reserved)
        return Correlations(1, seed.seed, self._remote, self.reservation)

    def close(self) -> None:
        if self._remote is not None:
            self._remote.close()
        else:
            self._reply.cancel()
