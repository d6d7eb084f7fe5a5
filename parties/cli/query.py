"""``mpc-query``: the requester's command line (runs with the requesting agency's certificate)."""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from mpc.audit import AuditLogError
from mpc.data.ids import IdKind, normalize_column
from mpc.protocols.planner import LookupPlan
from mpc.protocols.rules import Application
from parties.cli.cells import format_cell
from parties.config import ConfigError
from parties.requester import Client, RemoteError

app = typer.Typer(help="Ask other agencies' daemons, privately.", no_args_is_help=True)
console = Console()

CONFIG = typer.Option(..., "--config", "-c", help="this agency's configuration (TLS identity, coordinator)")
PURPOSE = typer.Option(..., "--purpose", help="purpose code checked by the owner's policy")
CASE = typer.Option(..., "--case", help="case reference written to both audit logs")


@app.callback()
def main() -> None:
    """Requester commands."""


def _client(config: Path, purpose: str, case: str) -> Client:
    """Our client from the agency's configuration; a configuration that does not load stops the
    command with its message (file and key), exit status 2."""
    try:
        return Client.from_config(config, purpose, case)
    except (ConfigError, AuditLogError) as exc:
        console.print(f"[red]{exc}[/]", soft_wrap=True)
        raise typer.Exit(2) from None


