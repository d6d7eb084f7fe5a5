"""Fuzzing the RPC surface of live daemons: every RPC of the party and coordinator services gets
messages generated from its protobuf descriptor (fields left out, set to edge values, to names the
deployment really uses, or to random bytes), and the same messages' bytes mutated (flipped,
truncated, extended) so that they may not parse at all, as a granted requester with a valid
purpose would send them. Whatever arrives, the daemon answers with a precise status (never
UNKNOWN or INTERNAL), and it keeps serving."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor as pb
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from demo.cluster import LocalCluster
from parties.pki import Pki
from parties.rpc.tls import secure_channel
from protos import coordinator_pb2, party_pb2
from tests.e2e.conftest import client_for

NAMES = ["", "income", "payments", "tax", "spare", "housing", "coordinator", "low-income", "annual_income", "amount"]
WORDS = [*NAMES, "rule", "aggregate", "selftest-compare", "cardinality", "intersection", "P1", "P3", "SUM", "start"]
EDGE_INTS = [0, 1, -1, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63)]
EDGE_UINTS = [0, 1, 2**32 - 1, 2**64 - 1]
REFUSED_AS_BROKEN = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
D = pb.FieldDescriptor


def _scalar(field: pb.FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind in (D.TYPE_INT32, D.TYPE_SINT32, D.TYPE_SFIXED32, D.TYPE_ENUM):
        return st.one_of(st.sampled_from([v for v in EDGE_INTS if -(2**31) <= v < 2**31]), st.integers(-100, 100))
    if kind in (D.TYPE_INT64, D.TYPE_SINT64, D.TYPE_SFIXED64):
        return st.one_of(st.sampled_from(EDGE_INTS), st.integers(-(10**6), 10**6))
    if kind in (D.TYPE_UINT32, D.TYPE_FIXED32):
        return st.one_of(st.sampled_from([v for v in EDGE_UINTS if v < 2**32]), st.integers(0, 10**6))
    if kind in (D.TYPE_UINT64, D.TYPE_FIXED64):
        return st.one_of(st.sampled_from(EDGE_UINTS), st.integers(0, 10**9))
    if kind == D.TYPE_BOOL:
        return st.booleans()
    if kind in (D.TYPE_DOUBLE, D.TYPE_FLOAT):
        return st.floats(width=32 if kind == D.TYPE_FLOAT else 64)
    if kind == D.TYPE_STRING:
        return st.one_of(st.sampled_from(WORDS), st.just(uuid.uuid4().hex), st.text(max_size=40), st.just("x" * 5000))
    assert kind == D.TYPE_BYTES, field.full_name
    return st.one_of(st.binary(max_size=96), st.binary(min_size=32, max_size=32), st.just(b"\x00" * 64), st.just(b"{}"))


def messages(descriptor: pb.Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Messages of ``descriptor``: each field absent, or a value (nested messages to depth 2)."""
    cls = GetMessageClass(descriptor)
    fields: list[tuple[pb.FieldDescriptor, st.SearchStrategy[Any]]] = []
    for field in descriptor.fields:
        if field.message_type is not None:
            if depth >= 2:
                continue
            value: st.SearchStrategy[Any] = messages(field.message_type, depth + 1)
        else:
            value = _scalar(field)
        repeated = field.is_repeated
        fields.append((field, st.lists(value, max_size=3) if repeated else value))

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        message = cls()
        for field, strategy in fields:
            if not draw(st.booleans()):
                continue
            value = draw(strategy)
            target = getattr(message, field.name)
            if field.is_repeated:
                if field.type == D.TYPE_MESSAGE:
                    for item in value:
                        target.add().CopyFrom(item)
                else:
                    target.extend(value)
            elif field.type == D.TYPE_MESSAGE:
                target.CopyFrom(value)
            else:
                setattr(message, field.name, value)
        return message

    return build()


def _calls(service: pb.ServiceDescriptor) -> list[tuple[str, pb.MethodDescriptor]]:
    return [(method.name, method) for method in service.methods]


def _raw(data: bytes) -> bytes:
    return data


