"""P5 aggregates over a join, the initiator's role: both policies checked first (ours for our
columns, the peer's by ``CheckAggregate``), the peer's columns secret-shared and aligned to our
matched rows by a lookup (or, reading none of its columns, the intersection by ECDH-PSI), then
the aggregate program on shares (:mod:`mpc.protocols.aggregate`); and intersection-sum, the
private join and compute, as one such aggregate.

The peer learns the size of the intersection (as the design's P5 allows); the cells open only to
the recipient, above both sides' minimum cell, noised where either side requires it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
import numpy as np

from mpc.policy import PolicyError
from mpc.protocols import aggregate as agg
from mpc.protocols import privacy
from mpc.protocols.programs import AGGREGATE, AggregateParams
from parties.requester import lookup, programs, psi
from parties.requester.results import IntersectionSum, RemoteError
from protos import party_pb2

if TYPE_CHECKING:
    from parties.requester.client import Client

__all__ = ["AggregateOutcome", "intersection_sum", "run"]


@dataclass(frozen=True)
class AggregateOutcome:
    """One aggregate's result for us (cells, our share of them for the gateway, or None when the
    peer receives them), the session it ran under, and the rows of the intersection."""

    result: agg.AggregateResult | agg.CellShares | None
    session_id: str
    rows: int


def intersection_sum(
    client: Client, party: str, dataset: str, columns: Sequence[str], ids: Sequence[str], min_cell: int
) -> IntersectionSum:
    """How many of ``ids`` the owner holds and the sum of each of ``columns`` over them, as an
    aggregate on secret shares, opened to us only if the count reaches the minimum cell size of
    both sides (else every figure is None). The owner learns how many ids we asked about and the
    intersection's size; nothing it decrypts comes back to us."""
    started = time.perf_counter()
    real = list(dict.fromkeys(ids))
    request = agg.AggregateRequest(
        initiator_dataset="ids",
        peer_dataset=dataset,
        min_cell=min_cell,
        aggregates=(
            agg.Aggregate(kind="count"),
            *(agg.Aggregate(kind="sum", column=agg.ColumnRef(side="peer", column=c)) for c in columns),
        ),
    )
    result = run(client, party, request, ids=real).result
    assert isinstance(result, agg.AggregateResult)
    cells = result.table(request)[0]
    count = cells["count"]
    return IntersectionSum(
        None if count is None else int(count),
        {c: None if cells[f"sum(peer.{c})"] is None else int(cells[f"sum(peer.{c})"] or 0) for c in columns},
        len(real),
        int(client.schema(party, dataset).rows),
        time.perf_counter() - started,
    )


def run(client: Client, peer: str, request: agg.AggregateRequest, ids: Sequence[str] | None = None) -> AggregateOutcome:
    """The aggregate over one of our datasets (or, with ``ids``, over a list of our ids with no
    columns of ours) joined with the peer's."""
    mine = client.own_dataset(request.initiator_dataset) if ids is None else None
    our_ids = mine.ids if mine is not None else list(ids or ())
    caps, schema = client.capabilities(peer), client.schema(peer, request.peer_dataset)
    schemas: dict[agg.Side, dict[str, agg.ColumnInfo]] = {
        "initiator": {} if mine is None else agg.ColumnInfo.declared(mine),
        "peer": {
            c.name: agg.ColumnInfo(
                *lookup.declared(c)[:1],
                c.min if c.has_bounds else None,
                c.max if c.has_bounds else None,
                tuple(c.categories),
            )
            for c in schema.columns
        },
    }
    rows = len(our_ids)
    release = client.listing(peer).release_epsilon
    if request.reveal_to == "initiator" and request.epsilon is None and release > 0:  # the owner requires noise
        request = request.model_copy(update={"epsilon": release})
    request.check(schemas, rows)
    uses = request.uses("initiator")
    if mine is not None:  # what our own policy lets the peer learn of our columns
        assert client.config is not None
        try:
            client.config.policy.check_dataset(caps.party, client.purpose, mine, psi=True, columns=uses)
        except PolicyError as exc:
            raise RemoteError("(local)", grpc.StatusCode.PERMISSION_DENIED, f"our own policy: {exc}") from None
    client.call(
        peer,
        client.party_stub(peer).CheckAggregate,
        party_pb2.AggregateCheck(request=request.model_dump_json().encode(), rows=rows),
        timeout=30,
    )
    columns = request.peer_columns()
    session_id: str | None = None
    used = sorted(uses)

    def params_for(rows: int) -> AggregateParams:
        return AggregateParams(
            request=request,
            rows=rows,
            initiator={c: schemas["initiator"][c] for c in used},
            peer={c: schemas["peer"][c] for c in request.uses("peer")},
        )

    # Only the rows of the intersection go on: the peer learns its size (as the design's P5
    # allows) and we spare the decryptions and gates of rows that could not count.
    if columns:  # the peer's columns secret-shared and aligned to our matched rows (P1 or P3, as planned)
        fetched = lookup.fetch(client, peer, request.peer_dataset, columns, our_ids, None)
        keep = np.array([i for i, c in enumerate(fetched.selected) if c is not None], dtype=np.int64)
        fetched = dataclasses.replace(fetched, selected=[fetched.selected[i] for i in keep.tolist()])
        params = params_for(len(keep))
        dealer = programs.dealer_session(client, fetched.owner, AGGREGATE.reservation(params))
        try:
            shared = lookup.decrypt(client, fetched)
        except BaseException:
            dealer.close()
            raise
        session_id, shares = shared.session_id, shared.shares
    else:  # nothing of theirs on shares: the intersection by ECDH-PSI
        found = set(
            psi.set_intersection(client, peer, request.peer_dataset, our_ids, "intersection", None).matched or []
        )
        keep = np.array([k for k, i in enumerate(our_ids) if i in found], dtype=np.int64)
        shares = np.zeros((len(keep), 0), dtype=np.uint64)
        params = params_for(len(keep))
        dealer = programs.dealer_session(client, caps.party, AGGREGATE.reservation(params))
    params = params.model_copy(update={"session": session_id})
    rows = len(keep)
    inputs = agg.InitiatorInputs(
        np.ones(rows, dtype=np.uint8),
        {c: agg.clamp(mine.values(c)[keep], schemas["initiator"][c]) for c in used} if mine is not None else {},
    )
    noise = privacy.own_noise(request, schemas, recipient=request.reveal_to == "initiator")
    result, _ = programs.run(
        client, peer, dealer, AGGREGATE, params, lambda p: AGGREGATE.run(p, params, schemas, shares, inputs, noise)
    )
    return AggregateOutcome(result, dealer.session_id, rows)
