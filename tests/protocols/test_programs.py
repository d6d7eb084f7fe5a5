"""The program registry, each program's two roles orchestrated in process without daemons: the
requester builds the typed parameters, the co-party parses them from the bytes that would cross
the wire, both take the registry's reservation from one dealer, each runs its role, and the
requester's outcome equals the plaintext evaluation (the co-party's is None)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpc.crypto.prg import random_words
from mpc.data.values import code_value, date_value
from mpc.protocols import aggregate as agg
from mpc.protocols import rules, selftest
from mpc.protocols.programs import (
    AGGREGATE,
    PROGRAMS,
    RULE,
    SELFTEST_COMPARE,
    AggregateParams,
    Program,
    ProgramError,
    ProgramParams,
    RuleParams,
    SelftestParams,
    SharesRef,
    program,
)
from mpc.sharing.ring import encode
from mpc.sharing.runtime import Party
from tests.protocols.two_parties import run_parties

RULES = rules.load_rules(Path(__file__).resolve().parents[2] / "rules" / "examples.toml")
SESSION = "0" * 32
# Owners' values and applicants' declarations by kind, with the edges of the example rules: the
# thresholds 30 000 and 100 000, 10 % either side of 10 000 (9 000 and 11 000 hold, 8 999 and
# 11 001 do not), the day before, of and after a date, a code and another, a key written two ways.
DAYS = [date_value(d) for d in ("2025-12-31", "2026-01-01", "2026-01-02")]
HELD: dict[str, list[int]] = {
    "number": [0, 1, 8_999, 9_000, 10_000, 11_000, 11_001, 29_999, 30_000, 40_000, 100_000, 100_001],
    "date": DAYS,
    "code": [code_value("ELECTRICIAN"), code_value("PLUMBER")],
}
DECLARED: dict[str, list[str]] = {
    "number": ["0", "1", "10000", "10,000", "30000"],
    "date": ["2025-12-31", "2026-01-01", "2026/01/02"],
    "key": ["C-1", " c-1", "C-2"],
}
P = TypeVar("P", bound=ProgramParams)
R = TypeVar("R")


def orchestrate(
    entry: Program[P], params: P, requester: Callable[[Party, P], R], co_party: Callable[[Party, P], R]
) -> tuple[R, R]:
    """Party 0 runs with the params it built; party 1 with those it parsed from the wire bytes.
    Both draw exactly the registry's reservation (nothing beyond it)."""
    received = entry.parse(params.model_dump_json().encode())
    assert received == params
    reservation = entry.reservation(params)
    assert entry.reservation(received) == reservation
    (mine, theirs), parties = run_parties(
        (lambda p: requester(p, params), lambda p: co_party(p, received)), reservation
    )
    assert [p.correlations.requests_beyond_reservation for p in parties] == [0, 0]
    return mine, theirs


def test_the_registry_offers_three_programs_and_refuses_others() -> None:
    assert sorted(PROGRAMS) == ["aggregate", "rule", "selftest-compare"]
    assert program("rule") is RULE
    with pytest.raises(ProgramError, match="unknown program 'threshold-check'"):
        program("threshold-check")
    assert RULE.requester_starts and AGGREGATE.requester_starts and not SELFTEST_COMPARE.requester_starts


@pytest.mark.parametrize(
    ("entry", "raw", "field"),
    [
        (SELFTEST_COMPARE, b'{"n": -1, "seed": 0}', "n"),
        (SELFTEST_COMPARE, b'{"n": 1}', "seed"),
        (SELFTEST_COMPARE, b'{"n": 1, "seed": 0, "threshold": 5}', "threshold"),
        (RULE, b'{"name": "x"}', "rule"),
        (AGGREGATE, b'{"request": {}, "rows": 1}', "request"),
        (AGGREGATE, b"[1, 2]", "(parameters)"),
        (AGGREGATE, b'{"request": {"initiator_dataset": "a", "peer_dataset": "b"}, "rows": 1, "peer": {}}', "request"),
        (SELFTEST_COMPARE, b"not json", "(parameters)"),
    ],
)
def test_malformed_parameters_are_refused_naming_the_field(entry: Program[Any], raw: bytes, field: str) -> None:
    with pytest.raises(ProgramError, match=rf"bad parameters for {entry.name}: {re.escape(field)}"):
        entry.parse(raw)