def _rows(path: Path, needed: set[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, row) of a CSV file with the ``needed`` columns; a file that cannot be read, is not
    UTF-8 CSV, lacks a column or has a row with missing cells stops the command naming the file
    and the line."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or not needed <= set(reader.fieldnames):
                raise typer.BadParameter(f"{path} needs columns {sorted(needed)}, has {reader.fieldnames}")
            for row in reader:
                if any(row.get(c) is None for c in needed):
                    raise typer.BadParameter(f"{path}, line {reader.line_num}: a row with missing cells")
                yield reader.line_num, {c: row[c] for c in needed}
    except UnicodeDecodeError as exc:
        raise typer.BadParameter(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except csv.Error as exc:
        raise typer.BadParameter(f"{path}: not a CSV file: {exc}") from None
    except OSError as exc:
        raise typer.BadParameter(f"{path}: cannot read: {exc.strerror or exc}") from None


def read_ids(path: Path, column: str, kind: IdKind) -> list[str]:
    raw = [row[column] for _, row in _rows(path, {column})]
    ids, report = normalize_column(raw, kind)
    for bad in report.invalid[:10]:
        console.print(f"[yellow]row {bad.row}: invalid id {bad.raw!r}: {bad.reason}[/]")
    if len(report.invalid) > 10:
        console.print(f"[yellow]… {len(report.invalid) - 10} more invalid ids[/]")
    return [i for i in ids if i is not None]


@app.command("psi")
def psi(
    peer: str = typer.Option(..., help="owner party name (or host:port)"),
    dataset: str = typer.Option(..., help="owner's dataset"),
    ids: Path = typer.Option(..., help="CSV with our ids"),
    mode: str = typer.Option("cardinality", help="cardinality (how many match) or intersection (which)"),
    column: str = typer.Option("resident_id", help="id column in the CSV"),
    kind: str = typer.Option("resident_id", help="resident_id, credit_code or opaque"),
    out: Path | None = typer.Option(None, help="intersection mode: write the matching ids here (CSV)"),
    config: Path = CONFIG,
    purpose: str = PURPOSE,
    case: str = CASE,
) -> None:
    """ECDH-PSI with fresh keys: how many of our ids the owner's dataset holds, or which (the
    owner learns only how many distinct ids we sent)."""
    from rich.progress import Progress

    if mode not in ("cardinality", "intersection"):
        raise typer.BadParameter("--mode must be cardinality or intersection")
    mine = read_ids(ids, column, kind)  # type: ignore[arg-type]
    with _client(config, purpose, case) as client, Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"PSI with {peer}.{dataset}", total=None)
        try:
            result = client.set_intersection(
                peer,
                dataset,
                mine,
                mode,  # type: ignore[arg-type]
                lambda done, total: bar.update(task, completed=done, total=total),
            )
        except RemoteError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(1) from None
    table = Table(title=f"PSI ({mode}) with {peer}.{dataset}")
    for col in ("our ids", "their rows", "in common", "seconds", "bytes sent", "bytes received"):
        table.add_column(col, justify="right")
    table.add_row(
        f"{result.requester_count:,}",
        f"{result.owner_count:,}",
        f"{result.intersection:,}",
        f"{result.seconds:.2f}",
        f"{result.bytes_sent:,}",
        f"{result.bytes_received:,}",
    )
    console.print(table)
    if out is not None and result.matched is not None:
        with out.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow([column])
            writer.writerows([i] for i in result.matched)
        console.print(f"matching ids written to {out}")


@app.command("intersection-sum")
def intersection_sum(
    peer: str = typer.Option(..., help="owner party name (or host:port)"),
    dataset: str = typer.Option(..., help="owner's dataset"),
    column: list[str] = typer.Option(..., "--column", help="owner's column(s) to sum over the intersection"),
    ids: Path = typer.Option(..., help="CSV with our ids"),
    id_column: str = typer.Option("resident_id", help="id column in the CSV"),
    kind: str = typer.Option("resident_id", help="resident_id, credit_code or opaque"),
    config: Path = CONFIG,
    purpose: str = PURPOSE,
    case: str = CASE,
) -> None:
    """Private join and compute: how many of our ids the owner holds and the sum of its columns
    over them, computed on secret shares and opened only when the count reaches both sides'
    minimum cell size (the owner learns our count and the intersection's size)."""
    mine = read_ids(ids, id_column, kind)  # type: ignore[arg-type]
    with _client(config, purpose, case) as client:
        try:
            result = client.intersection_sum(peer, dataset, column, mine)
        except RemoteError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(1) from None
    table = Table(title=f"intersection-sum with {peer}.{dataset}")
    for col in ("our ids", "their rows", "in common", *(f"sum({c})" for c in column), "seconds"):
        table.add_column(col, justify="right")

    def shown(value: int | None) -> str:
        return "withheld" if value is None else f"{value:,}"

    table.add_row(
        f"{result.requester_count:,}",
        f"≈{result.owner_count:,}",
        shown(result.intersection),
        *(shown(result.sums[c]) for c in column),
        f"{result.seconds:.2f}",
    )
    console.print(table)
    if result.intersection is None:
        console.print("[yellow]the intersection is under the minimum cell size: the owners withheld every figure[/]")


@app.command("aggregate")
def aggregate(
    sql: str = typer.Option(
        ...,
        help="SELECT keys, COUNT(*), SUM(col), AVG(col) FROM us.dataset a JOIN peer.dataset b "
        "USING (id) [WHERE ...] GROUP BY keys",
    ),
    reveal_to: str = typer.Option("initiator", help="who sees the cells: initiator (us) or peer"),
    out: Path | None = typer.Option(None, help="write the cells here (CSV)"),
    config: Path = CONFIG,
    purpose: str = PURPOSE,
    case: str = CASE,
) -> None:
    """COUNT / SUM / AVG per group over one of our datasets joined with a peer's, computed on
    secret shares: neither side's rows leave it, and only the named party sees the cells."""
    from mpc.protocols.sql import SqlRefused, parse_query

    if reveal_to not in ("initiator", "peer"):
        raise typer.BadParameter("--reveal-to must be initiator or peer")
    try:
        query = parse_query(sql, reveal_to)  # type: ignore[arg-type]
    except SqlRefused as exc:
        console.print(f"[red]query refused: {exc}[/]")
        raise typer.Exit(2) from None
    with _client(config, purpose, case) as client:
        if query.initiator not in ("", client.name):
            console.print(f"[red]the FROM table must be ours ({client.name}.<dataset>), not {query.initiator!r}[/]")
            raise typer.Exit(2)
        started = time.perf_counter()
        try:
            result = client.aggregate(query.peer, query.request)
        except (RemoteError, ValueError, LookupError) as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(1) from None
    seconds = time.perf_counter() - started
    if result is None:
        console.print(f"the cells were revealed to {query.peer} only ({seconds:.1f} s)")
        return
    rows = result.table(query.request)
    table = Table(
        title=f"{query.request.initiator_dataset} JOIN {query.peer}.{query.request.peer_dataset} "
        f"({result.rows:,} of our rows, {seconds:.1f} s)"
    )
    for name in rows[0] if rows else []:
        table.add_column(name, justify="left" if name in result.keys else "right")
    for row in rows:
        table.add_row(*(format_cell(v, "—") for v in row.values()))
    console.print(table)
    if out is not None:
        with out.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
            writer.writeheader()
            writer.writerows(rows)
        console.print(f"cells written to {out}")


@app.command("eligibility")
def eligibility(
    rule: str = typer.Option(..., help="rule name"),
    rules_file: Path = typer.Option(Path("rules/examples.toml"), "--rules", help="rules file (TOML)"),
    applicants: Path = typer.Option(..., help="CSV: application_id, resident_id, relation (applicant or member)"),
    out: Path = typer.Option(Path("results.csv"), help="one row per application"),
    chunk: int = typer.Option(10_000, help="applications per round trip"),
    path: str = typer.Option(
        "auto", help="lookup path at each owner: auto (planned), P3 (buckets) or P1 (whole table)"
    ),
    config: Path = CONFIG,
    purpose: str = PURPOSE,
    case: str = CASE,
) -> None:
    """Check each application against RULE; every application gets a row: eligible, not eligible
    (with the failed clauses whose owners allow reason codes), or error with the reason. Prints
    which lookup path each owner's table took and why."""
    from rich.progress import Progress

    from mpc.protocols.rules import RuleError, load_rules

    try:
        chosen = load_rules(rules_file).get(rule)
    except (RuleError, OSError) as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    if path not in ("auto", "P1", "P3"):
        console.print(f"[red]--path must be auto, P1 or P3, not {path!r}[/]")
        raise typer.Exit(2)
    forced: Literal["P1", "P3"] | None = None if path == "auto" else path  # type: ignore[assignment]
    applications, errors, order = read_applications(applicants)
    plans: dict[tuple[str, str, str], LookupPlan] = {}
    results: dict[str, tuple[str, str]] = {ref: ("error", reason) for ref, reason in errors.items()}
    valid = [a for a in applications if a.reference not in errors]
    with _client(config, purpose, case) as client, Progress(console=console) as progress:
        task = progress.add_task(f"checking {len(valid):,} applications", total=len(valid))
        for start in range(0, len(valid), chunk):
            part = valid[start : start + chunk]
            try:
                answer = client.eligibility(chosen, part, path=forced)
            except RemoteError as exc:
                for a in part:
                    results[a.reference] = ("error", f"{exc.party}: {exc.code.name}: {exc.details}")
            except NotImplementedError as exc:
                console.print(f"[red]{exc}[/]")
                raise typer.Exit(2) from None
            else:
                plans.update({(p.owner, p.dataset, p.path): p for p in answer.plans})
                for k, (a, bit) in enumerate(zip(part, answer.bits.tolist(), strict=True)):
                    failed = [name for name, clause_bits in answer.clauses.items() if not clause_bits[k]]
                    reason = "" if bit or not failed else "failed: " + ", ".join(failed)
                    results[a.reference] = ("eligible" if bit else "not eligible", reason)
            progress.advance(task, len(part))
    if plans:
        paths = Table(title="lookup paths (planned per owner and chunk)")
        for column in ("owner", "dataset", "path", "rows", "why"):
            paths.add_column(column)
        for plan in plans.values():
            paths.add_row(plan.owner, plan.dataset, plan.path, f"{plan.rows:,}", plan.reason)
        console.print(paths)
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["application_id", "result", "reason"])
        for ref in order:
            writer.writerow([ref, *results[ref]])
    summary = Table(title=f"{rule}: {len(order):,} applications → {out}")
    for column in ("eligible", "not eligible", "error"):
        summary.add_column(column, justify="right")
    counts = [sum(1 for r in results.values() if r[0] == kind) for kind in ("eligible", "not eligible", "error")]
    summary.add_row(*(f"{c:,}" for c in counts))
    console.print(summary)


