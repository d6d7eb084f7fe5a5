"""The secret-sharing :class:`~mpc.sharing.channel.Channel` over a gRPC bidirectional stream.

The initiator opens ``Party.ShareExchange`` on the co-party's daemon; both ends then exchange
labelled arrays (chunked under the message-size limit). A reader thread on each end moves incoming
messages into an inbox, so protocol code sees the same blocking ``send``/``recv`` as in process.
When the stream breaks (peer killed, network gone), the inbox receives an abort naming the peer and
the gRPC status, and the waiting protocol step fails with a :class:`ChannelError` at once.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np

from mpc.sharing.channel import ABORT_LABEL, Channel
from parties.rpc import wire
from protos import party_pb2, party_pb2_grpc

_CLOSED = object()


def describe(error: grpc.RpcError) -> str:
    """Status and details of a client-side RpcError; the server-side one carries neither."""
    code, details = getattr(error, "code", None), getattr(error, "details", None)
    if callable(code) and callable(details):
        return f"{code().name}: {details()}"
    return "the call was cancelled or the connection was lost"


class _Inbox:
    """Reassembles chunked arrays into (label, array) items."""

    def __init__(self) -> None:
        self.items: queue.Queue[tuple[str, np.ndarray]] = queue.Queue()
        self._pending: list[np.ndarray] = []

    def data(self, message: party_pb2.ShareData) -> None:
        self._pending.append(wire.from_message(message.array))
        if not message.more:
            array, self._pending = wire.join(self._pending), []
            self.items.put((message.label, array))

    def abort(self, reason: str) -> None:
        self.items.put((ABORT_LABEL, np.frombuffer(reason.encode("utf-8"), dtype=np.uint8)))


def _data_messages(label: str, payload: np.ndarray) -> Iterator[party_pb2.ShareMessage]:
    for piece, more in wire.chunks(payload):
        yield party_pb2.ShareMessage(data=party_pb2.ShareData(label=label, array=wire.to_message(piece), more=more))


class _StreamChannel(Channel):
    """What both ends share: an outbox drained into the gRPC stream, and a reader thread that
    moves the peer's messages into the inbox (an abort when the stream ends or breaks)."""

    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.bytes_sent = 0
        self.messages_sent = 0
        self.result: dict[str, Any] | None = None
        self.failed_with: grpc.StatusCode | None = None  # the stream's status when it broke
        self._outbox: queue.Queue[object] = queue.Queue()
        self._inbox = _Inbox()
        self._reader: threading.Thread | None = None

    def _start_reader(self, messages: Iterator[party_pb2.ShareMessage]) -> None:
        self._reader = threading.Thread(
            target=self._pump, args=(messages,), name=f"share-reader-{self.peer}", daemon=True
        )
        self._reader.start()

    def _pump(self, messages: Iterator[party_pb2.ShareMessage]) -> None:
        try:
            for message in messages:
                kind = message.WhichOneof("body")
                if kind == "data":
                    self._inbox.data(message.data)
                elif kind == "abort":
                    self._inbox.abort(message.abort.reason)
                    return
                elif kind == "result" and isinstance(self, ShareClientChannel):
                    self.result = json.loads(message.result.summary or b"{}")
                else:
                    self._inbox.abort(f"unexpected {kind!r} message from {self.peer}")
                    return
        except grpc.RpcError as exc:
            code = getattr(exc, "code", None)
            self.failed_with = code() if callable(code) else None
            self._inbox.abort(f"stream with {self.peer} failed: {describe(exc)}")
        except wire.WireError as exc:
            self._inbox.abort(f"malformed data from {self.peer}: {exc}")
        except Exception as exc:  # the stream was torn down under us
            self._inbox.abort(f"stream with {self.peer} ended: {type(exc).__name__}")
        else:
            self._inbox.abort(f"{self.peer} closed the session")

    def _outgoing(self) -> Iterator[party_pb2.ShareMessage]:
        while True:
            item = self._outbox.get()
            if item is _CLOSED:
                return
            assert isinstance(item, party_pb2.ShareMessage)
            yield item

    def _put(self, label: str, payload: np.ndarray) -> None:
        for message in _data_messages(label, payload):
            self._outbox.put(message)

    def _get(self, timeout: float) -> tuple[str, np.ndarray]:
        return self._inbox.items.get(timeout=timeout)

    def _send_abort(self, reason: str) -> None:
        self._outbox.put(party_pb2.ShareMessage(abort=party_pb2.ShareAbort(reason=reason)))


class ShareClientChannel(_StreamChannel):
    """Initiator's end: opens ``Party.ShareExchange`` with a ``ShareStart``."""

    def __init__(
        self,
        stub: party_pb2_grpc.PartyStub,
        start: party_pb2.ShareStart,
        peer: str,
        metadata: tuple[tuple[str, str], ...] = (),
        timeout: float | None = None,
    ) -> None:
        super().__init__(peer)
        self._outbox.put(party_pb2.ShareMessage(start=start))
        self._call = stub.ShareExchange(self._outgoing(), metadata=metadata, timeout=timeout)
        self._start_reader(self._call)

    def abort(self, reason: str) -> None:
        self._send_abort(reason)
        self.close()

    def close(self, wait: float = 30.0) -> None:
        """End our side of the stream and wait for the co-party's result message."""
        self._outbox.put(_CLOSED)
        if self._reader is not None:
            self._reader.join(timeout=wait)


class ShareServerChannel(_StreamChannel):
    """Co-party's end, inside the ``ShareExchange`` handler: reads the handler's request iterator
    (after the ``ShareStart``); :meth:`responses` is what the handler yields back."""

    def __init__(self, requests: Iterator[party_pb2.ShareMessage], peer: str) -> None:
        super().__init__(peer)
        self._start_reader(requests)

    def abort(self, reason: str) -> None:
        self._send_abort(reason)
        self._outbox.put(_CLOSED)

    def finish(self, summary: dict[str, Any]) -> None:
        result = party_pb2.ShareResult(summary=json.dumps(summary).encode("utf-8"))
        self._outbox.put(party_pb2.ShareMessage(result=result))
        self._outbox.put(_CLOSED)

    def responses(self) -> Iterator[party_pb2.ShareMessage]:
        return self._outgoing()
