"""The requester service (``mpc-requester serve``) end to end: the real service process on loopback
against real owner daemons, checked against the plaintext rule.

A small synthetic city: tax (incomes) and housing (properties) own data; ``intake`` is a
requester-only agency that runs the service; ``case-system`` is the caller its configuration
lists, ``other-system`` a caller with a certificate from the same CA that it does not list.
"""

from __future__ import annotations

import csv
import io
import json
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w

from demo.cluster import LocalCluster, PartySpec
from demo.deployment import household_applications, plain_values
from demo.synthetic import AgencyTables, generate, write_csv
from mpc.audit import verify_log
from mpc.audit.writer import load_or_create_signing_key
from mpc.protocols.rules import Application, evaluate_plain, load_rules
from parties.pki import Pki
from tests.e2e.conftest import income_dataset, wait_for

PURPOSE = "public-rental-housing"
RULES = """
[rules.rental]
description = "household income per member below 30 000 and no registered property"
expression = "income_per_member AND no_property"
[rules.rental.clauses.income_per_member]
owner = "tax"
dataset = "income"
column = "annual_income"
scope = "household-sum"
compare = "<"
value = 30000
per_member = true
absent = "zero"
reveal = true
[rules.rental.clauses.no_property]
owner = "housing"
dataset = "properties"
column = "property_count"
scope = "household-sum"
compare = "=="
value = 0
absent = "zero"
reveal = true

[rules.income-below-100k]
description = "the applicant's own income is at most 100 000"
expression = "income_ok"
[rules.income-below-100k.clauses.income_ok]
owner = "tax"
dataset = "income"
column = "annual_income"
compare = "<="
value = 100000
absent = "false"

[rules.declaration-audit]
description = "the household income declared is within 10 % of tax's, the property count declared is housing's"
expression = "income_as_declared AND property_as_declared"
[rules.declaration-audit.clauses.income_as_declared]
owner = "tax"
dataset = "income"
column = "annual_income"
scope = "household-sum"
compare = "within"
declared = "household_income"
tolerance_percent = 10
absent = "zero"
reveal = true
[rules.declaration-audit.clauses.property_as_declared]
owner = "housing"
dataset = "properties"
column = "property_count"
scope = "household-sum"
compare = "=="
declared = "property_count"
absent = "zero"
reveal = true

[rules.not-approved]
description = "never approved by tax"
expression = "rich"
[rules.not-approved.clauses.rich]
owner = "tax"
dataset = "income"
column = "annual_income"
compare = ">="
value = 1000000
absent = "false"
"""


def _grant(dataset: str, column: str, **extra: Any) -> dict[str, Any]:
    return {
        "purposes": [PURPOSE],
        "datasets": {dataset: {"psi": True, "batch": False, "columns": {column: ["lookup", "compare"]}}},
        "programs": ["rule"],
        "reveal_clauses": True,
        **extra,
    }


