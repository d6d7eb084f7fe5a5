"""The researcher sandbox end to end: the API over HTTP, the owners' daemons computing, noised
and thresholded cells released, budgets spent, and every route to row-level data refused."""

from __future__ import annotations

import concurrent.futures
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from demo.cluster import GATEWAY
from demo.deployment import with_ids
from demo.synthetic import DISTRICTS
from mpc.protocols import aggregate as agg
from mpc.protocols.sql import parse_query
from parties.gateway.client import ResearchClient, SandboxError
from parties.requester import Client
from tests.gateway.conftest import ABSENT_DISTRICT, PROJECT, Sandbox

JOIN = (
    'SELECT h.district, COUNT(*), AVG(i.annual_income) FROM "civil-affairs".households h '
    "JOIN tax.income i USING (resident_id) WHERE h.disabled = 0 AND i.annual_income > 10000 GROUP BY h.district"
)


def _plain(sandbox: Sandbox, sql: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    request = parse_query(sql, "gateway", 1.0, GATEWAY).request
    households: dict[str, dict[str, Any]] = {
        i: {
            "district": str(r["district"]),
            "disabled": int(str(r["disabled"])),
            "household_size": int(str(r["household_size"])),
        }
        for i, r in with_ids(sandbox.tables.civil_affairs)
    }
    income = {
        i: {"annual_income": int(str(r["annual_income"])), "tax_year": int(str(r["tax_year"]))}
        for i, r in with_ids(sandbox.tables.tax)
    }
    labels = tuple(sorted({h["district"] for h in households.values()}))
    schemas = {
        "initiator": {
            "district": agg.ColumnInfo("category", labels=labels),
            "disabled": agg.ColumnInfo("bool"),
            "household_size": agg.ColumnInfo("int", 1, 20),
        },
        "peer": {
            "annual_income": agg.ColumnInfo("int", -(10**12), 10**12),
            "tax_year": agg.ColumnInfo("int", 1990, 2100),
        },
    }
    return agg.evaluate_plain(request, schemas, households, income)  # type: ignore[arg-type]


def test_a_join_releases_noised_thresholded_cells_and_spends_the_budget(sandbox: Sandbox) -> None:
    with ResearchClient(sandbox.url, sandbox.token) as client:
        before = client.budget(PROJECT)
        preview = client.preview(PROJECT, JOIN, 1.0)
        assert preview["cost"] == pytest.approx(1.0) and preview["affordable"] and preview["groups"] == 16
        assert set(preview["errors"]) == {"count", "sum(peer.annual_income)"} and preview["errors"]["count"] >= 1
        # incomes bounded by ±10^12: the sum's error dwarfs the column's range, and the preview says so
        assert [w.split(":")[0] for w in preview["warnings"]] == ["sum(income.annual_income)"]
        assert client.budget(PROJECT) == before  # a preview spends nothing
        job = client.query(PROJECT, JOIN, 1.0)
        after = client.budget(PROJECT)
        assert after["researcher"] == pytest.approx(before["researcher"] - 1.0)
        assert client.job(job["id"])["result"] == job["result"]  # re-downloaded, free
        assert client.budget(PROJECT) == after
    result, truth = job["result"], _plain(sandbox, JOIN)
    assert result["columns"] == ["households.district", "count", "mean(income.annual_income)"]
    scale, error = result["noise_scales"]["count"], result["errors"]["count"]
    covered = 0
    for row in result["rows"]:
        true = truth[(row["households.district"],)]["count"]
        if row["suppressed"]:
            assert row["count"] is None and row["mean(income.annual_income)"] is None and row["intervals"] == {}
        else:  # two discrete Laplace noises of this scale: 12 scales is far beyond any sane draw
            assert row["count"] >= 10 and abs(row["count"] - true) <= 12 * scale
            assert row["intervals"]["count"] == [row["count"] - error, row["count"] + error]
            low, high = row["intervals"]["mean(income.annual_income)"]
            assert -(10**12) <= low <= row["mean(income.annual_income)"] <= high <= 10**12
            covered += row["intervals"]["count"][0] <= true <= row["intervals"]["count"][1]
    released = [r for r in result["rows"] if not r["suppressed"]]
    assert released and covered >= len(released) - 4  # 95 % intervals: a miss or two, rarely more
    assert result["confidence"] == 0.95 and result["warnings"] == preview["warnings"]
    audit = [
        json.loads(line) for line in (sandbox.cluster.members[GATEWAY].state_dir / "audit.log").read_text().splitlines()
    ]
    released = [e for e in audit if e.get("action") == "query" and e.get("outcome") == "RELEASED"]
    assert released and "cost=1" in released[-1]["detail"] and "cells released=" in released[-1]["detail"]
    owner = [
        json.loads(line) for line in (sandbox.cluster.root / "state" / "tax" / "audit.log").read_text().splitlines()
    ]
    assert any(
        e.get("action") == "rpc:GetResultShare" and e.get("peer") == GATEWAY and e.get("outcome") == "OK" for e in owner
    )


def test_one_owner_table_and_the_catalog(sandbox: Sandbox) -> None:
    with ResearchClient(sandbox.url, sandbox.token) as client:
        tables = {t["table"]: t for t in client.datasets(PROJECT)}
        assert set(tables) == {"civil-affairs.households", "tax.income", "housing.properties"}
        income = {c["name"]: c for c in tables["tax.income"]["columns"]}
        assert income["annual_income"]["uses"] == ["filter", "aggregate"] and "values" in income["annual_income"]
        assert all("rows" not in c for c in income.values())  # schemas and uses, never values
        job = client.query(
            PROJECT, "SELECT p.district, SUM(p.property_count) FROM housing.properties p GROUP BY p.district", 0.5
        )
    assert len(job["result"]["rows"]) == 16 and job["result"]["columns"] == [
        "properties.district",
        "sum(properties.property_count)",
    ]


def test_the_catalog_shows_declared_categories_and_rounded_row_counts(sandbox: Sandbox) -> None:
    """An owner's catalogue is its declared shape: category domains from its schema (a declared
    district that no row holds included), row counts rounded up to its granularity (1000)."""
    with ResearchClient(sandbox.url, sandbox.token) as client:
        tables = {t["table"]: t for t in client.datasets(PROJECT)}
    exact = {
        "housing.properties": len(with_ids(sandbox.tables.housing)),
        "civil-affairs.households": len(with_ids(sandbox.tables.civil_affairs)),
        "tax.income": len({i for i, _ in with_ids(sandbox.tables.tax)}),
    }
    for name, rows in exact.items():
        shown = tables[name]["rows"]
        assert shown % 1000 == 0 and rows <= shown < rows + 1000, (name, rows, shown)
        assert rows % 1000 == 0 or shown != rows  # never the exact figure (unless it is a multiple)
    assert ABSENT_DISTRICT not in {str(r["district"]) for r in sandbox.tables.housing}
    for name in ("housing.properties", "civil-affairs.households"):
        district = next(c for c in tables[name]["columns"] if c["name"] == "district")
        assert district["values"] == list(DISTRICTS)  # declared order, the absent district included
    # what the owner itself sends a peer agency (tax may filter and group by housing's districts)
    with Client.from_config(sandbox.cluster.config("tax"), purpose="statistics", case="CATALOGUE") as peer:
        listing = {d.name: d for d in peer.list_datasets("housing").datasets}
    assert listing["properties"].rows == tables["housing.properties"]["rows"]
    assert list(next(c for c in listing["properties"].columns if c.name == "district").categories) == list(DISTRICTS)


@pytest.mark.parametrize(
    ("sql", "status", "reason"),
    [
        ("SELECT * FROM tax.income i", 400, "SELECT * would output rows"),
        ("SELECT i.annual_income FROM tax.income i", 400, "a raw column can only be selected as a GROUP BY key"),
        (
            "SELECT i.annual_income, COUNT(*) FROM tax.income i GROUP BY i.annual_income",
            403,
            "does not allow tax.income.annual_income as group_by",
        ),
        (
            "SELECT COUNT(*) FROM tax.income i WHERE i.resident_id = '110101199003077777'",
            403,
            "may not use column tax.income.resident_id",
        ),
        ("SELECT COUNT(*) FROM tax.income i ORDER BY 1", 400, "ORDER BY is not allowed"),
        ("SELECT COUNT(*) FROM tax.income i LIMIT 1", 400, "LIMIT is not allowed"),
        ("SELECT COUNT(*) FROM (SELECT * FROM tax.income) x", 400, "subqueries are not allowed"),
        (
            "SELECT MAX(i.annual_income) FROM tax.income i",
            400,
            "only group keys, COUNT(*), SUM(column) and AVG(column)",
        ),
        ("SELECT COUNT(*) FROM tax.income i WHERE LENGTH(i.annual_income) > 3", 400, "WHERE takes comparisons"),
        ("SELECT COUNT(*) FROM public-security.residents r", 400, ""),
        ('SELECT COUNT(*) FROM "public-security".residents r', 403, "may not use table public-security.residents"),
        (
            'SELECT h.household_id, COUNT(*) FROM "civil-affairs".households h GROUP BY h.household_id',
            400,
            "no such column: civil-affairs.households has no column 'household_id'",
        ),
        (
            'SELECT h.distrct, COUNT(*) FROM "civil-affairs".households h GROUP BY h.distrct',
            400,
            "has no column 'distrct'; did you mean 'district'?",
        ),
        (
            'SELECT h.household_size, COUNT(*) FROM "civil-affairs".households h GROUP BY h.household_size',
            403,
            "does not allow civil-affairs.households.household_size as group_by",
        ),
        (
            "SELECT SUM(i.tax_year) FROM tax.income i JOIN tax.income j USING (resident_id)",
            400,
            "a join is between two agencies",
        ),
    ],
)
def test_every_route_to_rows_or_outside_the_scope_is_refused(
    sandbox: Sandbox, sql: str, status: int, reason: str
) -> None:
    with ResearchClient(sandbox.url, sandbox.token) as client:
        before = client.budget(PROJECT)
        with pytest.raises(SandboxError) as refused:
            client.submit(PROJECT, sql, 0.5)
        assert refused.value.status == status and reason in refused.value.reason + refused.value.fragment
        assert client.budget(PROJECT) == before


def test_every_catalog_example_is_valid_as_written_and_names_its_join_key(sandbox: Sandbox) -> None:
    """The catalogue's example queries (a count per group, a join per table pair of one join key)
    preview without an error; identifiers that need quotes have them; columns carry their owner's
    descriptions; ε = 0 is explained, not "HTTP 422"."""
    with ResearchClient(sandbox.url, sandbox.token) as client:
        tables = client.datasets(PROJECT)
        examples = [e for t in tables for e in t["examples"]]
        assert {t["join_key"] for t in tables if t["available"]} == {"resident_id"}
        assert any('"civil-affairs".households a JOIN' in e for e in examples)
        for example in examples:
            assert client.preview(PROJECT, example, 0.5)["groups"] >= 1, example
        with pytest.raises(SandboxError) as zero:
            client.preview(PROJECT, examples[0], 0.0)
    assert zero.value.status == 400 and "ε must be above 0" in zero.value.reason


def test_tokens_projects_and_epsilon_limits(sandbox: Sandbox) -> None:
    with pytest.raises(SandboxError) as unknown:
        ResearchClient(sandbox.url, "not-a-token").me()
    assert unknown.value.status == 401
    assert httpx.get(f"{sandbox.url}/api/me").status_code == 401
    with ResearchClient(sandbox.url, sandbox.token) as client:
        with pytest.raises(SandboxError) as other:
            client.budget("someone-elses")
        assert other.value.status == 404
        with pytest.raises(SandboxError) as greedy:
            client.preview(PROJECT, "SELECT COUNT(*) FROM tax.income i", 5.0)
        assert greedy.value.status == 400 and "epsilon must be in" in greedy.value.reason


def test_budget_exhaustion_and_concurrent_spending(sandbox: Sandbox) -> None:
    """A researcher with ε 1 and twelve queries of ε 0.25 at once: four run, eight are refused
    with the budget left."""
    token = sandbox.store.add_researcher("bea", 1.0)
    sandbox.store.add_member("bea", PROJECT)
    sql = "SELECT p.district, COUNT(*) FROM housing.properties p GROUP BY p.district"

    def submit(_: int) -> int:
        with ResearchClient(sandbox.url, token) as client:
            try:
                client.submit(PROJECT, sql, 0.25)
                return 202
            except SandboxError as exc:
                assert "budget" in exc.reason and exc.detail["budget_left"]["researcher"] < 0.25
                return exc.status

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        outcomes = sorted(pool.map(submit, range(12)))
    assert outcomes == [202] * 4 + [409] * 8
    with ResearchClient(sandbox.url, token) as client:
        assert client.budget(PROJECT)["researcher"] == pytest.approx(0.0, abs=1e-9)
        for job in httpx.get(f"{sandbox.url}/api/jobs", headers={"Authorization": f"Bearer {token}"}).json():
            assert client.wait(job["id"])["status"] == "done"


def test_admin_and_researcher_command_lines(sandbox: Sandbox) -> None:
    """mpc-gateway creates a researcher (token printed once) and a project; mpc-research prints
    the released cells and the budget left, and a refusal with its reason."""
    from typer.testing import CliRunner

    from parties.cli import gateway, research

    runner = CliRunner()
    config = str(sandbox.cluster.config(GATEWAY))
    added = runner.invoke(gateway.app, ["researcher", "add", "cli-user", "--epsilon", "2", "--config", config])
    assert added.exit_code == 0, added.output
    token = added.output.strip().splitlines()[-1]
    assert sandbox.store.researcher_for(token) == "cli-user"
    project = runner.invoke(
        gateway.app,
        [
            "project",
            "add",
            "cli-project",
            "--purpose",
            "statistics",
            "--epsilon",
            "2",
            "--table",
            "housing.properties=district,property_count",
            "--config",
            config,
        ],
    )
    assert project.exit_code == 0, project.output
    assert (
        runner.invoke(gateway.app, ["project", "member", "cli-project", "cli-user", "--config", config]).exit_code == 0
    )
    args = ["--project", "cli-project", "--gateway", sandbox.url, "--token", token, "--epsilon", "0.5"]
    result = runner.invoke(
        research.app, ["query", "SELECT p.district, COUNT(*) FROM housing.properties p GROUP BY p.district", *args]
    )
    assert result.exit_code == 0, result.output
    assert "properties.district" in result.output and "budget left: researcher ε 1.500 of 2" in result.output
    refused = runner.invoke(research.app, ["query", "SELECT * FROM housing.properties p", *args])
    assert refused.exit_code == 1 and "SELECT * would output rows" in refused.output
    cells = Path(config).parent / "cli-cells.csv"
    query = "SELECT p.district, SUM(p.property_count) FROM housing.properties p GROUP BY p.district"
    downloaded = runner.invoke(research.app, ["query", query, *args, "--csv", str(cells)])
    assert downloaded.exit_code == 0, downloaded.output
    lines = cells.read_text().splitlines()
    assert lines[0] == (
        "properties.district,sum(properties.property_count),sum(properties.property_count) low,"
        "sum(properties.property_count) high,released"
    )
    assert len(lines) == 1 + 16 and all(line.endswith((",yes", ",no")) for line in lines[1:])
    with ResearchClient(sandbox.url, token) as client:
        budget = client.budget("cli-project")
    assert (budget["researcher_total"], budget["project_total"]) == (2, 2)
    assert [h["epsilon"] for h in budget["history"]] == [0.5, 0.5] and budget["researcher"] == pytest.approx(1.0)
    with ResearchClient(sandbox.url, sandbox.token) as other, pytest.raises(SandboxError) as not_theirs:
        other.cells_csv(budget["history"][0]["job"])  # another researcher's cells: as if it did not exist
    assert not_theirs.value.status == 404
    rotated = runner.invoke(gateway.app, ["researcher", "rotate", "cli-user", "--config", config])
    assert rotated.exit_code == 0, rotated.output
    new_token = rotated.output.strip().splitlines()[-1]
    assert sandbox.store.researcher_for(token) is None and sandbox.store.researcher_for(new_token) == "cli-user"
    revoked = runner.invoke(gateway.app, ["researcher", "revoke", "cli-user", "--config", config])
    assert revoked.exit_code == 0 and sandbox.store.researcher_for(new_token) is None
    with pytest.raises(SandboxError) as signed_out:
        ResearchClient(sandbox.url, new_token).me()
    assert signed_out.value.status == 401
    missing = runner.invoke(gateway.app, ["researcher", "revoke", "nobody", "--config", config])
    assert missing.exit_code == 1 and "no researcher 'nobody'" in missing.output


def test_the_api_over_https(sandbox: Sandbox, tmp_path: Any) -> None:
    """By default (no ``https`` key) the API is served with the gateway's certificate; a client
    verifies it with the deployment's CA, and a plain-HTTP request gets nowhere."""
    from parties.config import load_party_config
    from parties.gateway.config import GatewayConfig, GatewaySection
    from parties.gateway.server import GatewayDaemon

    tls = load_party_config(sandbox.cluster.config("tax")).tls.model_copy(
        update={
            "cert": sandbox.cluster.pki_dir / "issued" / "gateway.pem",
            "key": sandbox.cluster.pki_dir / "issued" / "gateway.key",
        }
    )
    section = GatewaySection.model_validate(
        {
            "listen": "127.0.0.1:0",
            "state_dir": tmp_path / "https-gateway",
            "coordinator": sandbox.cluster.members["coordinator"].address,
        }
    )
    assert section.https
    daemon = GatewayDaemon(GatewayConfig(gateway=section, tls=tls))
    daemon.start()
    try:
        token = daemon.store.add_researcher("tls-user", 1.0)
        with ResearchClient(f"https://{daemon.address}", token, ca=str(tls.ca)) as client:
            assert client.me()["researcher"] == "tls-user"
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://{daemon.address}/api/health", timeout=5)
        with pytest.raises(httpx.ConnectError):  # not trusted without the deployment's CA
            httpx.get(f"https://{daemon.address}/api/health", timeout=5)
    finally:
        daemon.stop()


def test_an_owner_dying_fails_the_job_refunds_the_budget_and_the_gateway_keeps_serving(sandbox: Sandbox) -> None:
    """The JOIN table's owner is down when the job runs: the job fails with the reason, the ε it
    cost comes back (nothing was released), the audit log says so, and the gateway answers the
    next query once the owner is back."""
    token = sandbox.store.add_researcher("cy", 3.0)
    sandbox.store.add_member("cy", PROJECT)
    with ResearchClient(sandbox.url, token) as client:
        client.preview(PROJECT, JOIN, 1.0)  # the owners' schemas, as the gateway caches them
        before = client.budget(PROJECT)["researcher"]
        sandbox.cluster.stop_party("tax")
        try:
            try:
                job = client.submit(PROJECT, JOIN, 1.0)
            except SandboxError as exc:  # the schemas' cache had expired: refused up front, nothing spent
                assert exc.status == 503 and "tax" in exc.reason
            else:
                with pytest.raises(SandboxError) as failed:
                    client.wait(job["id"], timeout=120)
                assert failed.value.detail["status"] == "failed" and failed.value.fragment
                audit = [
                    json.loads(line)
                    for line in (sandbox.cluster.members[GATEWAY].state_dir / "audit.log").read_text().splitlines()
                ]
                assert any(
                    e.get("outcome") == "FAILED" and f"job={job['id']} refunded" in e.get("detail", "") for e in audit
                )
            assert client.budget(PROJECT)["researcher"] == pytest.approx(before)
        finally:
            sandbox.cluster.start_party("tax")
        job = client.query(PROJECT, JOIN, 0.5)
        assert job["status"] == "done" and client.budget(PROJECT)["researcher"] == pytest.approx(before - 0.5)


@pytest.mark.parametrize(
    ("listen", "https", "refused"),
    [
        ("127.0.0.1:8080", None, False),
        ("0.0.0.0:8080", None, False),
        ("127.0.0.1:8080", False, False),
        ("[::1]:8080", False, False),
        ("localhost:8080", False, False),
        ("0.0.0.0:8080", False, True),
        ("10.1.2.3:8080", False, True),
    ],
)
def test_plain_http_only_when_configured_and_only_on_loopback(
    tmp_path: Any, listen: str, https: bool | None, refused: bool
) -> None:
    """HTTPS is the default; ``https = false`` is refused, naming the key and the address, unless
    the gateway listens on a loopback address."""
    from parties.config import ConfigError
    from parties.gateway.config import load_gateway_config

    lines = ["[gateway]", f'listen = "{listen}"', 'state_dir = "state"', 'coordinator = "127.0.0.1:7000"']
    if https is not None:
        lines.append(f"https = {str(https).lower()}")
    lines += ["[tls]", 'ca = "ca.pem"', 'cert = "gateway.pem"', 'key = "gateway.key"']
    path = tmp_path / "gateway.toml"
    path.write_text("\n".join(lines) + "\n")
    if refused:
        with pytest.raises(ConfigError, match="only on a loopback address") as error:
            load_gateway_config(path)
        assert "gateway" in str(error.value) and listen.rpartition(":")[0] in str(error.value)
    else:
        assert load_gateway_config(path).gateway.https is (https is not False)


def test_a_project_scope_is_checked_against_the_owners_grants(sandbox: Sandbox) -> None:
    """`mpc-gateway project add` asks the owners: a column they do not grant the gateway for
    research is refused with the nearest granted name; a table named alone takes every column
    granted for research; --offline needs the columns and asks nobody."""
    from typer.testing import CliRunner

    from parties.cli import gateway

    runner = CliRunner()
    config = str(sandbox.cluster.config(GATEWAY))

    def add(name: str, *table: str) -> Any:
        args = ["project", "add", name, "--purpose", "statistics", "--epsilon", "1", "--config", config]
        return runner.invoke(gateway.app, [*args, *(x for t in table for x in ("--table", t))])

    misspelled = add("p-typo", "housing.properties=district,property_cnt")
    assert misspelled.exit_code == 1
    assert (
        "housing.properties.property_cnt" in misspelled.output and "did you mean 'property_count'" in misspelled.output
    )
    unknown = add("p-unknown", "housing.propertees")
    assert unknown.exit_code == 1 and "grants the gateway no dataset 'propertees'" in unknown.output
    derived = add("p-derived", "housing.properties")
    assert derived.exit_code == 0, derived.output
    assert "housing.properties: property_count, district" in " ".join(derived.output.split())
    base = ["project", "add", "p-off", "--purpose", "statistics", "--epsilon", "1", "--table", "housing.properties"]
    offline = runner.invoke(gateway.app, [*base, "--offline", "--config", config])
    assert offline.exit_code == 2 and "--offline needs the columns" in offline.output
