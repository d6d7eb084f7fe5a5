"""The ``mpc.v1.Party`` service: one handler per RPC, each behind the daemon's boundary.

Handlers check the owner's policy for the dataset or program they touch, then run the protocol
step from :mod:`mpc.protocols`. They never log or return values; the audit entry (written by the
boundary) records row counts only.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np
from pydantic import ValidationError

from mpc.audit import AuditEvent
from mpc.crypto.curve25519 import OprfServer
from mpc.data.sources import Dataset
from mpc.files import write_atomic
from mpc.protocols import aggregate as agg
from mpc.protocols import lookup, privacy, psi, rules, selftest
from mpc.sharing.channel import ChannelError
from mpc.sharing.runtime import Party
from parties.boundary import Call, ServiceError
from parties.net import wire
from parties.net.dealer_client import DealerSession, reservation_of
from parties.net.points import split_points
from parties.net.producers import Interleave
from parties.net.share_channel import ShareServerChannel
from parties.party.config import format_validation_error
from parties.party.sessions import Fetch, HeldResult, HeldShares
from parties.party.tables import declared
from parties.sdk import Client, RemoteError
from protos import common_pb2, party_pb2, party_pb2_grpc

if TYPE_CHECKING:
    from parties.party.server import PartyDaemon

PROTOCOLS = (
    "oprf",
    "psi-cardinality",
    "psi-intersection",
    "psi-owner-tags",
    "encrypted-buckets",
    "encrypted-table",
    "masked-decrypt",
    "share-exchange:selftest-compare",
    "share-exchange:rule",
    "share-exchange:aggregate",
)
PROGRAMS = ("selftest-compare", "rule", "aggregate")
SESSION_ID = re.compile(r"^[0-9a-f]{32}$")  # what uuid4().hex gives; checked by the owner wherever one arrives


def check_session_id(value: str) -> str:
    """A session id as the owner accepts it (32 lowercase hex digits): it keys held shares and
    results, so nothing a requester sends can name a file or collide with another form."""
    if not SESSION_ID.match(value):
        raise ValueError(f"session_id must be 32 lowercase hex digits, not {value[:40]!r}")
    return value


def _tag_message(tags: np.ndarray) -> party_pb2.PsiMessage:
    return party_pb2.PsiMessage(tags=party_pb2.TagBatch(tags=tags.astype("<u8").tobytes(), count=len(tags)))


class PartyService(party_pb2_grpc.PartyServicer):  # type: ignore[misc]
    def __init__(self, daemon: PartyDaemon) -> None:
        self.daemon = daemon
        b = daemon.boundary
        self.GetCapabilities = b.unary("GetCapabilities")(self._capabilities)
        self.ListDatasets = b.unary("ListDatasets")(self._list_datasets)
        self.EvaluateOprf = b.streaming("EvaluateOprf", "oprf")(self._evaluate_oprf)
        self.EvaluateOprfBatch = b.unary("EvaluateOprfBatch", "oprf")(self._evaluate_oprf_batch)
        self.GetPredicateFilter = b.streaming("GetPredicateFilter", "oprf-filter")(self._predicate_filter)
        self.PsiRound = b.streaming("PsiRound", "P1")(self._psi_round)
        self.GetEncryptedBucket = b.streaming("GetEncryptedBucket", "lookup")(self._encrypted_bucket)
        self.MaskedDecrypt = b.unary("MaskedDecrypt", "lookup")(self._masked_decrypt)
        self.ForwardShares = b.unary("ForwardShares", "forward")(self._forward_shares)
        self.ReceiveShares = b.unary("ReceiveShares", "forward")(self._receive_shares)
        self.ShareExchange = b.streaming("ShareExchange", "share-exchange")(self._share_exchange)
        self.GetAuditHead = b.unary("GetAuditHead")(self._audit_head)
        self.CheckAggregate = b.unary("CheckAggregate", "P5")(self._check_aggregate)
        self.GetTags = b.streaming("GetTags", "P1")(self._tags)
        self.RunAggregate = b.unary("RunAggregate", "P5")(self._run_aggregate)
        self.GetResultShare = b.unary("GetResultShare", "P5")(self._result_share)

    # ------------------------------------------------------------------ metadata
    def _capabilities(self, request: common_pb2.Empty, context: Any, call: Call) -> party_pb2.Capabilities:
        d = self.daemon
        return party_pb2.Capabilities(
            party=d.name,
            protocols=list(PROTOCOLS),
            paillier_bits=d.config.party.paillier_bits,
            audit_public_key=d.state.audit_public_key_hex(),
            max_message_bytes=d.max_message_bytes,
            max_batch_points=d.config.party.max_points_per_request,
        )

    def _list_datasets(self, request: common_pb2.Empty, context: Any, call: Call) -> party_pb2.DatasetList:
        policy = self.daemon.config.policy
        grant = policy.peer(call.peer)
        out = party_pb2.DatasetList(
            reveal_clauses=grant.reveal_clauses,
            max_household=grant.max_household,
            release_epsilon=grant.release_epsilon or 0.0,
        )
        for name, dataset_grant in grant.datasets.items():
            dataset = self.daemon.datasets.get(name)
            if dataset is None:
                continue
            spec = dataset.spec.schema_
            # the row count rounded up to the owner's granularity; category values are the declared
            # domain (Dataset.labels), never the values present in the data
            schema = party_pb2.DatasetSchema(
                name=name,
                id_kind=spec.id_kind,
                rows=policy.catalogue_rows(len(dataset.ids)),
                description=dataset.spec.description,
                bucket_bits=self.daemon.bucket_bits(name),
                batch=dataset_grant.batch,
                epoch=self.daemon.dataset_epoch(),
            )
            for column, col in spec.columns.items():
                uses = [] if col.classification == "secret" else list(dataset_grant.columns.get(column, []))
                labels = dataset.labels(column) if col.type == "category" and {"filter", "group_by"} & set(uses) else ()
                schema.columns.append(
                    party_pb2.ColumnSchema(
                        name=column,
                        type=col.type,
                        has_bounds=col.min is not None,
                        min=col.min or 0,
                        max=col.max or 0,
                        classification=col.classification,
                        allowed_uses=uses,
                        categories=list(labels),
                    )
                )
            out.datasets.append(schema)
        return out

    def _audit_head(self, request: common_pb2.Empty, context: Any, call: Call) -> common_pb2.AuditHead:
        return self.daemon.signed_head()

    # ------------------------------------------------------------------ OPRF (P2/P3)
    def _evaluate_oprf(
        self, requests: Iterator[party_pb2.PointBatch], context: Any, call: Call
    ) -> Iterator[party_pb2.PointBatch]:
        key: OprfServer | None = None
        limit = self.daemon.config.party.max_points_per_request
        budget = ("", 0.0)  # the key's budget name and epoch length
        epoch = 0  # the key's epoch, reported in the first reply
        for batch in requests:
            first = key is None
            if key is None:
                if batch.predicate:  # P2: the predicate's key for the epoch of the requester's filter
                    spec = self.daemon.predicate(batch.predicate)
                    self.daemon.config.policy.check_predicate(call.peer, call.purpose, spec.name)
                    current = self.daemon.current_epoch(spec)
                    if batch.epoch not in (current, current - 1):
                        raise ServiceError(
                            grpc.StatusCode.FAILED_PRECONDITION,
                            f"epoch {batch.epoch} of predicate {spec.name} has expired (now {current}); "
                            f"fetch the filter again",
                        )
                    key, epoch = self.daemon.predicate_key(spec, batch.epoch), batch.epoch
                    budget = (f"predicate={spec.name}", spec.epoch_hours * 3600)
                    call.protocol, call.detail = "P2", f"predicate={spec.name} epoch={batch.epoch}"
                else:
                    self.daemon.require_dataset(batch.dataset)
                    self.daemon.config.policy.check_dataset(call.peer, call.purpose, batch.dataset, psi=True)
                    epoch = self.daemon.dataset_epoch()  # only the current epoch's key, ever
                    key = self.daemon.oprf_key(batch.dataset, epoch)
                    budget = (f"dataset={batch.dataset}", self.daemon.config.party.oprf_epoch_hours * 3600)
                    call.detail = f"dataset={batch.dataset} epoch={epoch}"
            points = split_points(batch.points, batch.count)
            call.rows += len(points)
            if call.rows > limit:
                raise ServiceError(grpc.StatusCode.RESOURCE_EXHAUSTED, f"more than {limit} points in one request")
            self.daemon.budgets.oprf(call, budget[0], budget[1], len(points), epoch)  # before the key is applied
            evaluated = key.evaluate_blinded(points)
            yield party_pb2.PointBatch(points=b"".join(evaluated), count=len(evaluated), epoch=epoch if first else 0)

    def _evaluate_oprf_batch(self, request: party_pb2.PointBatch, context: Any, call: Call) -> party_pb2.PointBatch:
        replies = list(self._evaluate_oprf(iter([request]), context, call))
        return replies[0]

    def _predicate_filter(
        self, request: party_pb2.PredicateRequest, context: Any, call: Call
    ) -> Iterator[party_pb2.FilterChunk]:
        spec = self.daemon.predicate(request.predicate)
        self.daemon.config.policy.check_predicate(call.peer, call.purpose, spec.name)
        epoch = self.daemon.current_epoch(spec)
        tags = self.daemon.predicate_filter(spec, epoch)
        call.rows, call.protocol, call.detail = len(tags), "P2", f"predicate={spec.name} epoch={epoch}"
        step = 65_536
        for start in range(0, max(1, len(tags)), step):
            part = tags[start : start + step]
            yield party_pb2.FilterChunk(epoch=epoch, total=len(tags), tags=b"".join(part), count=len(part))

    # ------------------------------------------------------------------ ECDH-PSI (P1)
    def _psi_round(
        self, requests: Iterator[party_pb2.PsiMessage], context: Any, call: Call
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
        dataset = self.daemon.require_dataset(start.dataset)
        self.daemon.config.policy.check_dataset(
            call.peer, call.purpose, start.dataset, psi=True, intersection=start.mode == "intersection"
        )
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

    def _tags(self, request: party_pb2.TagsRequest, context: Any, call: Call) -> Iterator[party_pb2.TagBatch]:
        """Every row's OPRF tag, shuffled: PSI against our per-dataset key (the requester gets its
        own tags by EvaluateOprf, in the same epoch). It reveals what a P1 whole-table fetch does,
        so it needs the same grant."""
        dataset = self.daemon.require_dataset(request.dataset)
        self.daemon.config.policy.check_dataset(call.peer, call.purpose, dataset.name, psi=True, batch=True)
        epoch = self.daemon.check_dataset_epoch(request.epoch)
        self.daemon.budgets.batch(call, dataset.name)
        tags = np.frombuffer(b"".join(self.daemon.buckets(dataset.name, epoch).tags), dtype="<u8")
        shuffled = psi.shuffle(tags.astype(np.uint64))
        call.rows, call.protocol, call.detail = len(shuffled), "P1", f"dataset={dataset.name} epoch={epoch} owner tags"
        for part in psi.chunks(len(shuffled), 262_144):
            yield party_pb2.TagBatch(tags=shuffled[part].astype("<u8").tobytes(), count=part.stop - part.start)

    # ------------------------------------------------------------------ private lookup (P3)
    def _lookup_columns(self, call: Call, dataset: str, columns: list[str]) -> tuple[str, ...]:
        data = self.daemon.require_dataset(dataset)
        if not columns or len(set(columns)) != len(columns):
            raise ValueError("name at least one column, each once")
        unknown = [c for c in columns if c not in data.columns]
        if unknown:
            raise ServiceError(grpc.StatusCode.NOT_FOUND, f"dataset {dataset!r} has no column(s) {unknown}")
        classes = {c: data.spec.schema_.columns[c].classification for c in columns}
        self.daemon.config.policy.check_readable(call.peer, call.purpose, dataset, columns, classes)
        return tuple(columns)

    def _encrypted_bucket(
        self, request: party_pb2.BucketRequest, context: Any, call: Call
    ) -> Iterator[party_pb2.EncryptedRows]:
        columns = self._lookup_columns(call, request.dataset, list(request.columns))
        if request.whole_table:  # P1 needs the batch grant
            self.daemon.config.policy.check_dataset(call.peer, call.purpose, request.dataset, batch=True)
        epoch = self.daemon.check_dataset_epoch(request.epoch)  # the epoch of the requester's tags
        buckets = self.daemon.buckets(request.dataset, epoch)
        table = self.daemon.encrypted_table(request.dataset, columns, epoch)
        rows: np.ndarray | None
        if request.whole_table:  # P1: every row; the owner learns nothing about which are used
            self.daemon.budgets.batch(call, request.dataset)
            table.ensure_all()
            rows, total, call.protocol = None, table.ciphertexts.shape[0], "P1"
            call.detail = f"dataset={request.dataset} whole table columns={list(columns)}"
        else:
            if not 0 <= request.bucket < 1 << buckets.bucket_bits:
                raise ValueError(f"bucket {request.bucket} outside [0, 2^{buckets.bucket_bits})")
            self.daemon.budgets.bucket(call, request.dataset, int(request.bucket))
            table.ensure([request.bucket])
            rows = buckets.rows(request.bucket)
            total, call.protocol = len(rows), "P3"
            call.detail = (
                f"dataset={request.dataset} bucket={request.bucket}/{1 << buckets.bucket_bits} columns={list(columns)}"
            )
        call.rows = total
        layout = table.layout
        step = 4096
        for start in range(0, max(1, total), step):
            part: np.ndarray | slice
            if rows is None:
                part = slice(start, min(total, start + step))
                tags = buckets.tags[part]
            else:
                part = rows[start : start + step]
                tags = [buckets.tags[i] for i in part.tolist()]
            message = party_pb2.EncryptedRows(tags=b"".join(tags), ciphertexts=table.rows_bytes(part), count=len(tags))
            if start == 0:
                message.bucket_bits, message.rows_per_plaintext, message.total = (
                    buckets.bucket_bits,
                    layout.rows_per_plaintext,
                    total,
                )
                message.columns.extend(layout.columns)
                message.value_bits.extend(layout.value_bits)
                message.minimums.extend(layout.minimums)
                message.paillier_public_key = table.public_key.to_bytes()
                message.fetch_token = self.daemon.fetches.issue(
                    Fetch(call.peer, request.dataset, columns, bool(request.whole_table), epoch, time.monotonic())
                )
            yield message

    def _masked_decrypt(
        self, requests: Iterator[party_pb2.MaskedRows], context: Any, call: Call
    ) -> party_pb2.DecryptReceipt:
        header = next(requests, None)
        if header is None:
            raise ValueError("MaskedDecrypt needs at least one message")
        columns = self._lookup_columns(call, header.dataset, list(header.columns))
        check_session_id(header.session_id)
        if header.path not in ("P3", "P1"):  # never a path that hands a decryption to the requester
            raise ValueError(f"path must be P3 or P1, not {header.path!r}")
        if header.path == "P1":  # a batch over the whole table: the owner learns position classes only
            self.daemon.config.policy.check_dataset(call.peer, call.purpose, header.dataset, batch=True)
        limit = self.daemon.config.party.max_points_per_request
        if not 0 <= header.rows <= limit:
            raise ServiceError(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{header.rows} rows: more than {limit}")
        data = self.daemon.require_dataset(header.dataset)
        # only rows of fetches we served and counted, each decrypted once, with the key of the table
        # and epoch they came from (another table's or epoch's rows decrypt to noise)
        epoch = self.daemon.fetches.redeem(
            list(header.fetch_tokens), call.peer, header.dataset, columns, header.path == "P1"
        )
        sk = self.daemon.tables.private_key(data, columns, epoch)
        layout = self.daemon.tables.layout(data, columns)
        width = sk.public_key.ciphertext_bytes
        blobs, groups, positions, count = [], [], [], 0
        for message in itertools.chain([header], requests):  # limits checked as messages arrive
            if len(message.ciphertexts) != message.count * width:
                raise ValueError(
                    f"{len(message.ciphertexts)} bytes of ciphertexts for an announced count of {message.count}"
                )
            count += message.count
            if count > limit:
                raise ServiceError(grpc.StatusCode.RESOURCE_EXHAUSTED, f"more than {limit} ciphertexts")
            blobs.append(message.ciphertexts)
            groups.append(message.groups)
            positions.append(message.positions)
        masked = sk.public_key.ciphertexts_from_bytes(b"".join(blobs))
        plaintexts = sk.decrypt_parallel(masked)
        if header.path == "P1":
            row_groups = np.frombuffer(b"".join(groups), dtype="<i4").astype(np.int64)
            row_positions = np.frombuffer(b"".join(positions), dtype="<i4").astype(np.int64)
            if not len(row_groups) == len(row_positions) == header.rows:
                raise ValueError(f"{len(row_groups)} groups and {len(row_positions)} positions for {header.rows} rows")
            shares = lookup.unmask(layout, plaintexts, row_groups, row_positions)
        else:
            shares = lookup.unmask(layout, plaintexts)
        self.daemon.sessions.put(
            header.session_id, HeldShares(call.peer, header.dataset, layout.columns, shares, time.monotonic())
        )
        call.rows, call.protocol = len(shares), header.path
        call.detail = (
            f"session={header.session_id} dataset={header.dataset} columns={list(columns)} ciphertexts={count}"
        )
        return party_pb2.DecryptReceipt(rows=len(shares))

    # ------------------------------------------------------------------ approved rules (P4)
    def _approved_rule(self, call: Call, name: str, raw: bytes | str | dict[str, Any]) -> tuple[rules.Rule, str]:
        """The rule a program or forwarding is for, refused unless we approved exactly it (its
        fingerprint) for the caller and purpose: thresholds are never the caller's to choose."""
        try:
            rule = rules.Rule.model_validate(raw) if isinstance(raw, dict) else rules.Rule.model_validate_json(raw)
        except ValidationError as exc:
            raise ValueError(f"malformed rule: {format_validation_error(exc, 'rule')}") from None
        return rule, self.daemon.approvals.check(call.peer, call.purpose, name, rule)

    def _rule_size(self, call: Call, applications: int, slots: int) -> tuple[int, int]:
        """Applications and household slots within our limits: the household size a per-member
        threshold is multiplied by is capped by our policy for the caller."""
        cap = self.daemon.config.policy.check_purpose(call.peer, call.purpose).max_household
        if not 0 <= applications <= self.daemon.config.party.max_points_per_request:
            raise ValueError(f"{applications} applications are out of range")
        if not 1 <= slots <= cap:
            raise ServiceError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"households of {slots} members exceed {self.daemon.name}'s cap of {cap} for {call.peer}",
            )
        return applications, slots

    def _check_own_table(
        self, call: Call, name: str, rule: rules.Rule, held: HeldShares, applications: int, slots: int
    ) -> None:
        """Our shares are exactly what the approved rule reads of our dataset, and our policy lets
        the caller compare those columns."""
        key = (self.daemon.name, held.dataset)
        columns = rules.table_columns(rule).get(key)
        if columns is None or held.columns != columns:
            raise ServiceError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"rule {name!r} reads {list(columns or ())} of {held.dataset}, not {list(held.columns)}",
            )
        expected = rules.table_rows(rule, key, applications, slots)
        if held.shares.shape[0] != expected:
            raise ValueError(f"the session holds {held.shares.shape[0]} rows; rule {name!r} reads {expected}")
        data = self.daemon.require_dataset(held.dataset)
        self.daemon.config.policy.check_dataset(
            call.peer,
            call.purpose,
            held.dataset,
            psi=True,
            columns=dict.fromkeys(columns, "compare"),
            classifications={c: data.spec.schema_.columns[c].classification for c in columns},
        )

    # ------------------------------------------------------------------ co-party forwarding (P4)
    def _forward_shares(self, request: party_pb2.ForwardRequest, context: Any, call: Call) -> party_pb2.DecryptReceipt:
        """Hand the shares of a masked decryption to the rule's co-party (which learns nothing from
        them: each is the value plus the requester's mask), only for a rule we approved for the
        caller, reading exactly these columns; the co-party runs only that rule on them."""
        check_session_id(request.session_id)
        try:  # taken first: a refused forward leaves nothing held for another try
            held = self.daemon.sessions.take(request.session_id, call.peer)
        except LookupError as exc:
            raise ServiceError(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None
        if request.co_party == call.peer:  # both shares at the requester would reveal the values
            raise ServiceError(grpc.StatusCode.PERMISSION_DENIED, "shares are never forwarded to the requester itself")
        if request.co_party == self.daemon.name:
            raise ValueError("forwarding to ourselves")
        self.daemon.config.policy.check_forward(call.peer, call.purpose, request.co_party)
        rule, fingerprint = self._approved_rule(call, request.rule_name, request.rule)
        if rule.co_party_for(call.peer) != request.co_party:
            raise ServiceError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"rule {request.rule_name!r} computes with {rule.co_party_for(call.peer)!r}, not {request.co_party!r}",
            )
        applications, slots = self._rule_size(call, int(request.applications), int(request.slots))
        if held.source:  # shares another owner forwarded to us stay with us
            raise ServiceError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"session {request.session_id} holds {held.source}'s shares: they are never forwarded again",
            )
        self._check_own_table(call, request.rule_name, rule, held, applications, slots)
        self.daemon.budgets.computation(call, "rule")
        metadata = (("x-purpose", call.purpose), ("x-case", call.case))

        def chunks() -> Iterator[party_pb2.SharesChunk]:
            first = True
            for piece, more in wire.chunks(held.shares):
                chunk = party_pb2.SharesChunk(shares=wire.to_message(piece), more=more)
                if first:
                    chunk.session_id, chunk.requester, chunk.dataset = request.session_id, call.peer, held.dataset
                    chunk.reveal_allowed = self.daemon.config.policy.peer(call.peer).reveal_clauses
                    chunk.rule_name, chunk.rule_fingerprint = request.rule_name, fingerprint
                    chunk.applications, chunk.slots = applications, slots
                    chunk.columns.extend(held.columns)
                    chunk.rows, first = held.shares.shape[0], False
                yield chunk

        try:
            receipt = self.daemon.peer_stub(request.co_party).ReceiveShares(chunks(), metadata=metadata, timeout=300)
        except grpc.RpcError as exc:
            raise ServiceError(exc.code(), f"co-party {request.co_party} refused the shares: {exc.details()}") from None
        call.rows = int(receipt.rows)
        call.detail = (
            f"session={request.session_id} co_party={request.co_party} dataset={held.dataset} "
            f"rule={request.rule_name} fingerprint={fingerprint[:16]}"
        )
        return party_pb2.DecryptReceipt(rows=receipt.rows)

    def _receive_shares(
        self, requests: Iterator[party_pb2.SharesChunk], context: Any, call: Call
    ) -> party_pb2.DecryptReceipt:
        self.daemon.config.policy.check_receive(call.peer, call.purpose)
        header: party_pb2.SharesChunk | None = None
        pieces = []
        received = 0
        for chunk in requests:
            if header is None:
                header = chunk
                if not header.columns or not header.rule_fingerprint:
                    raise ValueError(
                        "ReceiveShares needs a header chunk with session, requester, dataset, columns and rule"
                    )
                check_session_id(header.session_id)
                if not 0 <= header.rows <= self.daemon.config.party.max_points_per_request * rules.MAX_MEMBERS:
                    raise ServiceError(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{header.rows} rows of forwarded shares")
            pieces.append(wire.from_message(chunk.shares))
            received += pieces[-1].size
            if received > header.rows * len(header.columns):  # never more than announced
                raise ValueError(f"more forwarded shares than the announced {header.rows} x {len(header.columns)}")
            if not chunk.more:
                break
        if header is None:
            raise ValueError("ReceiveShares needs a header chunk with session, requester, dataset, columns and rule")
        shares = wire.join(pieces).reshape(int(header.rows), len(header.columns)) if pieces else None
        if shares is None or shares.dtype != np.uint64:
            raise ValueError("forwarded shares must be uint64")
        self.daemon.sessions.put(
            header.session_id,
            HeldShares(
                header.requester,
                header.dataset,
                tuple(header.columns),
                shares,
                time.monotonic(),
                source=call.peer,
                reveal_allowed=header.reveal_allowed,
                rule=(header.rule_name, header.rule_fingerprint, int(header.applications), int(header.slots)),
            ),
        )
        call.rows = int(header.rows)
        call.detail = (
            f"session={header.session_id} requester={header.requester} from={call.peer} dataset={header.dataset} "
            f"rule={header.rule_name}"
        )
        return party_pb2.DecryptReceipt(rows=header.rows)

    # ------------------------------------------------------------------ secret sharing
    def _share_exchange(
        self, requests: Iterator[party_pb2.ShareMessage], context: Any, call: Call
    ) -> Iterator[party_pb2.ShareMessage]:
        first = next(requests, None)
        if first is None or first.WhichOneof("body") != "start":
            raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, "ShareExchange must start with a ShareStart message")
        start = first.start
        self.daemon.config.policy.check_program(call.peer, call.purpose, start.program)
        if start.program not in PROGRAMS:
            raise ServiceError(grpc.StatusCode.UNIMPLEMENTED, f"unknown program {start.program!r}")
        try:
            params = json.loads(start.params or b"{}")
            if not isinstance(params, dict):
                raise TypeError("parameters must be a JSON object")
        except (ValueError, TypeError) as exc:
            raise ValueError(f"bad parameters for {start.program}: {exc}") from exc
        if start.initiator_index not in (0, 1):
            raise ValueError("initiator_index must be 0 or 1")
        check_session_id(start.session_id)
        initiator = int(start.initiator_index)
        me = 1 - initiator
        reservation = reservation_of(start.reserve)
        order = (call.peer, self.daemon.name) if initiator == 0 else (self.daemon.name, call.peer)
        metadata = (("x-purpose", call.purpose), ("x-case", call.case))
        # the dealer's reply (with our reserved corrections) arrives while we check the program
        dealer = DealerSession(self.daemon.coordinator_stub(), start.session_id, order, reservation, metadata)
        try:
            program = self._program(start.program, params, call, start.session_id, initiator)
        except (KeyError, TypeError, AttributeError, AssertionError, IndexError) as exc:  # malformed parameters
            dealer.close()
            raise ValueError(f"bad parameters for {start.program}: {type(exc).__name__}: {exc}") from None
        except BaseException:
            dealer.close()
            raise
        channel = ShareServerChannel(requests, peer=call.peer)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                try:
                    correlations = dealer.correlations()
                except grpc.RpcError as exc:
                    raise ServiceError(
                        exc.code(), f"the dealer refused session {start.session_id}: {exc.details()}"
                    ) from None
                summary = program(Party(me, channel, correlations))
                channel.finish({"program": start.program, **summary})
            except BaseException as exc:
                failure.append(exc)
                channel.abort(f"{self.daemon.name} failed: {type(exc).__name__}: {exc}")
            finally:
                dealer.close()

        worker = threading.Thread(target=run, name=f"program-{uuid.uuid4().hex[:6]}", daemon=True)
        worker.start()
        yield from channel.responses()
        worker.join()
        if failure:
            error = failure[0]
            if isinstance(error, ChannelError):
                raise ServiceError(grpc.StatusCode.ABORTED, f"session {start.session_id} with {call.peer}: {error}")
            raise error

    def _program(
        self, name: str, params: dict[str, Any], call: Call, session_id: str, initiator: int
    ) -> Callable[[Party], dict[str, Any]]:
        """Validate a program's parameters (and take the shares it consumes) before any dealing."""
        if name == "selftest-compare":
            try:
                n, seed = int(params["n"]), int(params["seed"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"selftest-compare needs integer n and seed: {exc}") from exc
            if not 0 <= n <= selftest.MAX_SELFTEST_VALUES:
                raise ServiceError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED, f"selftest size {n} over {selftest.MAX_SELFTEST_VALUES}"
                )
            call.rows = n

            def compare(party: Party) -> dict[str, Any]:
                selftest.compare_program(party, n, seed, initiator)
                return {"n": n, "learned": "nothing (shares only)"}

            return compare
        if name in ("rule", "aggregate") and initiator != 0:
            raise ValueError(f"the requester starts a {name} program as party 0")
        if name == "rule":
            return self._rule_program(params, call)
        if name == "aggregate":
            return self._aggregate_program(params, call, session_id)
        raise ServiceError(grpc.StatusCode.UNIMPLEMENTED, f"unknown program {name!r}")

    # ------------------------------------------------------------------ aggregates over a join (P5 compute)
    def _check_aggregate_request(
        self, call: Call, raw: str | bytes | dict[str, Any], rows: int
    ) -> tuple[agg.AggregateRequest, Dataset]:
        """The request against our policy, before anything is computed: the join key (id
        matching) and each of our columns for what the request does with it."""
        try:
            request = (
                agg.AggregateRequest.model_validate(raw)
                if isinstance(raw, dict)
                else agg.AggregateRequest.model_validate_json(raw)
            )
        except ValidationError as exc:
            raise ValueError(f"malformed aggregate request: {format_validation_error(exc, 'request')}") from None
        data = self.daemon.require_dataset(request.peer_dataset)
        if not 0 <= rows <= self.daemon.config.party.max_points_per_request:
            raise ServiceError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{rows} rows: more than {self.daemon.config.party.max_points_per_request}",
            )
        uses = request.uses("peer")
        unknown = sorted(set(uses) - set(data.columns))
        if unknown:
            raise ServiceError(grpc.StatusCode.NOT_FOUND, f"dataset {data.name!r} has no column(s) {unknown}")
        classes = {c: data.spec.schema_.columns[c].classification for c in uses}
        self.daemon.config.policy.check_dataset(
            call.peer, call.purpose, data.name, psi=True, columns=uses, classifications=classes
        )
        if request.reveal_to == "gateway":  # we also consent to the gateway seeing the noised cells
            self.daemon.config.policy.check_gateway(request.gateway, call.peer)
            self.daemon.config.policy.check_dataset(
                request.gateway, call.purpose, data.name, columns=uses, classifications=classes
            )
        else:  # cells between agencies open only above our minimum count (compared on shares), noised if we say so
            grant = self.daemon.config.policy.check_purpose(call.peer, call.purpose)
            if request.min_cell < grant.min_cell:
                raise ServiceError(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"{self.daemon.name} opens cells of at least {grant.min_cell} rows to {call.peer}; "
                    f"the request asks for {request.min_cell}",
                )
            mixed = request.mixed_sides()
            if mixed:  # an OR (or NOT) over both sides lets the requester's own rows fill a cell
                raise ServiceError(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"{self.daemon.name} takes filters between agencies as (our comparisons) AND "
                    f"(yours) only; {mixed!r} mixes both sides",
                )
            if grant.release_epsilon is not None and any(r.side == "initiator" for r in request.summed()):
                raise ServiceError(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"{self.daemon.name} adds noise to releases to {call.peer}: sums of the requester's "
                    f"own columns (whose bounds it declares) are not released with it",
                )
            if grant.release_epsilon is not None and (
                request.epsilon is None or request.epsilon > grant.release_epsilon
            ):
                raise ServiceError(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"{self.daemon.name} releases cells to {call.peer} only noised with epsilon <= "
                    f"{grant.release_epsilon:g}; the request asks for "
                    + ("exact cells" if request.epsilon is None else f"epsilon {request.epsilon:g}"),
                )
        call.rows = rows
        call.detail = (
            f"dataset={data.name} uses={ {c: sorted(u) for c, u in sorted(uses.items())} } "
            f"groups={[str(k) for k in request.group_by]} reveal_to={request.reveal_to}"
        )
        return request, data

    def _check_aggregate(self, request: party_pb2.AggregateCheck, context: Any, call: Call) -> common_pb2.Empty:
        self._check_aggregate_request(call, request.request, int(request.rows))
        return common_pb2.Empty()

    def _aggregate_program(
        self, params: dict[str, Any], call: Call, session_id: str
    ) -> Callable[[Party], dict[str, Any]]:
        """P5 compute as the peer: our shares of the looked-up columns, the request re-checked."""
        try:
            rows, session = int(params["rows"]), params.get("session")
            initiator = {
                str(c): agg.ColumnInfo(str(v["type"]), v.get("min"), v.get("max"), tuple(v.get("labels", ())))
                for c, v in dict(params["initiator"]).items()
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"bad aggregate program parameters: {exc}") from exc
        request, data = self._check_aggregate_request(call, params.get("request", {}), rows)
        schemas: dict[agg.Side, dict[str, agg.ColumnInfo]] = {"initiator": initiator, "peer": self._column_infos(data)}
        request.check(schemas, rows)
        columns = request.peer_columns()
        if session:
            held = self.daemon.sessions.take(str(session), call.peer)
            if (held.dataset, held.columns, held.shares.shape[0], held.source) != (data.name, columns, rows, ""):
                raise ValueError(
                    f"session {session} holds {held.dataset}{list(held.columns)} x {held.shares.shape[0]}, "
                    f"not what the aggregate reads"
                )
            shares = held.shares
        elif columns:
            raise ValueError("the aggregate reads our columns: name the session of their masked decryption")
        else:
            shares = np.zeros((rows, 0), dtype=np.uint64)

        noise = privacy.own_noise(request, schemas, recipient=request.reveal_to == "peer")
        self.daemon.budgets.computation(call, "aggregate")
        if request.reveal_to != "gateway" and request.epsilon is not None:
            self.daemon.budgets.epsilon(call, privacy.release_cost(request, schemas))

        def run(party: Party) -> dict[str, Any]:
            result = agg.aggregate_program(party, request, schemas, rows, shares, noise=noise)
            if isinstance(result, agg.CellShares):  # the gateway fetches it (GetResultShare)
                self.daemon.results.put(session_id, HeldResult(request.gateway, result, rows, time.monotonic()))
                return {"rows": rows, "learned": "nothing (shares only); our noised share waits for the gateway"}
            if not isinstance(result, agg.AggregateResult):
                return {"rows": rows, "learned": "nothing (shares only)"}
            # named by us, inside our state directory: nothing the requester sent is part of the path
            results = self.daemon.config.party.state_dir / "results"
            path = results / f"aggregate-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}.json"
            results.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_atomic(
                path,
                [
                    json.dumps(
                        {"request": request.model_dump(mode="json"), "rows": rows, "cells": result.table(request)},
                        indent=1,
                    ).encode()
                ],
            )
            self.daemon.audit_log.append(
                AuditEvent(
                    peer=call.peer,
                    action="result:aggregate",
                    purpose=call.purpose,
                    case=call.case,
                    protocol="P5",
                    rows=rows,
                    detail=f"session={session_id} cells stored in results/{path.name}",
                )
            )
            return {"rows": rows, "stored": f"results/{path.name}", "groups": len(result.groups)}

        return run

    def _run_aggregate(self, request: party_pb2.AggregateJob, context: Any, call: Call) -> party_pb2.CellShares:
        """For the gateway: our share of the cells (noised by us) as the initiator of a join with
        ``peer``, or over one of our tables alone (computed in the clear, then noised)."""
        try:
            job = agg.AggregateRequest.model_validate_json(request.request)
        except ValidationError as exc:
            raise ValueError(f"malformed aggregate request: {format_validation_error(exc, 'request')}") from None
        if job.reveal_to != "gateway" or job.gateway != call.peer:
            raise ServiceError(
                grpc.StatusCode.PERMISSION_DENIED, f"{call.peer} may only run aggregates it receives itself"
            )
        policy = self.daemon.config.policy
        policy.check_gateway(call.peer)  # a requester naming itself the gateway is refused here
        policy.check_program(call.peer, call.purpose, "aggregate")
        data = self.daemon.require_dataset(job.initiator_dataset)
        uses = job.uses("initiator")
        unknown = sorted(set(uses) - set(data.columns))
        if unknown:
            raise ServiceError(grpc.StatusCode.NOT_FOUND, f"dataset {data.name!r} has no column(s) {unknown}")
        policy.check_dataset(
            call.peer,
            call.purpose,
            data.name,
            columns=uses,
            classifications={c: data.spec.schema_.columns[c].classification for c in uses},
        )
        self.daemon.budgets.computation(call, "aggregate")
        call.detail = (
            f"dataset={data.name} peer={request.peer or '-'} epsilon={job.epsilon} "
            f"groups={[str(k) for k in job.group_by]}"
        )
        if job.single_table:
            if request.peer:
                raise ValueError("an aggregate over one table names no peer")
            schemas: dict[agg.Side, dict[str, agg.ColumnInfo]] = {"initiator": self._column_infos(data), "peer": {}}
            job.check(schemas, len(data.ids))
            values = {c: agg.clamp(data.values(c), schemas["initiator"][c]) for c in uses}
            noise = privacy.own_noise(job, schemas)
            assert noise is not None  # job.reveal_to is the gateway, checked above
            noised = agg.table_cells(job, schemas, values) + noise
            call.rows = len(data.ids)
            return party_pb2.CellShares(
                cells=job.cells(), values=wire.to_message(noised.astype(np.uint64)), rows=len(data.ids)
            )
        client = Client(
            self.daemon.name,
            self.daemon.config.tls,
            self.daemon.config.party.coordinator,
            call.purpose,
            call.case,
            config=self.daemon.config,
            datasets=self.daemon.datasets,
        )
        try:
            shares, session_id, rows = client.aggregate_shares(request.peer, job)
        except RemoteError as exc:
            raise ServiceError(exc.code, str(exc)) from None
        finally:
            client.close()
        call.rows = rows
        return party_pb2.CellShares(
            session_id=session_id, cells=list(shares.cells), values=wire.to_message(shares.values), rows=rows
        )

    def _result_share(self, request: party_pb2.ResultRequest, context: Any, call: Call) -> party_pb2.CellShares:
        check_session_id(request.session_id)
        try:
            held = self.daemon.results.take(request.session_id, call.peer)
        except LookupError:
            raise ServiceError(
                grpc.StatusCode.NOT_FOUND,
                f"no result share of session {request.session_id!r} for "
                f"{call.peer} (expired, fetched already, or not yours)",
            ) from None
        call.rows, call.detail = held.rows, f"session={request.session_id}"
        return party_pb2.CellShares(
            session_id=request.session_id,
            cells=list(held.shares.cells),
            values=wire.to_message(held.shares.values),
            rows=held.rows,
        )

    def _column_infos(self, data: Dataset) -> dict[str, agg.ColumnInfo]:
        return {
            c: agg.ColumnInfo(
                *declared(data, c)[:1], spec.min, spec.max, data.labels(c) if spec.type == "category" else ()
            )
            for c, spec in data.spec.schema_.columns.items()
        }

    def _rule_program(self, params: dict[str, Any], call: Call) -> Callable[[Party], dict[str, Any]]:
        """P4 as co-party: evaluate a rule we approved on the shares our masked decryptions left
        us and those other owners forwarded for the same approved rule and size."""
        try:
            name = str(params["name"])
            applications, slots = int(params["applications"]), int(params["slots"])
            requested = list(params["tables"])
            reveal = [str(n) for n in params.get("reveal", [])]
            raw_rule = dict(params["rule"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"bad rule program parameters: {exc}") from exc
        rule, fingerprint = self._approved_rule(call, name, raw_rule)
        if rule.co_party_for(call.peer) != self.daemon.name:
            raise ServiceError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"rule {name!r} computes with {rule.co_party_for(call.peer)!r}, not {self.daemon.name!r}",
            )
        applications, slots = self._rule_size(call, applications, slots)
        layout = rules.table_columns(rule)
        tables: dict[rules.TableKey, rules.ShareTable] = {}
        consent: dict[str, bool] = {}
        for entry in requested:
            key = (str(entry["owner"]), str(entry["dataset"]))
            try:
                held = self.daemon.sessions.take(check_session_id(str(entry["session"])), call.peer)
            except LookupError as exc:
                raise ServiceError(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None
            if (held.source or self.daemon.name) != key[0] or held.dataset != key[1]:
                raise ValueError(
                    f"session {entry['session']} holds shares of {held.source or self.daemon.name}"
                    f".{held.dataset}, not {key[0]}.{key[1]}"
                )
            if held.source:  # the forwarding owner checked them against its approval of this very rule
                if held.rule != (name, fingerprint, applications, slots):
                    raise ServiceError(
                        grpc.StatusCode.PERMISSION_DENIED,
                        f"{held.source} forwarded session {entry['session']} for rule {held.rule[0]!r} "
                        f"({held.rule[1][:16]}, {held.rule[2]} x {held.rule[3]}), not this one",
                    )
                if held.columns != layout.get(key):
                    raise ValueError(f"session {entry['session']} holds {list(held.columns)}, not what the rule reads")
                consent[held.source] = consent.get(held.source, True) and held.reveal_allowed
            else:
                self._check_own_table(call, name, rule, held, applications, slots)
            tables[key] = rules.ShareTable(held.columns, held.shares)
        missing = sorted(set(layout) - set(tables))
        if missing:
            raise ValueError(f"no shares supplied for {missing}")
        own_consent = self.daemon.config.policy.peer(call.peer).reveal_clauses
        for clause_name in reveal:  # a clause bit is revealed only with the consent of the owner it reads
            clause = rule.clauses.get(clause_name)
            if clause is None or not clause.reveal or clause.is_predicate:
                raise ValueError(f"clause {clause_name!r} is not a revealable column clause of this rule")
            owner_ok = own_consent if clause.owner == self.daemon.name else consent.get(clause.owner, False)
            if not owner_ok:
                raise ServiceError(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"{clause.owner} does not let {call.peer} see clause {clause_name!r}",
                )
        self.daemon.budgets.computation(call, "rule")
        call.rows = applications
        call.detail = f"rule={name} fingerprint={fingerprint[:16]} applications={applications} slots={slots}"

        def evaluate(party: Party) -> dict[str, Any]:
            rules.rule_program(party, rule, tables, applications, slots, requester=0, reveal=reveal)
            return {"applications": applications, "revealed_clauses": reveal, "learned": "nothing (shares only)"}

        return evaluate
