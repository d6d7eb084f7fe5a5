"""The command lines import their protocol stacks only in the commands that need them, so that
``--help`` and a mistyped option answer at once (the times themselves: benchmarks/cli_bench.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("numpy", "numba", "grpc", "rich", "cryptography", "httpx", "psycopg", "mpc.protocols", "parties.requester")


@pytest.mark.parametrize("command", ["query", "party", "coordinator", "gateway", "research"])
def test_a_command_line_imports_no_protocol_stack_up_front(command: str) -> None:
    probe = f"import json, sys, parties.cli.{command}; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(
        subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    )
    assert [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)] == []