@dataclass
class Service:
    cluster: LocalCluster
    tables: AgencyTables
    url: str
    pki: Path
    state: Path
    process: subprocess.Popen[bytes]

    def client(self, caller: str | None = "case-system", **options: Any) -> httpx.Client:
        """An HTTPS client verifying the service with the deployment CA, presenting ``caller``'s
        certificate (None: none)."""
        context = ssl.create_default_context(cafile=str(self.pki / "ca.pem"))
        if caller is not None:
            context.load_cert_chain(self.pki / "issued" / f"{caller}.pem", self.pki / "issued" / f"{caller}.key")
        return httpx.Client(base_url=self.url, verify=context, timeout=120, **options)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("service")
    tables = generate(1500, seed=11)
    paths = write_csv(tables, root / "data")
    properties = {
        "name": "properties",
        "source": {"kind": "csv", "path": str(paths["housing"])},
        "schema": {"id_column": "resident_id", "columns": {"property_count": {"type": "int", "min": 0, "max": 1000}}},
    }
    tax_policy = {
        "peers": {
            "intake": _grant("income", "annual_income"),
            "housing": {"purposes": [PURPOSE], "forward_shares": True},
        }
    }
    # housing keeps its clause bits to itself: reasons say that other clauses were not disclosed
    housing_grant = _grant("properties", "property_count", co_parties=["tax"], reveal_clauses=False)
    housing_policy = {"peers": {"intake": housing_grant}}
    cluster = LocalCluster(
        root,
        [
            PartySpec("tax", [income_dataset(paths["tax"], tax_year=False)], tax_policy),
            PartySpec("housing", [properties], housing_policy),
            PartySpec("intake", daemon=False, service=True),
        ],
        paillier_bits=1024,
    )
    cluster.start()
    process = None
    try:
        rules = load_rules(RULES)
        for name in ("rental", "income-below-100k", "declaration-audit"):
            cluster.approve_rule(rules.get(name), "intake", [PURPOSE])
        pki = Pki(cluster.pki_dir)
        for caller in ("case-system", "other-system"):
            pki.issue(caller, roles=("client",))
        (root / "rules.toml").write_text(RULES)
        config = root / "config" / "service.toml"
        settings = {
            "agency": str(cluster.config("intake")),
            "listen": "127.0.0.1:0",
            "callers": ["case-system"],
            "rules": "../rules.toml",
            "default_purpose": PURPOSE,
            "job_chunk": 16,
            "coalesce_ms": 200,  # concurrent checks go to the owners together
        }
        config.write_bytes(tomli_w.dumps({"service": settings}).encode())
        state = cluster.root / "state" / "intake"
        log = (cluster.root / "logs" / "service.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "parties.cli.requester", "serve", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        address = state / "service-address"
        wait_for(
            lambda: (address.exists() and bool(address.read_text().strip())) or process.poll() is not None,
            "the service's address",
            120,
        )
        assert process.poll() is None, (cluster.root / "logs" / "service.log").read_text()[-3000:]
        yield Service(cluster, tables, f"https://{address.read_text().strip()}", cluster.pki_dir, state, process)
    finally:
        if process is not None:
            process.terminate()
            process.wait(30)
        cluster.stop()


def _oracle(service: Service, rule: str, applications: list[Application]) -> list[tuple[bool, dict[str, bool]]]:
    return evaluate_plain(load_rules(RULES).get(rule), applications, plain_values(service.tables), {})


def _body(app: Application) -> dict[str, Any]:
    return {"reference": app.reference, "applicant": app.applicant, "members": list(app.members)}


def test_one_application_matches_the_plaintext_rule(service: Service) -> None:
    """POST /v1/check, one household at a time, against both owners: the bit and the clause bits
    tax discloses are the plaintext rule's, the reason says that housing's were not disclosed;
    members may come in any order, declared values pass."""
    applications = household_applications(service.tables, 6)
    expected = _oracle(service, "rental", applications)
    with service.client() as http:
        for k, (app, (eligible, bits)) in enumerate(zip(applications, expected, strict=True)):
            members = list(reversed(app.members))  # the applicant anywhere in the household
            reply = http.post(
                "/v1/check",
                json={
                    "rule": "rental",
                    "case": f"CHECK-{k}",
                    "applicant": app.applicant,
                    "members": members,
                    "declared": {"household_income": "12000"},
                    "member_declared": [{"income": str(100 * i)} for i in range(len(members))],
                },
            )
            assert reply.status_code == 200, reply.text
            out = reply.json()
            assert out["reference"] == f"CHECK-{k}" and out["rule"] == "rental"
            assert out["result"] == ("eligible" if eligible else "not eligible")
            assert out["clauses"] == {"income_per_member": bits["income_per_member"]}  # tax's only
            if not eligible:
                reason = "failed: income_per_member; " if not bits["income_per_member"] else "failing "
                assert out["reason"].startswith(reason) and "not disclosed" in out["reason"]


def test_concurrent_checks_are_coalesced_into_batches(service: Service) -> None:
    """16 checks at once: each gets its own application's answer (the plaintext rule's), while the
    owners see batches (one per household size class and window), whose case reference the
    agency's log links to each call's own."""
    applications = household_applications(service.tables, 16)
    expected = _oracle(service, "rental", applications)

    def check(k: int) -> dict[str, Any]:
        with service.client() as http:
            body = {"rule": "rental", "case": f"MANY-{k}", **_body(applications[k])}
            reply = http.post("/v1/check", json=body)
            assert reply.status_code == 200, reply.text
            return dict(reply.json())

    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(check, range(16)))
    for reply, (eligible, bits) in zip(replies, expected, strict=True):
        assert reply["result"] == ("eligible" if eligible else "not eligible") and reply["clauses"] == {
            "income_per_member": bits["income_per_member"]
        }
    calls = [e for e in _entries(service) if e["action"] == "http:POST /v1/check" and e["case"].startswith("MANY-")]
    batches = {e["detail"].split()[3] for e in calls if e["detail"].startswith("checked in batch")}
    assert len(calls) == 16 and 1 <= len(batches) < 16
    sizes = [e["rows"] for e in _entries(service) if e["action"] == "request:eligibility" and e["case"] in batches]
    assert sum(sizes) == sum(1 for e in calls if e["detail"]) and max(sizes) > 1


