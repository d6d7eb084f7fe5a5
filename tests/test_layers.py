"""Import directions, as docs/architecture.md draws them:

    mpc (primitives -> sharing -> protocols)  <-  parties.rpc  <-  parties.{owner, requester, coordinator, gateway}
                                                                    <-  parties.cli  <-  demo

The library never imports the processes built on it; the owner's daemon and the requester's
client never import each other (they meet only on the wire and in mpc.protocols); nothing in
mpc or parties imports the demo.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported(path: Path, depth: int = 1) -> set[str]:
    """Dotted module prefixes (``depth`` components) a module imports, also inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(".".join(alias.name.split(".")[:depth]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(".".join(node.module.split(".")[:depth]))
    return names


def offenders(package: str, forbidden: set[str], depth: int = 1) -> dict[str, list[str]]:
    found = {
        str(p.relative_to(ROOT)): sorted(imported(p, depth) & forbidden)
        for p in sorted((ROOT / package.replace(".", "/")).rglob("*.py"))
    }
    return {k: v for k, v in found.items() if v}


def test_the_library_never_imports_parties_or_protos() -> None:
    assert offenders("mpc", {"parties", "protos", "benchmarks", "tests", "demo"}) == {}
    assert imported(ROOT / "mpc" / "protocols" / "rules.py") >= {"mpc"}  # the scan does see imports


def test_sharing_sits_below_protocols() -> None:
    assert offenders("mpc.crypto", {"mpc.sharing", "mpc.protocols"}, depth=2) == {}
    assert offenders("mpc.sharing", {"mpc.protocols"}, depth=2) == {}


def test_owner_and_requester_never_import_each_other() -> None:
    assert offenders("parties.owner", {"parties.requester", "parties.gateway", "parties.cli"}, depth=2) == {}
    assert offenders("parties.requester", {"parties.owner", "parties.gateway", "parties.cli"}, depth=2) == {}
    assert offenders("parties.rpc", {"parties.owner", "parties.requester", "parties.gateway"}, depth=2) == {}
    assert imported(ROOT / "parties" / "owner" / "server.py", depth=2) >= {"parties.rpc"}


def test_nothing_but_tests_and_benchmarks_imports_the_demo() -> None:
    assert offenders("parties", {"demo"}) == {}