def test_a_session_id_that_could_name_anything_else_is_refused() -> None:
    rule = RULES.get("income-under-40000") if "income-under-40000" in RULES.rules else next(iter(RULES.rules.values()))
    for bad in ("../../etc/passwd", "A" * 32, "0" * 31, ""):
        with pytest.raises(ValueError):
            SharesRef(owner="tax", dataset="income", session=bad, columns=("annual_income",))
    assert RULE.requirements(
        RuleParams(name=rule.name, rule=rule, applications=3, slots=4, tables=(), reveal=())
    ).rule == (rule.name, rule)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(st.integers(-(2**40), 2**40), max_size=40), seed=st.integers(0, 2**31))
def test_selftest_compare_both_roles(values: list[int], seed: int) -> None:
    params = SelftestParams(n=len(values), seed=seed)
    mine = np.array(values, dtype=np.int64)
    bits, nothing = orchestrate(
        SELFTEST_COMPARE,
        params,
        lambda p, q: SELFTEST_COMPARE.run(p, q, 0, mine),
        lambda p, q: SELFTEST_COMPARE.run(p, q, 0),
    )
    assert nothing is None and bits is not None
    assert bits.tolist() == (mine < selftest.public_values(seed, len(values))).astype(int).tolist()
    assert SELFTEST_COMPARE.requirements(params).rows == len(values)


@settings(max_examples=24, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_rule_both_roles_against_the_plaintext_rule(data: st.DataObject) -> None:
    """An example rule over random households: the requester's tables and inputs, the co-party's
    shares (looked up or forwarded), reason codes for the revealable clauses."""
    check_rule_against_plaintext(RULES.get(data.draw(st.sampled_from(sorted(RULES.rules)))), data)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_declared_values_and_composite_keys_against_the_plaintext_rule(data: st.DataObject) -> None:
    """The rules comparing owners' values with what applicants declared (numbers within a relative
    tolerance at its edges, dates the day before, of and after, codes) and looking up composite
    keys (a certificate number written two ways is one key)."""
    names = sorted(n for n, r in RULES.rules.items() if any(c.declared or c.key_declared for c in r.clauses.values()))
    assert len(names) >= 3
    check_rule_against_plaintext(RULES.get(data.draw(st.sampled_from(names))), data)


def check_rule_against_plaintext(rule: rules.Rule, data: st.DataObject) -> None:
    sizes = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=6))
    applications = [
        rules.Application(
            f"A{k}",
            f"p{k}-0",
            tuple(f"p{k}-{j}" for j in range(size)),
            {
                name: data.draw(st.sampled_from(DECLARED[kind]))
                for name, kind in {
                    **{c.declared: c.kind for c in rule.clauses.values() if c.declared},
                    **{c.key_declared: "key" for c in rule.clauses.values() if c.key_declared},
                }.items()
            },
        )
        for k, size in enumerate(sizes)
    ]
    slots = rules.padded_slots(max(sizes), rules.MAX_MEMBERS)
    kinds = {(c.owner, c.dataset, c.column): c.kind for c in rule.clauses.values() if not c.is_predicate}
    plain: dict[tuple[str, str, str], dict[str, int]] = {}
    mine: dict[rules.TableKey, rules.ShareTable] = {}
    theirs: dict[rules.TableKey, rules.ShareTable] = {}
    presence: dict[rules.TableKey, np.ndarray] = {}
    for key, columns in rules.table_columns(rule).items():
        per_app = slots if key in rules.household_tables(rule) else 1
        lookup = next(c for c in rule.clauses.values() if not c.is_predicate and (c.owner, c.dataset) == key)
        rows = [
            (a.members[k] if per_app > 1 else lookup.lookup_key(a)) if k < len(a.members) else None
            for a in applications
            for k in range(per_app)
        ]
        known = [p is not None and data.draw(st.booleans()) for p in rows]
        values = np.zeros((len(rows), len(columns)), dtype=np.int64)
        for r, person in enumerate(rows):
            for c, column in enumerate(columns):
                if known[r]:
                    values[r, c] = data.draw(st.sampled_from(HELD[kinds[(*key, column)]]))
                    plain.setdefault((*key, column), {})[str(person)] = int(values[r, c])
        encoded = encode(values.reshape(-1)).reshape(values.shape)
        mask = random_words(encoded.size).reshape(encoded.shape)
        mine[key], theirs[key] = rules.ShareTable(columns, encoded - mask), rules.ShareTable(columns, mask)
        presence[key] = np.array([1 if p is None or k else 0 for p, k in zip(rows, known, strict=True)], np.uint8)
    predicate_bits = {
        n: [int(data.draw(st.booleans())) for _ in applications] for n, c in rule.clauses.items() if c.is_predicate
    }
    predicates = {
        (rule.clauses[n].owner, str(rule.clauses[n].predicate)): {
            a.applicant for a, bit in zip(applications, bits, strict=True) if bit
        }
        for n, bits in predicate_bits.items()
    }
    reveal = tuple(n for n, c in rule.clauses.items() if c.reveal and not c.is_predicate)
    params = RuleParams(
        name=rule.name,
        rule=rule,
        applications=len(applications),
        slots=slots,
        tables=tuple(
            SharesRef(owner=k[0], dataset=k[1], session=SESSION, columns=c)
            for k, c in rules.table_columns(rule).items()
        ),
        reveal=reveal,
    )
    declared = {
        n: [c.declared_value(a) for a in applications] for n, c in rule.clauses.items() if c.declared is not None
    }
    inputs = rules.RequesterInputs([len(a.members) for a in applications], predicate_bits, presence, declared)
    outcome, nothing = orchestrate(
        RULE, params, lambda p, q: RULE.run(p, q, mine, inputs), lambda p, q: RULE.run(p, q, theirs)
    )
    assert nothing is None and outcome is not None
    expected = rules.evaluate_plain(rule, applications, plain, predicates)
    assert outcome.bits.tolist() == [int(eligible) for eligible, _ in expected]
    assert set(outcome.clauses) == set(reveal)
    for name in reveal:
        assert outcome.clauses[name].tolist() == [int(clauses[name]) for _, clauses in expected]
    requirements = RULE.requirements(params)
    assert (requirements.program, requirements.computation, requirements.slots, requirements.reveal) == (
        "rule",
        "rule",
        slots,
        reveal,
    )


