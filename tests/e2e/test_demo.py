"""``make demo`` end to end, small: every step runs, checks itself against plaintext, and shuts down."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_runs_from_a_relative_state_directory(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "demo",
            "--residents",
            "3000",
            "--applications",
            "25",
            "--comparisons",
            "20000",
            "--state",
            ".state/demo",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert output.count("matches") >= 5  # both PSI cardinalities and the three verification jobs equal the plaintext
    assert all(job in output for job in ("certificate-valid", "business-licence", "declaration-audit"))
    assert "25/25 match" in output  # every eligibility result equals the plaintext rule
    assert "correct: True" in output
    assert "researcher sandbox: released cells" in output and "budget left: researcher ε 4.00" in output
    assert "problems" not in output and output.count("verifies") == 8  # eight audit logs, the gateway's too
    assert (tmp_path / ".state" / "demo" / "results.csv").exists()
