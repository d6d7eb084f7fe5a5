"""``make demo``: a deployment on loopback, and (``primitives``) the cryptographic core in process.

``python -m demo`` (what ``make demo`` runs) starts a coordinator and six agency
daemons with a fresh CA and 100 000 synthetic residents, runs cross-agency operations over mutual
TLS, prints what each side learned, verifies the audit logs and shuts everything down (also on
Ctrl-C). ``python -m demo primitives`` shows the building blocks in one process
(:mod:`demo.primitives`); the steps after start-up are in :mod:`demo.steps`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from demo.primitives import primitives
from demo.steps import (
    eligibility_step,
    last_audit_entry,
    normalised,
    sandbox_step,
    statistics_step,
    verification_step,
    verify_audit_logs,
)

console = Console()
app = typer.Typer(help="Demonstrations.", invoke_without_command=True)
app.command()(primitives)


@app.callback()
def deployment(
    ctx: typer.Context,
    residents: int = typer.Option(100_000, help="synthetic residents"),
    state: Path = typer.Option(Path(".state/demo"), help="where certificates, data, daemon state and logs go"),
    comparisons: int = typer.Option(1_000_000, help="secret-shared comparisons in the daemon-to-daemon step"),
    applications: int = typer.Option(1000, help="public-rental-housing applications in the eligibility step"),
    keep: bool = typer.Option(False, help="keep the deployment running at the end (explore the portal; Ctrl-C stops)"),
) -> None:
    """Coordinator + six agency daemons on loopback; PSI between agencies; secret sharing over TLS."""
    if ctx.invoked_subcommand is not None:
        return
    import shutil

    from demo.cluster import COORDINATOR, LocalCluster
    from demo.deployment import party_specs
    from demo.registers import generate_registers, issuer_specs
    from demo.synthetic import generate
    from mpc.protocols.selftest import public_values
    from parties.requester import Client

    console.rule("[bold]Cross-agency computation without moving the data")
    state = state.resolve()
    shutil.rmtree(state, ignore_errors=True)
    started = time.perf_counter()
    tables = generate(residents)
    registers = generate_registers(tables)
    specs = [*party_specs(tables, state / "data"), *issuer_specs(registers, state / "data")]
    console.print(
        f"synthetic city: {residents:,} residents in {len(specs)} agencies' tables "
        f"({time.perf_counter() - started:.1f} s): "
        + ", ".join(f"{name} {len(rows):,} rows" for name, rows in tables.tables().items())
    )
    cluster = LocalCluster(state, specs, gateway=True)
    try:
        with console.status("starting the coordinator, six agency daemons (fresh CA, mutual TLS) and the gateway…"):
            started = time.perf_counter()
            cluster.start()
        directory = Table(title=f"deployment up in {time.perf_counter() - started:.1f} s (every channel mutual TLS)")
        for column in ("party", "address", "datasets loaded", "invalid ids reported"):
            directory.add_column(column)
        for name, member in cluster.members.items():
            log_text = (state / "state" / name / "audit.log").read_text() if name != COORDINATOR else ""
            start_line: dict[str, object] = next(
                (json.loads(line) for line in log_text.splitlines() if '"daemon:start"' in line), {}
            )
            detail = str(start_line.get("detail", ""))
            datasets = detail.split("datasets=")[-1].split(" invalid_ids=")[0] if "datasets=" in detail else "—"
            invalid = detail.split("invalid_ids=")[-1] if "invalid_ids=" in detail else "—"
            directory.add_row(name, member.address, datasets, invalid)
        console.print(directory)

        results = Table(title="ECDH-PSI cardinality: how many residents two agencies have in common")
        for column in (
            "requester",
            "owner.dataset",
            "requester ids",
            "owner rows",
            "in common",
            "plaintext check",
            "seconds",
        ):
            results.add_column(
                column, justify="right" if column in ("requester ids", "owner rows", "in common", "seconds") else "left"
            )
        learned = Table(title="what each side learned")
        for column in ("operation", "requester learned", "owner learned (from its audit log)", "coordinator learned"):
            learned.add_column(column)
        truth = {name: set(normalised(rows)) for name, rows in tables.tables().items()}
        for requester, owner, dataset, mine, theirs in (
            ("civil-affairs", "tax", "income", "civil_affairs", "tax"),
            ("housing", "public-security", "residents", "housing", "public_security"),
        ):
            ids = normalised(getattr(tables, mine))
            with Client.from_config(
                cluster.config(requester), purpose="statistics", case=f"DEMO-{requester}"
            ) as client:
                result = client.psi_cardinality(owner, dataset, ids)
            expected = len(set(ids) & truth[theirs])
            results.add_row(
                requester,
                f"{owner}.{dataset}",
                f"{result.requester_count:,}",
                f"{result.owner_count:,}",
                f"{result.intersection:,}",
                "[green]matches[/]" if result.intersection == expected else f"[red]expected {expected}[/]",
                f"{result.seconds:.1f}",
            )
            entry = last_audit_entry(state / "state" / owner / "audit.log", "PsiRound")
            learned.add_row(
                f"{requester} → {owner}",
                f"the intersection size and that {owner} has {result.owner_count:,} rows",
                f"that {entry.get('peer')} sent {entry.get('rows', 0):,} ids for purpose "
                f"{entry.get('purpose')!r}, case {entry.get('case')!r}",
                "nothing (not involved)",
            )
        console.print(results)

        eligibility_step(cluster, tables, state, applications)
        verification_step(cluster, tables, registers)
        statistics_step(cluster, tables)
        token = sandbox_step(cluster)

        values = np.random.default_rng(7).integers(-(2**62), 2**62, comparisons, dtype=np.int64)
        with Client.from_config(cluster.config("housing"), purpose="selftest", case="DEMO-selftest") as client:
            client.selftest_compare("tax", values[:1000], seed=11)  # warm-up
            started = time.perf_counter()
            bits, summary = client.selftest_compare("tax", values, seed=11)
            seconds = time.perf_counter() - started
        correct = bool(np.array_equal(bits, (values < public_values(11, comparisons)).astype(np.uint8)))
        learned.add_row(
            "housing ⇄ tax: secret-shared x < y",
            f"{comparisons:,} comparison bits",
            str(summary.get("learned", "")),
            "nothing but the session (it dealt correlated randomness)",
        )
        console.print(learned)
        console.print(
            f"secret-shared comparisons between two processes over mutual TLS, the coordinator dealing: "
            f"{comparisons:,} in {seconds:.2f} s ({comparisons / seconds:,.0f}/s), correct: {correct}"
        )
        if keep:
            console.print(
                f"[bold]the deployment stays up: portal at {cluster.gateway_url} (token {token}; its certificate "
                f"is issued by the deployment CA, {cluster.ca_path}); Ctrl-C stops it[/]"
            )
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: shutting the deployment down[/]")
    finally:
        with console.status("stopping daemons (in-flight requests finish first)…"):
            cluster.stop()
    verify_audit_logs(cluster)
    console.print(f"state (certificates, data, logs) in {state}; run `make demo` again to start afresh.")


def run() -> None:
    app()


if __name__ == "__main__":
    run()
