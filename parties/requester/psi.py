"""P1 ECDH-PSI, the requester's role (:class:`mpc.protocols.psi.Requester`), streamed in chunks, and
PSI against an owner's per-dataset OPRF key (its shuffled tags, our ids' tags by the OPRF).

The owner learns how many distinct ids we sent; we learn the intersection's size (cardinality)
or which of our ids it holds (intersection, where granted), and the owner's row count.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import grpc
import numpy as np

from mpc.protocols import psi
from parties.requester import oprf
from parties.requester.results import Progress, PsiResult, RemoteError
from parties.rpc.points import split_points
from protos import party_pb2

if TYPE_CHECKING:
    from parties.requester.client import Client

__all__ = ["owner_tags", "owner_tags_intersection", "set_intersection"]


def set_intersection(
    client: Client, party: str, dataset: str, ids: Sequence[str], mode: psi.Mode, progress: Progress | None
) -> PsiResult:
    if mode not in psi.MODES:
        raise ValueError(f"mode must be one of {list(psi.MODES)}")
    started = time.perf_counter()
    requester = psi.Requester.for_ids(ids)
    mine = len(requester.ids)
    sent, received, done, total = [0], 0, [0], [mine]
    lock = threading.Lock()

    def advance(count: int) -> None:
        with lock:
            done[0] += count
            if progress is not None:
                progress(done[0], total[0])

    def requests() -> Iterator[party_pb2.PsiMessage]:
        messages = itertools.chain(
            [party_pb2.PsiMessage(start=party_pb2.PsiStart(dataset=dataset, mode=mode, requester_count=mine))],
            (
                party_pb2.PsiMessage(
                    points=party_pb2.PointBatch(points=b"".join(requester.encrypt(part)), count=part.stop - part.start)
                )
                for part in psi.chunks(mine)
            ),
            [party_pb2.PsiMessage(done=party_pb2.PsiDone(list="requester", count=mine))],
        )
        for message in messages:
            sent[0] += message.ByteSize()
            yield message
            if message.WhichOneof("body") == "points":
                advance(message.points.count)

    owner_tags: list[np.ndarray] = []
    answers: list[np.ndarray] = []
    owner_count, finished = -1, set()
    try:
        for message in client.party_stub(party).PsiRound(requests(), metadata=client.metadata()):
            received += message.ByteSize()
            kind = message.WhichOneof("body")
            if kind == "start":
                owner_count = int(message.start.owner_count)
                with lock:
                    total[0] = mine + owner_count
            elif kind == "points":
                owner_tags.append(requester.owner_tags(split_points(message.points.points, message.points.count)))
                advance(message.points.count)
            elif kind == "tags":
                answers.append(psi.as_tags(message.tags.tags))
                if len(answers[-1]) != message.tags.count:
                    raise RemoteError(party, grpc.StatusCode.DATA_LOSS, "malformed tag batch")
            elif kind == "done":
                finished.add(message.done.list)
    except grpc.RpcError as exc:
        raise RemoteError(party, exc.code(), exc.details() or "") from None
    theirs = np.concatenate(owner_tags) if owner_tags else np.zeros(0, np.uint64)
    answer = np.concatenate(answers) if answers else np.zeros(0, np.uint64)
    if finished != {"owner", "answers"} or len(theirs) != owner_count or len(answer) != mine:
        raise RemoteError(
            party,
            grpc.StatusCode.DATA_LOSS,
            f"incomplete PSI answer: {len(theirs)} of {owner_count} owner points, {len(answer)} of {mine} answers",
        )
    found = psi.intersection(theirs, answer)
    matched = [i for i, f in zip(requester.ids, found.tolist(), strict=True) if f] if mode == "intersection" else None
    return PsiResult(int(found.sum()), mine, owner_count, time.perf_counter() - started, matched, sent[0], received)


def owner_tags_intersection(client: Client, party: str, dataset: str, ids: Sequence[str]) -> PsiResult:
    """PSI against the owner's per-dataset OPRF key (the design's repeated-batches variant, as
    openmined-psi's reusable setup message): our ids' tags by the OPRF (the owner sees blinded
    points), its rows' tags in a random order, matched here. Three curve operations per id of
    ours and none per row of theirs (its tags are cached), where fresh-key ECDH-PSI needs two
    per element on each side; but the owner's tags stay valid until its key rotates (every
    epoch), so until then we could test further ids against them by the (rate-limited) OPRF.
    Needs the batch grant. An epoch that ends between the two steps makes us ask again once."""
    started = time.perf_counter()
    caps = client.capabilities(party)
    real = list(dict.fromkeys(ids))
    mine, epoch = oprf.dataset_tags(client, party, caps.party, dataset, real)
    try:
        owner = owner_tags(client, party, dataset, epoch)
    except RemoteError as exc:
        if exc.code != grpc.StatusCode.FAILED_PRECONDITION:  # not an ended epoch
            raise
        client.forget_schema(party)
        mine, epoch = oprf.dataset_tags(client, party, caps.party, dataset, real)
        owner = owner_tags(client, party, dataset, epoch)
    ours = psi.as_tags(b"".join(mine[i] for i in real))
    found = psi.intersection(owner, ours)
    matched = [i for i, f in zip(real, found.tolist(), strict=True) if f]
    return PsiResult(len(matched), len(real), len(owner), time.perf_counter() - started, matched)


def owner_tags(client: Client, party: str, dataset: str, epoch: int) -> np.ndarray:
    """Every row's tag under the owner's key of ``epoch`` (shuffled by the owner)."""
    theirs: list[np.ndarray] = []
    try:
        for batch in client.party_stub(party).GetTags(
            party_pb2.TagsRequest(dataset=dataset, epoch=epoch), metadata=client.metadata()
        ):
            theirs.append(psi.as_tags(batch.tags))
    except grpc.RpcError as exc:
        raise RemoteError(party, exc.code(), exc.details() or "") from None
    return np.concatenate(theirs) if theirs else np.zeros(0, np.uint64)
