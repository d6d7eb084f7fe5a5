"""``make bench``: our figures beside the peers', all measured in this run.

Writes ``benchmarks/results.json`` (a list of {name, unit, ours, peer, peer_value, ratio, target,
met}) and ``benchmarks/machine.json``. ``--quick`` uses smaller sizes (for a smoke test).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from benchmarks import oprf_bench, paillier_bench, sharing_bench
from benchmarks.report import RESULTS_PATH, machine, print_and_save

console = Console(width=160)


def main(quick: bool = typer.Option(False, help="smaller sizes, for a smoke test"),
         out: Path = typer.Option(RESULTS_PATH, help="where to write the results")) -> None:
    info = machine()
    console.print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    out.with_name("machine.json").write_text(json.dumps(info, indent=2) + "\n")
    results = []
    for label, module in (("Paillier", paillier_bench), ("Curve25519 OPRF", oprf_bench),
                          ("secret-shared comparison", sharing_bench)):
        with console.status(f"measuring {label} (ours and peers)…"):
            results.extend(module.run(quick))
        console.print(f"[dim]{label}: done[/]")
    print_and_save(results, console, out)


if __name__ == "__main__":
    typer.run(main)
