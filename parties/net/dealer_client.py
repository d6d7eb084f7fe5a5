"""The compute parties' side of the coordinator's dealer: seeds and party 1's correction words."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

import numpy as np

from mpc.sharing.dealer import Correlations
from parties.net import wire
from protos import coordinator_pb2


class RemoteCorrections:
    """A :class:`~mpc.sharing.dealer.CorrectionSource` that streams corrections from the coordinator.

    One bidirectional stream per session; each request is answered by one or more chunks.
    """

    def __init__(self, stub: Any, session_id: str, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self._session_id = session_id
        self._requests: queue.Queue[coordinator_pb2.CorrectionRequest | None] = queue.Queue()
        self._responses: Iterator[coordinator_pb2.CorrectionChunk] = stub.GetCorrections(
            iter(self._requests.get, None), metadata=metadata
        )
        self._first = True

    def correction(self, kind: str, stream: int, size: int) -> np.ndarray:
        request = coordinator_pb2.CorrectionRequest(kind=kind, stream=stream, size=size)
        if self._first:
            request.session_id, self._first = self._session_id, False
        self._requests.put(request)
        pieces = []
        while True:
            chunk = next(self._responses)
            pieces.append(wire.from_message(chunk.words))
            if not chunk.more:
                break
        words = wire.join(pieces)
        if words.shape != (size,) or words.dtype != np.uint64:
            raise wire.WireError(f"dealer sent {words.shape} {words.dtype} for a {size}-word {kind} request")
        return words

    def close(self) -> None:
        self._requests.put(None)


def session_correlations(stub: Any, session_id: str, parties: tuple[str, str],
                         metadata: tuple[tuple[str, str], ...] = ()) -> tuple[Correlations, RemoteCorrections | None]:
    """Ask the dealer for this party's seed; party 1 also gets a correction stream (close it after)."""
    seed = stub.OpenSession(coordinator_pb2.SessionRequest(session_id=session_id, parties=list(parties)),
                            metadata=metadata)
    if seed.index == 0:
        return Correlations(0, seed.seed), None
    remote = RemoteCorrections(stub, session_id, metadata)
    return Correlations(1, seed.seed, remote), remote
