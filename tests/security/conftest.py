"""One small deployment of real daemons for the attack tests: two owners and curious requesters.

* ``tax`` (daemon): dataset ``income`` (annual_income sensitive: compare, lookup, filter,
  aggregate; tax_year: group_by) and the published predicate ``low-income`` (P2); its Prometheus
  endpoint on a free loopback port.
* ``housing`` (daemon): dataset ``properties`` (property_count, district with a declared value no
  row holds); ``tax`` may hand it shares as a rule's co-party (forward_shares).
* ``curious`` (no daemon): tight limits, batch granted, PSI intersection not; its own dataset
  ``mine`` (some of tax's residents, one flagged) for aggregates over a join.
* ``no-batch`` (no daemon): a grant that omits ``batch``; ``legacy`` (no daemon): a grant that
  still lists the removed ``threshold-check`` program.

Budgets are counted per peer and purpose, so each test uses its own purpose (:data:`PURPOSES`)
and case references.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from demo.cluster import LocalCluster, PartySpec
from demo.synthetic import DISTRICTS, AgencyTables, generate, write_csv
from mpc.data.ids import normalize_column
from mpc.protocols.rules import Rule, load_rules
from parties.requester import Client
from tests.e2e.conftest import income_dataset
from tests.rule_texts import one_clause_rule

# one purpose per attack, so that budgets (per peer and purpose) never interfere
PURPOSES = [
    "oracle",
    "thresholds",
    "not-approved-here",
    "binary-search",
    "household",
    "per-case",
    "small-cells",
    "forwarding",
    "fwd-no-rule",
    "fwd-unapproved-rule",
    "fwd-not-the-co-party",
    "fwd-to-the-requester",
    "fwd-other-columns",
    "share-offset",
    "secret-size",
    "differencing",
    "enumeration",
    "kept-buckets",
    "predicate-enum",
    "batch",
    "psi",
    "traversal",
    "catalogue",
    "statistics",
    "gateway-claim",
    "mixed-filter",
    "malformed",
]
APPROVED_PURPOSES = [p for p in PURPOSES if p != "not-approved-here"]
ABSENT_DISTRICT = "xiongan-new-area"  # declared in housing's schema, held by no row
MAX_HOUSEHOLD = 6
CURIOUS_LIMITS = {
    "oprf_per_epoch": 300,
    "bucket_alert_after": 3,
    "bucket_queries_per_window": 6,
    "computations_per_case": 4,
    "computations_per_day": 40,
    "batch_per_day": 3,
}
LADDER = [10_000, 20_000, 40_000, 60_000, 80_000, 120_000, 160_000, 320_000]  # approved income thresholds


def home_rule(name: str, value: int, reveal: bool = False) -> str:
    """A two-owner rule (housing's no property AND tax's income under ``value``), co-party housing;
    with ``reveal``, both clauses are flagged for reason codes."""
    flag = "reveal = true\n" if reveal else ""
    return f"""
[rules.{name}]
expression = "no_home AND low"
co_party = "housing"
[rules.{name}.clauses.no_home]
owner = "housing"
dataset = "properties"
column = "property_count"
compare = "=="
value = 0
absent = "zero"
{flag}[rules.{name}.clauses.low]
owner = "tax"
dataset = "income"
column = "annual_income"
compare = "<"
value = {value}
absent = "false"
{flag}"""


RULES = "".join(
    [
        *(one_clause_rule(f"income-under-{v}", v) for v in LADDER),
        """
