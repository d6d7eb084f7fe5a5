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
