"""Secret-shared aggregates over a join (P5 compute) against the plaintext join, on random tables:
empty and full intersections, filters on either side, group keys on either side, edge values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpc.crypto.prg import random_words
from mpc.protocols.aggregate import (
    Aggregate,
    AggregateError,
    AggregateRequest,
    AggregateResult,
    ColumnInfo,
    ColumnRef,
    InitiatorInputs,
    aggregate_program,
    aggregate_reservation,
    evaluate_plain,
)
from tests.protocols.two_parties import run_parties

DISTRICTS = ("east", "north", "west")
SCHEMAS = {
    "initiator": {
        "district": ColumnInfo("category", labels=DISTRICTS),
        "disabled": ColumnInfo("bool"),
        "age": ColumnInfo("int", 0, 120),
    },
    "peer": {
        "income": ColumnInfo("int", -(10**12), 10**12),
        "region": ColumnInfo("category", labels=("a", "b")),
        "flag": ColumnInfo("bool"),
    },
}
WHERES = [
    "",
    "initiator.disabled = 1",
    "peer.income > 0",
    "peer.income <= -5 OR initiator.age >= 60",
    "NOT (peer.flag = 1) AND initiator.district != 'west'",
    "peer.region = 'b' AND (peer.income < 1000 OR peer.flag = 0)",
    "peer.income = 1000000000000 OR peer.income = -1000000000000",
]


def _split(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mask = random_words(values.size).reshape(values.shape)
    return values.astype(np.int64).astype(np.uint64) - mask, mask


def run_program(
    request: AggregateRequest,
    mine: dict[str, dict[str, Any]],
    theirs: dict[str, dict[str, Any]],
    noise: Callable[[], np.ndarray] | None = None,
    noisy: tuple[int, ...] = (0, 1),
) -> tuple[Any, Any]:
    """Shares as P1 leaves them (absent rows read as zero), then both parties in threads; each
    party of ``noisy`` draws its own ``noise``."""
    ids = list(mine)
    columns = request.peer_columns()

    def carried(side: str, column: str, value: Any) -> int:
        return SCHEMAS[side][column].code(value)

    values = np.array(
        [[carried("peer", c, theirs[i][c]) if i in theirs else 0 for c in columns] for i in ids], dtype=np.int64
    ).reshape(len(ids), len(columns))
    share0, share1 = _split(values)
    inputs = InitiatorInputs(
        np.array([i in theirs for i in ids], dtype=np.uint8),
        {c: np.array([carried("initiator", c, mine[i][c]) for i in ids], dtype=np.int64) for c in SCHEMAS["initiator"]},
    )
    reservation = aggregate_reservation(request, len(ids), len(request.groups(SCHEMAS)))  # type: ignore[arg-type]
    (first, second), parties = run_parties(
        tuple(
            lambda p, i=i: aggregate_program(
                p,
                request,
                SCHEMAS,  # type: ignore[arg-type]
                len(ids),
                (share0, share1)[i],
                inputs if i == 0 else None,
                noise() if noise and i in noisy else None,
            )
            for i in (0, 1)
        ),
        reservation,
    )
    assert parties[0].correlations.requests_beyond_reservation == 0
    return first, second


def run_aggregate(
    request: AggregateRequest, mine: dict[str, dict[str, Any]], theirs: dict[str, dict[str, Any]]
) -> AggregateResult:
    """The cells at the recipient (the other party gets None)."""
    out = run_program(request, mine, theirs)
    recipient = 0 if request.reveal_to == "initiator" else 1
    assert out[1 - recipient] is None
    result: AggregateResult = out[recipient]
    return result


def _ids(n: int, prefix: str) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


people = st.integers(0, 40)
incomes = st.one_of(st.integers(-(10**12), 10**12), st.sampled_from([0, -5, 999, 1000, 10**12, -(10**12)]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), n_mine=people, n_theirs=people, overlap=st.floats(0, 1))
def test_aggregates_match_the_plaintext_join(data: st.DataObject, n_mine: int, n_theirs: int, overlap: float) -> None:
    shared = int(min(n_mine, n_theirs) * overlap)
    mine_ids = _ids(shared, "s") + _ids(n_mine - shared, "m")
    theirs_ids = _ids(shared, "s") + _ids(n_theirs - shared, "t")
    mine = {
        i: {
            "district": data.draw(st.sampled_from(DISTRICTS)),
            "disabled": data.draw(st.integers(0, 1)),
            "age": data.draw(st.integers(0, 120)),
        }
        for i in mine_ids
    }
    theirs = {
        i: {
            "income": data.draw(incomes),
            "region": data.draw(st.sampled_from(["a", "b"])),
            "flag": data.draw(st.integers(0, 1)),
        }
        for i in theirs_ids
    }
    keys = data.draw(
        st.sampled_from([(), ("initiator.district",), ("peer.region",), ("initiator.disabled", "peer.region")])
    )
    aggregates = [
        Aggregate(kind="count"),
        Aggregate(kind="sum", column=ColumnRef.parse("peer.income")),
        Aggregate(kind="mean", column=ColumnRef.parse("initiator.age")),
    ]
    request = AggregateRequest(
        initiator_dataset="people",
        peer_dataset="income",
        where=data.draw(st.sampled_from(WHERES)),
        group_by=tuple(ColumnRef.parse(k) for k in keys),
        aggregates=tuple(aggregates),
        reveal_to=data.draw(st.sampled_from(["initiator", "peer"])),
        min_cell=data.draw(st.sampled_from([1, 2, 3, 10])),
    )
    request.check(SCHEMAS, len(mine))  # type: ignore[arg-type]
    expected = evaluate_plain(request, SCHEMAS, mine, theirs)  # type: ignore[arg-type]
    got = run_aggregate(request, mine, theirs)
    table = {tuple(row[str(k)] for k in request.group_by): row for row in got.table(request)}
    assert set(table) == set(expected)
    for group, cells in expected.items():
        small = int(cells["count"] or 0) < request.min_cell  # withheld: compared on shares, every figure hidden
        assert table[group]["withheld"] is small, group
        for name, value in cells.items():
            if name in table[group]:
                assert table[group][name] == (None if small else value), (group, name)


def test_empty_and_full_intersections() -> None:
    mine = {i: {"district": "east", "disabled": 1, "age": 70} for i in _ids(70, "p")}
    request = AggregateRequest(
        initiator_dataset="people",
        peer_dataset="income",
        where="peer.income >= 0",
        group_by=(ColumnRef.parse("initiator.district"),),
        aggregates=(Aggregate(kind="count"), Aggregate(kind="sum", column=ColumnRef.parse("peer.income"))),
    )
    full = {i: {"income": k, "region": "a", "flag": 0} for k, i in enumerate(mine)}
    cells = {row["initiator.district"]: row for row in run_aggregate(request, mine, full).table(request)}
    assert (cells["east"]["count"], cells["east"]["sum(peer.income)"]) == (70, sum(range(70)))
    assert cells["west"]["withheld"] and cells["west"]["count"] is None  # an empty cell is under the minimum
    none = run_aggregate(request, mine, {"x": {"income": 5, "region": "a", "flag": 0}})
    assert none.cells["count"].tolist() == [0, 0, 0] and none.cells["sum(peer.income)"].tolist() == [0, 0, 0]
    assert none.withheld is not None and none.withheld.all()


def test_a_cell_of_one_person_is_withheld_not_opened() -> None:
    """A filter on the requester's own columns that leaves one matched row must not open that
    person's value: the count is compared with the minimum on shares and the sum multiplied by 0."""
    mine = {i: {"district": "east", "disabled": int(i == "p0"), "age": 40} for i in _ids(30, "p")}
    theirs = {i: {"income": 123_456 + k, "region": "a", "flag": 0} for k, i in enumerate(mine)}
    request = AggregateRequest(
        initiator_dataset="people",
        peer_dataset="income",
        where="initiator.disabled = 1",
        aggregates=(Aggregate(kind="count"), Aggregate(kind="sum", column=ColumnRef.parse("peer.income"))),
    )
    got = run_aggregate(request, mine, theirs)
    assert got.withheld is not None and got.withheld.tolist() == [True]
    assert got.cells["count"].tolist() == [0] and got.cells["sum(peer.income)"].tolist() == [0]
    assert got.table(request) == [{"count": None, "sum(peer.income)": None, "withheld": True}]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"where": "peer.income + 1 > 3"}, "is not a comparison of a column"),
        ({"where": "income > 3"}, "qualify it"),
        ({"where": "peer.salary > 3"}, "has no column 'salary'"),
        ({"where": "peer.region > 'a'"}, "categories compare with = and != only"),
        ({"where": "peer.region = 'zz'"}, "is not one of the category's values"),
        ({"where": "peer.income = 'high'"}, "compare it with a number"),
        ({"group_by": (ColumnRef.parse("peer.income"),)}, "not a group key"),
        (
            {"aggregates": (Aggregate(kind="sum", column=ColumnRef.parse("peer.region")),)},
            "can be counted by, not summed",
        ),
    ],
)
def test_malformed_requests_are_refused_naming_the_fragment(change: dict[str, Any], message: str) -> None:
    base = {"initiator_dataset": "people", "peer_dataset": "income", "aggregates": (Aggregate(kind="count"),)}
    with pytest.raises((AggregateError, ValueError), match=message):
        AggregateRequest.model_validate({**base, **change}).check(SCHEMAS, 10)  # type: ignore[arg-type]


