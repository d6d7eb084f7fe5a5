"""``mpc-research``: a researcher's command line to the gateway (the token from MPC_RESEARCH_TOKEN)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from parties.cli.cells import console, fail, format_cell, say

if TYPE_CHECKING:
    from parties.gateway.client import ResearchClient

app = typer.Typer(help="Noised statistics across agencies, through the gateway.", no_args_is_help=True)
GATEWAY = typer.Option("https://127.0.0.1:8080", "--gateway", envvar="MPC_GATEWAY", help="the gateway's address")
TOKEN = typer.Option(..., "--token", envvar="MPC_RESEARCH_TOKEN", help="your API token")
CA = typer.Option(None, "--ca", envvar="MPC_GATEWAY_CA", help="the deployment CA (PEM) to verify an https gateway")


@app.callback()
def main() -> None:
    """Researcher commands."""


@contextmanager
def _gateway(url: str, token: str, ca: str | None) -> Iterator[ResearchClient]:
    """A client of the gateway at ``url``. A refusal or an unreachable gateway ends the command with
    one line saying which (exit status 1); a CA file that cannot be read, naming it (exit status 2)."""
    import httpx

    from parties.gateway.client import ResearchClient, SandboxError

    try:
        client = ResearchClient(url, token, ca=ca)
    except OSError as exc:
        fail(f"{ca}: cannot read the CA certificate: {exc.strerror or exc}; check --ca (MPC_GATEWAY_CA)")
    with client:
        try:
            yield client
        except SandboxError as exc:
            fail(str(exc), 1)
        except httpx.TransportError as exc:
            fail(f"cannot reach the gateway at {url}: {exc}; check --gateway (MPC_GATEWAY)", 1)


@app.command()
def query(
    sql: str,
    project: str = typer.Option(..., "--project", "-p"),
    epsilon: float | None = typer.Option(None, help="privacy cost of this query (default: the gateway's)"),
    preview: bool = typer.Option(False, help="only price the query"),
    out: Path | None = typer.Option(None, "--csv", help="also write the released cells here (CSV, with intervals)"),
    gateway: str = GATEWAY,
    token: str = TOKEN,
    ca: str | None = CA,
) -> None:
    """Run a query and print the released cells (withheld cells are marked)."""
    from rich.progress import Progress
    from rich.table import Table

    from parties.gateway.client import SandboxError

    with _gateway(gateway, token, ca) as client:
        if preview:
            cost = client.preview(project, sql, epsilon)
            errors = ", ".join(f"{cell} ±{error:,}" for cell, error in cost["errors"].items())
            console().print(
                f"cost ε {cost['cost']:.3f} over {cost['groups']} groups; expected error (95 %) per cell: "
                f"{errors}; left: researcher {cost['budget_left']['researcher']:.3f}, project "
                f"{cost['budget_left']['project']:.3f}"
            )
            for warning in cost["warnings"]:
                say(f"warning: {warning}", "yellow")
            return
        job = client.submit(project, sql, epsilon)
        with Progress(console=console(), transient=True) as bar:
            task = bar.add_task(f"job {job['id']}", total=1.0)
            while job["status"] in ("queued", "running"):
                bar.update(task, completed=job["progress"])
                job = client.job(job["id"])
        if job["status"] == "failed":
            raise SandboxError(500, "the query failed", str(job.get("error", "")))
        left = client.budget(project)
        if out is not None:
            out.write_text(client.cells_csv(job["id"]), encoding="utf-8")
    result = job["result"]
    table = Table(
        title=f"released cells (ε {result['epsilon']:.3f}; each value [its 95 % interval]; noisy counts under "
        f"{result['min_cell']} withheld; means outside the column's bounds clamped, marked *)"
    )
    for column in result["columns"]:
        table.add_column(column, justify="left" if not column.startswith(("count", "sum(", "mean(")) else "right")
    for row in result["rows"]:
        table.add_row(*(_shown(row, c) for c in result["columns"]), style="dim italic" if row["suppressed"] else None)
    console().print(table)
    for warning in result.get("warnings", []):
        say(f"warning: {warning}", "yellow")
    console().print(
        f"budget left: researcher ε {left['researcher']:.3f} of {left['researcher_total']:g}, "
        f"project ε {left['project']:.3f} of {left['project_total']:g}"
    )
    if out is not None:
        say(f"cells written to {out}")


def _shown(row: dict[str, Any], column: str) -> str:
    """A released value with its 95 % interval, marked * when it was clamped."""
    text = format_cell(row[column])
    interval = row.get("intervals", {}).get(column)
    if row[column] is not None and interval is not None:
        text += f" [{format_cell(interval[0])} … {format_cell(interval[1])}]"
    return text + (" *" if column in row.get("clamped", []) else "")


@app.command()
def datasets(
    project: str = typer.Option(..., "--project", "-p"), gateway: str = GATEWAY, token: str = TOKEN, ca: str | None = CA
) -> None:
    """The tables and columns the project may use (schemas and uses, never values)."""
    from rich.table import Table

    with _gateway(gateway, token, ca) as client:
        tables = client.datasets(project)
    for t in tables:
        table = Table(title=t["table"] if t["available"] else f"{t['table']} (unavailable: {t['reason']})")
        for column in ("column", "type", "bounds", "uses"):
            table.add_column(column)
        for c in t["columns"]:
            bounds = (
                f"{c['min']} … {c['max']}"
                if c["min"] is not None
                else f"{len(c['values'])} values"
                if c["values"]
                else ""
            )
            table.add_row(c["name"], c["type"], bounds, ", ".join(c["uses"]))
        console().print(table)


def run() -> None:
    app()


if __name__ == "__main__":
    run()