[rules.household-income]
expression = "per_member"
[rules.household-income.clauses.per_member]
owner = "tax"
dataset = "income"
column = "annual_income"
scope = "household-sum"
compare = "<"
value = 40000
per_member = true
absent = "zero"
""",
        home_rule("home-and-income", 50_000),  # co-party housing: tax forwards its shares
        home_rule("home-and-income-b", 90_000),  # another approved rule over the same columns
        one_clause_rule("never-approved", 55_555),
    ]
)


def rule(name: str) -> Rule:
    return load_rules(RULES).get(name)


@dataclass
class Deployment:
    cluster: LocalCluster
    tables: AgencyTables
    incomes: dict[str, int]  # tax's annual_income by normalised id, as its daemon loads it
    properties: dict[str, int]  # housing's property_count by normalised id
    mine: list[str]  # curious's own ids (all held by tax); mine[0] is the only flagged one
    metrics_port: int

    def client(self, name: str, purpose: str, case: str) -> Client:
        return Client.from_config(self.cluster.config(name), purpose=purpose, case=case)

    def audit(self, party: str) -> list[dict[str, Any]]:
        path = self.cluster.root / "state" / party / "audit.log"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def entries(self, party: str, action: str, **fields: str) -> list[dict[str, Any]]:
        """The owner's audit entries for ``action`` (``rpc:Method``, ``alert:kind``) whose fields match."""
        return [e for e in self.audit(party) if e["action"] == action and all(e.get(k) == v for k, v in fields.items())]

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as reply:
            text: str = reply.read().decode()
        return text

    def alerts_counted(self, peer: str, kind: str) -> float:
        """``mpc_alerts_total{party="tax", peer, kind}`` as tax's Prometheus endpoint shows it (0 if absent)."""
        for line in self.metrics().splitlines():
            if line.startswith("mpc_alerts_total{") and f'peer="{peer}"' in line and f'kind="{kind}"' in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _values(rows: list[dict[str, object]], column: str) -> dict[str, int]:
    ids, _ = normalize_column([str(r["resident_id"]) for r in rows], "resident_id")
    return {i: int(str(r[column])) for i, r in zip(ids, rows, strict=True) if i}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    tables = generate(1500, seed=41)
    root = tmp_path_factory.mktemp("security")
    paths = write_csv(tables, root / "data")
    incomes, properties = _values(tables.tax, "annual_income"), _values(tables.housing, "property_count")
    mine = sorted(incomes)[:40]
    (root / "data" / "mine.csv").write_text(
        "resident_id,flag\n" + "".join(f"{i},{int(k == 0)}\n" for k, i in enumerate(mine))
    )

    income = income_dataset(paths["tax"])
    homes = {
        "name": "properties",
        "source": {"kind": "csv", "path": str(paths["housing"])},
        "schema": {
            "id_column": "resident_id",
            "columns": {
                "property_count": {"type": "int", "min": 0, "max": 1000},
                "district": {"type": "category", "categories": [*DISTRICTS, ABSENT_DISTRICT]},
            },
        },
    }
    own = {
        "name": "mine",
        "source": {"kind": "csv", "path": str(root / "data" / "mine.csv")},
        "schema": {"id_column": "resident_id", "columns": {"flag": {"type": "int", "min": 0, "max": 1}}},
    }
    tight = {"max_household": MAX_HOUSEHOLD, "limits": CURIOUS_LIMITS}
    tax_policy = {
        "peers": {
            "curious": {
                "purposes": PURPOSES,
                **tight,
                "datasets": {
                    "income": {
                        "psi": True,
                        "psi_intersection": False,
                        "batch": True,
                        "columns": {
                            "annual_income": ["lookup", "compare", "filter", "aggregate"],
                            "tax_year": ["group_by"],
                        },
                    }
                },
                "programs": ["rule", "aggregate"],
                "co_parties": ["housing"],
                "predicates": ["low-income"],
            },
            "no-batch": {
                "purposes": PURPOSES,
                **tight,
                "datasets": {
                    "income": {
                        "psi": True,
                        "batch": False,
                        "columns": {"annual_income": ["lookup", "compare"]},
                    }
                },
                "programs": ["rule"],
            },
            "legacy": {
                "purposes": PURPOSES,
                "datasets": {"income": {"psi": True, "batch": False, "columns": {"annual_income": ["lookup"]}}},
                "programs": ["threshold-check", "rule"],
            },
        }
    }
    housing_policy = {
        "peers": {
            "tax": {"purposes": PURPOSES, "forward_shares": True},
            "curious": {
                "purposes": PURPOSES,
                **tight,
                "datasets": {
                    "properties": {
                        "psi": True,
                        "batch": False,
                        "columns": {"property_count": ["lookup", "compare"], "district": ["group_by"]},
                    }
                },
                "programs": ["rule"],
            },
        }
    }
    curious_policy = {
        "peers": {
            "tax": {
                "purposes": PURPOSES,
                "datasets": {"mine": {"psi": True, "batch": False, "columns": {"flag": ["filter"]}}},
            }
        }
    }
    low_income = {
        "name": "low-income",
        "dataset": "income",
        "column": "annual_income",
        "compare": "<",
        "value": 20_000,
        "epoch_hours": 24,
    }
    port = _free_port()
    parties = [
        PartySpec(
            "tax",
            [income],
            tax_policy,
            predicates=[low_income],
            extra={"anonymity_set": 128, "metrics_listen": f"127.0.0.1:{port}"},
        ),
        PartySpec("housing", [homes], housing_policy, extra={"anonymity_set": 128}),
        PartySpec("curious", [own], curious_policy, daemon=False),
        PartySpec("no-batch", daemon=False),
        PartySpec("legacy", daemon=False),
    ]
    cluster = LocalCluster(root, parties, paillier_bits=1024)
    cluster.start()
    for name in [*(f"income-under-{v}" for v in LADDER), "household-income", "home-and-income", "home-and-income-b"]:
        for requester in ("curious", "no-batch"):
            cluster.approve_rule(rule(name), requester, APPROVED_PURPOSES)
    try:
        yield Deployment(cluster, tables, incomes, properties, mine, port)
    finally:
        cluster.stop()


def state_files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}
