"""The committed gRPC/protobuf modules are exactly what protoc generates from protos/*.proto."""

from __future__ import annotations

from pathlib import Path

from protos.generate import ROOT, generate


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    fresh = generate(tmp_path)
    assert fresh, "protoc produced nothing"
    stale = [p.name for p in fresh if p.read_bytes() != (ROOT / "protos" / p.name).read_bytes()]
    committed = {p.name for p in (ROOT / "protos").glob("*_pb2*.py*")}
    assert not stale, f"regenerate with `python -m protos.generate`: stale {stale}"
    assert committed == {p.name for p in fresh}, "committed generated files differ from the .proto set"


def test_a_service_registers_only_with_a_behaviour_for_every_rpc() -> None:
    """A daemon whose service lacks an RPC (or names one the proto does not have) stops at start."""
    from concurrent.futures import ThreadPoolExecutor

    import grpc
    import pytest

    from parties.rpc.registration import add_service
    from protos import coordinator_pb2

    service = coordinator_pb2.DESCRIPTOR.services_by_name["Coordinator"]
    behaviours = {method.name: (lambda request, context: None) for method in service.methods}
    server = grpc.server(ThreadPoolExecutor(max_workers=1))
    add_service(server, behaviours, service)
    del behaviours["Register"]
    with pytest.raises(ValueError, match=r"missing \['Register'\], unknown \[\]"):
        add_service(server, behaviours, service)
    with pytest.raises(ValueError, match=r"unknown \['Resign'\]"):
        add_service(server, {**behaviours, "Register": print, "Resign": print}, service)