SCHEMAS: dict[agg.Side, dict[str, agg.ColumnInfo]] = {
    "initiator": {"age": agg.ColumnInfo("int", 0, 120), "disabled": agg.ColumnInfo("bool")},
    "peer": {"income": agg.ColumnInfo("int", -(10**9), 10**9), "region": agg.ColumnInfo("category", labels=("a", "b"))},
}


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 120), st.booleans(), st.integers(-(10**9), 10**9), st.sampled_from(["a", "b"])),
        max_size=30,
    ),
    where=st.sampled_from(["", "initiator.disabled = 1", "peer.income > 0 AND initiator.age >= 60"]),
)
def test_aggregate_both_roles_against_the_plaintext_join(rows: list[tuple[int, bool, int, str]], where: str) -> None:
    """COUNT and SUM per peer region over the intersection (every row matched), revealed to the
    initiator with a minimum cell of 1; the peer declares its own columns."""
    request = agg.AggregateRequest(
        initiator_dataset="households",
        peer_dataset="income",
        where=where,
        group_by=(agg.ColumnRef(side="peer", column="region"),),
        aggregates=(
            agg.Aggregate(kind="count"),
            agg.Aggregate(kind="sum", column=agg.ColumnRef(side="peer", column="income")),
        ),
        min_cell=1,
    )
    uses = request.uses("initiator")
    params = AggregateParams(
        request=request,
        rows=len(rows),
        session=SESSION,
        initiator={c: SCHEMAS["initiator"][c] for c in uses},
        peer={c: SCHEMAS["peer"][c] for c in request.uses("peer")},
    )
    columns = request.peer_columns()
    mine: dict[str, dict[str, int | str]] = {f"r{k}": {"age": r[0], "disabled": int(r[1])} for k, r in enumerate(rows)}
    theirs: dict[str, dict[str, int | str]] = {f"r{k}": {"income": r[2], "region": r[3]} for k, r in enumerate(rows)}
    carried = np.array(
        [[SCHEMAS["peer"][c].code(theirs[f"r{k}"][c]) for c in columns] for k in range(len(rows))], np.int64
    ).reshape(len(rows), len(columns))
    mask = random_words(carried.size).reshape(carried.shape)
    mine_shares, their_shares = carried.astype(np.uint64) - mask, mask
    inputs = agg.InitiatorInputs(
        np.ones(len(rows), dtype=np.uint8),
        {c: np.array([int(mine[f"r{k}"][c]) for k in range(len(rows))], dtype=np.int64) for c in sorted(uses)},
    )
    result, nothing = orchestrate(
        AGGREGATE,
        params,
        lambda p, q: AGGREGATE.run(p, q, SCHEMAS, mine_shares, inputs),
        lambda p, q: AGGREGATE.run(p, q, q.schemas(peer=SCHEMAS["peer"]), their_shares),
    )
    assert nothing is None and isinstance(result, agg.AggregateResult)
    expected = agg.evaluate_plain(request, SCHEMAS, mine, theirs)
    table = {tuple(row[str(k)] for k in request.group_by): row for row in result.table(request)}
    assert set(table) == set(expected)
    for group, cells in expected.items():
        small = int(cells["count"] or 0) < 1  # an empty cell is withheld: every figure None
        assert table[group]["withheld"] is small
        for name, value in cells.items():
            assert table[group][name] == (None if small else value), (group, name)
    assert AGGREGATE.requirements(params).aggregate == request


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        ({"flag": {"type": "int"}}, "an int column needs bounds"),
        ({"flag": {"type": "int", "min": 5, "max": 1}}, "an int column needs bounds"),
        ({"district": {"type": "category"}}, "a category column needs its labels"),
        ({"x": {"type": "float", "min": 0, "max": 1}}, "is not int, bool or category"),
    ],
)
def test_declared_columns_that_could_not_be_carried_are_refused(declared: dict[str, Any], message: str) -> None:
    """What a requester declares of its own columns must be a usable declaration (the owner
    computes with it); an unbounded int would leave a comparison or a sum without a range."""
    request = agg.AggregateRequest(
        initiator_dataset="households", peer_dataset="income", aggregates=(agg.Aggregate(kind="count"),)
    )
    raw = json.dumps({"request": request.model_dump(mode="json"), "rows": 1, "initiator": declared})
    with pytest.raises(ProgramError, match=message):
        AGGREGATE.parse(raw)


