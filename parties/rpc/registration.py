"""Registering a service so that no request reaches gRPC's own error path.

grpcio answers INTERNAL ("Exception deserializing request!") to request bytes that do not parse,
before any of our code runs, and writes no audit entry. Registered here instead, each method
parses with a deserializer that never raises: bytes that do not parse arrive as
:class:`Undecodable`, and the service boundary refuses them with INVALID_ARGUMENT (audited, like
any other malformed request)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor as pb
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

__all__ = ["Undecodable", "add_service"]


@dataclass(frozen=True)
class Undecodable:
    """Request bytes that are not a message of the method's request type."""

    message_type: str
    size: int
    error: str

    def describe(self) -> str:
        return f"{self.size} bytes that are not a {self.message_type} message ({self.error})"


def _parser(descriptor: pb.Descriptor) -> Callable[[bytes], Message | Undecodable]:
    cls = GetMessageClass(descriptor)

    def parse(data: bytes) -> Message | Undecodable:
        try:
            return cls.FromString(data)
        except (DecodeError, ValueError, RuntimeError) as exc:
            return Undecodable(descriptor.full_name, len(data), str(exc)[:200] or type(exc).__name__)

    return parse


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def add_service(
    server: grpc.Server, behaviours: Mapping[str, Callable[..., Any]], service: pb.ServiceDescriptor
) -> None:
    """Register ``behaviours`` (RPC name -> ``run(request, context)``) as ``service`` on ``server``,
    with requests parsed by :func:`_parser`. Every RPC of the service must have exactly one
    behaviour (a missing or unknown name stops the daemon at start, naming it)."""
    names = {method.name for method in service.methods}
    if set(behaviours) != names:
        raise ValueError(
            f"{service.full_name}: missing {sorted(names - set(behaviours))}, unknown {sorted(set(behaviours) - names)}"
        )
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in service.methods:
        behaviour = behaviours[method.name]
        parse = _parser(method.input_type)
        if method.client_streaming and method.server_streaming:
            handlers[method.name] = grpc.stream_stream_rpc_method_handler(behaviour, parse, _serialize)
        elif method.client_streaming:
            handlers[method.name] = grpc.stream_unary_rpc_method_handler(behaviour, parse, _serialize)
        elif method.server_streaming:
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(behaviour, parse, _serialize)
        else:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(behaviour, parse, _serialize)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
