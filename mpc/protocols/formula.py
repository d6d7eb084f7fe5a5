"""Boolean formulas (AND / OR / NOT / parentheses over leaves), as sqlglot parses them: one fold
for rules and aggregates, evaluated in the clear (the plaintext oracles) or on XOR shares (every
AND and OR one round; NOT local)."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from sqlglot import exp

__all__ = ["PLAIN", "SHARED", "Algebra", "evaluate"]

T = TypeVar("T")


class Algebra(NamedTuple):
    and_: Callable[[Any, Any], Any]
    or_: Callable[[Any, Any], Any]
    not_: Callable[[Any], Any]


PLAIN = Algebra(lambda a, b: bool(a and b), lambda a, b: bool(a or b), operator.not_)
SHARED = Algebra(operator.and_, operator.or_, operator.invert)  # BooleanShare's &, |, ~


def evaluate(tree: exp.Expr, leaf: Callable[[exp.Expr], T], algebra: Algebra) -> T:
    """Fold ``tree``; every node that is not AND, OR, NOT or parentheses is a leaf."""
    if isinstance(tree, exp.And):
        return algebra.and_(evaluate(tree.this, leaf, algebra), evaluate(tree.expression, leaf, algebra))  # type: ignore[no-any-return]
    if isinstance(tree, exp.Or):
        return algebra.or_(evaluate(tree.this, leaf, algebra), evaluate(tree.expression, leaf, algebra))  # type: ignore[no-any-return]
    if isinstance(tree, exp.Not):
        return algebra.not_(evaluate(tree.this, leaf, algebra))  # type: ignore[no-any-return]
    if isinstance(tree, exp.Paren):
        return evaluate(tree.this, leaf, algebra)
    return leaf(tree)
