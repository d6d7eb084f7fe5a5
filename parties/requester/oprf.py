"""The OPRF, the requester's role: an owner's tag of each of our ids, without showing it the ids
(it sees blinded points only), chunk by chunk so that our curve work and the owner's overlap.

Tags under a dataset's key (its current epoch) feed P3 lookups and owner-tag PSI; under a
published predicate's key they are probed against the predicate's filter (P2), fetched once per
epoch. The owner learns how many ids we evaluated; we learn the tags (and, for P2, the bits).
"""

from __future__ import annotations

import queue
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import grpc
import numpy as np

from mpc.crypto.curve25519 import BlindedQuery, OprfClient
from mpc.protocols import oprf_filter
from parties.requester.results import RemoteError
from parties.rpc.points import split_fixed, split_points
from protos import party_pb2

if TYPE_CHECKING:
    from parties.requester.client import Client

__all__ = ["OPRF_CHUNK", "dataset_tags", "evaluate", "fetch_filter", "predicate_bits", "probe"]

OPRF_CHUNK = 16_384  # ids blinded, evaluated and unblinded per step of a pipelined OPRF


def evaluate(
    client: Client,
    party: str,
    oprf_client: OprfClient,
    ids: Sequence[str],
    header: party_pb2.PointBatch,
) -> tuple[list[bytes], int]:
    """The owner's OPRF tag of each id (it sees blinded points only): blinded, evaluated and
    unblinded chunk by chunk, so our curve work and the owner's overlap; one unary call when
    one chunk holds them all. ``header`` names the key (dataset, or predicate and epoch); the
    owner's first reply gives the key's epoch."""
    if not ids:
        return [], header.epoch
    parts = [slice(lo, min(len(ids), lo + OPRF_CHUNK)) for lo in range(0, len(ids), OPRF_CHUNK)]
    pending: queue.Queue[BlindedQuery] = queue.Queue()

    def batch(k: int, part: slice) -> party_pb2.PointBatch:
        query = oprf_client.blind(ids[part])
        pending.put(query)
        message = party_pb2.PointBatch(points=b"".join(query.points), count=len(query.points))
        if k == 0:
            message.MergeFrom(header)
        return message

    stub, tags, epoch = client.party_stub(party), [], None
    replies: Iterable[party_pb2.PointBatch]
    try:
        if len(parts) == 1:
            replies = [stub.EvaluateOprfBatch(batch(0, parts[0]), metadata=client.metadata(), timeout=600)]
        else:
            replies = stub.EvaluateOprf((batch(k, p) for k, p in enumerate(parts)), metadata=client.metadata())
        for reply in replies:  # one per batch, in order
            epoch = reply.epoch if epoch is None else epoch
            tags.extend(oprf_client.finalize(pending.get(), split_points(reply.points, reply.count)))
    except grpc.RpcError as exc:
        raise RemoteError(party, exc.code(), exc.details() or "") from None
    if len(tags) != len(ids):
        raise RemoteError(party, grpc.StatusCode.DATA_LOSS, f"{len(tags)} OPRF answers for {len(ids)} ids")
    return tags, int(epoch or 0)


def dataset_tags(
    client: Client, party: str, owner: str, dataset: str, ids: Sequence[str]
) -> tuple[dict[str, bytes], int]:
    """The owner's OPRF tag of each of our distinct ``ids`` (it sees blinded points only), and
    the epoch of the key it applied (its current one)."""
    if not ids:  # nothing to evaluate: the current epoch as the owner's catalogue gives it
        return {}, int(client.schema(party, dataset).epoch)
    oprf_client = OprfClient(domain=oprf_filter.dataset_domain(owner, dataset))
    tags, epoch = evaluate(client, party, oprf_client, ids, party_pb2.PointBatch(dataset=dataset))
    return dict(zip(ids, tags, strict=True)), epoch


def predicate_bits(client: Client, party: str, predicate: str, ids: Sequence[str]) -> np.ndarray:
    """P2: whether the owner's published predicate holds for each id, from its filter (fetched
    once per epoch) and one OPRF round; the owner learns how many ids we evaluated, we learn
    the bits and |E|."""
    key = (party, predicate)
    if key not in client.filters:
        client.filters[key] = fetch_filter(client, party, predicate)
    try:
        return probe(client, party, predicate, ids, *client.filters[key])
    except RemoteError as exc:
        if exc.code != grpc.StatusCode.FAILED_PRECONDITION:  # not an expired epoch
            raise
    client.filters[key] = fetch_filter(client, party, predicate)
    return probe(client, party, predicate, ids, *client.filters[key])


def fetch_filter(client: Client, party: str, predicate: str) -> tuple[int, set[bytes]]:
    tags: set[bytes] = set()
    epoch = 0
    try:
        for chunk in client.party_stub(party).GetPredicateFilter(
            party_pb2.PredicateRequest(predicate=predicate), metadata=client.metadata()
        ):
            if chunk.total or chunk.epoch:
                epoch = chunk.epoch
            tags.update(split_fixed(chunk.tags, 8, chunk.count))
    except grpc.RpcError as exc:
        raise RemoteError(party, exc.code(), exc.details() or "") from None
    return epoch, tags


def probe(client: Client, party: str, predicate: str, ids: Sequence[str], epoch: int, tags: set[bytes]) -> np.ndarray:
    owner = client.capabilities(party).party
    oprf_client = OprfClient(domain=oprf_filter.domain(owner, predicate))
    mine, _ = evaluate(client, party, oprf_client, list(ids), party_pb2.PointBatch(predicate=predicate, epoch=epoch))
    return np.array(oprf_filter.probe(tags, mine), dtype=np.uint8)
