"""The plaintext oracle of a P5 aggregate: the answers every private execution is tested against,
and the cells an owner computes in the clear over its own table alone (gateway releases).

:func:`evaluate_plain` answers a request from plaintext rows of both sides (the inner join on
ids); :func:`aggregate_values` turns a group's cells into its aggregates (MEAN as SUM / COUNT);
:func:`table_cells` computes one table's cells with numpy; :func:`clamp` bounds a column's values
as its owner shares them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from sqlglot import exp

from mpc.protocols import formula
from mpc.protocols.aggregate.request import AggregateRequest, ColumnInfo, Schemas, Value, _leaf

__all__ = ["Row", "aggregate_values", "clamp", "evaluate_plain", "table_cells"]

_PLAIN = {
    "==": np.equal,
    "!=": np.not_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "<": np.less,
    "<=": np.less_equal,
}


def clamp(values: np.ndarray, info: ColumnInfo) -> np.ndarray:
    """A column's values within its declared bounds (what its owner shares: noise calibration and
    the range checks rely on it; loading already refuses rows outside them)."""
    low, high = info.bounds()
    clamped: np.ndarray = np.clip(values.astype(np.int64), low, high)
    return clamped


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


def _group_index(codes: Sequence[np.ndarray], sizes: Sequence[int], rows: int) -> np.ndarray:
    index = np.zeros(rows, dtype=np.int64)
    for code, size in zip(codes, sizes, strict=True):
        index = index * size + code
    return index
