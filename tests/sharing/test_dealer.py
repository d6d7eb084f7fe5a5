"""Reservations: correlated randomness dealt up front, served in order, exact for our programs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpc.protocols import rules, selftest
from mpc.sharing import kernels
from mpc.sharing.dealer import MAX_RESERVED, Reservation, TrustedDealer
from mpc.sharing.runtime import Party
from tests.protocols import threshold
from tests.protocols.two_parties import run_parties

RULES = Path(__file__).resolve().parents[2] / "rules" / "examples.toml"
requests = st.lists(st.tuples(st.sampled_from(["bit", "beaver", "dabit"]), st.integers(0, 300)), max_size=12)


def _take(correlations: Any, kind: str, size: int) -> tuple[np.ndarray, ...]:
    method = {"bit": correlations.bit_triples, "beaver": correlations.beaver_triples, "dabit": correlations.dabits}[
        kind
    ]
    return tuple(method(size))


@settings(max_examples=60, deadline=None)
@given(asked=requests, bits=st.integers(0, 700), beavers=st.integers(0, 700), dabits=st.integers(0, 700))
def test_reserved_and_later_requests_are_valid_correlations(
    asked: list[tuple[str, int]], bits: int, beavers: int, dabits: int
) -> None:
    """Whatever the reservation and the requests, every correlation holds and no material repeats."""
    reservation = Reservation.covering(bits, beavers, dabits)
    dealer = TrustedDealer()
    c0, c1 = dealer.correlations_for(0, reservation), dealer.correlations_for(1, reservation)
    seen: list[np.ndarray] = []
    for kind, size in asked:
        mine, theirs = _take(c0, kind, size), _take(c1, kind, size)
        if kind == "bit":
            np.testing.assert_array_equal(mine[2] ^ theirs[2], (mine[0] ^ theirs[0]) & (mine[1] ^ theirs[1]))
        elif kind == "beaver":
            np.testing.assert_array_equal(mine[2] + theirs[2], (mine[0] + theirs[0]) * (mine[1] + theirs[1]))
        else:
            np.testing.assert_array_equal(mine[1] + theirs[1], kernels.unpack_bits(mine[0] ^ theirs[0], size))
        seen.append(mine[0])
    words = np.concatenate(seen) if seen else np.zeros(0, np.uint64)
    assert len(np.unique(words[words > 1 << 32])) == len(words[words > 1 << 32])  # no word of material twice


def test_requests_fit_the_reservation_in_order_then_go_to_the_dealer() -> None:
    reservation = Reservation(bit_triple_words=100, dabits=128)
    dealer = TrustedDealer()
    c0 = dealer.correlations_for(0, reservation)
    c0.bit_triples(60)
    c0.dabits(65)  # takes 128 elements: daBit requests start on a word
    assert c0.requests_beyond_reservation == 0
    c0.bit_triples(41)  # 60 + 41 > 100
    c0.dabits(1)
    c0.bit_triples(40)  # still fits after the one that did not
    assert c0.requests_beyond_reservation == 2
    with pytest.raises(ValueError, match="multiples of 64"):
        Reservation(dabits=10)
    with pytest.raises(ValueError, match="outside"):
        Reservation(bit_triple_words=MAX_RESERVED + 1)
    assert Reservation.covering(bit_triple_words=10 * MAX_RESERVED).bit_triple_words == MAX_RESERVED


def _run(program: Callable[[Party], Any], reservation: Reservation) -> tuple[Any, Party]:
    (mine, _), parties = run_parties((program, program), reservation)
    return mine, parties[0]


def _exact(party: Party, reservation: Reservation) -> None:
    """The program took exactly its reservation, and nothing from the dealer after it."""
    assert party.correlations.requests_beyond_reservation == 0
    assert party.correlations.words_used["bit-triple"] == reservation.bit_triple_words


@pytest.mark.parametrize("n", [1, 64, 65, 300])
def test_selftest_and_threshold_reservations_are_exact(n: int) -> None:
    values = np.arange(n, dtype=np.int64) - n // 2
    reservation = selftest.compare_reservation(n)
    bits, party = _run(lambda p: selftest.compare_program(p, n, 3, 0, values if p.index == 0 else None), reservation)
    np.testing.assert_array_equal(bits, values < selftest.public_values(3, n))
    _exact(party, reservation)
    shares = values.astype(np.uint64).reshape(n, 1)  # party 0 holds the values, party 1 zeros
    present = np.ones(n, dtype=np.uint8)
    for op in ("<", "==", "!="):
        reservation = threshold.threshold_reservation(op, n)

        def check(p: Party, op: str = op) -> Any:
            return threshold.threshold_program(p, shares if p.index == 0 else np.zeros_like(shares), op, 0, 0, present)

        bits, party = _run(check, reservation)
        expected = {"<": values < 0, "==": values == 0, "!=": values != 0}[op]
        np.testing.assert_array_equal(bits, expected)
        _exact(party, reservation)


@pytest.mark.parametrize("name", sorted(rules.load_rules(RULES).rules))
@pytest.mark.parametrize("applications", [1, 70])
def test_rule_reservations_are_exact(name: str, applications: int) -> None:
    rule = rules.load_rules(RULES).get(name)
    if all(c.is_predicate for c in rule.clauses.values()):
        pytest.skip("a rule of published predicates only runs no program")
    slots = 2
    tables = {
        key: rules.ShareTable(
            columns, np.zeros((applications * rules.table_rows(rule, key, 1, slots), len(columns)), dtype=np.uint64)
        )
        for key, columns in rules.table_columns(rule).items()
    }
    presence = {key: np.ones(t.shares.shape[0], dtype=np.uint8) for key, t in tables.items()}
    predicate_bits = {n: [1] * applications for n, c in rule.clauses.items() if c.is_predicate}
    reservation = rules.rule_reservation(rule, applications)

    def program(p: Party) -> Any:
        mine = p.index == 0
        declared = {n: [10_000] * applications for n, c in rule.clauses.items() if c.declared}
        inputs = rules.RequesterInputs([1] * applications, predicate_bits, presence, declared)
        return rules.rule_program(p, rules.RuleShape(rule, applications, slots), tables, inputs if mine else None)

    _, party = _run(program, reservation)
    _exact(party, reservation)
