"""Restricted SQL for aggregates over a join, parsed with sqlglot into an
:class:`~mpc.protocols.aggregate.AggregateRequest`.

The one shape accepted::

    SELECT <group keys>, COUNT(*), SUM(col), AVG(col)
    FROM party_a.dataset [AS a] [JOIN party_b.dataset [AS b] USING (id_column)]
    [WHERE <comparisons of columns with constants, AND / OR / NOT>]
    [GROUP BY <keys>]

The left table is the initiator's, the right one the peer's; without a join (one owner's table)
the cells can only be released noised, to a gateway. Everything else (row-level output,
raw non-key columns, ``SELECT *``, subqueries, ORDER BY, LIMIT, HAVING, DISTINCT, other joins,
functions other than COUNT(*) / SUM / AVG, arithmetic) is refused with :class:`SqlRefused`, whose
message gives the reason and the offending fragment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import sqlglot
from pydantic import ValidationError
from sqlglot import exp

from mpc.protocols.aggregate import (
    Aggregate,
    AggregateError,
    AggregateRequest,
    ColumnRef,
    Side,
    leaves_of,
)

__all__ = ["ParsedQuery", "SqlRefused", "parse_query"]


class SqlRefused(ValueError):
    """A query outside the accepted shape: ``reason`` and the offending ``fragment``."""

    def __init__(self, reason: str, fragment: str) -> None:
        super().__init__(f"{reason}: {fragment}")
        self.reason, self.fragment = reason, fragment


@dataclass(frozen=True)
class ParsedQuery:
    initiator: str  # party of the FROM table ("" when unqualified)
    peer: str  # party of the JOIN table
    id_column: str
    request: AggregateRequest


_REFUSED_NODES: dict[type[exp.Expr], str] = {
    exp.Subquery: "subqueries are not allowed",
    exp.Order: "ORDER BY is not allowed (cells come in group order)",
    exp.Limit: "LIMIT is not allowed",
    exp.Having: "HAVING is not allowed",
    exp.Distinct: "DISTINCT is not allowed",
    exp.Window: "window functions are not allowed",
    exp.Union: "set operations are not allowed",
    exp.Star: "SELECT * would output rows: select group keys and aggregates only",
}


def parse_query(
    sql: str, reveal_to: Side | Literal["gateway"] = "initiator", epsilon: float | None = None, gateway: str = ""
) -> ParsedQuery:
    """The request of a restricted aggregate query, or :class:`SqlRefused` naming the fragment.
    A query over one table (no JOIN) is released noised to a gateway only."""
    try:
        statements = sqlglot.parse(sql)
    except sqlglot.errors.ParseError as exc:
        raise SqlRefused("not valid SQL", str(exc).splitlines()[0]) from None
    if len(statements) != 1 or statements[0] is None:
        raise SqlRefused("exactly one statement is allowed", sql.strip()[:200])
    select = statements[0]
    if not isinstance(select, exp.Select):
        raise SqlRefused("only SELECT is allowed", select.sql()[:200])
    for node in select.walk():
        for kind, reason in _REFUSED_NODES.items():
            if isinstance(node, kind) and not (kind is exp.Star and isinstance(node.parent, exp.Count)):
                raise SqlRefused(reason, node.sql()[:200])
    tables = _tables(select)
    named: dict[str, set[str]] = {}
    for side, (_, _, aliases) in zip(("initiator", "peer"), tables, strict=False):
        for alias in aliases:
            named.setdefault(alias, set()).add(side)
    sides = {alias: next(iter(found)) for alias, found in named.items() if len(found) == 1}  # ambiguous names dropped

    def ref(column: exp.Column) -> ColumnRef:
        if not column.table:
            raise SqlRefused("qualify every column with its table or alias", column.sql())
        side = sides.get(column.table)
        if side is None:
            reason = (
                "ambiguous table name (give the tables aliases)" if column.table in named else "unknown table or alias"
            )
            raise SqlRefused(f"{reason} {column.table!r}", column.sql())
        return ColumnRef(side=side, column=column.name)  # type: ignore[arg-type]

    keys = [
        ref(_column(k, "GROUP BY takes plain columns")) for k in (select.args.get("group") or exp.Group()).expressions
    ]
    aggregates: list[Aggregate] = []
    for item in select.expressions:
        node = item.this if isinstance(item, exp.Alias) else item
        if isinstance(node, exp.Column):
            if ref(node) not in keys:
                raise SqlRefused("a raw column can only be selected as a GROUP BY key", item.sql())
        elif isinstance(node, exp.Count):
            if not isinstance(node.this, exp.Star):
                raise SqlRefused("only COUNT(*) is allowed", item.sql())
            aggregates.append(Aggregate(kind="count"))
        elif isinstance(node, exp.Sum | exp.Avg):
            target = ref(_column(node.this, "SUM and AVG take a plain column"))
            aggregates.append(Aggregate(kind="sum" if isinstance(node, exp.Sum) else "mean", column=target))
        else:
            raise SqlRefused("only group keys, COUNT(*), SUM(column) and AVG(column) can be selected", item.sql())
    where = select.args.get("where")
    if where is not None:
        try:
            leaves_of(where.this, ref)  # the formula's shape, with the fragments as written
        except AggregateError as exc:
            raise SqlRefused("WHERE takes comparisons of columns with constants under AND, OR, NOT", str(exc)) from None
        for column in where.find_all(exp.Column):
            column.set("table", exp.to_identifier(ref(column).side))
            column.set("db", None)
    try:
        request = AggregateRequest(
            initiator_dataset=tables[0][1],
            peer_dataset=tables[1][1] if len(tables) > 1 else "",
            where=where.this.sql() if where is not None else "",
            group_by=tuple(keys),
            aggregates=tuple(aggregates),
            reveal_to=reveal_to,
            epsilon=epsilon,
            gateway=gateway,
        )
    except ValidationError as exc:
        raise SqlRefused(
            "the query cannot run", "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        ) from None
    if len(tables) == 1:
        return ParsedQuery(tables[0][0], "", "", request)
    return ParsedQuery(tables[0][0], tables[1][0], _using(select), request)


def _column(node: exp.Expr, reason: str) -> exp.Column:
    if not isinstance(node, exp.Column):
        raise SqlRefused(reason, node.sql())
    return node


def _table(node: exp.Expr) -> tuple[str, str, set[str]]:
    if not isinstance(node, exp.Table):
        raise SqlRefused("tables must be named party.dataset", node.sql())
    party, dataset = node.db or "", node.name
    aliases = {dataset, f"{party}.{dataset}" if party else dataset}
    if node.alias:
        aliases.add(node.alias)
    return party, dataset, aliases


def _tables(select: exp.Select) -> list[tuple[str, str, set[str]]]:
    source = select.args.get("from_") or select.args.get("from")
    if source is None:
        raise SqlRefused("FROM is missing", select.sql()[:200])
    tables = [_table(source.this)]
    joins = select.args.get("joins") or []
    if len(joins) > 1:
        raise SqlRefused("only one join is allowed", joins[1].sql())
    for join in joins:
        if join.side or join.kind not in ("", "INNER") or not join.args.get("using"):
            raise SqlRefused("only an inner JOIN ... USING (id_column) is allowed", join.sql())
        tables.append(_table(join.this))
    return tables


def _using(select: exp.Select) -> str:
    using = (select.args.get("joins") or [])[0].args["using"]
    if len(using) != 1:
        raise SqlRefused("join on exactly one id column", ", ".join(u.sql() for u in using))
    return str(using[0].name)