@st.composite
def mutated(draw: st.DrawFn, descriptor: pb.Descriptor) -> bytes:
    """A generated message's bytes, then flipped, cut short or extended."""
    data = bytearray(draw(messages(descriptor)).SerializeToString())
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "extend", "tag"]))
        if kind == "flip" and data:
            data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut" and data:
            del data[draw(st.integers(0, len(data) - 1)) :]
        elif kind == "extend":
            data += draw(st.binary(min_size=1, max_size=16))
        else:  # a field tag with a wire type that does not fit, or a length running past the end
            data += draw(
                st.sampled_from([b"\x0f", b"\x0a\xff\xff\xff\x0f", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"])
            )
    return bytes(data)


def _invoke(
    channel: grpc.Channel, service: pb.ServiceDescriptor, method: pb.MethodDescriptor, requests: list[bytes]
) -> None:
    """One call with ``requests`` as raw bytes (the first alone for a unary request), read to its end."""
    path = f"/{service.full_name}/{method.name}"
    metadata = (("x-purpose", "statistics"), ("x-case", "FUZZ"))
    if method.client_streaming and method.server_streaming:
        for _ in channel.stream_stream(path, _raw, _raw)(iter(requests), metadata=metadata, timeout=10):
            pass
    elif method.client_streaming:
        channel.stream_unary(path, _raw, _raw)(iter(requests), metadata=metadata, timeout=10)
    elif method.server_streaming:
        for _ in channel.unary_stream(path, _raw, _raw)(requests[0], metadata=metadata, timeout=10):
            pass
    else:
        channel.unary_unary(path, _raw, _raw)(requests[0], metadata=metadata, timeout=10)


def serialized(descriptor: pb.Descriptor) -> st.SearchStrategy[bytes]:
    """Generated messages' bytes, as a well-behaved serializer sends them."""
    return messages(descriptor).map(lambda message: message.SerializeToString())


def _fuzz(
    channel: grpc.Channel,
    service: pb.ServiceDescriptor,
    method: pb.MethodDescriptor,
    requests: Callable[[pb.Descriptor], st.SearchStrategy[bytes]] = serialized,
) -> Callable[..., None]:
    """Calls of ``method`` with 1 to 3 requests drawn from ``requests`` (generated messages, or
    their bytes :func:`mutated`): every refusal is a precise status."""

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(drawn=st.lists(requests(method.input_type), min_size=1, max_size=3))
    def run(drawn: list[bytes]) -> None:
        try:
            _invoke(channel, service, method, drawn)
        except grpc.RpcError as exc:
            code = exc.code()
            assert code not in REFUSED_AS_BROKEN, f"{method.name}: {code.name}: {exc.details()}"

    return run


PARTY = party_pb2.DESCRIPTOR.services_by_name["Party"]
COORDINATOR = coordinator_pb2.DESCRIPTOR.services_by_name["Coordinator"]


@pytest.fixture
def channels(cluster: LocalCluster) -> Iterator[dict[str, grpc.Channel]]:
    """Channels as the fuzzer (granted at tax as housing is, with its own rate and budgets) to tax
    and to the coordinator."""
    with client_for(cluster, "fuzzer") as client:
        tls = client.tls
    opened = {
        "tax": secure_channel(cluster.members["tax"].address, tls, "tax"),
        "coordinator": secure_channel(cluster.members["coordinator"].address, tls, "coordinator"),
    }
    try:
        yield opened
    finally:
        for channel in opened.values():
            channel.close()


@pytest.mark.parametrize(("name", "method"), _calls(PARTY), ids=[name for name, _ in _calls(PARTY)])
def test_every_party_rpc_answers_generated_messages_precisely(
    cluster: LocalCluster, channels: dict[str, grpc.Channel], name: str, method: pb.MethodDescriptor
) -> None:
    _fuzz(channels["tax"], PARTY, method)()
    _fuzz(channels["tax"], PARTY, method, mutated)()
    with client_for(cluster, "housing") as client:  # still serving (for others)
        assert client.capabilities("tax").party == "tax"


# a registration that passes replaces the caller's directory entry: Register is fuzzed with its own identity below
COORDINATOR_CALLS = [(name, method) for name, method in _calls(COORDINATOR) if name != "Register"]


@pytest.mark.parametrize(("name", "method"), COORDINATOR_CALLS, ids=[name for name, _ in COORDINATOR_CALLS])
def test_every_coordinator_rpc_answers_generated_messages_precisely(
    cluster: LocalCluster, channels: dict[str, grpc.Channel], name: str, method: pb.MethodDescriptor
) -> None:
    _fuzz(channels["coordinator"], COORDINATOR, method)()
    _fuzz(channels["coordinator"], COORDINATOR, method, mutated)()
    with client_for(cluster, "housing") as client:
        assert client.endpoint("tax")


def test_register_answers_generated_messages_precisely(cluster: LocalCluster, tmp_path: Any) -> None:
    """Registration as an identity nobody calls (its directory entry may be overwritten freely)."""
    issued = Pki(cluster.pki_dir).issue("fuzzer", roles=("client",))
    from parties.rpc.tls import TlsConfig

    tls = TlsConfig(ca=cluster.pki_dir / "ca.pem", cert=issued.cert_path, key=issued.key_path)
    channel = secure_channel(cluster.members["coordinator"].address, tls, "coordinator")
    try:
        _fuzz(channel, COORDINATOR, COORDINATOR.methods_by_name["Register"])()
    finally:
        channel.close()
    with client_for(cluster, "housing") as client:
        assert client.endpoint("tax")


def test_bytes_that_are_not_a_message_are_invalid_argument_and_audited(
    cluster: LocalCluster, channels: dict[str, grpc.Channel]
) -> None:
    """gRPC itself would answer INTERNAL to undecodable bytes, before any code of ours, unaudited:
    the daemon parses them at its boundary instead."""
    from tests.e2e.conftest import audit_entries

    call = channels["tax"].unary_unary("/mpc.v1.Party/ListDatasets", _raw, _raw)
    with pytest.raises(grpc.RpcError) as refused:
        call(b"\x0a\xff\xff\xff\x0f", metadata=(("x-purpose", "statistics"), ("x-case", "UNDECODABLE")), timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed request" in str(refused.value.details()) and "mpc.v1.Empty" in str(refused.value.details())
    entry = [e for e in audit_entries(cluster, "tax") if e.get("case") == "UNDECODABLE"][-1]
    assert (entry["action"], entry["peer"], entry["outcome"]) == ("rpc:ListDatasets", "fuzzer", "INVALID_ARGUMENT")
