"""A small deployment of real daemons (separate processes, mutual TLS, ephemeral loopback ports)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from demo.cluster import LocalCluster, PartySpec
from demo.synthetic import DISTRICTS, AgencyTables, generate, write_csv
from mpc.crypto.paillier import PaillierPublicKey
from mpc.protocols.rules import load_rules
from parties.requester import Client
from parties.requester import lookup as lookup_driver
from protos import party_pb2

REQUESTER_POLICY = {
    "purposes": ["statistics", "selftest", "public-rental-housing"],
    "datasets": {
        "income": {
            "psi": True,
            "psi_intersection": True,
            "batch": True,
            "columns": {"annual_income": ["lookup", "compare"]},
        }
    },
    "programs": ["selftest-compare", "rule"],
}
# housing may also aggregate over a join with tax's income: filter and sum incomes, group by tax year
AGGREGATING_POLICY = {
    **REQUESTER_POLICY,
    "programs": [*REQUESTER_POLICY["programs"], "aggregate"],
    "datasets": {
        "income": {
            "psi": True,
            "psi_intersection": True,
            "batch": True,
            "columns": {"annual_income": ["lookup", "compare", "filter", "aggregate"], "tax_year": ["group_by"]},
        },
        "payments": {
            "psi": True,
            "psi_intersection": True,
            "batch": True,
            "columns": {"amount": ["filter", "aggregate"]},
        },
    },
}
# what housing's own policy lets tax see of its properties and claims (when housing starts an aggregate)
HOUSING_OWN_POLICY = {
    "peers": {
        "tax": {
            "purposes": ["statistics"],
            "datasets": {
                "properties": {
                    "psi": True,
                    "batch": False,
                    "columns": {"district": ["group_by"], "property_count": ["filter", "aggregate"]},
                },
                "claims": {"psi": True, "batch": False, "columns": {"kind": ["group_by"]}},
            },
        }
    }
}


ONE_OWNER_RULES = """
[rules.household-income]
expression = "per_member AND NOT (rich_applicant OR nobody_known)"
[rules.household-income.clauses.per_member]
owner = "tax"
dataset = "income"
column = "annual_income"
scope = "household-sum"
compare = "<"
value = 40000
per_member = true
absent = "zero"
[rules.household-income.clauses.rich_applicant]
owner = "tax"
dataset = "income"
column = "annual_income"
compare = ">="
value = 150000
absent = "zero"
[rules.household-income.clauses.nobody_known]
owner = "tax"
dataset = "income"
column = "annual_income"
scope = "household-sum"
compare = "=="
value = 0
absent = "false"
"""


def income_dataset(path: Path, tax_year: bool = True) -> dict[str, Any]:
    """tax's income table as a daemon declares it (annual income sensitive, ±10^12; tax year)."""
    columns: dict[str, Any] = {
        "annual_income": {"type": "int", "min": -(10**12), "max": 10**12, "classification": "sensitive"}
    }
    if tax_year:
        columns["tax_year"] = {"type": "int", "min": 1990, "max": 2100}
    return {
        "name": "income",
        "source": {"kind": "csv", "path": str(path)},
        "schema": {"id_column": "resident_id", "columns": columns},
    }


