"""``make bench``: our figures beside the peers', all measured in this run.

Writes ``benchmarks/results.json`` (a list of {name, unit, ours, peer, peer_value, ratio, target,
met}) and ``benchmarks/machine.json``. ``--quick`` uses smaller sizes (for a smoke test).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console

from benchmarks import (
    cli_bench,
    compute_bench,
    daemon_bench,
    eligibility_bench,
    join_bench,
    oprf_bench,
    paillier_bench,
    recovery,
    service_bench,
    sharing_bench,
    soak,
)
from benchmarks.report import RESULTS_PATH, Result, machine, print_and_save

console = Console(width=160)


def main(
    quick: bool = typer.Option(False, help="smaller sizes, for a smoke test"),
    out: Path = typer.Option(RESULTS_PATH, help="where to write the results"),
) -> None:
    info = machine()
    console.print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    out.with_name("machine.json").write_text(json.dumps(info, indent=2) + "\n")
    results = []
    with console.status("measuring MPyC with two local parties…"):
        mpyc = sharing_bench.mpyc_peer(quick)
    steps: tuple[tuple[str, Callable[[], list[Result]]], ...] = (
        ("Paillier", lambda: paillier_bench.run(quick)),
        ("Curve25519 OPRF", lambda: oprf_bench.run(quick)),
        ("secret-shared comparison, in process", lambda: sharing_bench.run(quick, mpyc)),
        ("secret-shared comparison, two processes over TLS", lambda: daemon_bench.run(quick, mpyc)),
        (
            "eligibility checks between daemons (a city of 1 000 000 residents, 100 000 with --quick; the "
            "first run has the owners encrypt their tables, later runs reuse benchmarks/.state)",
            lambda: eligibility_bench.run(quick, console.print),
        ),
        (
            "private joins and aggregates between daemons (tables of 100 000 and 1 000 000 rows, 10 000 and 100 000 "
            "with --quick; openmined-psi on the same sets)",
            lambda: join_bench.run(quick, console.print),
        ),
        (
            "a short soak: 64 concurrent requesters, an owner killed and restarted, then the coordinator "
            "(python -m benchmarks.soak runs "
            "the full 10 minutes)",
            lambda: soak.run(30.0 if quick else 90.0, 64, 5_000, console.print),
        ),
        (
            "the requester's command line: --help, and one application in a fresh process",
            lambda: cli_bench.run(console.print),
        ),
        (
            "the requester service: one application over HTTPS (p50, p99) and 32 callers, against owners of "
            "1 000 000-row tables (100 000 with --quick)",
            lambda: service_bench.run(100_000 if quick else 1_000_000, console.print),
        ),
        (
            "recovery of an owner from its backups, with and without caches (a 1 000 000-row table, 100 000 with "
            "--quick)",
            lambda: recovery.run(100_000 if quick else 1_000_000, console.print),
        ),
        (
            "the compute backends: local pool and Ray (one and two node processes on loopback), table preparation "
            "of 50 000 rows and a 5 000-application screening (10 000 and 1 000 with --quick)",
            lambda: compute_bench.run(quick, console.print),
        ),
    )
    for label, step in steps:
        with console.status(f"measuring {label} (ours and peers)…"):
            results.extend(step())
        console.print(f"[dim]{label}: done[/]")
    print_and_save(results, console, out)


if __name__ == "__main__":
    typer.run(main)
