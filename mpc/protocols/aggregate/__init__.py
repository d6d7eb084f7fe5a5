"""Secret-shared aggregates over a P1 join between two agencies (the compute part of P5).

The module became a package; everything public is re-exported here (see
:mod:`~mpc.protocols.aggregate.request`).
"""

from __future__ import annotations

from mpc.protocols.aggregate.request import (
    DEFAULT_MIN_CELL,
    MAX_GROUPS,
    MAX_KEY_VALUES,
    SIDES,
    Aggregate,
    AggregateError,
    AggregateRequest,
    AggregateResult,
    CellShares,
    ColumnInfo,
    ColumnRef,
    InitiatorInputs,
    Kind,
    Leaf,
    Row,
    Schemas,
    Side,
    Use,
    Value,
    aggregate_program,
    aggregate_reservation,
    aggregate_values,
    clamp,
    evaluate_plain,
    leaves_of,
    side_qualified,
    table_cells,
)

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
