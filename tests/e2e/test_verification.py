"""Verifying what applicants declare, against real daemons (issue 15): the issuing agency confirms a
cited certificate ("whoever issues, verifies"), a market entity's licence is checked by its credit
code and licence type (composite keys), and past declarations of household income and property
are re-checked against tax and housing (notification and commitment). Every answer is compared
with the plaintext rule; the declared values never reach an owner; a rule changed to probe with
declared values is refused."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from demo.cluster import LocalCluster, PartySpec
from demo.deployment import party_specs, plain_values
from demo.registers import (
    ISSUERS,
    Registers,
    certificate_applications,
    declaration_applications,
    generate_registers,
    issuer_specs,
    licence_applications,
    register_values,
)
from demo.synthetic import AgencyTables, generate
from mpc.protocols.rules import Application, Rule, evaluate_plain, load_rules
from parties.requester import Client, RemoteError

RULES = load_rules(Path(__file__).resolve().parents[2] / "rules" / "examples.toml")
REQUESTER = "civil-affairs"
JOBS = {  # rule -> purpose
    "certificate-valid": "certificate-verification",
    "business-licence": "licence-check",
    "declaration-audit": "declaration-audit",
}


@dataclass(frozen=True)
class Deployment:
    cluster: LocalCluster
    tables: AgencyTables
    registers: Registers


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("verification")
    tables = generate(2_000, seed=21)
    registers = generate_registers(tables, holders=120, entities=60)
    owners = [s for s in party_specs(tables, root / "data") if s.name in ("tax", "housing")]
    specs = [*owners, *issuer_specs(registers, root / "data"), PartySpec(REQUESTER, daemon=False)]
    with LocalCluster(root, specs, paillier_bits=1024) as cluster:
        for rule, purpose in JOBS.items():
            cluster.approve_rule(RULES.get(rule), REQUESTER, [purpose])
        yield Deployment(cluster, tables, registers)


def _check(deployment: Deployment, rule: Rule, applications: list[Application]) -> None:
    """Bits and the revealed clause bits equal the plaintext rule's."""
    values = {**plain_values(deployment.tables), **register_values(deployment.registers)}
    expected = evaluate_plain(rule, applications, values, {})
    with Client.from_config(deployment.cluster.config(REQUESTER), JOBS[rule.name], "VERIFY-1") as client:
        answer = client.eligibility(rule, applications)
    assert answer.bits.tolist() == [int(e) for e, _ in expected]
    assert set(answer.clauses)  # the owners consent to reason codes: at least one clause comes back
    for name, bits in answer.clauses.items():
        assert bits.tolist() == [int(clauses[name]) for _, clauses in expected], name
    outcomes = {int(e) for e, _ in expected}
    assert outcomes == {0, 1}, "the applications must include both outcomes to test anything"


def test_the_issuer_verifies_the_certificate_cited(deployment: Deployment) -> None:
    """Right number in any case and spacing, a number never issued, another holder's, expired,
    not yet valid, revoked, of another type: each as the plaintext rule says, with its clauses."""
    _check(deployment, RULES.get("certificate-valid"), certificate_applications(deployment.registers, 60))


def test_a_market_entity_licence_by_credit_code_and_type(deployment: Deployment) -> None:
    _check(deployment, RULES.get("business-licence"), licence_applications(deployment.registers, 40))


def test_declared_income_and_property_are_rechecked(deployment: Deployment) -> None:
    """Exact, within 10 % either side, outside it, understated property: as the plaintext rule."""
    _check(deployment, RULES.get("declaration-audit"), declaration_applications(deployment.tables, 60))


def test_the_owner_never_sees_what_was_declared(deployment: Deployment) -> None:
    """Certificate numbers cited but never issued reach no file of the issuer (its audit log, its
    daemon log, its state): the lookup is blinded and the comparison on shares."""
    cluster = deployment.cluster
    applications = certificate_applications(deployment.registers, 60)
    issued = {str(r["certificate_number"]) for r in deployment.registers.certificates}
    never_issued = {a.declared["certificate_number"].strip().upper() for a in applications} - issued
    assert never_issued
    seen = [cluster.root / "logs" / "human-resources.log"] + [
        p for p in (cluster.root / "state" / "human-resources").rglob("*") if p.is_file()
    ]
    for path in seen:
        text = path.read_bytes().upper()
        assert not [n for n in never_issued if n.encode() in text], path


def test_a_rule_changed_to_probe_with_declared_values_is_refused(deployment: Deployment) -> None:
    """The requester keeps the approved rule's name but compares valid_to with a declared date of
    its own choosing in another direction: the owner refuses it (the fingerprint differs)."""
    approved = RULES.get("certificate-valid")
    clauses = dict(approved.clauses)
    clauses["valid_to"] = clauses["valid_to"].model_copy(update={"compare": "<"})
    probing = approved.model_copy(update={"clauses": clauses})
    applications = certificate_applications(deployment.registers, 3)
    with (
        Client.from_config(deployment.cluster.config(REQUESTER), "certificate-verification", "VERIFY-2") as client,
        pytest.raises(RemoteError) as refused,
    ):
        client.eligibility(probing, applications)
    assert refused.value.party in ISSUERS and "approved" in refused.value.details


def test_an_application_missing_a_declared_value_is_named(deployment: Deployment) -> None:
    incomplete = Application("CERT-X", "110101198001010011", ("110101198001010011",), {"certificate_number": "A-1"})
    with (
        Client.from_config(deployment.cluster.config(REQUESTER), "certificate-verification", "VERIFY-3") as client,
        pytest.raises(
            ValueError, match="application CERT-X: clause valid_from: declared 'application_date' is missing"
        ),
    ):
        client.eligibility(RULES.get("certificate-valid"), [incomplete])


def test_probing_one_household_with_declared_values_is_bounded(deployment: Deployment) -> None:
    """The attacker's use of a declared-value rule: the same household asked again and again, each
    time with another declared income and a fresh case reference (a binary search on its income).
    Each answer is one bit; the owners count what is fetched for it (a bucket's fetches, or, where
    the planner takes the whole small table, the day's batch fetches), raise an alert and then
    refuse (RESOURCE_EXHAUSTED) within the budget the threat model states."""
    rule = RULES.get("declaration-audit")
    household = declaration_applications(deployment.tables, 1)[0]
    low, high, answers, refusal = 0, 2_000_000, 0, None
    with Client.from_config(deployment.cluster.config(REQUESTER), JOBS[rule.name], "PROBE-0") as client:
        for attempt in range(80):
            client.case = f"PROBE-{attempt}"
            guess = (low + high) // 2
            probe = Application(
                household.reference,
                household.applicant,
                household.members,
                {**household.declared, "household_income": str(guess)},
            )
            try:
                holds = bool(client.eligibility(rule, [probe], reasons=False).bits[0])
            except RemoteError as exc:
                refusal = exc
                break
            answers += 1
            low, high = (low, guess) if holds else (guess, high)
    assert refusal is not None and refusal.code.name == "RESOURCE_EXHAUSTED", (answers, refusal)
    limit = "bucket_queries_per_window" if "bucket_queries_per_window" in refusal.details else "batch_per_day"
    assert limit in refusal.details and answers <= {"bucket_queries_per_window": 20, "batch_per_day": 50}[limit]
    audit = (deployment.cluster.root / "state" / refusal.party / "audit.log").read_text()
    assert '"action":"alert:' in audit