def test_declared_values_are_checked_against_the_owners(service: Service) -> None:
    """A job of declarations (household income, per member or per application; property count):
    as declared, 30 % off, at the 10 % tolerance's edge; each row is the plaintext rule's, and an
    application that declares nothing is an error row naming the missing value."""
    values = plain_values(service.tables)
    income, properties = values[("tax", "income", "annual_income")], values[("housing", "properties", "property_count")]
    applications = []
    for k, app in enumerate(household_applications(service.tables, 24)):
        true_income = sum(income.get(m, 0) for m in app.members)
        declared_income = [true_income, true_income * 13 // 10, true_income * 11 // 10][k % 3]
        per_member = k % 2 == 1  # per member: the first carries the whole figure, the others 0
        member_declared = tuple(
            {"household_income": str(declared_income if i == 0 else 0)} for i in range(len(app.members))
        )
        declared = {"property_count": str(sum(properties.get(m, 0) for m in app.members) + (k % 5 == 4))}
        if not per_member:
            declared["household_income"] = str(declared_income)
        applications.append(
            Application(app.reference, app.applicant, app.members, declared, member_declared if per_member else ())
        )
    expected = _oracle(service, "declaration-audit", applications)
    body = [
        {**_body(a), "declared": dict(a.declared), "member_declared": [dict(m) for m in a.member_declared]}
        for a in applications
    ]
    body.append({**_body(applications[0]), "reference": "NOTHING-DECLARED"})
    with service.client() as http:
        job = http.post("/v1/jobs", json={"rule": "declaration-audit", "case": "DECL-1", "applications": body}).json()
        wait_for(lambda: http.get(f"/v1/jobs/{job['id']}").json()["status"] == "done", "the job", 300)
        rows = http.get(f"/v1/jobs/{job['id']}/results").json()
        single = http.post(
            "/v1/check", json={"rule": "declaration-audit", "case": "DECL-2", "applicant": applications[0].applicant}
        )
    assert [r["result"] for r in rows[:-1]] == ["eligible" if e else "not eligible" for e, _ in expected]
    assert {r["result"] for r in rows[:-1]} == {"eligible", "not eligible"}
    assert rows[-1]["result"] == "error" and "declared 'household_income' is missing" in rows[-1]["reason"]
    assert single.status_code == 422 and single.json()["detail"]["field"] == "declared"


def test_a_job_has_a_row_per_application_as_json_and_csv(service: Service) -> None:
    """POST /v1/jobs: valid applications are checked in chunks (of one case reference each: two
    carry their own), the malformed ones are error rows naming the field; progress until done;
    the same rows as JSON and CSV, in the order sent."""
    applications = household_applications(service.tables, 40)
    expected = _oracle(service, "rental", applications)
    body = [_body(a) for a in applications]
    body.insert(5, {"reference": "BAD-ID", "applicant": "12345", "members": []})
    body.insert(9, {"reference": "TWICE", "applicant": applications[0].applicant,
                    "members": [applications[0].applicant, applications[0].applicant]})  # fmt: skip
    body.append({**body[0]})  # the same reference again
    for item in body[1:3]:
        item["case"] = "OWN-CASE-1"  # its own case reference, in every owner's audit entry
    with service.client() as http:
        reply = http.post("/v1/jobs", json={"rule": "rental", "case": "JOB-1", "applications": body})
        assert reply.status_code == 202, reply.text
        job = reply.json()
        assert job["applications"] == len(body) and job["status"] in ("queued", "running", "done")

        def done() -> bool:
            state = http.get(f"/v1/jobs/{job['id']}").json()
            return bool(state["status"] == "done")

        wait_for(done, "the job", 300)
        state = http.get(f"/v1/jobs/{job['id']}").json()
        assert state["done"] == len(body) and state["errors"] == 3
        rows = http.get(f"/v1/jobs/{job['id']}/results").json()
        text = http.get(f"/v1/jobs/{job['id']}/results", params={"format": "csv"}).text
    assert [r["reference"] for r in rows] == [b["reference"] for b in body]
    by_reference = {r["reference"]: r for r in rows[:-1]}
    assert rows[-1]["result"] == "error" and "repeats applications.0" in rows[-1]["reason"]
    assert by_reference["BAD-ID"]["result"] == "error" and "applicant: invalid id" in by_reference["BAD-ID"]["reason"]
    assert "the same person as members.0" in by_reference["TWICE"]["reason"]
    for app, (eligible, _) in zip(applications, expected, strict=True):
        assert by_reference[app.reference]["result"] == ("eligible" if eligible else "not eligible")
    own = [e for e in _entries(service) if e["action"] == "request:eligibility" and e["case"] == "OWN-CASE-1"]
    assert [e["rows"] for e in own] == [2]
    tax_log = (service.cluster.root / "state" / "tax" / "audit.log").read_text()
    assert '"case":"OWN-CASE-1"' in tax_log
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert [(r["application_id"], r["result"], r["reason"]) for r in parsed] == [
        (r["reference"], r["result"], r["reason"]) for r in rows
    ]


def test_a_job_from_an_uploaded_csv_file(service: Service) -> None:
    """POST /v1/jobs/csv: the file in the one-row-per-application layout; a line with an invalid id
    and a broken line are error rows naming the line; the others are checked as the plaintext rule."""
    applications = household_applications(service.tables, 12)
    expected = _oracle(service, "rental", applications)
    lines = ["application_id,applicant,members"]
    lines += [f"{a.reference},{a.applicant},{';'.join(a.members)}" for a in applications]
    lines.insert(4, "BAD-ID,12345,12345")
    lines.insert(7, 'BROKEN,"unclosed')
    with service.client() as http:
        reply = http.post(
            "/v1/jobs/csv",
            params={"rule": "rental", "case": "CSV-1"},
            content="\n".join(lines).encode(),
            headers={"Content-Type": "text/csv"},
        )
        assert reply.status_code == 202, reply.text
        job = reply.json()
        assert job["applications"] == len(applications) + 2
        wait_for(lambda: http.get(f"/v1/jobs/{job['id']}").json()["status"] == "done", "the job", 300)
        rows = http.get(f"/v1/jobs/{job['id']}/results").json()
        refused = http.post("/v1/jobs/csv", params={"rule": "rental", "case": "CSV-2"}, content=b"id,name\n1,2\n")
    by_reference = {r["reference"]: r for r in rows}
    for app, (eligible, _) in zip(applications, expected, strict=True):
        assert by_reference[app.reference]["result"] == ("eligible" if eligible else "not eligible")
    errors = [r for r in rows if r["result"] == "error"]
    assert len(errors) == 2 and all(r["reason"].startswith("upload, line ") for r in errors), errors
    assert refused.status_code == 422 and "the header needs the columns" in refused.text
    with service.client() as http:  # a caller cannot make the service hold an unbounded upload
        huge = http.post("/v1/jobs/csv", params={"rule": "rental", "case": "CSV-3"}, content=b"x" * (64 * 2**20 + 1))
    assert huge.status_code == 413 and "at most" in huge.text


def test_rules_are_listed_with_their_owners_grants(service: Service) -> None:
    """GET /v1/rules: every rule of the file, its fingerprint, each owner's listing of the columns
    it compares; the last outcome of a check (an owner's refusal of an unapproved rule)."""
    rules = load_rules(RULES)
    with service.client() as http:
        refused = http.post("/v1/check", json={"rule": "not-approved", "case": "LIST-1", "applicant": _first(service)})
        listing = {r["name"]: r for r in http.get("/v1/rules").json()}
    assert refused.status_code == 403, refused.text
    assert refused.json()["detail"]["owner"] == "tax" and "not approved" in refused.json()["detail"]["reason"]
    assert set(listing) == set(rules.rules)
    assert listing["rental"]["fingerprint"] == rules.get("rental").fingerprint()
    assert [(o["owner"], o["columns_granted"]) for o in listing["rental"]["owners"]] == [
        ("housing", True),
        ("tax", True),
    ]
    assert "refused by tax: PERMISSION_DENIED" in listing["not-approved"]["last_check"]


def test_callers_are_authenticated(service: Service, tmp_path: Path) -> None:
    """No client certificate: 401; a certificate of the CA whose name the service does not list:
    403; a certificate of another CA, or plain HTTP: no connection at all."""
    with service.client(None) as http:
        reply = http.get("/v1/rules")
        assert reply.status_code == 401 and "client certificate" in reply.json()["detail"]["reason"]
        assert http.get("/openapi.json").json()["paths"].keys() >= {"/v1/check", "/v1/jobs", "/v1/rules"}
    with service.client("other-system") as http:
        reply = http.post("/v1/check", json={"rule": "rental", "case": "X-1", "applicant": _first(service)})
        assert reply.status_code == 403 and "'other-system' is not one of" in reply.json()["detail"]["reason"]
    foreign = Pki.init(tmp_path / "foreign")
    foreign.issue("case-system", roles=("client",))
    context = ssl.create_default_context(cafile=str(service.pki / "ca.pem"))
    context.load_cert_chain(foreign.cert_path("case-system"), foreign.key_path("case-system"))
    with httpx.Client(base_url=service.url, verify=context, timeout=30) as http, pytest.raises(httpx.HTTPError):
        http.get("/v1/rules")
    with pytest.raises(httpx.HTTPError):
        httpx.get(service.url.replace("https", "http") + "/v1/rules", timeout=10)


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"rule": "no-such-rule", "case": "M-1"}, 422, "unknown rule 'no-such-rule'"),
        ({"rule": "rental", "case": "M-2", "applicant": "not-an-id"}, 422, "invalid id"),
        ({"rule": "rental", "case": "M-3", "members": ["{other}"]}, 422, "the applicant must be one of them"),
        ({"rule": "rental", "case": "M-4", "members": ["{me}", "{me}"]}, 422, "list each member once"),
        ({"rule": "rental", "case": "M-5", "members": "{eleven}"}, 422, "11 members: the owners accept at most 10"),
        ({"rule": "rental", "case": "M-6", "member_declared": [{}, {}]}, 422, "2 entries for 1 members"),
        ({"rule": "rental", "case": "M-7", "colour": "red"}, 422, "Extra inputs are not permitted"),
        ({"rule": "rental"}, 422, "Field required"),
        ({"rule": "rental", "case": "M-8", "purpose": "Bad Purpose"}, 422, "String should match pattern"),
    ],
)
def test_malformed_requests_are_refused_precisely(
    service: Service, body: dict[str, Any], status: int, fragment: str
) -> None:
    """Each bad request gets a 4xx naming what is wrong, and the service keeps serving."""
    people = [a.applicant for a in household_applications(service.tables, 12)]
    values = {"{me}": people[0], "{other}": people[1]}
    members = people[:11] if body.get("members") == "{eleven}" else [values.get(m, m) for m in body.get("members", [])]
    request = {"applicant": people[0], **body, **({"members": members} if "members" in body else {})}
    with service.client() as http:
        reply = http.post("/v1/check", json=request)
        assert reply.status_code == status, reply.text
        assert fragment in reply.text
        assert http.get("/v1/rules").status_code == 200


