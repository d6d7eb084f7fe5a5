"""Every secret-shared operation against plaintext on random and edge values."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpc.sharing import arithmetic, boolean
from mpc.sharing.ring import ValueRangeError
from mpc.sharing.runtime import Party, run_in_process
from mpc.sharing.types import BooleanShare
from tests.sharing.strategies import pairs, small, values

T = TypeVar("T")

COMPARISONS: dict[str, tuple[Callable[..., BooleanShare], Callable[..., Any]]] = {
    "lt": (boolean.lt, operator.lt),
    "le": (boolean.le, operator.le),
    "gt": (boolean.gt, operator.gt),
    "ge": (boolean.ge, operator.ge),
    "eq": (boolean.eq, operator.eq),
    "ne": (boolean.ne, operator.ne),
}


def run(program: Callable[[Party], T]) -> T:
    """Run in two parties and return what party 0 got."""
    return run_in_process(program)[0]


@given(data=pairs())
def test_comparisons_between_shared_values(data: tuple[list[int], list[int]]) -> None:
    xs, ys = (np.array(v, dtype=np.int64) for v in data)

    def program(p: Party) -> dict[str, object]:
        x = p.share(xs if p.first else None, owner=0)
        y = p.share(ys if not p.first else None, owner=1)
        return {name: p.reveal_bits(fn(x, y), to=0) for name, (fn, _) in COMPARISONS.items()}

    first, second = run_in_process(program)
    for name, (_, plain) in COMPARISONS.items():
        assert second[name] is None
        np.testing.assert_array_equal(first[name], plain(xs, ys).astype(np.uint8), err_msg=name)


@given(xs=st.lists(values, min_size=1, max_size=150), t=values)
def test_comparisons_against_public_constants(xs: list[int], t: int) -> None:
    x_plain = np.array(xs, dtype=np.int64)

    def program(p: Party) -> dict[str, object]:
        x = p.share(x_plain if p.first else None, owner=0)
        return {name: p.reveal_bits(fn(x, t), to=1) for name, (fn, _) in COMPARISONS.items()}

    _, second = run_in_process(program)
    for name, (_, plain) in COMPARISONS.items():
        np.testing.assert_array_equal(second[name], plain(x_plain, t).astype(np.uint8), err_msg=name)


@given(xs=st.lists(values, min_size=1, max_size=150))
def test_ltz_and_eqz(xs: list[int]) -> None:
    x_plain = np.array(xs, dtype=np.int64)

    def program(p: Party) -> tuple[object, object]:
        x = p.share(x_plain if p.first else None, owner=0)
        return p.reveal_bits(boolean.ltz(x), 0), p.reveal_bits(boolean.eqz(x), 0)

    ltz, eqz = run(program)
    np.testing.assert_array_equal(ltz, (x_plain < 0).astype(np.uint8))
    np.testing.assert_array_equal(eqz, (x_plain == 0).astype(np.uint8))


def test_operator_syntax_matches_functions() -> None:
    xs, ys = np.array([-5, 0, 7, 7]), np.array([3, 0, 7, -8])

    def program(p: Party) -> list[object]:
        x = p.share(xs if p.first else None, owner=0)
        y = p.share(ys if p.first else None, owner=0)
        return [p.reveal_bits(b, 0) for b in (x < y, x <= y, x > y, x >= y, x.eq(y), x.ne(y))]

    got = run(program)
    expected = [xs < ys, xs <= ys, xs > ys, xs >= ys, xs == ys, xs != ys]
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e.astype(np.uint8))


@given(
    data=pairs(element=values), k=st.one_of(st.sampled_from([0, 1, -1, 2**63, 2**64 + 3]), st.integers(-(2**70), 2**70))
)
def test_linear_operations_wrap_mod_2_64(data: tuple[list[int], list[int]], k: int) -> None:
    xs, ys = (np.array(v, dtype=np.int64) for v in data)

    def u(a: np.ndarray) -> np.ndarray:
        return a.astype(np.uint64)

    kk = np.uint64(k % 2**64)

    def program(p: Party) -> list[object]:
        x = p.share(xs if p.first else None, owner=0)
        y = p.share(ys if not p.first else None, owner=1)
        results = [x + y, x - y, -x, x + 5, 5 + x, x - 5, 5 - x, x * k, k * x, arithmetic.sum_shares(x)]
        return [p.reveal(r, 0) for r in results]

    got = run(program)
    expected = [
        u(xs) + u(ys),
        u(xs) - u(ys),
        np.uint64(0) - u(xs),
        u(xs) + np.uint64(5),
        u(xs) + np.uint64(5),
        u(xs) - np.uint64(5),
        np.uint64(5) - u(xs),
        u(xs) * kk,
        u(xs) * kk,
        np.array([u(xs).sum(dtype=np.uint64)]),
    ]
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e.view(np.int64))


@given(data=pairs(element=small))
def test_multiplication(data: tuple[list[int], list[int]]) -> None:
    xs, ys = (np.array(v, dtype=np.int64) for v in data)

    def program(p: Party) -> object:
        x = p.share(xs if p.first else None, owner=0)
        y = p.share(ys if not p.first else None, owner=1)
        return p.reveal(x * y, 0)

    np.testing.assert_array_equal(run(program), xs * ys)


@given(data=pairs(element=values))
def test_multiplication_wraps_on_large_values(data: tuple[list[int], list[int]]) -> None:
    xs, ys = (np.array(v, dtype=np.int64) for v in data)

    def program(p: Party) -> object:
        x = p.share(xs if p.first else None, owner=0)
        y = p.share(ys if p.first else None, owner=0)
        return p.reveal(arithmetic.mul(x, y), 1)

    _, second = run_in_process(program)
    np.testing.assert_array_equal(second, (xs.astype(np.uint64) * ys.astype(np.uint64)).view(np.int64))


@given(a=st.lists(st.integers(0, 1), min_size=1, max_size=200), data=st.data())
def test_boolean_gates_and_b2a(a: list[int], data: st.DataObject) -> None:
    b = data.draw(st.lists(st.integers(0, 1), min_size=len(a), max_size=len(a)))
    av, bv = np.array(a, dtype=np.uint8), np.array(b, dtype=np.uint8)

    def program(p: Party) -> list[object]:
        x = p.share_bits(av if p.first else None, owner=0)
        y = p.share_bits(bv if not p.first else None, owner=1)
        return [p.reveal_bits(r, 0) for r in (x & y, x | y, x ^ y, ~x, ~(x & y) | y)] + [
            p.reveal(boolean.b2a(x), 0),
            p.reveal((x | y).to_arithmetic() * 7, 0),
        ]

    got = run(program)
    expected = [av & bv, av | bv, av ^ bv, 1 - av, (1 - (av & bv)) | bv, av, 7 * (av | bv)]
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)


def test_rule_shaped_composition() -> None:
    """income_sum < 30000 * members AND property == 0 AND resident, then B2A and count."""
    income = np.array([10_000, 90_000, 29_999, 30_000, -5, 0])
    members = np.array([1, 3, 1, 1, 2, 1])
    prop = np.array([0, 0, 1, 0, 0, 0])
    resident = np.array([1, 1, 1, 1, 1, 0])

    def program(p: Party) -> tuple[Any, Any]:
        inc = p.share(income if p.first else None, owner=0)
        mem = p.share(members if not p.first else None, owner=1)
        pr = p.share(prop if p.first else None, owner=0)
        res = p.share_bits(resident if not p.first else None, owner=1)
        limit = mem * 30_000
        ok = (inc < limit) & pr.eq(0) & res
        return p.reveal_bits(ok, 0), p.reveal(arithmetic.sum_shares(ok.to_arithmetic()), 0)

    bits, count = run(program)
    expected = (income < 30_000 * members) & (prop == 0) & (resident == 1)
    np.testing.assert_array_equal(bits, expected.astype(np.uint8))
    assert int(count[0]) == int(expected.sum())


@pytest.mark.parametrize("bad", [[2**62], [-(2**62) - 1], [0, 2**63], [1, 2**64]])
def test_out_of_range_inputs_are_rejected(bad: list[int]) -> None:
    def program(p: Party) -> object:
        return p.share(bad if p.first else None, owner=0)

    with pytest.raises(ValueRangeError, match=r"out of range \[-2\^62, 2\^62\)"):
        run_in_process(program)


@pytest.mark.parametrize("bad", [2**62, -(2**62) - 1])
def test_out_of_range_public_constants_are_rejected(bad: int) -> None:
    def program(p: Party) -> object:
        x = p.share([1, 2] if p.first else None, owner=0)
        return x < bad

    with pytest.raises(ValueRangeError, match="public constant"):
        run_in_process(program)


def test_wrong_types_are_rejected() -> None:
    def floats(p: Party) -> object:
        return p.share(np.array([1.5]) if p.first else None, owner=0)

    with pytest.raises(TypeError, match="must be integers"):
        run_in_process(floats)

    def bits(p: Party) -> object:
        return p.share_bits([0, 2] if p.first else None, owner=0)

    with pytest.raises(ValueError, match="0 or 1"):
        run_in_process(bits)

    def mismatched(p: Party) -> object:
        x = p.share([1, 2] if p.first else None, owner=0)
        y = p.share([1, 2, 3] if p.first else None, owner=0)
        return x + y

    with pytest.raises(ValueError, match="differ in length"):
        run_in_process(mismatched)


def test_empty_batches() -> None:
    def program(p: Party) -> tuple[Any, Any]:
        x = p.share([] if p.first else None, owner=0)
        return p.reveal_bits(x < 3, 0), p.reveal(x * x, 0)

    bits, prod = run(program)
    assert len(bits) == 0 and len(prod) == 0
