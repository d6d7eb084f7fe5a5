"""A three-owner rule between real daemons: shares forwarded to the co-party, result = plaintext."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from demo.cluster import LocalCluster
from demo.deployment import AGENCIES, PURPOSES, party_specs
from demo.synthetic import AgencyTables, generate
from mpc.protocols.rules import Application, evaluate_plain, load_rules
from parties.requester import Client, eligibility
from tests.e2e.conftest import audit_entries, owner_values
from tests.protocols.test_rules import EXAMPLES


@pytest.fixture(scope="module")
def agencies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCluster, AgencyTables]]:
    tables = generate(1500, seed=21)
    root = tmp_path_factory.mktemp("agencies")
    cluster = LocalCluster(root, party_specs(tables, root / "data", extra={"anonymity_set": 128}), paillier_bits=1024)
    cluster.start()
    for rule in load_rules(EXAMPLES).rules.values():  # every owner a rule reads approves it for every agency
        for requester in AGENCIES:
            cluster.approve_rule(rule, requester, PURPOSES)
    try:
        yield cluster, tables
    finally:
        cluster.stop()


@pytest.mark.parametrize("rule_name", ["public-rental-housing", "minimum-living-allowance"])
def test_multi_owner_rule_matches_plaintext(agencies: tuple[LocalCluster, AgencyTables], rule_name: str) -> None:
    cluster, tables = agencies
    rule = load_rules(EXAMPLES).get(rule_name)
    households: dict[str, list[dict[str, object]]] = {}
    for row in tables.civil_affairs:
        households.setdefault(str(row["household_id"]), []).append(row)
    applications = []
    for ref, members in sorted(households.items())[:60]:
        ordered = sorted(members, key=lambda r: r["relation"] != "head")
        applications.append(
            Application(ref, str(ordered[0]["resident_id"]), tuple(str(m["resident_id"]) for m in ordered))
        )
    values = {
        ("tax", "income", "annual_income"): owner_values(tables.tax, "annual_income"),
        ("housing", "properties", "property_count"): owner_values(tables.housing, "property_count"),
        ("public-security", "residents", "local_resident"): owner_values(tables.public_security, "local_resident"),
        ("civil-affairs", "households", "disabled"): owner_values(tables.civil_affairs, "disabled"),
    }
    expected = [int(e) for e, _ in evaluate_plain(rule, applications, values, {})]
    requester = "civil-affairs" if rule_name == "public-rental-housing" else "public-security"
    with Client.from_config(cluster.config(requester), purpose=rule_name, case=f"E2E-{rule_name}") as client:
        bits = client.check_eligibility(rule, applications)
    assert bits.tolist() == expected
    co_party = next(iter(rule.clauses.values())).owner
    received = [
        e
        for e in audit_entries(cluster, co_party)
        if e["action"] == "rpc:ReceiveShares" and e.get("case") == f"E2E-{rule_name}"
    ]
    assert len(received) == len({c.owner for c in rule.clauses.values()} - {co_party})


def test_shares_are_never_forwarded_to_the_requester(agencies: tuple[LocalCluster, AgencyTables]) -> None:
    import grpc

    from parties.requester import RemoteError
    from protos import party_pb2

    cluster, tables = agencies
    person = str(tables.tax[0]["resident_id"])
    with Client.from_config(cluster.config("housing"), purpose="public-rental-housing", case="E2E-forward") as client:
        session_id = client.lookup_shares("tax", "income", ["annual_income"], [person]).session_id
        with pytest.raises(RemoteError) as refused:
            client.call(
                "tax",
                client.party_stub("tax").ForwardShares,
                party_pb2.ForwardRequest(session_id=session_id, co_party="housing"),
                timeout=30,
            )
    assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert "never forwarded to the requester" in refused.value.details


def test_published_predicate_through_the_oprf_filter(agencies: tuple[LocalCluster, AgencyTables]) -> None:
    """P2 + P4: local hukou from public-security's filter, income from tax on shares."""
    cluster, tables = agencies
    rule = load_rules(EXAMPLES).get("local-low-income")
    locals_ = {i for i, v in owner_values(tables.public_security, "local_resident").items() if v == 1}
    households: dict[str, list[dict[str, object]]] = {}
    for row in tables.civil_affairs:
        households.setdefault(str(row["household_id"]), []).append(row)
    applications = [
        Application(ref, str(m[0]["resident_id"]), tuple(str(x["resident_id"]) for x in m))
        for ref, m in sorted(households.items())[:50]
    ]
    expected = [
        int(e)
        for e, _ in evaluate_plain(
            rule,
            applications,
            {("tax", "income", "annual_income"): owner_values(tables.tax, "annual_income")},
            {("public-security", "local-resident"): locals_},
        )
    ]
    with Client.from_config(cluster.config("housing"), purpose="public-rental-housing", case="E2E-P2") as client:
        bits = client.check_eligibility(rule, applications)
        local_bits = client.predicate_bits("public-security", "local-resident", [a.applicant for a in applications])
    assert bits.tolist() == expected
    assert local_bits.tolist() == [int(a.applicant in locals_) for a in applications]
    filters = [e for e in audit_entries(cluster, "public-security") if e["action"] == "rpc:GetPredicateFilter"]
    assert filters and filters[-1]["rows"] == len(locals_)  # |E| is what the requester learns


def test_clause_reveal_needs_the_owners_consent(agencies: tuple[LocalCluster, AgencyTables]) -> None:
    """Reason codes: housing and public-security consent, tax does not (demo/deployment.py)."""
    import grpc

    from parties.requester import RemoteError

    cluster, tables = agencies
    rule = load_rules(EXAMPLES).get("public-rental-housing")
    households: dict[str, list[dict[str, object]]] = {}
    for row in tables.civil_affairs:
        households.setdefault(str(row["household_id"]), []).append(row)
    applications = [
        Application(ref, str(m[0]["resident_id"]), tuple(str(x["resident_id"]) for x in m))
        for ref, m in sorted(households.items())[:30]
    ]
    values = {
        ("tax", "income", "annual_income"): owner_values(tables.tax, "annual_income"),
        ("housing", "properties", "property_count"): owner_values(tables.housing, "property_count"),
        ("public-security", "residents", "local_resident"): owner_values(tables.public_security, "local_resident"),
    }
    plain = evaluate_plain(rule, applications, values, {})
    with Client.from_config(
        cluster.config("civil-affairs"), purpose="public-rental-housing", case="E2E-REASONS"
    ) as client:
        answer = client.eligibility(rule, applications)
        bits, reasons = answer.bits, answer.clauses
        assert bits.tolist() == [int(e) for e, _ in plain]
        assert set(reasons) == {"no_property", "local_resident"}  # not the tax clause
        for name, revealed in reasons.items():
            assert revealed.tolist() == [int(clauses[name]) for _, clauses in plain]
        with pytest.raises(RemoteError) as refused:  # asking anyway is refused by the co-party
            eligibility.check(client, rule, applications, ["income_per_member"])
    assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert "tax does not let civil-affairs see clause 'income_per_member'" in refused.value.details
