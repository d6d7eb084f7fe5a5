"""Private joins and aggregates between real daemons (P1 + P5 compute), against the plaintext join:
intersection-sum, secret-shared aggregates with filters and group keys on either side, results
revealed to either party, and requests refused before any cryptography runs."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from demo.cluster import LocalCluster
from demo.deployment import with_ids
from demo.synthetic import AgencyTables
from mpc.protocols.aggregate import (
    Aggregate,
    AggregateRequest,
    ColumnInfo,
    ColumnRef,
    evaluate_plain,
)
from parties.requester import RemoteError
from protos import party_pb2
from tests.e2e.conftest import audit_entries, client_for, owner_values


def _request(**change: Any) -> AggregateRequest:
    base: dict[str, Any] = {
        "initiator_dataset": "properties",
        "peer_dataset": "income",
        "where": "peer.annual_income > 20000 AND initiator.property_count = 0",
        "group_by": [ColumnRef.parse("initiator.district")],
        "aggregates": [
            Aggregate(kind="count"),
            Aggregate(kind="sum", column=ColumnRef.parse("peer.annual_income")),
            Aggregate(kind="mean", column=ColumnRef.parse("peer.annual_income")),
        ],
    }
    return AggregateRequest.model_validate({**base, **change})


def _plain(tables: AgencyTables, request: AggregateRequest) -> dict[tuple[Any, ...], dict[str, Any]]:
    mine: dict[str, dict[str, Any]] = {
        i: {"district": str(r["district"]), "property_count": int(str(r["property_count"]))}
        for i, r in with_ids(tables.housing)
    }
    theirs = {
        i: {"annual_income": int(str(r["annual_income"])), "tax_year": int(str(r["tax_year"]))}
        for i, r in with_ids(tables.tax)
    }
    schemas = {
        "initiator": {
            "district": ColumnInfo("category", labels=tuple(sorted({m["district"] for m in mine.values()}))),
            "property_count": ColumnInfo("int", 0, 1000),
        },
        "peer": {"annual_income": ColumnInfo("int", -(10**12), 10**12), "tax_year": ColumnInfo("int", 1990, 2100)},
    }
    return evaluate_plain(request, schemas, mine, theirs)  # type: ignore[arg-type]


def _by_group(rows: list[dict[str, Any]], request: AggregateRequest) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {tuple(r[str(k)] for k in request.group_by): r for r in rows}


def test_aggregate_over_a_join_matches_plaintext(cluster: LocalCluster, tables: AgencyTables) -> None:
    request = _request()
    with client_for(cluster, "housing", purpose="statistics", case="AGG-1") as client:
        result = client.aggregate("tax", request)
    common = {i for i, _ in with_ids(tables.housing)} & set(owner_values(tables.tax, "annual_income"))
    assert result is not None and result.rows == len(common)  # only the intersection is computed on
    got, expected = _by_group(result.table(request), request), _plain(tables, request)
    assert set(got) == set(expected) and sum(c["count"] for c in expected.values()) > 10
    assert any(got[g]["withheld"] for g in got) and not all(got[g]["withheld"] for g in got)
    for group, cells in expected.items():
        small = int(cells["count"] or 0) < request.min_cell  # withheld on shares: no figure of a small cell opens
        assert got[group]["withheld"] is small, group
        for aggregate in request.aggregates:
            want = None if small else pytest.approx(cells[aggregate.name])
            assert got[group][aggregate.name] == want, (group, aggregate.name)
    check = [e for e in audit_entries(cluster, "tax") if e.get("action") == "rpc:CheckAggregate"][-1]
    assert check["outcome"] == "OK" and "annual_income" in str(check["detail"])


def test_group_key_of_the_peer_and_cells_revealed_to_the_peer(cluster: LocalCluster, tables: AgencyTables) -> None:
    """GROUP BY the peer's tax year (a plain group-by key in its policy); the cells go to the
    peer, which keeps them in its state directory; we get nothing back."""
    request = _request(
        where="(peer.annual_income <= 0 OR peer.annual_income > 50000) AND NOT initiator.property_count = 0",
        group_by=[ColumnRef.parse("peer.tax_year")],
        reveal_to="peer",
        aggregates=[Aggregate(kind="count"), Aggregate(kind="sum", column=ColumnRef.parse("initiator.property_count"))],
    )
    with client_for(cluster, "housing", purpose="statistics", case="AGG-2") as client:
        assert client.aggregate("tax", request) is None
    stored = sorted((cluster.root / "state" / "tax" / "results").glob("aggregate-*.json"))
    cells = json.loads(stored[-1].read_text())["cells"]
    got, expected = _by_group(cells, request), _plain(tables, request)
    large = {g: c for g, c in expected.items() if c["count"] >= request.min_cell}
    assert large and {g: c["count"] for g, c in got.items() if not c["withheld"]} == {
        g: c["count"] for g, c in large.items()
    }
    assert all(got[g]["sum(initiator.property_count)"] == c["sum(initiator.property_count)"] for g, c in large.items())
    assert all(c["count"] is None for g, c in got.items() if g not in large)


@pytest.mark.parametrize(
    ("change", "party", "message"),
    [
        ({"where": "peer.tax_year > 2000"}, "tax", "may not use column income.tax_year for 'filter'"),
        ({"group_by": [ColumnRef.parse("peer.annual_income")]}, "(local)", "not a group key"),
        (
            {"aggregates": [Aggregate(kind="sum", column=ColumnRef.parse("peer.tax_year"))]},
            "tax",
            "may not use column income.tax_year for 'aggregate'",
        ),
        (
            {"where": "initiator.district = 'Haidian'"},
            "(local)",
            "our own policy: peer 'tax' may not use column properties.district for 'filter'",
        ),
    ],
)
def test_requests_breaking_a_constraint_are_refused_before_any_cryptography(
    cluster: LocalCluster, change: dict[str, Any], party: str, message: str
) -> None:
    before = len(audit_entries(cluster, "tax"))
    with (
        client_for(cluster, "housing", purpose="statistics", case="AGG-NO") as client,
        pytest.raises((RemoteError, ValueError)) as refused,
    ):
        client.aggregate("tax", _request(**change))
    assert message in str(refused.value)
    after = [e for e in audit_entries(cluster, "tax")[before:] if str(e.get("action", "")).startswith("rpc:")]
    assert {e["action"] for e in after} <= {"rpc:GetCapabilities", "rpc:ListDatasets", "rpc:CheckAggregate"}
    if party == "tax":
        assert isinstance(refused.value, RemoteError) and refused.value.code == grpc.StatusCode.PERMISSION_DENIED
        assert after[-1]["action"] == "rpc:CheckAggregate" and after[-1]["outcome"] == "PERMISSION_DENIED"


def test_intersection_sum_matches_plaintext(cluster: LocalCluster, tables: AgencyTables) -> None:
    incomes = owner_values(tables.tax, "annual_income")
    mine = [i for i, _ in with_ids(tables.housing)]
    with client_for(cluster, "housing", purpose="statistics", case="PJC-1") as client:
        result = client.intersection_sum("tax", "income", ["annual_income"], mine + mine[:10])
        common = [i for i in dict.fromkeys(mine) if i in incomes]
        assert (result.intersection, result.sums) == (len(common), {"annual_income": sum(incomes[i] for i in common)})
        # the owner's row count as its catalogue shows it: rounded up to its granularity (1000)
        assert result.requester_count == len(set(mine)) and result.owner_count == -(-len(incomes) // 1000) * 1000
        # under the minimum cell size (10 by default) nothing opens, not even the count
        empty = client.intersection_sum("tax", "income", ["annual_income"], ["11010519491231002X"])
        assert (empty.intersection, empty.sums) == (None, {"annual_income": None})
        one = client.intersection_sum("tax", "income", ["annual_income"], common[:1])
        assert (one.intersection, one.sums) == (None, {"annual_income": None})
        with pytest.raises(RemoteError) as refused:  # the sum of tax years is not granted
            client.intersection_sum("tax", "income", ["tax_year"], mine[:5])
        assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
    # the owner decrypted into its own shares only: nothing it decrypted came back to us
    decrypts = [
        e for e in audit_entries(cluster, "tax") if e.get("action") == "rpc:MaskedDecrypt" and e.get("case") == "PJC-1"
    ]
    assert decrypts and {e["protocol"] for e in decrypts} <= {"P1", "P3"}


def test_duplicate_ids_follow_each_tables_declared_policy(cluster: LocalCluster, tables: AgencyTables) -> None:
    """tax's payments keep the first row of a repeated id (first_wins), housing's claims drop
    every row of one (reject); an id invalid on one side never matches. Intersection-sum and an
    aggregate over the join agree with the plaintext under those rules."""
    from mpc.data.ids import normalize_column

    def loaded(path: Any, column: str, rule: str) -> dict[str, str]:
        rows = [line.split(",") for line in path.read_text().splitlines()[1:]]
        ids, _ = normalize_column([r[0] for r in rows], "resident_id")
        seen: dict[str, list[str]] = {}
        for i, r in zip(ids, rows, strict=True):
            if i is not None:
                seen.setdefault(i, []).append(r[1])
        return {i: v[0] for i, v in seen.items() if rule == "first_wins" or len(v) == 1}

    payments = {i: int(v) for i, v in loaded(cluster.root / "payments.csv", "amount", "first_wins").items()}
    claims = loaded(cluster.root / "claims.csv", "kind", "reject")
    with client_for(cluster, "housing", purpose="statistics", case="DUP-1") as client:
        result = client.intersection_sum("tax", "payments", ["amount"], [*claims, "12345"])
        common = [i for i in claims if i in payments]
        assert (result.intersection, result.sums["amount"]) == (len(common), sum(payments[i] for i in common))
        assert client.own_dataset("claims").report.duplicates  # reported, not silently dropped
        request = AggregateRequest(
            initiator_dataset="claims",
            peer_dataset="payments",
            where="peer.amount >= 100",
            group_by=(ColumnRef.parse("initiator.kind"),),
            aggregates=(Aggregate(kind="count"), Aggregate(kind="sum", column=ColumnRef.parse("peer.amount"))),
        )
        cells = client.aggregate("tax", request)
    assert cells is not None
    got = {row["initiator.kind"]: (row["count"], row["sum(peer.amount)"]) for row in cells.table(request)}
    for kind in ("rent", "repair"):
        matching = [payments[i] for i in common if claims[i] == kind and payments[i] >= 100]
        assert got[kind] == (len(matching), sum(matching))


def test_an_owner_that_requires_noise_gets_noised_cells_within_its_budget(
    cluster: LocalCluster, tables: AgencyTables
) -> None:
    """tax's policy releases cells to "noised" only with DP noise (ε 1 per query, 2.5 in all):
    the SDK asks for the owner's ε, the owner adds its own noise to its share before the
    minimum-cell test, exact cells are refused, and the third query is past the budget."""
    incomes = owner_values(tables.tax, "annual_income")
    mine = [i for i, _ in with_ids(tables.housing) if i in incomes][:400]
    exact = sum(incomes[i] for i in mine)
    with client_for(cluster, "noised", purpose="statistics", case="DP-1") as client:
        assert client.list_datasets("tax").release_epsilon == 1.0
        raw = AggregateRequest(initiator_dataset="ids", peer_dataset="income", aggregates=(Aggregate(kind="count"),))
        with pytest.raises(grpc.RpcError) as refused:  # exact cells, asked raw
            client.party_stub("tax").CheckAggregate(
                party_pb2.AggregateCheck(request=raw.model_dump_json().encode(), rows=5),
                metadata=(("x-purpose", "statistics"), ("x-case", "DP-1")),
                timeout=30,
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "only noised with epsilon <= 1" in (refused.value.details() or "")
        for _ in range(2):
            noised = client.intersection_sum("tax", "income", ["annual_income"], mine)
            assert noised.intersection is not None and abs(noised.intersection - len(mine)) < 60
            assert noised.sums["annual_income"] != exact  # the sum's noise scale is ~10^12: never exactly 0
        with pytest.raises(RemoteError) as spent:
            client.intersection_sum("tax", "income", ["annual_income"], mine)
        assert (
            spent.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "release_epsilon_budget" in spent.value.details
        )
    alerts = [
        e for e in audit_entries(cluster, "tax") if e.get("action") == "alert:budget" and e.get("peer") == "noised"
    ]
    assert alerts and "release_epsilon_budget" in str(alerts[-1]["detail"])
