"""P1 ECDH-PSI, the owner's role (:class:`mpc.protocols.psi.Owner`), and the owner's shuffled tags
for PSI against its per-dataset OPRF key (the repeated-batches variant).

The owner learns how many distinct ids the requester sent; in cardinality mode the answers are
shuffled over the whole set, so the requester learns the count only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import grpc
import numpy as np

from mpc.protocols import psi
from parties.owner.gate import Handlers
from parties.rpc.boundary import Call, ServiceError
from parties.rpc.points import split_points
from parties.rpc.producers import Interleave
from protos import party_pb2

if TYPE_CHECKING:
    pass

__all__ = ["Psi"]


def _tag_message(tags: np.ndarray) -> party_pb2.PsiMessage:
    return party_pb2.PsiMessage(tags=party_pb2.TagBatch(tags=tags.astype("<u8").tobytes(), count=len(tags)))


class Psi(Handlers):
    def round(
        self, requests: Iterator[party_pb2.PsiMessage], context: grpc.ServicerContext, call: Call
    ) -> Iterator[party_pb2.PsiMessage]:
        """P1 ECDH-PSI (:mod:`mpc.protocols.psi`): our shuffled ``[b]H(y)`` and the answers to the
        requester's points stream out together, chunk by chunk, while its points stream in."""
        first = next(requests, None)
        if first is None or first.WhichOneof("body") != "start":
            raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, "PsiRound must start with a PsiStart message")
        start = first.start
        if start.mode not in psi.MODES:
            raise ServiceError(
                grpc.StatusCode.UNIMPLEMENTED, f"PSI mode {start.mode!r} is not offered (use one of {list(psi.MODES)})"
            )
        dataset = self.gate.dataset(call, start.dataset, psi=True, intersection=start.mode == "intersection")
        limit = self.daemon.config.party.max_points_per_request
        if not 0 <= start.requester_count <= limit:
            raise ServiceError(
                grpc.StatusCode.RESOURCE_EXHAUSTED, f"requester set of {start.requester_count} exceeds {limit}"
            )
        self.daemon.budgets.psi(call, dataset.name, int(start.requester_count))
        owner = psi.Owner(self.daemon.tables.hashed_ids(dataset, psi.PSI_DOMAIN))
        call.rows = int(start.requester_count)
        call.detail = (
            f"dataset={start.dataset} mode={start.mode} "
            f"requester_count={start.requester_count} owner_count={owner.count}"
        )
        yield party_pb2.PsiMessage(
            start=party_pb2.PsiStart(
                dataset=start.dataset, mode=start.mode, requester_count=start.requester_count, owner_count=owner.count
            )
        )

        def own(put: Callable[[party_pb2.PsiMessage], None]) -> None:
            for part in psi.chunks(owner.count):
                points = owner.encrypt_own(part)
                put(party_pb2.PsiMessage(points=party_pb2.PointBatch(points=b"".join(points), count=len(points))))
            put(party_pb2.PsiMessage(done=party_pb2.PsiDone(list="owner", count=owner.count)))

        def answer(put: Callable[[party_pb2.PsiMessage], None]) -> None:
            received, held = 0, []
            for message in requests:
                kind = message.WhichOneof("body")
                if kind == "done":
                    break
                if kind != "points":
                    raise ValueError(f"unexpected {kind!r} message in PsiRound")
                points = split_points(message.points.points, message.points.count)
                received += len(points)
                if received > start.requester_count:
                    raise ValueError(f"requester sent more than the announced {start.requester_count} points")
                tags = owner.answer(points)
                if start.mode == "intersection":  # in the requester's order
                    put(_tag_message(tags))
                else:
                    held.append(tags)
            else:
                raise ServiceError(
                    grpc.StatusCode.ABORTED, f"{call.peer} closed the PSI stream before sending all points"
                )
            if received != start.requester_count:
                raise ValueError(f"requester announced {start.requester_count} points and sent {received}")
            if start.mode == "cardinality":  # shuffled over the whole set: R cannot link answers to its ids
                answers = psi.shuffle(np.concatenate(held) if held else np.zeros(0, np.uint64))
                for part in psi.chunks(len(answers)):
                    put(_tag_message(answers[part]))
            put(party_pb2.PsiMessage(done=party_pb2.PsiDone(list="answers", count=received)))

        yield from Interleave(own, answer)

    def tags(
        self, request: party_pb2.TagsRequest, context: grpc.ServicerContext, call: Call
    ) -> Iterator[party_pb2.TagBatch]:
        """Every row's OPRF tag, shuffled: PSI against our per-dataset key (the requester gets its
        own tags by EvaluateOprf, in the same epoch). It reveals what a P1 whole-table fetch does,
        so it needs the same grant."""
        dataset = self.gate.dataset(call, request.dataset, psi=True, batch=True)
        epoch = self.daemon.check_dataset_epoch(request.epoch)
        self.daemon.budgets.batch(call, dataset.name)
        tags = self.daemon.buckets(dataset.name, epoch).tags.view("<u8")
        shuffled = psi.shuffle(tags.astype(np.uint64))
        call.rows, call.protocol, call.detail = len(shuffled), "P1", f"dataset={dataset.name} epoch={epoch} owner tags"
        for part in psi.chunks(len(shuffled), 262_144):
            yield party_pb2.TagBatch(tags=shuffled[part].astype("<u8").tobytes(), count=part.stop - part.start)