def eligibility_cli(
    cluster: LocalCluster, requester: str, rules_file: Path, applicants: Path, out: Path, case: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    """``mpc-query eligibility`` with the rule household-income for public-rental-housing."""
    return subprocess.run(
        [sys.executable, "-m", "parties.cli.query", "eligibility", "--rule", "household-income",
         "--rules", str(rules_file), "--applicants", str(applicants), "--out", str(out),
         "--config", str(cluster.config(requester)), "--purpose", "public-rental-housing", "--case", case, *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip


def duplicated_tables(root: Path, tables: AgencyTables) -> dict[str, Path]:
    """Two small tables with repeated and invalid ids: tax's payments (duplicates: first wins)
    and housing's claims (duplicates: reject, every row of a repeated id is excluded)."""
    people = [str(r["resident_id"]) for r in tables.tax[:400]]
    payments = [(p, 100 + k) for k, p in enumerate(people[:300])] + [(p, 1) for p in people[:40]] + [("12345", 7)]
    claims = [(p, ("rent", "repair")[k % 2]) for k, p in enumerate(people[100:400])] + [
        (p, "rent") for p in people[150:170]
    ]
    paths = {"payments": root / "payments.csv", "claims": root / "claims.csv"}
    for name, rows, column in (("payments", payments, "amount"), ("claims", claims, "kind")):
        paths[name].write_text("resident_id," + column + "\n" + "".join(f"{i},{v}\n" for i, v in rows))
    return paths


@pytest.fixture(scope="session")
def tables() -> AgencyTables:
    return generate(3000, seed=7)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory, tables: AgencyTables) -> Iterator[LocalCluster]:
    root = tmp_path_factory.mktemp("deployment")
    paths = write_csv(tables, root / "data")
    duplicated = duplicated_tables(root, tables)
    payments = {
        "name": "payments",
        "source": {"kind": "csv", "path": str(duplicated["payments"])},
        "schema": {
            "id_column": "resident_id",
            "duplicates": "first_wins",
            "columns": {"amount": {"type": "int", "min": 0, "max": 10**6}},
        },
    }
    claims = {
        "name": "claims",
        "source": {"kind": "csv", "path": str(duplicated["claims"])},
        "schema": {
            "id_column": "resident_id",
            "duplicates": "reject",
            "columns": {"kind": {"type": "category", "categories": ["rent", "repair"]}},
        },
    }
    income = income_dataset(paths["tax"])
    tax_policy = {
        "peers": {
            "housing": AGGREGATING_POLICY,
            # the RPC fuzzer (test_fuzz.py): every grant housing has, its own rate and budgets
            "fuzzer": {**AGGREGATING_POLICY, "rate_limit_per_minute": 1_000_000},
            "revoked-agency": REQUESTER_POLICY,
            "limited": {**REQUESTER_POLICY, "rate_limit_per_minute": 3},
            # tax releases aggregates to "noised" only with DP noise: ε 1 per query, 2.5 in all
            "noised": {**AGGREGATING_POLICY, "release_epsilon": 1.0, "release_epsilon_budget": 2.5},
            "no-batch": {
                **REQUESTER_POLICY,
                "datasets": {
                    "income": {"psi": True, "batch": False, "columns": {"annual_income": ["lookup", "compare"]}}
                },
            },
        }
    }
    # spare's one table: enough to see that its table key survives a restart
    spare_policy = {
        "peers": {
            "housing": {
                "purposes": ["selftest"],
                "programs": ["selftest-compare"],
                "datasets": {"payments": {"psi": True, "batch": False, "columns": {"amount": ["lookup"]}}},
            }
        }
    }
    properties = {
        "name": "properties",
        "source": {"kind": "csv", "path": str(paths["housing"])},
        "schema": {
            "id_column": "resident_id",
            "columns": {
                "property_count": {"type": "int", "min": 0, "max": 1000},
                "district": {"type": "category", "categories": list(DISTRICTS)},
            },
        },
    }
    parties = [
        PartySpec(
            "tax", [income, payments], tax_policy, extra={"max_points_per_request": 50_000, "anonymity_set": 256}
        ),
        PartySpec(
            "spare", [payments], spare_policy, extra={"shutdown_grace_seconds": 120.0}
        ),  # in-flight work may finish on a loaded machine
        PartySpec("housing", [properties, claims], HOUSING_OWN_POLICY, daemon=False),
        *(
            PartySpec(name, daemon=False)
            for name in ("limited", "no-batch", "stranger", "revoked-agency", "noised", "fuzzer")
        ),
    ]
    deployment = LocalCluster(root, parties, paillier_bits=1024)
    deployment.start()
    household_income = load_rules(ONE_OWNER_RULES).get("household-income")
    for requester in ("housing", "no-batch", "limited"):  # tax approves it, thresholds included
        deployment.approve_rule(household_income, requester, ["public-rental-housing", "statistics", "selftest"])
    try:
        yield deployment
    finally:
        deployment.stop()


def client_for(cluster: LocalCluster, name: str, purpose: str = "statistics", case: str = "TEST-1") -> Client:
    return Client.from_config(cluster.config(name), purpose=purpose, case=case)


def table_key(client: Client, party: str, dataset: str, columns: list[str]) -> PaillierPublicKey:
    """The public key of an owner's encrypted table, as the first message of its bucket 0 carries it."""
    epoch = next(d.epoch for d in client.list_datasets(party).datasets if d.name == dataset)
    request = party_pb2.BucketRequest(dataset=dataset, columns=columns, bucket=0, epoch=epoch)
    first = next(iter(client.party_stub(party).GetEncryptedBucket(request, metadata=client.metadata(), timeout=120)))
    return lookup_driver.table_key(first.paillier_public_key)


def audit_entries(cluster: LocalCluster, party: str) -> list[dict[str, object]]:
    import json

    path = Path(cluster.root / "state" / party / "audit.log")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def owner_values(rows: list[dict[str, object]], column: str) -> dict[str, int]:
    """An owner's column by normalised id, as its daemon loads it (invalid ids dropped)."""
    from mpc.data.ids import normalize_column

    ids, _ = normalize_column([str(r["resident_id"]) for r in rows], "resident_id")
    return {i: int(str(r[column])) for i, r in zip(ids, rows, strict=True) if i}


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``condition`` until it holds (no fixed sleeps: a test waits for the event itself)."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


def witnessed(cluster: LocalCluster, party: str) -> int:
    """How many audit heads of ``party`` the coordinator has witnessed."""
    return sum(
        1
        for e in audit_entries(cluster, "coordinator")
        if e.get("action") == "rpc:WitnessAuditHead" and e.get("peer") == party and e.get("outcome") == "OK"
    )
