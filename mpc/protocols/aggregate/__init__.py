"""Secret-shared aggregates over a P1 join between two agencies (the compute part of P5).

* :mod:`~mpc.protocols.aggregate.request`: the request (columns, aggregates, the ``where``
  formula, group keys, the recipient) and its checks against both sides' declared columns;
* :mod:`~mpc.protocols.aggregate.oracle`: the plaintext evaluation (the reference answer, one
  table's cells in the clear, clamping to declared bounds);
* :mod:`~mpc.protocols.aggregate.program`: the two-party program on shares, both roles, step by
  step (filter, B2A and products, plain group keys, reveal), with what each party learns.

Everything public is re-exported here: ``from mpc.protocols import aggregate as agg`` then
``agg.AggregateRequest``, ``agg.aggregate_program``, ``agg.evaluate_plain`` ….
"""

from __future__ import annotations

from mpc.protocols.aggregate.oracle import Row, aggregate_values, clamp, evaluate_plain, table_cells
from mpc.protocols.aggregate.program import (
    AggregateResult,
    CellShares,
    InitiatorInputs,
    aggregate_program,
    aggregate_reservation,
)
from mpc.protocols.aggregate.request import (
    DEFAULT_MIN_CELL,
    MAX_GROUPS,
    MAX_KEY_VALUES,
    SIDES,
    Aggregate,
    AggregateError,
    AggregateRequest,
    ColumnInfo,
    ColumnRef,
    Kind,
    Leaf,
    Schemas,
    Side,
    Use,
    Value,
    leaves_of,
    side_qualified,
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
