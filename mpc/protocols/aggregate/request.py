"""Secret-shared aggregates over a P1 join between two agencies (the compute part of P5).

Roles: the *initiator* I holds its own dataset and plays R of P1: it obtains the *peer*'s
(owner O's) columns secret-shared and aligned to its own rows (:mod:`mpc.protocols.lookup`), and
knows which of its rows the peer holds (presence). Then both run :func:`aggregate_program`:

1. **Filter.** Each comparison of the ``where`` formula on an initiator column is evaluated by I
   in the clear and enters as its secret bit; each on a peer column is evaluated on shares
   (``ltz``/``eqz``); AND/OR/NOT combine them on shares, and the presence bit joins with AND.
2. **B2A** of the filter bit, then one Beaver multiplication per summed column: shares of
   ``f * v`` per row.
3. **Groups.** Group keys are columns their owner's policy allows as *plain* group-by keys: an
   initiator key is sent to the peer in the clear per row; a peer key (a shared category code) is
   opened to both, after I replaced the codes of its absent rows by random ones (so the peer
   cannot tell them). Both parties then sum their shares per group locally.
4. **Reveal** of every cell (COUNT, each SUM) to the party the request names; MEAN is SUM/COUNT.

What each party learns: the recipient, the cells; the peer, the number of rows, the plain
group key of each of I's rows (anonymous: rows are in I's order, never named) and nothing of the
values; I, presence per own row (as in P1) and the plain peer keys of its matched rows. Values
are clamped to their declared bounds by their owner before sharing (:func:`clamp`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import sqlglot
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlglot import exp

from mpc.crypto.prg import random_words
from mpc.protocols import formula
from mpc.protocols.rules import COMPARISON_GATES
from mpc.sharing import arithmetic, ring
from mpc.sharing import boolean as _boolean
from mpc.sharing.dealer import Reservation
from mpc.sharing.ring import VALUE_MAX
from mpc.sharing.runtime import Party
from mpc.sharing.types import ArithmeticShare, BooleanShare

__all__ = [
    "DEFAULT_MIN_CELL",
    "MAX_GROUPS",
    "MAX_KEY_VALUES",
    "SIDES",
    "Aggregate",
    "AggregateError",
    "AggregateRequest",
    "AggregateResult",
    "CellShares",
    "ColumnInfo",
    "ColumnRef",
    "InitiatorInputs",
    "Kind",
    "Leaf",
    "Row",
    "Schemas",
    "Side",
    "Use",
    "Value",
    "aggregate_program",
    "aggregate_reservation",
    "aggregate_values",
    "clamp",
    "evaluate_plain",
    "leaves_of",
    "side_qualified",
    "table_cells",
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
_PLAIN = {
    "==": np.equal,
    "!=": np.not_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "<": np.less,
    "<=": np.less_equal,
}


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


def clamp(values: np.ndarray, info: ColumnInfo) -> np.ndarray:
    """A column's values within its declared bounds (what its owner shares: noise calibration and
    the range checks rely on it; loading already refuses rows outside them)."""
    low, high = info.bounds()
    clamped: np.ndarray = np.clip(values.astype(np.int64), low, high)
    return clamped


# ----------------------------------------------------------------------------- plaintext oracle
Row = Mapping[str, Value]


def evaluate_plain(
    request: AggregateRequest, schemas: Schemas, initiator: Mapping[str, Row], peer: Mapping[str, Row]
) -> dict[tuple[Value, ...], dict[str, float | int | None]]:
    """The reference answer: every group's COUNT / SUM / MEAN over the inner join on ids."""
    tree = request.tree()
    out = {group: {"count": 0, **{f"sum({c})": 0 for c in request.summed()}} for group in request.groups(schemas)}
    for rid, mine in initiator.items():
        theirs = peer.get(rid)
        if theirs is None:
            continue
        row = {"initiator": mine, "peer": theirs}
        if tree is not None and not _holds(tree, row):
            continue
        cell = out[tuple(row[k.side][k.column] for k in request.group_by)]
        cell["count"] = int(cell["count"] or 0) + 1
        for ref in request.summed():
            name = f"sum({ref})"
            cell[name] = int(cell[name] or 0) + int(row[ref.side][ref.column])
    return {group: {**cell, **aggregate_values(request, cell)} for group, cell in out.items()}


