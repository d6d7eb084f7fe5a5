"""The request of a P5 aggregate: what is computed over which columns, validated before anything runs.

:class:`AggregateRequest` names COUNT / SUM / MEAN (:class:`Aggregate`) per group over the join of
the initiator's and the peer's datasets (:class:`ColumnRef`, ``initiator.col`` / ``peer.col``),
filtered by a ``where`` formula of comparisons (:class:`Leaf`, found by :func:`leaves_of`), and
checked against both sides' declared columns (:class:`ColumnInfo`). The plaintext oracle is
:mod:`mpc.protocols.aggregate.oracle`, the two-party program :mod:`mpc.protocols.aggregate.program`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import sqlglot
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlglot import exp

from mpc.sharing import ring
from mpc.sharing.ring import VALUE_MAX

if TYPE_CHECKING:
    from mpc.data.sources import Dataset  # an annotation only: a requester that loads no dataset skips its readers

__all__ = [
    "DEFAULT_MIN_CELL",
    "MAX_GROUPS",
    "MAX_KEY_VALUES",
    "SIDES",
    "Aggregate",
    "AggregateError",
    "AggregateRequest",
    "ColumnInfo",
    "ColumnRef",
    "Kind",
    "Leaf",
    "Schemas",
    "Side",
    "Use",
    "Value",
    "leaves_of",
    "side_qualified",
]

Side = Literal["initiator", "peer"]
SIDES: tuple[Side, ...] = ("initiator", "peer")
Kind = Literal["count", "sum", "mean"]
Use = Literal["filter", "aggregate", "group_by"]
Value = int | str
MAX_GROUPS = 10_000
DEFAULT_MIN_CELL = 10  # the smallest count a released cell may have
MAX_KEY_VALUES = 1_000  # an int column can be a group key when its declared range is this small
_OPS: dict[type[exp.Expr], str] = {exp.EQ: "==", exp.NEQ: "!=", exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<="}
_FLIPPED = {"==": "==", "!=": "!=", ">": "<", ">=": "<=", "<": ">", "<=": ">="}


class AggregateError(ValueError):
    """A request that cannot run as asked; the message names the offending part."""


class ColumnRef(BaseModel):
    """``side.column``: a column of the initiator's or the peer's dataset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    side: Side
    column: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @classmethod
    def parse(cls, text: str) -> ColumnRef:
        side, _, column = text.partition(".")
        if side not in SIDES or not column:
            raise AggregateError(f"{text!r} is not initiator.<column> or peer.<column>")
        return cls(side=side, column=column)

    def __str__(self) -> str:
        return f"{self.side}.{self.column}"


