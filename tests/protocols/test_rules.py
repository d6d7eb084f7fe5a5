"""The rule language: validation errors that point at the clause, and the plaintext oracle."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpc.protocols.rules import (
    Application,
    RuleError,
    evaluate_plain,
    load_rules,
    padded_slots,
    parse_expression,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "rules" / "examples.toml"

ONE = """
[rules.r]
expression = "a"
[rules.r.clauses.a]
owner = "tax"
dataset = "income"
column = "annual_income"
compare = "<"
value = 100
"""


def test_examples_load() -> None:
    rules = load_rules(EXAMPLES)
    assert set(rules.rules) == {
        "public-rental-housing",
        "minimum-living-allowance",
        "income-below-100k",
        "local-low-income",
        "certificate-valid",
        "declaration-audit",
        "business-licence",
    }
    assert rules.get("public-rental-housing").owners() == ["housing", "public-security", "tax"]
    with pytest.raises(RuleError, match="unknown rule 'nope'"):
        rules.get("nope")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('compare = "<"', 'compare = "<>"'), "rules.r.clauses.a.compare"),
        (("value = 100", "value = 100\nper_member = true"), "per_member compares a household sum"),
        (("value = 100", ""), "a comparison clause needs ['value (or declared)']"),
        (('expression = "a"', 'expression = "a AND b"'), "undefined clause(s) ['b']"),
        (('expression = "a"', 'expression = "a OR income > 3"'), "is not a clause name"),
        (('expression = "a"', 'expression = "a AND"'), "cannot parse expression"),
        (('owner = "tax"', 'owner = "tax"\ncolour = 1'), "rules.r.clauses.a.colour"),
        (("value = 100", "value = 4611686018427387904"), "outside [-2^62, 2^62)"),
        (("[rules.r.clauses.a]", "[rules.r.clauses.A]"), "clause names must match"),
        (("value = 100", 'declared = "income"\nvalue = 100'), "a value or a declared value, not both"),
        (('compare = "<"', 'compare = "within"'), "takes exactly one of tolerance or tolerance_percent"),
        (('compare = "<"', 'compare = "within"\ntolerance = 5'), "compare = 'within' compares with a declared value"),
        (("value = 100", 'declared = "x"\ntolerance_percent = 5'), "takes exactly one of tolerance"),
        (("value = 100", 'declared = "x"\ntolerance_percent = 150'), "rules.r.clauses.a.tolerance_percent"),
        (('compare = "<"', 'compare = "<"\nkind = "code"'), "a code is compared only with == or !="),
        (("value = 100", 'value = "2026-13-01"\nkind = "date"'), "not a date"),
        (("value = 100", 'declared = "in come"'), "rules.r.clauses.a.declared"),
        (("value = 100", 'value = 100\nkey_declared = "n"\nscope = "household-sum"'), "looked up for the applicant"),
    ],
)
def test_errors_point_at_the_clause(change: tuple[str, str], message: str) -> None:
    with pytest.raises(RuleError) as error:
        load_rules(ONE.replace(*change))
    assert message in str(error.value)


def test_predicate_clause_shape() -> None:
    text = '[rules.r]\nexpression = "p"\n[rules.r.clauses.p]\nowner = "public-security"\npredicate = "local-resident"\n'
    assert load_rules(text).get("r").clauses["p"].is_predicate
    with pytest.raises(RuleError, match="a predicate clause takes no"):
        load_rules(text + 'compare = "<"\n')


def test_expression_grammar() -> None:
    tree = parse_expression("a AND (b OR NOT c)")
    assert tree.sql() == "a AND (b OR NOT c)"


def _households(data: st.DataObject) -> list[Application]:
    apps = []
    for i in range(data.draw(st.integers(1, 8))):
        size = data.draw(st.integers(1, 6))
        members = tuple(f"p{i}-{j}" for j in range(size))
        apps.append(Application(f"A{i}", members[0], members))
    return apps


@given(data=st.data())
def test_public_rental_housing_oracle(data: st.DataObject) -> None:
    """The oracle against a direct reading of the rule, with absent members and exact thresholds."""
    rule = load_rules(EXAMPLES).get("public-rental-housing")
    apps = _households(data)
    income: dict[str, int] = {}
    props: dict[str, int] = {}
    local: dict[str, int] = {}
    for app in apps:
        for person in app.members:
            if data.draw(st.booleans()):
                income[person] = data.draw(st.one_of(st.just(30000), st.integers(-5000, 90000), st.just(0)))
            if data.draw(st.booleans()):
                props[person] = data.draw(st.integers(0, 2))
            if data.draw(st.booleans()):
                local[person] = data.draw(st.integers(0, 1))
    values = {
        ("tax", "income", "annual_income"): income,
        ("housing", "properties", "property_count"): props,
        ("public-security", "residents", "local_resident"): local,
    }
    results = evaluate_plain(rule, apps, values, {})
    for app, (eligible, bits) in zip(apps, results, strict=True):
        per_member = sum(income.get(p, 0) for p in app.members) < 30000 * len(app.members)
        no_property = sum(props.get(p, 0) for p in app.members) == 0
        is_local = local.get(app.applicant) == 1
        assert bits == {"income_per_member": per_member, "no_property": no_property, "local_resident": is_local}
        assert eligible == (per_member and no_property and is_local)


@given(data=st.data())
def test_rule_on_shares_matches_the_oracle(data: st.DataObject) -> None:
    """Every example rule, evaluated on shares (padding, absent members, thresholds) = oracle."""
    import numpy as np

    from mpc.crypto.prg import random_words
    from mpc.protocols.rules import (
        RequesterInputs,
        RuleShape,
        ShareTable,
        household_tables,
        rule_program,
        table_columns,
    )
    from mpc.sharing.ring import encode
    from mpc.sharing.runtime import run_in_process

    rules = load_rules(EXAMPLES)  # those with declared values: tests/protocols/test_programs.py
    plain_rules = [
        n for n, r in rules.rules.items() if not any(c.declared or c.key_declared for c in r.clauses.values())
    ]
    rule = rules.get(data.draw(st.sampled_from(sorted(plain_rules))))
    apps = _households(data)
    slots = max(len(a.members) for a in apps)
    layout = table_columns(rule)
    plain: dict[tuple[str, str, str], dict[str, int]] = {}
    requester_tables, owner_tables, presence = {}, {}, {}
    for (owner, dataset), columns in layout.items():
        rows = []
        per_app = slots if (owner, dataset) in household_tables(rule) else 1  # applicant-only tables: one row
        for app in apps:
            for k in range(per_app):
                person = app.members[k] if k < len(app.members) else None
                known = person is not None and data.draw(st.booleans())
                row = [1 if known or person is None else 0]  # presence; padding counts as present
                for column in columns:
                    value = 0
                    if known:
                        value = data.draw(
                            st.one_of(st.sampled_from([0, 1, 16740, 20000, 30000, 100000]), st.integers(-1000, 120000))
                        )
                        plain.setdefault((owner, dataset, column), {})[person] = value  # type: ignore[index]
                    row.append(value)
                rows.append(row)
        table = np.array(rows, dtype=np.int64).reshape(len(rows), len(columns) + 1)
        values = encode(table[:, 1:].reshape(-1)).reshape(len(rows), len(columns))
        mask = random_words(values.size).reshape(values.shape)
        requester_tables[(owner, dataset)] = ShareTable(tuple(columns), values - mask)
        owner_tables[(owner, dataset)] = ShareTable(tuple(columns), mask.copy())
        presence[(owner, dataset)] = table[:, 0]
    members = [len(a.members) for a in apps]
    predicate_bits = {
        name: [int(data.draw(st.booleans())) for _ in apps]
        for name, clause in rule.clauses.items()
        if clause.is_predicate
    }
    predicates = {
        (rule.clauses[name].owner, str(rule.clauses[name].predicate)): {
            a.applicant for a, bit in zip(apps, bits_, strict=True) if bit
        }
        for name, bits_ in predicate_bits.items()
    }
    shape = RuleShape(rule, len(apps), slots)
    inputs = RequesterInputs(members, predicate_bits, presence)
    outcome, nothing = run_in_process(
        lambda p: rule_program(
            p, shape, requester_tables if p.index == 0 else owner_tables, inputs if p.index == 0 else None
        )
    )
    bits = outcome.bits if outcome is not None else None
    assert nothing is None and bits is not None
    expected = [int(eligible) for eligible, _ in evaluate_plain(rule, apps, plain, predicates)]
    assert bits.tolist() == expected, rule.name


@pytest.mark.parametrize(
    ("largest", "cap", "slots"),
    [(1, 10, 4), (4, 10, 4), (5, 10, 8), (6, 6, 6), (9, 10, 10), (17, 64, 32), (64, 64, 64)],
)
def test_households_are_padded_to_a_size_class(largest: int, cap: int, slots: int) -> None:
    """Owners see the slots of a batch, so a one-application batch shows the size class only."""
    assert padded_slots(largest, cap) == slots


def test_a_household_over_the_owners_cap_is_refused_before_anything_runs() -> None:
    with pytest.raises(RuleError, match="exceeds the owners' cap of 10"):
        padded_slots(11, 10)


def test_the_fingerprint_covers_every_threshold_and_flag_but_not_the_description() -> None:
    rule = load_rules(EXAMPLES).get("public-rental-housing")
    same = rule.model_copy(
        update={"description": "reworded", "expression": "income_per_member  AND no_property AND local_resident"}
    )
    assert same.fingerprint() == rule.fingerprint() and len(rule.fingerprint()) == 64
    clause = rule.clauses["income_per_member"]
    for change in (
        {"value": 30001},
        {"compare": "<="},
        {"per_member": False, "scope": "household-sum"},
        {"absent": "false"},
        {"reveal": False},
        {"column": "tax_year"},
    ):
        changed = rule.model_copy(
            update={"clauses": {**rule.clauses, "income_per_member": clause.model_copy(update=change)}}
        )
        assert changed.fingerprint() != rule.fingerprint(), change
    assert rule.model_copy(update={"co_party": "housing"}).fingerprint() != rule.fingerprint()
    assert rule.co_party_for("civil-affairs") == "tax" and rule.co_party_for("tax") == "housing"
    with pytest.raises(RuleError, match="must own a column clause"):
        rule.model_copy(update={"co_party": "civil-affairs"}).co_party_for("civil-affairs")


def test_declared_values_are_read_by_kind_and_missing_ones_are_named() -> None:
    """Declared numbers with separators, dates in several spellings, codes in any case; a
    household sum of members' declarations; a missing or unreadable value names the clause."""
    rules = load_rules(EXAMPLES)
    audit, certificate = rules.get("declaration-audit"), rules.get("certificate-valid")
    income = audit.clauses["income_as_declared"]
    declared = Application("A", "p", ("p", "q"), {"household_income": "12,000"})
    assert income.declared_value(declared) == 12_000
    per_member = Application("A", "p", ("p", "q"), {}, ({"household_income": "5000"}, {"household_income": "7 000"}))
    assert income.declared_value(per_member) == 12_000
    assert audit.declared_problem(per_member) == "clause property_as_declared: declared 'property_count' is missing"
    wrong = Application("A", "p", ("p",), {"household_income": "12.5", "property_count": "0"})
    assert (
        audit.declared_problem(wrong)
        == "clause income_as_declared: declared 'household_income': not an integer: '12.5'"
    )
    cited = Application("A", "p", ("p",), {"certificate_number": " ab-1", "application_date": "2026/01/02"})
    assert certificate.declared_problem(cited) is None
    assert certificate.clauses["valid_to"].declared_value(cited) == (dt.date(2026, 1, 2) - dt.date(1970, 1, 1)).days
    assert certificate.clauses["holds_type"].lookup_key(cited) == "p\x1fAB-1"
    undated = Application("A", "p", ("p",), {"certificate_number": "AB-1", "application_date": "2 Jan"})
    assert "declared 'application_date': not a date" in str(certificate.declared_problem(undated))


def test_approvals_of_earlier_rules_keep_their_fingerprints() -> None:
    """Settings added for declared values are left out of the canonical form at their defaults."""
    assert load_rules(EXAMPLES).get("public-rental-housing").fingerprint().startswith("cb24a5d8178b9d74")