def read_applications(path: Path) -> tuple[list[Application], dict[str, str], list[str]]:
    """Applications from a long CSV (one row per person); invalid ids become per-application errors."""
    from mpc.protocols.rules import MAX_MEMBERS, Application

    people: dict[str, list[tuple[int, str, str]]] = {}
    for number, row in _rows(path, {"application_id", "resident_id", "relation"}):
        people.setdefault(row["application_id"], []).append((number, row["resident_id"], row["relation"]))
    applications, errors = [], {}
    for ref, rows in people.items():
        ids, report = normalize_column([r[1] for r in rows], "resident_id")
        applicant_rows = [i for i, r in enumerate(rows) if r[2].strip().lower() == "applicant"]
        if report.invalid:
            bad = report.invalid[0]
            errors[ref] = f"invalid id in line {rows[bad.row][0]}: {bad.reason}"
        elif len(applicant_rows) != 1:
            errors[ref] = f"needs exactly one applicant row, has {len(applicant_rows)}"
        elif len(rows) > MAX_MEMBERS:
            errors[ref] = f"more than {MAX_MEMBERS} household members"
        else:
            first = applicant_rows[0]
            members = [ids[first], *(i for k, i in enumerate(ids) if k != first)]
            applications.append(Application(ref, str(members[0]), tuple(str(m) for m in members)))
    return applications, errors, list(people)


@app.command("selftest-compare")
def selftest_compare(
    peer: str = typer.Option(..., help="co-party name (or host:port)"),
    n: int = typer.Option(100_000, help="number of comparisons"),
    seed: int = typer.Option(1, help="public seed of the co-party's values"),
    config: Path = CONFIG,
    purpose: str = PURPOSE,
    case: str = CASE,
) -> None:
    """Secret-shared comparisons with a co-party daemon, the coordinator dealing; checks the result."""
    from mpc.protocols.selftest import public_values

    values = np.random.default_rng(seed + 1).integers(-(2**62), 2**62, n, dtype=np.int64)
    with _client(config, purpose, case) as client:
        started = time.perf_counter()
        try:
            bits, summary = client.selftest_compare(peer, values, seed)
        except RemoteError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(1) from None
        seconds = time.perf_counter() - started
    ok = bool(np.array_equal(bits, (values < public_values(seed, n)).astype(np.uint8)))
    console.print(
        f"{n:,} comparisons in {seconds:.2f} s ({n / seconds:,.0f}/s); correct: {ok}; co-party learned: "
        f"{summary.get('learned')}"
    )
    if not ok:
        raise typer.Exit(1)


def run() -> None:
    app()


if __name__ == "__main__":
    run()
