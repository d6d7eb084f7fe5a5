"""``mpc-query``: the requester's command line (runs with the requesting agency's certificate)."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from mpc.data.ids import IdKind, normalize_column
from parties.sdk import Client, RemoteError

app = typer.Typer(help="Ask other agencies' daemons, privately.", no_args_is_help=True)
console = Console()

CONFIG = typer.Option(..., "--config", "-c", help="this agency's configuration (TLS identity, coordinator)")
PURPOSE = typer.Option(..., "--purpose", help="purpose code checked by the owner's policy")
CASE = typer.Option(..., "--case", help="case reference written to both audit logs")


@app.callback()
def main() -> None:
    """Requester commands."""


def read_ids(path: Path, column: str, kind: IdKind) -> list[str]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or column not in reader.fieldnames:
            raise typer.BadParameter(f"{path} has no column {column!r} (columns: {reader.fieldnames})")
        raw = [row[column] for row in reader]
    ids, report = normalize_column(raw, kind)
    for bad in report.invalid[:10]:
        console.print(f"[yellow]row {bad.row}: invalid id {bad.raw!r}: {bad.reason}[/]")
    if len(report.invalid) > 10:
        console.print(f"[yellow]… {len(report.invalid) - 10} more invalid ids[/]")
    return [i for i in ids if i is not None]


@app.command("psi-cardinality")
def psi_cardinality(
    peer: str = typer.Option(..., help="owner party name (or host:port)"),
    dataset: str = typer.Option(..., help="owner's dataset"),
    ids: Path = typer.Option(..., help="CSV with our ids"),
    column: str = typer.Option("resident_id", help="id column in the CSV"),
    kind: str = typer.Option("resident_id", help="resident_id, credit_code or opaque"),
    config: Path = CONFIG, purpose: str = PURPOSE, case: str = CASE,
) -> None:
    """How many of our ids the owner's dataset holds (ECDH-PSI; the owner learns only our count)."""
    mine = read_ids(ids, column, kind)  # type: ignore[arg-type]
    with Client.from_config(config, purpose, case) as client:
        try:
            result = client.psi_cardinality(peer, dataset, mine)
        except RemoteError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(1) from None
    table = Table(title=f"PSI cardinality with {peer}.{dataset}")
    for col in ("our ids", "their rows", "in common", "seconds"):
        table.add_column(col, justify="right")
    table.add_row(f"{result.requester_count:,}", f"{result.owner_count:,}", f"{result.intersection:,}", f"{result.seconds:.2f}")
    console.print(table)


@app.command("threshold-check")
def threshold_check(
    peer: str = typer.Option(..., help="owner party name (or host:port)"),
    dataset: str = typer.Option(..., help="owner's dataset"),
    column: str = typer.Option(..., help="owner's column to compare"),
    op: str = typer.Option(..., help="<, <=, >, >=, == or !="),
    threshold: int = typer.Option(..., help="our threshold (stays secret from the owner)"),
    ids: Path = typer.Option(..., help="CSV with our ids"),
    id_column: str = typer.Option("resident_id", help="id column in the CSV"),
    out: Path | None = typer.Option(None, help="write id,result rows here"),
    config: Path = CONFIG, purpose: str = PURPOSE, case: str = CASE,
) -> None:
    """For each id: present in the owner's dataset AND column OP threshold (P3 lookup + P4)."""
    mine = read_ids(ids, id_column, "resident_id")
    with Client.from_config(config, purpose, case) as client:
        started = time.perf_counter()
        try:
            bits = client.threshold_check(peer, dataset, column, mine, op, threshold)
        except RemoteError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(1) from None
    seconds = time.perf_counter() - started
    if out is not None:
        with out.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow([id_column, "result"])
            writer.writerows(zip(mine, bits.tolist(), strict=True))
    console.print(f"{len(mine):,} ids checked in {seconds:.2f} s: {int(bits.sum()):,} true, {len(mine) - int(bits.sum()):,} false"
                  + (f"; written to {out}" if out else ""))


@app.command("selftest-compare")
def selftest_compare(
    peer: str = typer.Option(..., help="co-party name (or host:port)"),
    n: int = typer.Option(100_000, help="number of comparisons"),
    seed: int = typer.Option(1, help="public seed of the co-party's values"),
    config: Path = CONFIG, purpose: str = PURPOSE, case: str = CASE,
) -> None:
    """Secret-shared comparisons with a co-party daemon, the coordinator dealing; checks the result."""
    from mpc.protocols.selftest import public_values

    values = np.random.default_rng(seed + 1).integers(-(2**62), 2**62, n, dtype=np.int64)
    with Client.from_config(config, purpose, case) as client:
        started = time.perf_counter()
        try:
            bits, summary = client.selftest_compare(peer, values, seed)
        except RemoteError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(1) from None
        seconds = time.perf_counter() - started
    ok = bool(np.array_equal(bits, (values < public_values(seed, n)).astype(np.uint8)))
    console.print(f"{n:,} comparisons in {seconds:.2f} s ({n / seconds:,.0f}/s); correct: {ok}; co-party learned: {summary.get('learned')}")
    if not ok:
        raise typer.Exit(1)


def run() -> None:
    app()


if __name__ == "__main__":
    run()