def test_sums_that_could_overflow_are_refused() -> None:
    schemas = {**SCHEMAS, "peer": {**SCHEMAS["peer"], "income": ColumnInfo("int", 0, 2**61)}}
    request = AggregateRequest(
        initiator_dataset="p",
        peer_dataset="i",
        aggregates=(Aggregate(kind="sum", column=ColumnRef.parse("peer.income")),),
    )
    with pytest.raises(AggregateError, match="could leave the value range"):
        request.check(schemas, 4)  # type: ignore[arg-type]
    assert request.uses("peer") == {"income": {"aggregate"}} and request.peer_columns() == ("income",)


def test_an_owner_that_requires_noise_adds_it_before_the_minimum_cell_test() -> None:
    """Between agencies, the party that is not the recipient adds its own noise to its share of
    the cells; the recipient sees noised cells, and the minimum applies to the noisy count."""
    mine = {
        i: {"district": ("east", "north", "west")[k % 3], "disabled": 1, "age": 50} for k, i in enumerate(_ids(36, "p"))
    }
    theirs = {i: {"income": 1000 * k, "region": "a", "flag": 0} for k, i in enumerate(mine)}
    request = AggregateRequest(
        initiator_dataset="people",
        peer_dataset="income",
        epsilon=1.0,
        group_by=(ColumnRef.parse("initiator.district"),),
        aggregates=(Aggregate(kind="count"), Aggregate(kind="sum", column=ColumnRef.parse("peer.income"))),
    )
    fixed = np.array([[5, 700], [-3, -50], [-4, 9]], dtype=np.int64)  # east 12+5, north 12-3, west 12-4 (under 10)
    got, nothing = run_program(request, mine, theirs, noise=lambda: fixed, noisy=(1,))
    assert nothing is None
    plain = evaluate_plain(request, SCHEMAS, mine, theirs)  # type: ignore[arg-type]
    rows = {row["initiator.district"]: row for row in got.table(request)}
    assert (rows["east"]["count"], rows["east"]["sum(peer.income)"]) == (
        17,
        int(plain[("east",)]["sum(peer.income)"] or 0) + 700,
    )
    assert rows["north"]["withheld"] and rows["west"]["withheld"] and not rows["east"]["withheld"]


def test_privacy_noise_only_for_the_non_recipient_between_agencies() -> None:
    from mpc.protocols import privacy

    request = AggregateRequest(
        initiator_dataset="people", peer_dataset="income", epsilon=0.5, aggregates=(Aggregate(kind="count"),)
    )
    assert privacy.own_noise(request, SCHEMAS, recipient=True) is None  # type: ignore[arg-type]
    noise = privacy.own_noise(request, SCHEMAS, recipient=False)  # type: ignore[arg-type]
    assert noise is not None and noise.shape == (1, 1)
    assert privacy.release_cost(request, SCHEMAS) == pytest.approx(0.5)  # type: ignore[arg-type]
    exact = AggregateRequest(initiator_dataset="people", peer_dataset="income", aggregates=(Aggregate(kind="count"),))
    assert privacy.own_noise(exact, SCHEMAS) is None and privacy.release_cost(exact, SCHEMAS) == 0.0  # type: ignore[arg-type]
