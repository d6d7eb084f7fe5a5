"""Regenerate the gRPC/protobuf modules: ``python -m protos.generate [OUT_DIR]``.

The generated ``*_pb2.py``, ``*_pb2_grpc.py`` and ``*_pb2.pyi`` files are committed;
``tests/test_protos.py`` regenerates them into a temporary directory and fails if any differs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "protos").glob("*.proto"))


def generate(out_dir: Path = ROOT) -> list[Path]:
    """Run protoc on every ``protos/*.proto``; outputs land in ``out_dir/protos/``."""
    (out_dir / "protos").mkdir(parents=True, exist_ok=True)
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{ROOT}",
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            *PROTOS,
        ]
    )
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code}")
    return sorted((out_dir / "protos").glob("*_pb2*.py*"))


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT):
        print(path)