def _holds(tree: exp.Expr, row: Mapping[str, Row]) -> bool:
    def compare(node: exp.Expr) -> bool:
        leaf = _leaf(node)
        return bool(_PLAIN[leaf.op](row[leaf.ref.side][leaf.ref.column], leaf.value))

    return formula.evaluate(tree, compare, formula.PLAIN)


def aggregate_values(request: AggregateRequest, cell: Mapping[str, int | None]) -> dict[str, int | float | None]:
    """Each aggregate of one group from its cells (``count``, ``sum(side.column)``): COUNT and SUM
    as they are, MEAN as SUM / COUNT, None where the count is not positive (a noisy count can be)."""
    count = int(cell["count"] or 0)
    out: dict[str, int | float | None] = {}
    for agg in request.aggregates:
        total = None if agg.column is None else int(cell[f"sum({agg.column})"] or 0)
        out[agg.name] = count if total is None else total if agg.kind == "sum" else total / count if count > 0 else None
    return out


def table_cells(request: AggregateRequest, schemas: Schemas, values: Mapping[str, np.ndarray]) -> np.ndarray:
    """One table's cells in the clear, (groups, cells) int64, for an owner releasing an aggregate
    over its own data alone: ``values`` are its columns (clamped; categories as codes)."""
    rows = len(next(iter(values.values()))) if values else 0
    tree = request.tree()

    def compare(node: exp.Expr) -> np.ndarray:
        leaf = _leaf(node)
        info = schemas[leaf.ref.side][leaf.ref.column]
        selected: np.ndarray = _PLAIN[leaf.op](values[leaf.ref.column], info.code(leaf.value))
        return selected

    keep = np.ones(rows, dtype=bool) if tree is None else formula.evaluate(tree, compare, _VECTOR)
    sizes = [len(schemas[k.side][k.column].domain()) for k in request.group_by]
    lows = [schemas[k.side][k.column].bounds()[0] for k in request.group_by]
    index = _group_index([values[k.column] - low for k, low in zip(request.group_by, lows, strict=True)], sizes, rows)
    groups = math.prod(sizes)
    out = np.zeros((groups, len(request.cells())), dtype=np.int64)
    out[:, 0] = np.bincount(index[keep], minlength=groups)
    for k, ref in enumerate(request.summed(), start=1):
        np.add.at(out[:, k], index[keep], values[ref.column][keep])
    return out


_VECTOR = formula.Algebra(np.logical_and, np.logical_or, np.logical_not)


# ----------------------------------------------------------------------------- on shares
@dataclass(frozen=True)
class InitiatorInputs:
    """What only the initiator knows, aligned to its rows: presence (the peer holds the row) and
    its own columns' values (clamped; categories as codes)."""

    present: np.ndarray  # 0/1 per row
    columns: Mapping[str, np.ndarray]  # int64 per row


@dataclass(frozen=True)
class CellShares:
    """One compute party's share of every cell, with its own noise added (gateway releases):
    (groups, cells) uint64; the gateway adds both parties' and decodes."""

    cells: tuple[str, ...]
    values: np.ndarray


