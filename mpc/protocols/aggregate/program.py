"""The two-party program of P5 on shares: secret-shared aggregates over a P1 join between two agencies.

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
are clamped to their declared bounds by their owner before sharing (:func:`~mpc.protocols.aggregate.oracle.clamp`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from sqlglot import exp

from mpc.crypto.prg import random_words
from mpc.protocols import formula
from mpc.protocols.aggregate.oracle import _PLAIN, _group_index, aggregate_values
from mpc.protocols.aggregate.request import AggregateRequest, Schemas, Value, leaves_of
from mpc.sharing import arithmetic, ring
from mpc.sharing import boolean as _boolean
from mpc.sharing.boolean import COMPARISON_GATES
from mpc.sharing.dealer import Reservation
from mpc.sharing.runtime import Party
from mpc.sharing.types import ArithmeticShare, BooleanShare

__all__ = ["AggregateResult", "CellShares", "InitiatorInputs", "aggregate_program", "aggregate_reservation"]


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
