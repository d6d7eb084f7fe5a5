"""The steps of ``make demo`` after the deployment is up: the eligibility batch and a point query
against three owners, verifying what applicants declared (certificates, licences, declarations),
statistics on shares between agencies, the researcher sandbox, and the
audit logs verified at the end. Each step prints what each side learned and checks its answer
against the plaintext evaluation."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

console = Console()


def eligibility_step(cluster: object, tables: object, state: Path, count: int) -> None:
    """The main job: a batch of applications checked against three owners, then one point query."""
    import csv

    from rich.progress import Progress

    from demo.cluster import LocalCluster
    from demo.deployment import household_applications, plain_values
    from demo.synthetic import AgencyTables
    from mpc.protocols.rules import evaluate_plain, load_rules
    from parties.requester import Client

    assert isinstance(cluster, LocalCluster) and isinstance(tables, AgencyTables)
    rule = load_rules(Path(__file__).resolve().parents[1] / "rules" / "examples.toml").get("public-rental-housing")
    # each owner approves the rule, thresholds included, for civil-affairs (mpc-admin rules approve)
    owners = cluster.approve_rule(rule, "civil-affairs", ["public-rental-housing"])
    console.print(
        f"rule public-rental-housing (fingerprint {rule.fingerprint()[:16]}…) approved for civil-affairs "
        f"by {', '.join(owners)}"
    )
    batch = household_applications(tables, count)
    applications_csv = state / "applications.csv"
    with applications_csv.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["application_id", "resident_id", "relation"])
        for app in batch:
            writer.writerows([app.reference, m, "applicant" if m == app.applicant else "member"] for m in app.members)
    started = time.perf_counter()
    bits: list[int] = []
    with Client.from_config(
        cluster.config("civil-affairs"), purpose="public-rental-housing", case="DEMO-PRH"
    ) as client:
        with Progress(console=console, transient=True) as progress:
            progress.add_task("owners encrypt their tables once, then the batch runs…", total=None)
            answer = client.eligibility(rule, batch, reasons=False)
            bits.extend(answer.bits.tolist())
        seconds = time.perf_counter() - started
        batch_plans = list(answer.plans)
        point_started = time.perf_counter()
        single = client.eligibility(rule, batch[:1], reasons=False)
        point = single.bits.tolist()[0]
        point_ms = (time.perf_counter() - point_started) * 1000
        point_plans = list(single.plans)
    paths = Table(title="lookup paths the planner chose (per owner)")
    for column in ("query", "owner/dataset", "path", "rows", "why"):
        paths.add_column(column)
    for label, plans in (("batch", batch_plans), ("point", point_plans)):
        for plan in plans:
            paths.add_row(label, f"{plan.owner}/{plan.dataset}", plan.path, f"{plan.rows:,}", plan.reason)
    console.print(paths)
    results_csv = state / "results.csv"
    with results_csv.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["application_id", "result"])
        writer.writerows(
            [app.reference, "eligible" if bit else "not eligible"] for app, bit in zip(batch, bits, strict=True)
        )

    plain = evaluate_plain(rule, batch, plain_values(tables), {})
    matches = sum(int(e) == b for (e, _), b in zip(plain, bits, strict=True))
    summary = Table(
        title=f"public-rental-housing: {len(batch):,} applications (civil-affairs asks tax, housing, public-security)"
    )
    for column in ("eligible", "not eligible", "seconds", "plaintext check", "point query"):
        summary.add_column(column, justify="right")
    summary.add_row(
        f"{sum(bits):,}",
        f"{len(bits) - sum(bits):,}",
        f"{seconds:.1f}",
        f"[green]{matches:,}/{len(bits):,} match[/]" if matches == len(bits) else f"[red]{matches}/{len(bits)}[/]",
        f"{point_ms:.0f} ms ({'eligible' if point else 'not eligible'})",
    )
    console.print(summary)
    console.print(
        f"applications: {applications_csv}; results: {results_csv} "
        "(owners learned how many rows, and per row its position class (P1) or bucket (P3); the "
        "co-party, tax, only shares)"
    )


STATISTICS_SQL = (
    "SELECT h.district, COUNT(*), SUM(i.annual_income), AVG(i.annual_income) "
    "FROM households h JOIN tax.income i USING (resident_id) "
    "WHERE h.disabled = 1 AND i.annual_income > 30000 GROUP BY h.district"
)


def verification_step(cluster: object, tables: object, registers: object) -> None:
    """Verifying what applicants declare: a cited certificate checked by its issuer, a market
    entity's licence by credit code and type, past declarations of income and property re-checked;
    the declared values are civil-affairs' secret inputs, and every answer is checked against the
    plaintext rule."""
    from demo.cluster import LocalCluster
    from demo.deployment import plain_values
    from demo.registers import (
        Registers,
        certificate_applications,
        declaration_applications,
        licence_applications,
        register_values,
    )
    from demo.synthetic import AgencyTables
    from mpc.protocols.rules import evaluate_plain, load_rules
    from parties.requester import Client

    assert isinstance(cluster, LocalCluster) and isinstance(tables, AgencyTables) and isinstance(registers, Registers)
    rules = load_rules(Path(__file__).resolve().parents[1] / "rules" / "examples.toml")
    values = {**plain_values(tables), **register_values(registers)}
    jobs = (
        ("certificate-valid", "certificate-verification", certificate_applications(registers, 200)),
        ("business-licence", "licence-check", licence_applications(registers, 100)),
        ("declaration-audit", "declaration-audit", declaration_applications(tables, 300)),
    )
    summary = Table(title="verifying what applicants declared (the declared values never leave civil-affairs)")
    for column in ("rule", "asked of", "applications", "holds", "does not", "plaintext check", "seconds"):
        summary.add_column(column, justify="left" if column in ("rule", "asked of", "plaintext check") else "right")
    reasons = []
    for name, purpose, applications in jobs:
        rule = rules.get(name)
        owners = cluster.approve_rule(rule, "civil-affairs", [purpose])
        started = time.perf_counter()
        with Client.from_config(cluster.config("civil-affairs"), purpose, f"DEMO-{name}") as client:
            answer = client.eligibility(rule, applications)
        seconds = time.perf_counter() - started
        expected = [int(e) for e, _ in evaluate_plain(rule, applications, values, {})]
        bits = answer.bits.tolist()
        matches = sum(a == b for a, b in zip(bits, expected, strict=True))
        summary.add_row(
            name,
            ", ".join(owners),
            f"{len(bits):,}",
            f"{sum(bits):,}",
            f"{len(bits) - sum(bits):,}",
            "[green]matches[/]" if matches == len(bits) else f"[red]{matches:,}/{len(bits):,} match[/]",
            f"{seconds:.1f}",
        )
        failing = ", ".join(f"{c} {len(b) - int(b.sum())}" for c, b in answer.clauses.items() if len(b) > b.sum())
        reasons.append(f"{name}: failing clauses (reason codes the owners consent to) — {failing or 'none'}")
    console.print(summary)
    for line in reasons:
        console.print(line)


def statistics_step(cluster: object, tables: object) -> None:
    """Cross-agency statistics: civil-affairs' disabled residents joined with tax's incomes, counted
    and summed by district on secret shares; the cells are revealed to civil-affairs only."""
    from demo.cluster import LocalCluster
    from demo.deployment import with_ids
    from demo.synthetic import AgencyTables
    from mpc.protocols import aggregate as agg
    from mpc.protocols.sql import parse_query
    from parties.requester import Client

    assert isinstance(cluster, LocalCluster) and isinstance(tables, AgencyTables)
    query = parse_query(STATISTICS_SQL)
    started = time.perf_counter()
    with Client.from_config(cluster.config("civil-affairs"), purpose="statistics", case="DEMO-STATS") as client:
        with console.status("joining households with incomes on shares…"):
            result = client.aggregate(query.peer, query.request)
        schemas = {
            "initiator": {
                c: agg.ColumnInfo("category", labels=client.own_dataset("households").labels(c))
                if c == "district"
                else agg.ColumnInfo("bool")
                for c in ("district", "disabled")
            },
            "peer": {"annual_income": agg.ColumnInfo("int", -(10**12), 10**12)},
        }
    seconds = time.perf_counter() - started
    assert result is not None
    mine = {
        i: {"district": str(r["district"]), "disabled": int(str(r["disabled"]))}
        for i, r in with_ids(tables.civil_affairs)
    }
    theirs = {i: {"annual_income": int(str(r["annual_income"]))} for i, r in with_ids(tables.tax)}
    plain = agg.evaluate_plain(query.request, schemas, mine, theirs)  # type: ignore[arg-type]
    rows = result.table(query.request)
    withheld = result.withheld if result.withheld is not None else np.zeros(len(result.groups), dtype=bool)
    correct = all(
        (int(plain[group]["count"] or 0) < query.request.min_cell)
        if withheld[k]
        else (
            plain[group]["count"] == result.cells["count"][k]
            and plain[group]["sum(peer.annual_income)"] == result.cells["sum(peer.annual_income)"][k]
        )
        for k, group in enumerate(result.groups)
    )
    table = Table(
        title=f"statistics: disabled residents (civil-affairs) with income > 30 000 (tax), by district "
        f"— {result.rows:,} rows in the intersection, joined on shares in {seconds:.1f} s, "
        + ("[green]matches plaintext[/]" if correct else "[red]differs from plaintext[/]")
    )
    for column in ("district", "residents", "total income", "mean income"):
        table.add_column(column, justify="left" if column == "district" else "right")
    for row in rows:
        mean = row["mean(peer.annual_income)"]
        if row["withheld"]:
            table.add_row(str(row["initiator.district"]), f"< {query.request.min_cell} (withheld)", "—", "—")
            continue
        table.add_row(
            str(row["initiator.district"]),
            f"{row['count']:,}",
            f"{row['sum(peer.annual_income)']:,}",
            "—" if mean is None else f"{mean:,.0f}",
        )
    console.print(table)
    console.print(
        f"[dim]{query.request.where}: civil-affairs learned the cells; tax learned the intersection size, "
        "each matched row's district (a plain group-by key) and position class, never a value[/]"
    )


# The mean of a column with narrow declared bounds (household_size: 1..20): the noise of a sum is
# calibrated to the column's bounds, so a mean of annual_income (declared within ±10^12 CNY) would
# be mostly noise at this size. The filter reads the other agency's column.
SANDBOX_SQL = (
    'SELECT h.district, COUNT(*), AVG(h.household_size) FROM "civil-affairs".households h '
    "JOIN tax.income i USING (resident_id) WHERE h.minimum_living_allowance = 0 AND i.annual_income > 30000 "
    "GROUP BY h.district"
)


def sandbox_step(cluster: object) -> str:
    """A researcher's query through the gateway's API: noised, thresholded cells and the budget
    left. Returns the researcher's token (for the portal)."""
    from demo.cluster import GATEWAY, LocalCluster
    from parties.cli.cells import format_cell
    from parties.gateway.client import ResearchClient
    from parties.gateway.store import Store

    assert isinstance(cluster, LocalCluster)
    store = Store(str(cluster.members[GATEWAY].state_dir / "gateway.sqlite"))
    token = store.add_researcher("demo-researcher", 5.0)
    store.add_project(
        "welfare-statistics",
        "statistics",
        10.0,
        {
            "civil-affairs.households": ["district", "disabled", "minimum_living_allowance", "household_size"],
            "tax.income": ["annual_income"],
            "housing.properties": ["district", "property_count"],
        },
    )
    store.add_member("demo-researcher", "welfare-statistics")
    started = time.perf_counter()
    with (
        ResearchClient(cluster.gateway_url, token, ca=str(cluster.ca_path)) as client,
        console.status("a researcher's query through the gateway…"),
    ):
        cost = client.preview("welfare-statistics", SANDBOX_SQL, 1.0)
        job = client.query("welfare-statistics", SANDBOX_SQL, 1.0)
        left = client.budget("welfare-statistics")
    result = job["result"]
    table = Table(
        title=f"researcher sandbox: released cells (ε {result['epsilon']:.2f}, priced beforehand at "
        f"{cost['cost']:.2f}; noisy counts under {result['min_cell']} withheld), "
        f"{time.perf_counter() - started:.1f} s"
    )
    for column in result["columns"]:
        table.add_column(column, justify="left" if column.endswith("district") else "right")
    for row in result["rows"]:
        table.add_row(*(format_cell(row[c]) for c in result["columns"]))
    console.print(table)
    console.print(
        f"budget left: researcher ε {left['researcher']:.2f}, project ε {left['project']:.2f}; the gateway "
        "saw only noised cells (each owner added its own noise to its share); portal: "
        f"{cluster.gateway_url} (`make demo` with --keep keeps it up)"
    )
    return token


def normalised(rows: list[dict[str, object]]) -> list[str]:
    """Ids as every daemon normalises them (GB 11643; invalid ones dropped, as the CLI reports)."""
    from demo.deployment import with_ids

    return [i for i, _ in with_ids(rows)]


def last_audit_entry(path: Path, method: str) -> dict[str, object]:
    entries = [json.loads(line) for line in path.read_text().splitlines() if method in line]
    return entries[-1] if entries else {}


def verify_audit_logs(cluster: object) -> None:
    from demo.cluster import LocalCluster
    from parties.cli.admin import _public_key

    assert isinstance(cluster, LocalCluster)
    from mpc.audit import verify_log

    table = Table(title="audit logs after shutdown (hash chain + Ed25519 signatures)")
    for column in ("party", "entries", "verdict"):
        table.add_column(column)
    for name in cluster.members:
        state = cluster.root / "state" / name
        if not (state / "audit.log").exists():
            continue
        report = verify_log(state / "audit.log", _public_key(state / "audit-signing.pem"))
        table.add_row(
            name, str(report.entries), "[green]verifies[/]" if report.ok else f"[red]{len(report.problems)} problems[/]"
        )
    console.print(table)