def test_jobs_refuse_what_they_cannot_hold(service: Service) -> None:
    with service.client() as http:
        assert http.get("/v1/jobs/no-such-job").status_code == 404
        assert http.post("/v1/jobs", json={"rule": "rental", "case": "J-1", "applications": []}).status_code == 422
        reply = http.post("/v1/jobs", json={"rule": "rental", "case": "J-2", "applications": [{"applicant": "x"}]})
        assert reply.status_code == 422 and "reference" in reply.text
    with service.client("other-system") as http:
        assert http.get("/v1/jobs/no-such-job").status_code == 403


def test_every_call_is_in_the_signed_audit_log(service: Service) -> None:
    """Each HTTP call is an entry naming the caller (or the refusal), the route, purpose and case;
    each check also the client's own entry; the chain verifies with the agency's key."""
    with service.client() as http:
        assert http.post("/v1/check", json={"rule": "income-below-100k", "case": "AUDIT-1",
                                            "applicant": _first(service)}).status_code == 200  # fmt: skip
        assert http.post("/v1/check", json={"rule": "rental", "case": "AUDIT-2"}).status_code == 422
    with service.client(None) as http:
        assert http.get("/v1/rules").status_code == 401
    wait_for(lambda: any(e["outcome"] == "HTTP 401" for e in _entries(service)), "the refusal's audit entry")
    found = _entries(service)
    checked = [e for e in found if e["action"] == "http:POST /v1/check" and e["case"] == "AUDIT-1"]
    assert len(checked) == 1 and checked[0]["peer"] == "case-system" and checked[0]["outcome"] == "OK"
    assert checked[0]["purpose"] == PURPOSE and checked[0]["rows"] == 1
    assert any(e["action"] == "request:eligibility" and e["case"] == "AUDIT-1" for e in found)
    refused = [e for e in found if e["outcome"] == "HTTP 401"]
    assert refused and refused[-1]["peer"] == "-" and "client certificate" in refused[-1]["detail"]
    assert any(e["peer"] == "other-system" and e["outcome"] == "HTTP 403" for e in found)
    malformed = [e for e in found if e["outcome"] == "HTTP 422" and e["peer"] == "case-system"]
    assert any(e["detail"] == "malformed request: body.applicant: Field required" for e in malformed)
    key = load_or_create_signing_key(service.state / "audit-signing.pem")
    report = verify_log(service.state / "requests.log", key.public_key())
    assert report.ok, report.problems


