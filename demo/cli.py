"""``make demo``: a deployment on loopback, and (``primitives``) the cryptographic core in process.

``python -m demo`` (what ``make demo`` runs) starts a coordinator and four agency
daemons with a fresh CA and 100 000 synthetic residents, runs cross-agency operations over mutual
TLS, prints what each side learned, verifies the audit logs and shuts everything down (also on
Ctrl-C). ``python -m demo primitives`` shows the building blocks in one process:

A housing office (the requester) asks whether applicants' annual income is below a limit and whether
they own no property, against a tax bureau's table (the owner), without the tax bureau learning who
was asked about and without the housing office learning any income:

1. OPRF (Curve25519): the housing office learns the tax bureau's tag of each applicant's id.
2. Paillier-masked lookup: it picks the matching encrypted row, adds a masked encryption, and the
   tax bureau's decryption leaves both holding additive shares of the row.
3. Secret-shared comparison over Z_2^64: ``income < limit AND property == 0``, revealed only to the
   housing office.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from mpc.crypto.curve25519 import OprfClient, OprfServer
from mpc.crypto.obfuscators import CrtObfuscator, ShortExponentObfuscator
from mpc.crypto.paillier import PaillierCiphertext, PaillierPublicKey, generate_keypair
from mpc.protocols.lookup import RowLayout, mask_rows, unmask
from mpc.sharing.runtime import Party, run_in_process
from mpc.sharing.types import ArithmeticShare

console = Console()
app = typer.Typer(help="Demonstrations.", invoke_without_command=True)

TAX_TABLE = [  # resident id, annual income (CNY), registered properties
    ("110101199003077777", 28_000, 0),
    ("110101198507151234", 96_000, 1),
    ("11010119770101003X", 41_500, 0),
    ("110101200012240021", -3_000, 0),
    ("110101196911110016", 29_999, 2),
    ("110101199912319998", 30_000, 0),
]
APPLICANTS = [
    "110101199003077777",
    "11010119770101003X",
    "110101200012240021",
    "110101199912319998",
    "440301199001010000",
]
INCOME_LIMIT = 30_000


@app.command()
def primitives(key_bits: int = typer.Option(2048, help="Paillier modulus size (2048 or 3072).")) -> None:
    """The building blocks between two in-process parties: OPRF, masked lookup, comparison."""
    console.rule("[bold]Cross-agency eligibility, the cryptographic core")
    console.print(
        f"Tax bureau (owner) holds {len(TAX_TABLE)} rows; the housing office (requester) has "
        f"{len(APPLICANTS)} applicants and asks: [italic]income < {INCOME_LIMIT:,} and no property[/]."
    )

    # --- owner: keys, OPRF tags and the encrypted table --------------------------------------
    started = time.perf_counter()
    owner_pk, owner_sk = generate_keypair(key_bits)
    owner_pk.use_obfuscator(CrtObfuscator(owner_sk))  # the owner may use its factorisation
    oprf = OprfServer.generate(domain=b"tax/residents")
    tags = oprf.evaluate_ids([row[0] for row in TAX_TABLE], parallel=False)
    values = np.array([[income, props] for _, income, props in TAX_TABLE], dtype=np.int64)
    layout = RowLayout.for_bounds(["annual_income", "property_count"], [(-(10**9), 10**9), (0, 1000)], key_bits)
    rows = owner_pk.encrypt_batch(layout.plaintexts(values, layout.positions(tags)))
    console.print(
        f"[dim]owner set-up: {key_bits}-bit Paillier key, {len(tags)} OPRF tags, {len(tags)} ciphertexts "
        f"(slots of {'/'.join(map(str, layout.slot_bits))} bits, {layout.rows_per_plaintext} rows per plaintext) in "
        f"{time.perf_counter() - started:.2f} s[/]"
    )

    # --- requester: OPRF round trip, then masked lookups ---------------------------------------
    requester_pk = PaillierPublicKey(int(owner_pk.n))  # the requester holds the public key only
    requester_pk.use_obfuscator(ShortExponentObfuscator(requester_pk, window_bits=8))
    published = {tag: PaillierCiphertext(requester_pk, c.value) for tag, c in zip(tags, rows, strict=True)}
    client = OprfClient(domain=b"tax/residents")
    query = client.blind(APPLICANTS, parallel=False)
    answers = oprf.evaluate_blinded(query.points, parallel=False)  # the owner sees only blinded points
    applicant_tags = client.finalize(query, answers, parallel=False)

    selected = [published.get(t) for t in applicant_tags]
    present = [int(c is not None) for c in selected]  # the requester sees which tags the table holds
    masked, requester_shares = mask_rows(requester_pk, layout, selected)
    owner_shares = unmask(layout, owner_sk.decrypt_batch(masked))
    owner_view = [int(s[0]) for s in owner_shares]  # what the owner kept for the income column

    # --- both: compare on shares, reveal to the requester only ---------------------------------
    owner_cols = np.array(owner_shares, dtype=np.uint64).T
    requester_cols = np.array(requester_shares, dtype=np.uint64).T

    def program(p: Party) -> np.ndarray | None:
        cols = owner_cols if p.index == 0 else requester_cols
        income, props = (ArithmeticShare(p, cols[i].copy()) for i in range(2))
        limit = p.share([INCOME_LIMIT] * len(APPLICANTS) if p.index == 1 else None, owner=1)
        known = p.share_bits(present if p.index == 1 else None, owner=1)  # the requester's secret input
        eligible = (income < limit) & props.eq(0) & known
        return p.reveal_bits(eligible, to=1)

    owner_result, eligible = run_in_process(program)
    assert owner_result is None and eligible is not None

    results = Table(title="Housing office's results (all it learns)")
    results.add_column("applicant")
    results.add_column("eligible", justify="center")
    truth = {rid: inc < INCOME_LIMIT and props == 0 for rid, inc, props in TAX_TABLE}
    for applicant, bit in zip(APPLICANTS, eligible, strict=True):
        assert bool(bit) == truth.get(applicant, False)  # the demo checks itself against plaintext
        results.add_row(applicant, "[green]yes[/]" if bit else "[red]no[/]")
    console.print(results)

    learned = Table(title="What each side learned")
    learned.add_column("party")
    learned.add_column("learned")
    learned.add_column("never saw")
    learned.add_row(
        "housing office (requester)",
        "one eligibility bit per applicant",
        "incomes, property counts, which rows exist beyond its applicants",
    )
    learned.add_row(
        "tax bureau (owner)",
        f"{len(query.points)} blinded points and {len(masked)} masked rows, e.g. income slot "
        f"{owner_view[0]:#x}… (income + 40-bit-wider mask, summed over positions)",
        "applicant ids, the limit, the results",
    )
    console.print(learned)
    console.print(
        Panel.fit(
            "next: `make test` runs the whole suite; `make bench` compares against python-paillier, "
            "openmined-psi, MPyC and SecretFlow SPU; docs/architecture.md explains the layers.",
            title="done",
        )
    )


@app.callback()
def deployment(
    ctx: typer.Context,
    residents: int = typer.Option(100_000, help="synthetic residents"),
    state: Path = typer.Option(Path(".state/demo"), help="where certificates, data, daemon state and logs go"),
    comparisons: int = typer.Option(1_000_000, help="secret-shared comparisons in the daemon-to-daemon step"),
    applications: int = typer.Option(1000, help="public-rental-housing applications in the eligibility step"),
    keep: bool = typer.Option(False, help="keep the deployment running at the end (explore the portal; Ctrl-C stops)"),
) -> None:
    """Coordinator + four agency daemons on loopback; PSI between agencies; secret sharing over TLS."""
    if ctx.invoked_subcommand is not None:
        return
    import shutil

    from demo.cluster import COORDINATOR, LocalCluster
    from demo.deployment import party_specs
    from demo.synthetic import generate
    from mpc.protocols.selftest import public_values
    from parties.requester import Client

    console.rule("[bold]Cross-agency computation without moving the data")
    state = state.resolve()
    shutil.rmtree(state, ignore_errors=True)
    started = time.perf_counter()
    tables = generate(residents)
    specs = party_specs(tables, state / "data")
    console.print(
        f"synthetic city: {residents:,} residents in {len(specs)} agencies' tables "
        f"({time.perf_counter() - started:.1f} s): "
        + ", ".join(f"{name} {len(rows):,} rows" for name, rows in tables.tables().items())
    )
    cluster = LocalCluster(state, specs, gateway=True)
    try:
        with console.status("starting the coordinator, four agency daemons (fresh CA, mutual TLS) and the gateway…"):
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
        truth = {name: set(_normalised(rows)) for name, rows in tables.tables().items()}
        for requester, owner, dataset, mine, theirs in (
            ("civil-affairs", "tax", "income", "civil_affairs", "tax"),
            ("housing", "public-security", "residents", "housing", "public_security"),
        ):
            ids = _normalised(getattr(tables, mine))
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
            entry = _last_audit_entry(state / "state" / owner / "audit.log", "PsiRound")
            learned.add_row(
                f"{requester} → {owner}",
                f"the intersection size and that {owner} has {result.owner_count:,} rows",
                f"that {entry.get('peer')} sent {entry.get('rows', 0):,} ids for purpose "
                f"{entry.get('purpose')!r}, case {entry.get('case')!r}",
                "nothing (not involved)",
            )
        console.print(results)

        _eligibility_step(cluster, tables, state, applications)
        _statistics_step(cluster, tables)
        token = _sandbox_step(cluster)

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
                f"[bold]the deployment stays up: portal at {cluster.gateway_url} (token {token}); Ctrl-C stops it[/]"
            )
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: shutting the deployment down[/]")
    finally:
        with console.status("stopping daemons (in-flight requests finish first)…"):
            cluster.stop()
    _verify_audit_logs(cluster)
    console.print(f"state (certificates, data, logs) in {state}; run `make demo` again to start afresh.")


def _eligibility_step(cluster: object, tables: object, state: Path, count: int) -> None:
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


def _statistics_step(cluster: object, tables: object) -> None:
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


def _sandbox_step(cluster: object) -> str:
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
        ResearchClient(cluster.gateway_url, token) as client,
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


def _normalised(rows: list[dict[str, object]]) -> list[str]:
    """Ids as every daemon normalises them (GB 11643; invalid ones dropped, as the CLI reports)."""
    from demo.deployment import with_ids

    return [i for i, _ in with_ids(rows)]


def _last_audit_entry(path: Path, method: str) -> dict[str, object]:
    entries = [json.loads(line) for line in path.read_text().splitlines() if method in line]
    return entries[-1] if entries else {}


def _verify_audit_logs(cluster: object) -> None:
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


def run() -> None:
    app()


if __name__ == "__main__":
    run()
