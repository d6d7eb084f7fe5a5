"""Regenerate the gRPC/protobuf modules: ``python -m protos.generate [OUT_DIR]``.

protoc (grpcio-tools) writes the modules ``*_pb2.py`` and ``*_pb2_grpc.py``; mypy-protobuf's plugins
write their typed stubs ``*_pb2.pyi`` (messages: typed fields, oneof and field names as literals) and
``*_pb2_grpc.pyi`` (stubs and servicers: each RPC with its request and reply types). All are
committed; ``tests/test_protos.py`` regenerates them into a temporary directory and fails if any differs.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "protos").glob("*.proto"))


def plugin(name: str) -> Path:
    """The protoc plugin script ``name`` of this interpreter's environment (else from ``PATH``)."""
    beside = Path(sys.executable).parent / name  # not resolved: a virtualenv's python is a symlink
    if beside.is_file():
        return beside
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: install mypy-protobuf (pip install -e '.[dev]')")
    return Path(found)


def generate(out_dir: Path = ROOT) -> list[Path]:
    """Run protoc on every ``protos/*.proto``; outputs land in ``out_dir/protos/``."""
    (out_dir / "protos").mkdir(parents=True, exist_ok=True)
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{ROOT}",
            f"--plugin=protoc-gen-mypy={plugin('protoc-gen-mypy')}",
            f"--plugin=protoc-gen-mypy_grpc={plugin('protoc-gen-mypy_grpc')}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            f"--mypy_out={out_dir}",
            f"--mypy_grpc_out={out_dir}",
            *PROTOS,
        ]
    )
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code}")
    return sorted((out_dir / "protos").glob("*_pb2*.py*"))


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT):
        print(path)