@pytest.mark.parametrize(
    ("held", "declared", "holds"),
    [(9_000, "10000", 1), (11_000, "10000", 1), (8_999, "10000", 0), (11_001, "10 000", 0), (0, "0", 1), (1, "0", 0)],
)
def test_a_relative_tolerance_on_shares_at_its_edges(held: int, declared: str, holds: int) -> None:
    """``within`` 10 % of the declared household income: exactly 10 % either side holds, one more
    does not (on shares, as the plaintext rule says)."""
    rule = RULES.get("declaration-audit")
    application = rules.Application("A", "p", ("p",), {"household_income": declared, "property_count": "0"})
    mine: dict[rules.TableKey, rules.ShareTable] = {}
    theirs: dict[rules.TableKey, rules.ShareTable] = {}
    for key, columns in rules.table_columns(rule).items():
        values = np.zeros((4, 1), dtype=np.int64)  # one member in four slots
        values[0, 0] = held if key[0] == "tax" else 0
        mask = random_words(4).reshape(4, 1)
        mine[key], theirs[key] = rules.ShareTable(columns, encode(values) - mask), rules.ShareTable(columns, mask)
    params = RuleParams(
        name=rule.name,
        rule=rule,
        applications=1,
        slots=4,
        tables=tuple(
            SharesRef(owner=k[0], dataset=k[1], session=SESSION, columns=c)
            for k, c in rules.table_columns(rule).items()
        ),
        reveal=("income_as_declared",),
    )
    declared_values = {n: [c.declared_value(application)] for n, c in rule.clauses.items() if c.declared}
    inputs = rules.RequesterInputs([1], {}, {}, declared_values)
    outcome, _ = orchestrate(
        RULE, params, lambda p, q: RULE.run(p, q, mine, inputs), lambda p, q: RULE.run(p, q, theirs)
    )
    assert outcome is not None
    assert outcome.clauses["income_as_declared"].tolist() == [holds] == outcome.bits.tolist()
    plain = {("tax", "income", "annual_income"): {"p": held}, ("housing", "properties", "property_count"): {}}
    assert rules.evaluate_plain(rule, [application], plain, {})[0][0] == bool(holds)