def _entries(service: Service) -> list[dict[str, Any]]:
    log = service.state / "requests.log"
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _first(service: Service) -> str:
    return household_applications(service.tables, 1)[0].applicant


def test_the_service_refuses_to_start_without_a_certificate_that_serves(service: Service, tmp_path: Path) -> None:
    """A requester-only certificate (clientAuth) would fail every caller's handshake: the service
    says so and exits 2; so does a [service] key it does not know."""
    Pki(service.pki).issue("calling-only", roles=("client",))
    agency = tomli_w.dumps(
        {
            "party": {"name": "calling-only", "state_dir": str(tmp_path / "state")},
            "tls": {
                "ca": str(service.pki / "ca.pem"),
                "cert": str(service.pki / "issued" / "calling-only.pem"),
                "key": str(service.pki / "issued" / "calling-only.key"),
                "crl": str(service.pki / "crl.pem"),
            },
        }
    )
    (tmp_path / "agency.toml").write_text(agency)
    (tmp_path / "rules.toml").write_text(RULES)
    for extra, message in (({}, "for calling only (no serverAuth)"), ({"colour": "red"}, "service.colour")):
        settings = {"agency": "agency.toml", "callers": ["case-system"], "rules": "rules.toml", **extra}
        (tmp_path / "service.toml").write_bytes(tomli_w.dumps({"service": settings}).encode())
        done = subprocess.run(
            [sys.executable, "-m", "parties.cli.requester", "serve", "--config", str(tmp_path / "service.toml")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"https": False, "listen": "0.0.0.0:8443"}, "service: Value error, https = false serves applicants' ids"),
        ({"callers": []}, "service.callers: List should have at least 1 item"),
        ({"callers": ["Case System"]}, "caller names are certificate names"),
        ({"default_purpose": "Housing!"}, "service.default_purpose: String should match pattern"),
        ({"rules": "missing.toml"}, "service.rules: no rules file at"),
        ({"workers": 4}, "service.workers: Extra inputs are not permitted"),
    ],
)
def test_a_configuration_error_names_the_key(tmp_path: Path, settings: dict[str, Any], message: str) -> None:
    from parties.config import ConfigError
    from parties.requester.service.config import load_service_config

    (tmp_path / "rules.toml").write_text(RULES)
    path = tmp_path / "service.toml"
    base = {"agency": "agency.toml", "callers": ["case-system"], "rules": "rules.toml"}
    path.write_bytes(tomli_w.dumps({"service": {**base, **settings}}).encode())
    with pytest.raises(ConfigError) as error:
        load_service_config(path)
    assert message in str(error.value) and str(path) in str(error.value)
