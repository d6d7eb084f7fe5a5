"""A deployment with the researcher sandbox: the four agencies on synthetic data (housing with
nobody in one of its declared districts), the coordinator and the gateway (HTTP on an ephemeral
loopback port), a researcher in a project."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from demo.cluster import GATEWAY, LocalCluster
from demo.deployment import party_specs
from demo.synthetic import AgencyTables, generate
from parties.gateway.store import Store

PROJECT = "welfare-2026"
SCOPE = {
    "civil-affairs.households": ["district", "disabled", "household_size"],
    "tax.income": ["annual_income", "tax_year"],
    "housing.properties": ["property_count", "district"],
}
ABSENT_DISTRICT = "Yanqing"  # declared in housing.properties.district, but no row of housing's has it


@dataclass
class Sandbox:
    cluster: LocalCluster
    tables: AgencyTables
    url: str
    token: str
    store: Store


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    root = tmp_path_factory.mktemp("sandbox")
    tables = generate(4000, seed=11)
    # housing holds nobody in one declared district: its catalogue must still list it (the
    # domain is declared in the owner's schema, never read from the data)
    tables = dataclasses.replace(tables, housing=[r for r in tables.housing if r["district"] != ABSENT_DISTRICT])
    cluster = LocalCluster(
        root,
        party_specs(tables, root / "data"),
        paillier_bits=1024,
        gateway=True,
        # plain HTTP, explicitly and on loopback (the portal's browser and schemathesis need no CA);
        # test_the_api_over_https runs the default
        gateway_settings={"max_epsilon_per_query": 2.0, "default_epsilon": 1.0, "https": False},
    )
    cluster.start()
    try:
        store = Store(str(cluster.members[GATEWAY].state_dir / "gateway.sqlite"))
        token = store.add_researcher("ada", 50.0)
        store.add_project(PROJECT, "statistics", 40.0, SCOPE)
        store.add_member("ada", PROJECT)
        yield Sandbox(cluster, tables, cluster.gateway_url, token, store)
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def api_schema(sandbox: Sandbox) -> Any:
    import schemathesis

    return schemathesis.openapi.from_url(f"{sandbox.url}/openapi.json")