@dataclass(frozen=True)
class AggregateResult:
    """The cells, for the recipient: one row per group (key values), one column per cell."""

    keys: tuple[str, ...]
    groups: list[tuple[Value, ...]]
    cells: dict[str, np.ndarray]  # "count", "sum(side.column)" -> int64 per group (0 where withheld)
    rows: int
    withheld: np.ndarray | None = None  # bool per group: its count was under the minimum cell size

    def table(self, request: AggregateRequest) -> list[dict[str, Value | float | None]]:
        """Rows of ``{key: value, aggregate name: value, "withheld": bool}``, MEAN as SUM / COUNT;
        a withheld cell's aggregates are None (its count was under the minimum cell size)."""
        out: list[dict[str, Value | float | None]] = []
        for g, group in enumerate(self.groups):
            hidden = bool(self.withheld[g]) if self.withheld is not None else False
            values = (
                {a.name: None for a in request.aggregates}
                if hidden
                else aggregate_values(request, {name: int(c[g]) for name, c in self.cells.items()})
            )
            out.append({**dict(zip(self.keys, group, strict=True)), **values, "withheld": hidden})
        return out


def aggregate_reservation(request: AggregateRequest, rows: int, groups: int) -> Reservation:
    """The correlated randomness :func:`aggregate_program` takes for ``rows`` rows and ``groups`` cells."""
    words = (rows + 63) // 64
    triples = words  # the presence AND
    for leaf in request.leaves():
        if leaf.ref.side == "peer":
            triples += _boolean.comparison_triple_words(leaf.op, rows)
    tree = request.tree()
    if tree is not None:
        triples += words * sum(1 for _ in tree.find_all(exp.And, exp.Or))
    beaver, dabits = rows * len(request.summed()), 64 * words
    if request.reveal_to != "gateway":  # the minimum-cell test on shares, and each cell times its bit
        triples += _boolean.comparison_triple_words(">=", groups)
        beaver += groups * len(request.cells())
        dabits += 64 * ((groups + 63) // 64)
    return Reservation.covering(bit_triple_words=triples, beaver_triples=beaver, dabits=dabits)


def _group_index(codes: Sequence[np.ndarray], sizes: Sequence[int], rows: int) -> np.ndarray:
    index = np.zeros(rows, dtype=np.int64)
    for code, size in zip(codes, sizes, strict=True):
        index = index * size + code
    return index


def aggregate_program(
    party: Party,
    request: AggregateRequest,
    schemas: Schemas,
    rows: int,
    peer_shares: np.ndarray,
    initiator: InitiatorInputs | None = None,
    noise: np.ndarray | None = None,
) -> AggregateResult | CellShares | None:
    """Run as party 0 (the initiator, with ``initiator``) or party 1 (the peer). ``peer_shares``:
    this party's (rows x len(peer_columns)) uint64 shares of the peer's looked-up columns (values
    of absent rows read as zero). Returns the cells at the recipient, None at the other party;
    for the gateway, each party's share of the cells plus ``noise``, its own (groups, cells)
    int64 sample of the release's mechanisms (:func:`mpc.protocols.privacy.noise`); between
    agencies, the non-recipient's noise where the request carries an ε (None: exact cells)."""
    me_initiator = party.index == 0
    if me_initiator and initiator is None:
        raise ValueError("the initiator supplies its presence bits and columns")
    columns = request.peer_columns()
    if peer_shares.shape != (rows, len(columns)) or peer_shares.dtype != np.uint64:
        raise ValueError(
            f"expected ({rows}, {len(columns)}) uint64 shares, got {peer_shares.shape} {peer_shares.dtype}"
        )

    def peer_value(column: str) -> ArithmeticShare:
        return ArithmeticShare(party, np.ascontiguousarray(peer_shares[:, columns.index(column)]))

    def mine(column: str) -> np.ndarray:
        assert initiator is not None
        return initiator.columns[column]

    # 1. filter: initiator comparisons in the clear (its secret bits), peer comparisons on shares
    tree = request.tree()
    bits: dict[int, BooleanShare] = {}
    for leaf in [] if tree is None else leaves_of(tree):
        info = schemas[leaf.ref.side][leaf.ref.column]
        if leaf.ref.side == "initiator":
            known = (
                _PLAIN[leaf.op](mine(leaf.ref.column), info.code(leaf.value)).astype(np.uint8) if me_initiator else None
            )
            bits[id(leaf.node)] = party.share_bits(known, owner=0)
        else:
            bits[id(leaf.node)] = COMPARISON_GATES[leaf.op](peer_value(leaf.ref.column), info.code(leaf.value))
    present = party.share_bits(initiator.present.astype(np.uint8) if initiator is not None else None, owner=0)
    selected = (
        present if tree is None else formula.evaluate(tree, lambda node: bits[id(node)], formula.SHARED) & present
    )
    # 2. B2A, and f * v per summed column
    f = selected.to_arithmetic()
    sums = []
    for ref in request.summed():
        value = (
            peer_value(ref.column)
            if ref.side == "peer"
            else party.share(mine(ref.column) if me_initiator else None, owner=0)
        )
        sums.append(arithmetic.mul(f, value))
    # 3. plain group keys: the initiator's sent in the clear, the peer's opened (absent rows random)
    codes, sizes = [], []
    for key in request.group_by:
        info = schemas[key.side][key.column]
        low, _ = info.bounds()
        size = len(info.domain())
        if key.side == "initiator":
            label = party.label("group-key")
            if me_initiator:
                code = mine(key.column) - low
                party.channel.send(label, code.astype(np.int64))
            else:
                code = party.channel.recv(label).astype(np.int64)
        else:
            share = peer_value(key.column)
            if me_initiator:  # absent rows read as 0: they open as a uniformly random key instead
                assert initiator is not None
                random_key = (random_words(rows) % np.uint64(size)) + ring.ring_constant(low)
                share = ArithmeticShare(party, np.where(initiator.present == 0, share.value + random_key, share.value))
            code = ring.decode(party.open(share, "group-key")) - low
        if code.shape != (rows,) or (rows and (code.min() < 0 or code.max() >= size)):
            raise ValueError(f"group key {key}: codes outside [0, {size})")
        codes.append(code)
        sizes.append(size)
    groups = math.prod(sizes)
    index = _group_index(codes, sizes, rows)
    cells = np.zeros((groups, 1 + len(sums)), dtype=np.uint64)
    for k, share in enumerate([f, *sums]):
        np.add.at(cells[:, k], index, share.value)
    # 4. reveal every cell to the recipient (the gateway: each party's noised share goes to it)
    if request.reveal_to == "gateway":
        if noise is None or noise.shape != cells.shape:
            raise ValueError(f"a gateway release needs this party's noise of shape {cells.shape}")
        return CellShares(tuple(request.cells()), cells + noise.astype(np.uint64))
    # Between agencies a cell opens only when its count reaches the minimum: compared on shares,
    # every cell of a smaller group is multiplied by 0 before anything is revealed, and the
    # recipient learns only that the group was withheld. Where the data's owner requires noise,
    # the party that is not the recipient adds its own to its share first (the count compared is
    # then the noisy one, as at the gateway).
    to = 0 if request.reveal_to == "initiator" else 1
    if noise is not None:
        if noise.shape != cells.shape:
            raise ValueError(f"noise of shape {noise.shape} for cells of shape {cells.shape}")
        cells = cells + noise.astype(np.uint64)
    large = _boolean.ge(ArithmeticShare(party, np.ascontiguousarray(cells[:, 0])), request.min_cell)
    keep = large.to_arithmetic()
    width = cells.shape[1]
    kept = arithmetic.mul(
        ArithmeticShare(party, np.repeat(keep.value, width)),
        ArithmeticShare(party, np.ascontiguousarray(cells.reshape(-1))),
    )
    opened = party.reveal(kept, to=to)
    shown = party.reveal_bits(large, to=to)
    if opened is None or shown is None:
        return None
    values = opened.reshape(groups, -1)
    return AggregateResult(
        tuple(str(k) for k in request.group_by),
        request.groups(schemas),
        {name: values[:, k] for k, name in enumerate(request.cells())},
        rows,
        withheld=shown == 0,
    )
