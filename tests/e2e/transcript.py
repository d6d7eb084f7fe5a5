"""A gRPC server interceptor for tests: every request message a daemon receives, serialised and
length-prefixed in one file, so leakage tests can search what a party actually saw."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

Q = TypeVar("Q")
R = TypeVar("R")
M = TypeVar("M", bound=Message)


class TranscriptInterceptor(grpc.ServerInterceptor):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _write(self, message: M) -> M:
        data = message.SerializeToString()
        with self._lock, self.path.open("ab") as f:
            f.write(len(data).to_bytes(4, "big") + data)
        return message

    def _stream(self, requests: Iterator[M]) -> Iterator[M]:
        for message in requests:
            yield self._write(message)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Q, R] | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Q, R] | None:
        handler = continuation(details)
        if handler is None:
            return None
        wrap: dict[str, Callable[..., grpc.RpcMethodHandler[Q, R]]] = {
            "unary_unary": grpc.unary_unary_rpc_method_handler,
            "unary_stream": grpc.unary_stream_rpc_method_handler,
            "stream_unary": grpc.stream_unary_rpc_method_handler,
            "stream_stream": grpc.stream_stream_rpc_method_handler,
        }
        for kind, make in wrap.items():
            # the handler's behaviour of this kind (its request: one message or an iterator of them,
            # whatever the service; recorded and passed on as they come)
            behaviour: Callable[[Any, grpc.ServicerContext], object] | None = getattr(handler, kind)
            if behaviour is None:
                continue
            record: Callable[[Any], Any] = self._stream if handler.request_streaming else self._write

            def recorded(
                request: Any,
                context: grpc.ServicerContext,
                behaviour: Callable[[Any, grpc.ServicerContext], object] = behaviour,
                record: Callable[[Any], Any] = record,
            ) -> object:
                return behaviour(record(request), context)

            return make(
                recorded,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler
