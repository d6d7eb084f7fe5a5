"""Hypothesis strategies for secret-shared values: random values mixed with the edge cases."""

from __future__ import annotations

from hypothesis import strategies as st

from mpc.sharing.ring import VALUE_MAX, VALUE_MIN

EDGES = [0, 1, -1, 2, -2, VALUE_MIN, VALUE_MIN + 1, VALUE_MAX - 1, VALUE_MAX - 2, 2**32, -(2**32), 2**31 - 1, -(2**31)]
values = st.one_of(st.sampled_from(EDGES), st.integers(VALUE_MIN, VALUE_MAX - 1))
small = st.one_of(st.sampled_from([0, 1, -1, 2**31 - 1, -(2**31)]), st.integers(-(2**31), 2**31 - 1))


@st.composite
def pairs(
    draw: st.DrawFn, max_size: int = 150, element: st.SearchStrategy[int] = values
) -> tuple[list[int], list[int]]:
    """Two equally long lists; a third of the pairs are equal operands."""
    n = draw(st.integers(1, max_size))
    xs = draw(st.lists(element, min_size=n, max_size=n))
    ys = [x if draw(st.integers(0, 2)) == 0 else draw(element) for x in xs]
    return xs, ys