class Aggregate(BaseModel):
    """COUNT(*), or SUM / MEAN of one column."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    column: ColumnRef | None = None

    @model_validator(mode="after")
    def _shape(self) -> Aggregate:
        if (self.kind == "count") != (self.column is None):
            raise ValueError("COUNT takes no column; SUM and MEAN take one")
        return self

    @property
    def name(self) -> str:
        return "count" if self.column is None else f"{self.kind}({self.column})"


@dataclass(frozen=True)
class Leaf:
    """One comparison of the ``where`` formula: ``column OP value``."""

    ref: ColumnRef
    op: str
    value: Value
    node: exp.Expr  # where it sits in the formula


@dataclass(frozen=True)
class ColumnInfo:
    """What both parties know of a column: type, declared bounds, category labels (for the plain
    group-by and filter columns of a peer, as its owner grants)."""

    type: str
    min: int | None = None
    max: int | None = None
    labels: tuple[str, ...] = ()

    @classmethod
    def declared(cls, dataset: Dataset) -> dict[str, ColumnInfo]:
        """Every column of one of our datasets as both parties may know it: type, declared bounds,
        category domain (never the values present in the data)."""
        out = {}
        for name, spec in dataset.spec.schema_.columns.items():
            low, high = spec.numeric_bounds or (None, None)
            out[name] = cls(spec.type, low, high, dataset.labels(name) if spec.type == "category" else ())
        return out

    def domain(self) -> tuple[Value, ...]:
        """The values a group key takes (category labels, 0/1, or the small int range)."""
        if self.type == "category":
            return self.labels
        if self.type == "bool":
            return (0, 1)
        assert self.min is not None and self.max is not None
        return tuple(range(self.min, self.max + 1))

    def code(self, value: Value) -> int:
        """The integer a value is carried as on shares (a category's index among its labels)."""
        if self.type == "category":
            if not isinstance(value, str) or value not in self.labels:
                raise AggregateError(f"{value!r} is not one of the category's values")
            return self.labels.index(value)
        if not isinstance(value, int):
            raise AggregateError(f"{value!r} is not a number")
        return value

    def bounds(self) -> tuple[int, int]:
        """Declared range of the carried value."""
        if self.type == "category":
            return 0, max(0, len(self.labels) - 1)
        if self.type == "bool":
            return 0, 1
        assert self.min is not None and self.max is not None
        return self.min, self.max


Schemas = Mapping[Side, Mapping[str, ColumnInfo]]


class AggregateRequest(BaseModel):
    """COUNT / SUM / MEAN per group over ``initiator_dataset JOIN peer_dataset`` on the id column
    (or over ``initiator_dataset`` alone when ``peer_dataset`` is empty), filtered by ``where``
    (comparisons of ``side.column`` with constants, AND / OR / NOT). ``reveal_to = "gateway"``
    releases noised cells (ε = ``epsilon``) to the gateway named by ``gateway``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    initiator_dataset: str
    peer_dataset: str = ""
    where: str = ""
    group_by: tuple[ColumnRef, ...] = ()
    aggregates: tuple[Aggregate, ...]
    reveal_to: Side | Literal["gateway"] = "initiator"
    # the query's privacy cost: gateway releases always; between agencies where the data's owner requires noise
    epsilon: float | None = Field(default=None, gt=0, le=100)
    gateway: str = ""  # gateway releases: who receives both parties' noised shares of the cells
    # releases between agencies: a cell opens only when its count (compared on shares) reaches this;
    # each owner refuses a request below its own policy's minimum (gateway releases: the gateway's rule)
    min_cell: int = Field(default=DEFAULT_MIN_CELL, ge=1)

    @field_validator("aggregates")
    @classmethod
    def _some(cls, value: tuple[Aggregate, ...]) -> tuple[Aggregate, ...]:
        if not value:
            raise ValueError("ask for at least one of COUNT, SUM, MEAN")
        return value

    @model_validator(mode="after")
    def _formula(self) -> AggregateRequest:
        self.leaves()
        if len(set(self.group_by)) != len(self.group_by):
            raise ValueError("a group key is named twice")
        if (self.reveal_to == "gateway") != bool(self.gateway) or (
            self.reveal_to == "gateway" and self.epsilon is None
        ):
            raise ValueError(
                "cells released to the gateway are noised: give epsilon and the gateway (and only then the gateway)"
            )
        if not self.peer_dataset:
            if self.reveal_to != "gateway":
                raise ValueError("an aggregate over one table is released to the gateway (noised) only")
            if self.uses("peer"):
                raise ValueError("an aggregate over one table reads no peer columns")
        return self

    @property
    def single_table(self) -> bool:
        return not self.peer_dataset

    # ------------------------------------------------------------------ shape
    def tree(self) -> exp.Expr | None:
        if not self.where.strip():
            return None
        try:
            tree: exp.Expr = sqlglot.parse_one(self.where)
        except sqlglot.errors.ParseError as exc:
            raise AggregateError(f"cannot parse the filter {self.where!r}: {exc}") from None
        return tree

    def leaves(self) -> list[Leaf]:
        """The comparisons of ``where`` in order (see :func:`leaves_of`)."""
        tree = self.tree()
        return [] if tree is None else leaves_of(tree)

    def uses(self, side: Side) -> dict[str, set[Use]]:
        """What the request does with each column of one side (checked against its owner's policy)."""
        out: dict[str, set[Use]] = {}
        for leaf in self.leaves():
            if leaf.ref.side == side:
                out.setdefault(leaf.ref.column, set()).add("filter")
        for agg in self.aggregates:
            if agg.column is not None and agg.column.side == side:
                out.setdefault(agg.column.column, set()).add("aggregate")
        for key in self.group_by:
            if key.side == side:
                out.setdefault(key.column, set()).add("group_by")
        return out

    def mixed_sides(self) -> str:
        """The first part of ``where`` (as SQL) that combines both sides' comparisons under OR or
        NOT; "" when the filter is a conjunction of one-sided parts (our comparisons AND yours)."""

        def mixed(node: exp.Expr) -> str:
            while isinstance(node, exp.Paren):
                node = node.this
            if isinstance(node, exp.And):
                return mixed(node.left) or mixed(node.right)
            return str(node.sql()) if len({leaf.ref.side for leaf in leaves_of(node)}) > 1 else ""

        tree = self.tree()
        return "" if tree is None else mixed(tree)

    def peer_columns(self) -> tuple[str, ...]:
        """The peer's columns that travel as aligned shares (in a stable order)."""
        return tuple(sorted(self.uses("peer")))

    def summed(self) -> list[ColumnRef]:
        """Distinct columns summed (by SUM or MEAN), in order of first mention."""
        return list(dict.fromkeys(a.column for a in self.aggregates if a.column is not None))

    def cells(self) -> list[str]:
        """What is revealed per group: the count, then one sum per summed column."""
        return ["count", *(f"sum({c})" for c in self.summed())]

    def check(self, schemas: Schemas, rows: int) -> None:
        """Types and ranges against both sides' declared columns (before anything runs)."""

        def info(ref: ColumnRef) -> ColumnInfo:
            column = schemas[ref.side].get(ref.column)
            if column is None:
                dataset = self.initiator_dataset if ref.side == "initiator" else self.peer_dataset
                raise AggregateError(f"{ref}: dataset {dataset!r} has no column {ref.column!r}")
            return column

        for leaf in self.leaves():
            column = info(leaf.ref)
            if column.type == "category" and not isinstance(leaf.value, str):
                raise AggregateError(
                    f"filter {leaf.node.sql()!r}: {leaf.ref} is a category; compare it with a quoted value"
                )
            if column.type == "category" and leaf.op not in ("==", "!="):
                raise AggregateError(f"filter {leaf.node.sql()!r}: categories compare with = and != only")
            if column.type != "category" and not isinstance(leaf.value, int):
                raise AggregateError(f"filter {leaf.node.sql()!r}: {leaf.ref} is a number; compare it with a number")
            if column.type == "category" and leaf.ref.side == "peer":
                column.code(leaf.value)
        for ref in self.summed():
            column = info(ref)
            if column.type == "category":
                raise AggregateError(f"{ref} is a category: it can be counted by, not summed")
            low, high = column.bounds()
            if max(abs(low), abs(high)) * max(rows, 1) >= VALUE_MAX:
                raise AggregateError(f"the sum of {ref} over {rows:,} rows could leave the value range [-2^62, 2^62)")
        size = 1
        for key in self.group_by:
            column = info(key)
            if (
                column.type == "int"
                and column.max is not None
                and column.min is not None
                and column.max - column.min + 1 > MAX_KEY_VALUES
            ):
                raise AggregateError(f"{key} spans more than {MAX_KEY_VALUES} values: not a group key")
            size *= len(column.domain())
        if size > MAX_GROUPS:
            raise AggregateError(f"{size:,} groups: more than {MAX_GROUPS:,}")

    def groups(self, schemas: Schemas) -> list[tuple[Value, ...]]:
        """Every group (a tuple of key values, in ``group_by`` order), first key slowest."""
        return list(itertools.product(*(schemas[k.side][k.column].domain() for k in self.group_by)))


def side_qualified(column: exp.Column) -> ColumnRef:
    """``initiator.col`` / ``peer.col`` as written in a request's filter."""
    if not column.table:
        raise AggregateError(f"filter column {column.sql()!r}: qualify it (initiator.<column> or peer.<column>)")
    return ColumnRef.parse(f"{column.table}.{column.name}")


def leaves_of(tree: exp.Expr, resolve: Callable[[exp.Column], ColumnRef] = side_qualified) -> list[Leaf]:
    """The comparisons of a filter formula in order; anything but comparisons of a column with a
    constant under AND / OR / NOT / parentheses is refused, naming the fragment. ``resolve``
    names the side of a column (the SQL layer resolves table aliases)."""
    out: list[Leaf] = []

    def visit(node: exp.Expr) -> None:
        if isinstance(node, exp.And | exp.Or):
            visit(node.this)
            visit(node.expression)
        elif isinstance(node, exp.Not | exp.Paren):
            visit(node.this)
        elif type(node) in _OPS:
            out.append(_leaf(node, resolve))
        else:
            raise AggregateError(f"filter fragment {node.sql()!r} is not a comparison of a column with a constant")

    visit(tree)
    return out


def _literal(node: exp.Expr) -> Value | None:
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and not node.this.is_string:
        value = _literal(node.this)
        return -value if isinstance(value, int) else None
    if isinstance(node, exp.Boolean):
        return int(bool(node.this))
    if isinstance(node, exp.Literal):
        if node.is_string:
            return str(node.this)
        try:
            return int(str(node.this))
        except ValueError:
            return None
    return None


def _leaf(node: exp.Expr, resolve: Callable[[exp.Column], ColumnRef] = side_qualified) -> Leaf:
    op = _OPS[type(node)]
    left, right = node.this, node.expression
    if not isinstance(left, exp.Column) and isinstance(right, exp.Column):
        left, right, op = right, left, _FLIPPED[op]
    value = _literal(right)
    if not isinstance(left, exp.Column) or value is None:
        raise AggregateError(f"filter fragment {node.sql()!r} is not a comparison of a column with a constant")
    if isinstance(value, int) and not ring.VALUE_MIN <= value < VALUE_MAX:
        raise AggregateError(f"filter fragment {node.sql()!r}: {value} is outside [-2^62, 2^62)")
    return Leaf(resolve(left), op, value, node)
