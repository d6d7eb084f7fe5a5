"""Import directions: the library (mpc/) never imports the processes built on it (parties/)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported(path: Path) -> set[str]:
    """Top-level package names a module imports (absolute imports, also inside functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_library_never_imports_parties_or_protos() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(imported(p) & {"parties", "protos", "benchmarks", "tests"})
        for p in sorted((ROOT / "mpc").rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    assert imported(ROOT / "mpc" / "protocols" / "rules.py") >= {"mpc"}  # the scan does see imports
