"""The requester's Python SDK: talk to owners' daemons with this agency's certificate.

    client = Client.from_config("housing.toml", purpose="public-rental-housing", case="HZ-2026-0001")
    result = client.psi_cardinality("tax", "income", my_ids)

Every call carries the purpose code and case reference as metadata; owners check them against
their policy and write them to their audit logs. Party names resolve to endpoints through the
coordinator's directory.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import numpy as np
from gmpy2 import mpz

from mpc.audit import AuditEvent, AuditLog, AuditLogError, load_or_create_signing_key
from mpc.crypto.curve25519 import BlindedQuery, OprfClient
from mpc.crypto.obfuscators import ObfuscatorPool, ShortExponentObfuscator, parallel_obfuscators
from mpc.crypto.paillier import PaillierCiphertext, PaillierPublicKey
from mpc.data.sources import Dataset, load_dataset
from mpc.policy import PolicyError
from mpc.protocols import aggregate as agg
from mpc.protocols import lookup, oprf_filter, planner, privacy, psi, rules, selftest
from mpc.sharing.channel import ChannelError
from mpc.sharing.dealer import Reservation
from mpc.sharing.runtime import Party
from parties.net.dealer_client import DealerSession, reservation_message
from parties.net.points import split_fixed, split_points
from parties.net.share_channel import ShareClientChannel
from parties.net.tls import OwnCertificateError, TlsConfig, check_own_certificate, secure_channel
from parties.party.config import PartyConfig, load_party_config
from protos import common_pb2, coordinator_pb2_grpc, party_pb2, party_pb2_grpc

__all__ = [
    "OPRF_CHUNK",
    "POOLED_OBFUSCATORS",
    "SCHEMA_SECONDS",
    "Client",
    "IntersectionSum",
    "Progress",
    "PsiResult",
    "RemoteError",
]

log = logging.getLogger("mpc.sdk")
T = TypeVar("T")
SCHEMA_SECONDS = 30.0  # how long an owner's dataset schemas are reused
POOLED_OBFUSCATORS = 64  # per table key and process, for the masks of point queries
OPRF_CHUNK = 16_384  # ids blinded, evaluated and unblinded per step of a pipelined OPRF


class RemoteError(RuntimeError):
    """A refused or failed remote call: the party, the gRPC status and the callee's message."""

    def __init__(self, party: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{party}: {code.name}: {details}")
        self.party, self.code, self.details = party, code, details


@dataclass(frozen=True)
class PsiResult:
    """P1 ECDH-PSI: how many of our distinct ids the owner holds, and (intersection mode) which.
    Bytes are what crossed the wire each way (message payloads)."""

    intersection: int
    requester_count: int
    owner_count: int
    seconds: float
    matched: list[str] | None = None  # intersection mode: our ids the owner holds, in our order
    bytes_sent: int = 0
    bytes_received: int = 0


@dataclass(frozen=True)
class IntersectionSum:
    """Private join and compute: the intersection's size and each column's sum over it (None:
    withheld, the intersection was under the minimum cell size). ``owner_count`` is the owner's
    row count as its catalogue shows it (rounded)."""

    intersection: int | None
    sums: dict[str, int | None]
    requester_count: int
    owner_count: int
    seconds: float


Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class _Fetched:
    """A lookup between fetching the encrypted rows and the owner's masked decryption."""

    party: str  # as addressed
    owner: str  # its name
    dataset: str
    columns: tuple[str, ...]
    plan: planner.LookupPlan
    layout: lookup.RowLayout
    public_key: PaillierPublicKey
    selected: list[tuple[bytes, PaillierCiphertext] | None]  # (tag, ciphertext) per row, None if absent
    tokens: tuple[bytes, ...]  # the owner's fetch tokens, cited by the masked decryption (once)


class Client:
    """The requester's side. With ``audit`` (``from_config`` opens ``STATE/requests.log``), every
    operation is recorded on our side too: owner, purpose, case, row counts, outcome; never ids,
    values or results."""

    def __init__(
        self,
        name: str,
        tls: TlsConfig,
        coordinator: str | None,
        purpose: str = "",
        case: str = "",
        audit: AuditLog | None = None,
        config: PartyConfig | None = None,
        datasets: dict[str, Dataset] | None = None,
    ) -> None:
        self.name, self.tls, self.coordinator = name, tls, coordinator
        self.purpose, self.case = purpose, case
        self.audit = audit
        self.config = config  # our own datasets and policy (aggregates over a join with our data)
        self._own: dict[str, Dataset] = dict(datasets or {})  # a daemon acting as requester passes its own
        self._channels: dict[str, grpc.Channel] = {}
        self.plans: list[planner.LookupPlan] = []  # the path each lookup took, newest last
        self._endpoints: dict[str, str] = {}
        self._capabilities: dict[str, party_pb2.Capabilities] = {}
        self._filters: dict[tuple[str, str], tuple[int, set[bytes]]] = {}  # P2: (epoch, tags) per predicate
        self._schemas: dict[str, tuple[float, party_pb2.DatasetList]] = {}

    @classmethod
    def from_config(cls, path: str | Path, purpose: str = "", case: str = "") -> Client:
        config = load_party_config(Path(path))
        state = config.party.state_dir
        try:
            state.mkdir(parents=True, exist_ok=True, mode=0o700)
            audit: AuditLog | None = AuditLog(
                state / "requests.log", load_or_create_signing_key(state / "audit-signing.pem")
            )
        except AuditLogError as exc:  # another client of this agency holds the log
            log.warning("requests are not recorded locally", extra={"fields": {"reason": str(exc)}})
            audit = None
        return cls(config.party.name, config.tls, config.party.coordinator, purpose, case, audit, config)

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
        if self.audit is not None:
            self.audit.close()
            self.audit = None

    @contextmanager
    def _recorded(self, action: str, peer: str, rows: int, protocol: str) -> Iterator[None]:
        started, outcome, detail = time.perf_counter(), "OK", ""
        try:
            yield
        except RemoteError as exc:
            outcome, detail = exc.code.name, f"{exc.party}: {exc.details}"[:300]
            raise
        except Exception as exc:
            outcome, detail = type(exc).__name__, str(exc)[:300]
            raise
        finally:
            if self.audit is not None:
                self.audit.append(
                    AuditEvent(
                        peer=peer,
                        action=f"request:{action}",
                        purpose=self.purpose,
                        case=self.case,
                        protocol=protocol,
                        rows=rows,
                        outcome=outcome,
                        detail=detail,
                        duration_ms=round((time.perf_counter() - started) * 1000, 3),
                    )
                )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing
    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return (("x-purpose", self.purpose), ("x-case", self.case))

    def _channel(self, target: str) -> grpc.Channel:
        if not self._channels:
            try:
                check_own_certificate(self.tls)
            except OwnCertificateError as exc:
                raise RemoteError("(local)", grpc.StatusCode.UNAUTHENTICATED, str(exc)) from None
        if target not in self._channels:
            self._channels[target] = secure_channel(target, self.tls)
        return self._channels[target]

    def coordinator_stub(self) -> Any:
        if not self.coordinator:
            raise ValueError("no coordinator configured")
        return coordinator_pb2_grpc.CoordinatorStub(self._channel(self.coordinator))

    def endpoint(self, party: str) -> str:
        """A party's address: ``host:port`` as given, or a name looked up in the directory (once
        per client)."""
        if ":" in party:
            return party
        if party in self._endpoints:
            return self._endpoints[party]
        try:
            directory = self.coordinator_stub().GetDirectory(common_pb2.Empty(), metadata=self._metadata(), timeout=10)
        except grpc.RpcError as exc:
            raise RemoteError("coordinator", exc.code(), exc.details() or "") from None
        self._endpoints.update({str(e.party): str(e.endpoint) for e in directory.parties})
        if party in self._endpoints:
            return self._endpoints[party]
        raise LookupError(f"party {party!r} is not in the coordinator's directory")

    def party_stub(self, party: str) -> Any:
        return party_pb2_grpc.PartyStub(self._channel(self.endpoint(party)))

    def _call(self, party: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, metadata=self._metadata(), **kwargs)
        except grpc.RpcError as exc:
            raise RemoteError(party, exc.code(), exc.details() or "") from None

    # ------------------------------------------------------------------ operations
    def capabilities(self, party: str) -> party_pb2.Capabilities:
        """The party's protocols, keys and limits (asked once per client)."""
        reply: party_pb2.Capabilities | None = self._capabilities.get(party)
        if reply is None:
            reply = self._call(party, self.party_stub(party).GetCapabilities, common_pb2.Empty(), timeout=10)
            self._capabilities[party] = reply
        return reply

    def list_datasets(self, party: str) -> party_pb2.DatasetList:
        reply: party_pb2.DatasetList = self._call(
            party, self.party_stub(party).ListDatasets, common_pb2.Empty(), timeout=10
        )
        return reply

    def psi_cardinality(
        self, party: str, dataset: str, ids: Sequence[str], progress: Progress | None = None
    ) -> PsiResult:
        """P1 cardinality: how many of ``ids`` the owner's dataset holds. The owner learns only
        how many distinct ids we sent; we learn the count and the owner's row count."""
        return self.set_intersection(party, dataset, ids, "cardinality", progress)

    def psi_intersection(
        self, party: str, dataset: str, ids: Sequence[str], progress: Progress | None = None
    ) -> PsiResult:
        """P1 intersection: which of ``ids`` the owner's dataset holds (:attr:`PsiResult.matched`).
        The owner learns only how many distinct ids we sent."""
        return self.set_intersection(party, dataset, ids, "intersection", progress)

    def psi_owner_tags(self, party: str, dataset: str, ids: Sequence[str]) -> PsiResult:
        """PSI against the owner's per-dataset OPRF key (the design's repeated-batches variant, as
        openmined-psi's reusable setup message): our ids' tags by the OPRF (the owner sees blinded
        points), its rows' tags in a random order, matched here. Three curve operations per id of
        ours and none per row of theirs (its tags are cached), where fresh-key ECDH-PSI needs two
        per element on each side; but the owner's tags stay valid until its key rotates (every
        epoch), so until then we could test further ids against them by the (rate-limited) OPRF.
        Needs the batch grant. An epoch that ends between the two steps makes us ask again once."""
        with self._recorded("psi-owner-tags", party, len(ids), "P1"):
            started = time.perf_counter()
            caps = self.capabilities(party)
            real = list(dict.fromkeys(ids))
            mine, epoch = self._oprf_tags(party, caps.party, dataset, real)
            try:
                owner = self._owner_tags(party, dataset, epoch)
            except RemoteError as exc:
                if exc.code != grpc.StatusCode.FAILED_PRECONDITION:  # not an ended epoch
                    raise
                self._schemas.pop(party, None)
                mine, epoch = self._oprf_tags(party, caps.party, dataset, real)
                owner = self._owner_tags(party, dataset, epoch)
            ours = psi.as_tags(b"".join(mine[i] for i in real))
            found = psi.intersection(owner, ours)
            matched = [i for i, f in zip(real, found.tolist(), strict=True) if f]
            return PsiResult(len(matched), len(real), len(owner), time.perf_counter() - started, matched)

    def _owner_tags(self, party: str, dataset: str, epoch: int) -> np.ndarray:
        """Every row's tag under the owner's key of ``epoch`` (shuffled by the owner)."""
        theirs: list[np.ndarray] = []
        try:
            for batch in self.party_stub(party).GetTags(
                party_pb2.TagsRequest(dataset=dataset, epoch=epoch), metadata=self._metadata()
            ):
                theirs.append(psi.as_tags(batch.tags))
        except grpc.RpcError as exc:
            raise RemoteError(party, exc.code(), exc.details() or "") from None
        return np.concatenate(theirs) if theirs else np.zeros(0, np.uint64)

    def set_intersection(
        self, party: str, dataset: str, ids: Sequence[str], mode: psi.Mode, progress: Progress | None = None
    ) -> PsiResult:
        """ECDH-PSI with fresh keys (:mod:`mpc.protocols.psi`), streamed in chunks: our points go
        out while the owner's come in, and both sides raise them on every core. ``progress`` is
        called with (points done, points in all) as our side works through them."""
        with self._recorded(f"psi-{mode}", party, len(ids), "P1"):
            return self._psi(party, dataset, ids, mode, progress)

    def _psi(
        self, party: str, dataset: str, ids: Sequence[str], mode: psi.Mode, progress: Progress | None
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
                        points=party_pb2.PointBatch(
                            points=b"".join(requester.encrypt(part)), count=part.stop - part.start
                        )
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
            for message in self.party_stub(party).PsiRound(requests(), metadata=self._metadata()):
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
        matched = (
            [i for i, f in zip(requester.ids, found.tolist(), strict=True) if f] if mode == "intersection" else None
        )
        return PsiResult(int(found.sum()), mine, owner_count, time.perf_counter() - started, matched, sent[0], received)

    def selftest_compare(self, party: str, values: np.ndarray, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
        """Secret-shared ``values < public_values(seed)`` with ``party`` as co-party, the
        coordinator dealing. Returns the bits and what the co-party reported learning."""
        name = party if ":" not in party else self.capabilities(party).party
        dealer = self._dealer_session(name, selftest.compare_reservation(len(values)))
        return self._run_program(
            party,
            dealer,
            "selftest-compare",
            {"n": len(values), "seed": seed},
            lambda p: _revealed(selftest.compare_program(p, len(values), seed, 0, values)),
        )

    def _dealer_session(self, co_party: str, reservation: Reservation, session_id: str | None = None) -> DealerSession:
        """Open a dealer session with ``co_party`` (by certificate name) for a program that takes
        ``reservation``; the call runs while we go on (see :meth:`_run_program`)."""
        return DealerSession(
            self.coordinator_stub(),
            session_id or uuid.uuid4().hex,
            (self.name, co_party),
            reservation,
            self._metadata(),
        )

    def _run_program(
        self, party: str, dealer: DealerSession, program: str, params: dict[str, Any], body: Callable[[Party], T]
    ) -> tuple[T, dict[str, Any]]:
        """Run ``body`` as party 0 against ``program`` on the co-party's daemon, the coordinator dealing."""
        session_id = dealer.session_id
        start = party_pb2.ShareStart(
            session_id=session_id,
            program=program,
            params=json.dumps(params).encode(),
            initiator_index=0,
            reserve=reservation_message(dealer.reservation),
        )
        channel = ShareClientChannel(self.party_stub(party), start, peer=dealer.parties[1], metadata=self._metadata())
        try:
            try:
                correlations = dealer.correlations()
            except grpc.RpcError as exc:
                raise RemoteError("coordinator", exc.code(), exc.details() or "") from None
            bits = body(Party(0, channel, correlations))
        except ChannelError as exc:
            channel.abort(f"{self.name} gave up: {exc}")
            # the co-party's own status when its refusal or failure ended the stream, else ABORTED
            raise RemoteError(
                party, channel.failed_with or grpc.StatusCode.ABORTED, f"session {session_id}: {exc}"
            ) from None
        except BaseException as exc:
            channel.abort(f"{self.name} failed: {type(exc).__name__}")
            raise
        finally:
            dealer.close()
        channel.close()
        return bits, channel.result or {}

    def plan_lookup(
        self,
        party: str,
        dataset: str,
        columns: Sequence[str],
        rows: int,
        distinct: int,
        force: planner.Path | None = None,
    ) -> planner.LookupPlan:
        """Which path (P3 bucketed, P1 whole table) a lookup of ``rows`` rows would take at ``party``."""
        caps, schema = self.capabilities(party), self._schema(party, dataset)
        layout = self._layout(schema, columns, caps.paillier_bits)
        return self._plan(caps.party, schema, layout, rows, distinct, force)

    @staticmethod
    def _plan(
        owner: str,
        schema: party_pb2.DatasetSchema,
        layout: lookup.RowLayout,
        rows: int,
        distinct: int,
        force: planner.Path | None,
    ) -> planner.LookupPlan:
        try:
            return planner.plan_lookup(
                owner,
                schema.name,
                rows,
                distinct,
                schema.rows,
                schema.bucket_bits,
                layout.rows_per_plaintext,
                schema.batch,
                layout.modulus_bits,
                force,
            )
        except PermissionError as exc:
            raise RemoteError(owner, grpc.StatusCode.PERMISSION_DENIED, str(exc)) from None

    def _listing(self, party: str) -> party_pb2.DatasetList:
        """What the owner grants us (asked at most every ``SCHEMA_SECONDS``; a table that changed
        meanwhile is caught by its layout check)."""
        asked, listing = self._schemas.get(party, (0.0, None))
        if listing is None or time.monotonic() - asked > SCHEMA_SECONDS:
            listing = self.list_datasets(party)
            self._schemas[party] = (time.monotonic(), listing)
        return listing

    def _schema(self, party: str, dataset: str) -> party_pb2.DatasetSchema:
        """The dataset's schema as the owner grants it to us."""
        listing = self._listing(party)
        schema = next((d for d in listing.datasets if d.name == dataset), None)
        if schema is None:
            raise RemoteError(party, grpc.StatusCode.NOT_FOUND, f"{party} grants us no dataset {dataset!r}")
        return schema

    @staticmethod
    def _layout(
        schema: party_pb2.DatasetSchema,
        columns: Sequence[str],
        modulus_bits: int,
    ) -> lookup.RowLayout:
        specs = {c.name: c for c in schema.columns}
        unknown = [c for c in columns if c not in specs]
        if unknown:
            raise RemoteError(
                schema.name, grpc.StatusCode.NOT_FOUND, f"dataset {schema.name!r} has no column(s) {unknown}"
            )
        declared = [_declared(specs[c]) for c in columns]
        return lookup.RowLayout.for_columns(list(columns), declared, modulus_bits)

    def lookup_shares(
        self,
        party: str,
        dataset: str,
        columns: Sequence[str],
        ids: Sequence[str | None],
        path: planner.Path | None = None,
    ) -> tuple[str, str, np.ndarray, np.ndarray]:
        """Secret-share the owner's ``columns`` of each id (None: a padding row) with the owner.

        Returns (owner name, session id, our shares (len(ids), len(columns)), presence: 1 where the
        owner has the id, as we learn from the tags; 0 for absent ids and padding).
        The owner keeps its shares under the session id for the program that follows. The path is
        planned (:meth:`plan_lookup`, recorded in :attr:`plans`) unless forced: P3 fetches the
        buckets our ids fall in (the owner learns the buckets and the row count), P1 the whole
        table (the owner learns each row's position class and the row count).
        """
        return self._decrypt_lookup(self._fetch_lookup(party, dataset, columns, ids, path))

    def _fetch_lookup(
        self, party: str, dataset: str, columns: Sequence[str], ids: Sequence[str | None], path: planner.Path | None
    ) -> _Fetched:
        """Steps 1 and 2 of a lookup: plan, OPRF, and the encrypted rows our ids select. (An owner
        encrypts what it has not yet encrypted here, which may take minutes the first time.) When
        the owner refuses the fetch as FAILED_PRECONDITION (the epoch of our tags ended meanwhile,
        or its table changed) we ask again once, from the OPRF step."""
        try:
            return self._fetch_once(party, dataset, columns, ids, path)
        except RemoteError as exc:
            if exc.code != grpc.StatusCode.FAILED_PRECONDITION:
                raise
        self._schemas.pop(party, None)
        return self._fetch_once(party, dataset, columns, ids, path)

    def _fetch_once(
        self, party: str, dataset: str, columns: Sequence[str], ids: Sequence[str | None], path: planner.Path | None
    ) -> _Fetched:
        stub = self.party_stub(party)
        caps = self.capabilities(party)
        real = list(dict.fromkeys(i for i in ids if i is not None))
        schema = self._schema(party, dataset)
        layout = self._layout(schema, columns, caps.paillier_bits)
        plan = self._plan(caps.party, schema, layout, len(ids), len(real), path)
        # 1. OPRF: the owner's tag of each of our ids, without showing it the ids (in its current epoch).
        tag_of, epoch = self._oprf_tags(party, caps.party, dataset, real)
        # 2. The encrypted rows: the buckets our tags fall in (P3) or the whole table (P1).
        if plan.path == "P1":
            requests = [party_pb2.BucketRequest(dataset=dataset, columns=list(columns), whole_table=True, epoch=epoch)]
        else:
            # (with no id of ours, bucket 0 alone: the table's key masks the padding)
            buckets = sorted({lookup.bucket_of(t, schema.bucket_bits) for t in tag_of.values()}) or [0]
            requests = [
                party_pb2.BucketRequest(dataset=dataset, columns=list(columns), bucket=b, epoch=epoch) for b in buckets
            ]
        found, public_key, tokens = self._fetch_rows(
            party, stub, requests, layout, schema.bucket_bits, set(tag_of.values())
        )
        self.plans.append(plan)
        selected = [found.get(tag_of[i]) if i is not None else None for i in ids]
        return _Fetched(party, caps.party, dataset, tuple(columns), plan, layout, public_key, selected, tokens)

    def _oprf_tags(self, party: str, owner: str, dataset: str, ids: Sequence[str]) -> tuple[dict[str, bytes], int]:
        """The owner's OPRF tag of each of our distinct ``ids`` (it sees blinded points only), and
        the epoch of the key it applied (its current one)."""
        if not ids:  # nothing to evaluate: the current epoch as the owner's catalogue gives it
            return {}, int(self._schema(party, dataset).epoch)
        client = OprfClient(domain=oprf_filter.dataset_domain(owner, dataset))
        tags, epoch = self._oprf(party, client, ids, party_pb2.PointBatch(dataset=dataset))
        return dict(zip(ids, tags, strict=True)), epoch

    def intersection_sum(
        self, party: str, dataset: str, columns: Sequence[str], ids: Sequence[str], min_cell: int = agg.DEFAULT_MIN_CELL
    ) -> IntersectionSum:
        """Private join and compute (intersection-sum): how many of ``ids`` the owner holds and the
        sum of each of ``columns`` over them, computed as an aggregate on secret shares (the
        owner's columns looked up and aligned to our ids, summed on shares, opened to us only if
        the count reaches the minimum cell size of both sides; else every figure is None). The
        owner learns how many ids we asked about and the intersection's size; nothing it
        decrypts comes back to us."""
        with self._recorded("intersection-sum", party, len(ids), "P1/P5"):
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
            result, _, _ = self._aggregate(party, request, ids=real)
            assert isinstance(result, agg.AggregateResult)
            cells = result.table(request)[0]
            count = cells["count"]
            return IntersectionSum(
                None if count is None else int(count),
                {c: None if cells[f"sum(peer.{c})"] is None else int(cells[f"sum(peer.{c})"] or 0) for c in columns},
                len(real),
                int(self._schema(party, dataset).rows),
                time.perf_counter() - started,
            )

    # ------------------------------------------------------------------ aggregates over a join (P5 compute)
    def own_dataset(self, name: str) -> Dataset:
        """One of our own datasets, loaded from our configuration (once per client)."""
        if name not in self._own:
            if self.config is None:
                raise ValueError("this client has no configuration of its own datasets (use Client.from_config)")
            spec = next((d for d in self.config.datasets if d.name == name), None)
            if spec is None:
                raise LookupError(f"{self.name} has no dataset {name!r} in its configuration")
            self._own[name] = load_dataset(spec, self.config.base_dir)
        return self._own[name]

    def aggregate(self, peer: str, request: agg.AggregateRequest) -> agg.AggregateResult | None:
        """COUNT / SUM / MEAN per group over our dataset joined with the peer's (see
        :mod:`mpc.protocols.aggregate`). Both sides' policies are checked before anything is
        computed: ours for our columns (what the peer would see of them), the peer's by
        ``CheckAggregate``. Returns the cells when they are revealed to us, None when the request
        reveals them to the peer (which keeps them)."""
        if request.reveal_to == "gateway":
            raise ValueError("cells for the gateway are released through the gateway (mpc-gateway), not here")
        with self._recorded("aggregate", peer, 0, "P1/P5"):
            result, _, _ = self._aggregate(peer, request)
            assert not isinstance(result, agg.CellShares)
            return result

    def aggregate_shares(self, peer: str, request: agg.AggregateRequest) -> tuple[agg.CellShares, str, int]:
        """For the gateway the request names: our share of every cell plus our own noise, the
        session the peer keeps its share under, and the rows computed on (the intersection)."""
        with self._recorded("aggregate", peer, 0, "P1/P5"):
            result, session_id, rows = self._aggregate(peer, request)
            assert isinstance(result, agg.CellShares)
            return result, session_id, rows

    def _aggregate(
        self,
        peer: str,
        request: agg.AggregateRequest,
        ids: Sequence[str] | None = None,
    ) -> tuple[agg.AggregateResult | agg.CellShares | None, str, int]:
        """The aggregate over one of our datasets (or, with ``ids``, over a list of our ids with
        no columns of ours) joined with the peer's."""
        mine = self.own_dataset(request.initiator_dataset) if ids is None else None
        our_ids = mine.ids if mine is not None else list(ids or ())
        caps, schema = self.capabilities(peer), self._schema(peer, request.peer_dataset)
        schemas: dict[agg.Side, dict[str, agg.ColumnInfo]] = {
            "initiator": {} if mine is None else {c: _own_info(mine, c) for c in mine.spec.schema_.columns},
            "peer": {
                c.name: agg.ColumnInfo(
                    *_declared(c)[:1],
                    c.min if c.has_bounds else None,
                    c.max if c.has_bounds else None,
                    tuple(c.categories),
                )
                for c in schema.columns
            },
        }
        rows = len(our_ids)
        release = self._listing(peer).release_epsilon
        if request.reveal_to == "initiator" and request.epsilon is None and release > 0:  # the owner requires noise
            request = request.model_copy(update={"epsilon": release})
        request.check(schemas, rows)
        uses = request.uses("initiator")
        if mine is not None:  # what our own policy lets the peer learn of our columns
            assert self.config is not None
            try:
                self.config.policy.check_dataset(
                    caps.party,
                    self.purpose,
                    mine.name,
                    psi=True,
                    columns=uses,
                    classifications={c: mine.spec.schema_.columns[c].classification for c in uses},
                )
            except PolicyError as exc:
                raise RemoteError("(local)", grpc.StatusCode.PERMISSION_DENIED, f"our own policy: {exc}") from None
        self._call(
            peer,
            self.party_stub(peer).CheckAggregate,
            party_pb2.AggregateCheck(request=request.model_dump_json().encode(), rows=rows),
            timeout=30,
        )
        columns = request.peer_columns()
        session_id: str | None = None
        # Only the rows of the intersection go on: the peer learns its size (as the design's P5
        # allows) and we spare the decryptions and gates of rows that could not count.
        groups = len(request.groups(schemas))
        if columns:  # the peer's columns secret-shared and aligned to our matched rows (P1 or P3, as planned)
            fetched = self._fetch_lookup(peer, request.peer_dataset, columns, our_ids, None)
            keep = np.array([i for i, c in enumerate(fetched.selected) if c is not None], dtype=np.int64)
            fetched = dataclasses.replace(fetched, selected=[fetched.selected[i] for i in keep.tolist()])
            dealer = self._dealer_session(fetched.owner, agg.aggregate_reservation(request, len(keep), groups))
            try:
                _, session_id, shares, _ = self._decrypt_lookup(fetched)
            except BaseException:
                dealer.close()
                raise
        else:  # nothing of theirs on shares: the intersection by ECDH-PSI
            found = set(self._psi(peer, request.peer_dataset, our_ids, "intersection", None).matched or [])
            keep = np.array([k for k, i in enumerate(our_ids) if i in found], dtype=np.int64)
            shares = np.zeros((len(keep), 0), dtype=np.uint64)
            dealer = self._dealer_session(caps.party, agg.aggregate_reservation(request, len(keep), groups))
        rows = len(keep)
        used = sorted(uses)
        inputs = agg.InitiatorInputs(
            np.ones(rows, dtype=np.uint8),
            {c: agg.clamp(mine.values(c)[keep], schemas["initiator"][c]) for c in used} if mine is not None else {},
        )
        params = {
            "request": request.model_dump(mode="json"),
            "rows": rows,
            "session": session_id,
            "initiator": {c: dataclasses.asdict(schemas["initiator"][c]) for c in used},
        }
        noise = privacy.own_noise(request, schemas, recipient=request.reveal_to == "initiator")
        result, _ = self._run_program(
            peer,
            dealer,
            "aggregate",
            params,
            lambda p: agg.aggregate_program(p, request, schemas, rows, shares, inputs, noise),
        )
        return result, dealer.session_id, rows

    def _decrypt_lookup(self, fetched: _Fetched) -> tuple[str, str, np.ndarray, np.ndarray]:
        """Step 3: mask (absent ids and padding select nothing); the owner decrypts and keeps its
        shares under a new session id."""
        pk, layout, selected = fetched.public_key, fetched.layout, fetched.selected
        ciphertexts = [c[1] if c else None for c in selected]
        if fetched.plan.path == "P1":
            fixed = np.full(len(selected), -1, dtype=np.int64)
            matched = [i for i, c in enumerate(selected) if c is not None]
            fixed[matched] = layout.positions([c[0] for c in selected if c is not None])
            plan = lookup.plan_groups(fixed, layout.rows_per_plaintext)
            masked, mine = lookup.mask_groups(pk, layout, ciphertexts, plan, self._obfuscators(pk, plan.count))
            groups: lookup.Groups | None = plan
        else:
            groups = None
            masked, mine = lookup.mask_rows(pk, layout, ciphertexts, self._obfuscators(pk, len(selected)))
        session_id = uuid.uuid4().hex
        stub = self.party_stub(fetched.party)
        self._call(
            fetched.party,
            stub.MaskedDecrypt,
            self._masked_messages(
                session_id,
                fetched.dataset,
                fetched.columns,
                fetched.plan.path,
                masked,
                groups,
                len(selected),
                pk,
                fetched.tokens,
            ),
            timeout=3600,
        )
        present = np.array([c is not None for c in selected], dtype=np.uint8)
        return fetched.owner, session_id, mine, present

    def _fetch_rows(
        self,
        party: str,
        stub: Any,
        requests: Sequence[party_pb2.BucketRequest],
        layout: lookup.RowLayout,
        bucket_bits: int,
        wanted: set[bytes],
    ) -> tuple[dict[bytes, tuple[bytes, PaillierCiphertext]], PaillierPublicKey, tuple[bytes, ...]]:
        """Stream encrypted rows; keep (tag, ciphertext) of the tags we want, check the layout;
        with the table's own public key (each answer's first message carries it: the same in all)
        and the fetch tokens our masked decryption cites."""
        want = np.sort(np.frombuffer(b"".join(wanted), dtype="<u8"))
        found: dict[bytes, tuple[bytes, PaillierCiphertext]] = {}
        tokens: list[bytes] = []
        encoded: bytes | None = None
        public_key: PaillierPublicKey | None = None
        for request in requests:
            try:
                for message in stub.GetEncryptedBucket(request, metadata=self._metadata()):
                    if message.columns:
                        key = message.paillier_public_key
                        if (
                            tuple(message.columns),
                            tuple(message.value_bits),
                            tuple(message.minimums),
                            message.rows_per_plaintext,
                            message.bucket_bits,
                        ) != (
                            layout.columns,
                            layout.value_bits,
                            layout.minimums,
                            layout.rows_per_plaintext,
                            bucket_bits,
                        ) or key != (encoded or key):
                            self._schemas.pop(party, None)
                            raise RemoteError(
                                party,
                                grpc.StatusCode.FAILED_PRECONDITION,
                                "the owner's table changed since we read its schema (layout, buckets or "
                                "key); try again",
                            )
                        encoded, public_key = key, self._paillier_key(key)
                        tokens.append(message.fetch_token)
                        if public_key.bits != layout.modulus_bits:
                            raise RemoteError(
                                party,
                                grpc.StatusCode.DATA_LOSS,
                                f"a {public_key.bits}-bit table key for a {layout.modulus_bits}-bit layout",
                            )
                    if public_key is None:
                        raise RemoteError(party, grpc.StatusCode.DATA_LOSS, "encrypted rows before the table's key")
                    width = public_key.ciphertext_bytes
                    # each access to a bytes field copies it: read each once per message
                    tag_bytes, blob = message.tags, message.ciphertexts
                    tags = np.frombuffer(tag_bytes, dtype="<u8")
                    if len(tags) != message.count or len(blob) != message.count * width:
                        raise RemoteError(party, grpc.StatusCode.DATA_LOSS, "malformed encrypted rows")
                    if not len(want):
                        continue
                    nearest = want[
                        np.minimum(np.searchsorted(want, tags), len(want) - 1)
                    ]  # np.isin re-sorts `want` per call
                    for k in np.flatnonzero(nearest == tags).tolist():
                        tag = tag_bytes[8 * k : 8 * k + 8]
                        found[tag] = (tag, public_key.ciphertext_from_bytes(blob[k * width : (k + 1) * width]))
            except grpc.RpcError as exc:
                raise RemoteError(party, exc.code(), exc.details() or "") from None
        if public_key is None:
            raise RemoteError(party, grpc.StatusCode.DATA_LOSS, "no encrypted rows came back")
        return found, public_key, tuple(tokens)

    @staticmethod
    def _obfuscators(public_key: PaillierPublicKey, count: int) -> list[Any] | None:
        """Mask obfuscators on every core for large batches (None: the key's own source)."""
        return parallel_obfuscators(public_key, count) if count >= 256 else None

    @staticmethod
    def _masked_messages(
        session_id: str,
        dataset: str,
        columns: Sequence[str],
        path: str,
        masked: Sequence[PaillierCiphertext],
        groups: lookup.Groups | None,
        rows: int,
        public_key: PaillierPublicKey,
        tokens: Sequence[bytes],
    ) -> Iterator[party_pb2.MaskedRows]:
        yield party_pb2.MaskedRows(
            session_id=session_id,
            dataset=dataset,
            columns=list(columns),
            path=path,
            rows=rows if groups is not None else 0,
            fetch_tokens=list(tokens),
        )
        step = 16_384
        for start in range(0, len(masked), step):
            part = list(masked[start : start + step])
            yield party_pb2.MaskedRows(ciphertexts=public_key.ciphertexts_to_bytes(part), count=len(part))
        if groups is not None:
            for start in range(0, rows, 1 << 20):
                end = start + (1 << 20)
                yield party_pb2.MaskedRows(
                    groups=groups.groups[start:end].astype("<i4").tobytes(),
                    positions=groups.positions[start:end].astype("<i4").tobytes(),
                )

    def check_eligibility(
        self, rule: rules.Rule, applications: Sequence[rules.Application], path: planner.Path | None = None
    ) -> np.ndarray:
        """One bit per application; see :meth:`check_eligibility_with_reasons`."""
        return self.check_eligibility_with_reasons(rule, applications, reasons=False, path=path)[0]

    def check_eligibility_with_reasons(
        self,
        rule: rules.Rule,
        applications: Sequence[rules.Application],
        reasons: bool = True,
        path: planner.Path | None = None,
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The bits, and the bits of the clauses flagged ``reveal`` whose owners consent (reason
        codes for citizens); recorded in our own audit log (counts only). Each owner's lookup
        path is planned unless ``path`` forces one; :attr:`plans` says which was taken and why."""
        self.plans = []
        with self._recorded("eligibility", ",".join(rule.owners()), len(applications), "P1/P2/P3/P4"):
            reveal: list[str] = []
            if reasons:
                consent = {owner: self.list_datasets(owner).reveal_clauses for owner in rule.owners()}
                reveal = [n for n, c in rule.clauses.items() if c.reveal and consent[c.owner]]
            revealed: dict[str, np.ndarray] = {}
            bits = self._check_eligibility(rule, applications, reveal, revealed, path)
            return bits, revealed

    def _check_eligibility(
        self,
        rule: rules.Rule,
        applications: Sequence[rules.Application],
        reveal: Sequence[str] = (),
        revealed: dict[str, np.ndarray] | None = None,
        path: planner.Path | None = None,
    ) -> np.ndarray:
        """Lookups (P3 or P1, planned per owner) of every household member at every owner whose
        table a household clause reads (of the applicant alone elsewhere), then P4 on shares
        with the rule's co-party (the owner of its first clause; the other owners forward their
        shares to it); one bit per application, revealed to us only.

        Households are padded to the largest one in the batch, so owners and the co-party learn
        the number of applications and that size, not who belongs to which household.
        """
        if not applications:
            return np.zeros(0, dtype=np.uint8)
        predicate_bits = {
            name: self.predicate_bits(c.owner, str(c.predicate), [a.applicant for a in applications]).tolist()
            for name, c in rule.clauses.items()
            if c.is_predicate
        }
        if revealed is not None:  # we know the predicate bits anyway
            revealed.update({n: np.array(predicate_bits[n], dtype=np.uint8) for n in reveal if n in predicate_bits})
        reveal = [n for n in reveal if n not in predicate_bits]
        if all(c.is_predicate for c in rule.clauses.values()):  # we already know every bit
            tree = rule.tree()
            return np.array(
                [
                    int(rules.evaluate_tree(tree, {n: bool(b[i]) for n, b in predicate_bits.items()}))
                    for i in range(len(applications))
                ],
                dtype=np.uint8,
            )
        if not rule.name:
            raise ValueError("owners approve rules by name: load the rule from a rules file (RuleSet.get)")
        repeated = next((a.reference for a in applications if len(set(a.members)) != len(a.members)), None)
        if repeated is not None:  # a member counted twice would scale a per-member threshold by j/k
            raise ValueError(f"application {repeated} lists a member more than once")
        cap = min(
            self._listing(c.owner).max_household or rules.MAX_MEMBERS
            for c in rule.clauses.values()
            if not c.is_predicate
        )
        slots = rules.padded_slots(max(len(a.members) for a in applications), cap)
        co_party = rule.co_party_for(self.name)
        ids: list[str | None] = [
            a.members[k] if k < len(a.members) else None for a in applications for k in range(slots)
        ]
        padding = np.array([i is None for i in ids])
        household = rules.household_tables(rule)
        tables: dict[rules.TableKey, rules.ShareTable] = {}
        presence: dict[rules.TableKey, np.ndarray] = {}
        sessions = []
        # Every owner's rows first (first use may make an owner encrypt its table), then the masked
        # decryptions back to back, so that no owner holds shares long before the program runs.
        applicants: list[str | None] = [a.applicant for a in applications]
        fetched = {
            key: self._fetch_lookup(key[0], key[1], columns, ids if key in household else applicants, path)
            for key, columns in rules.table_columns(rule).items()
        }
        co_party_name = next(f.owner for key, f in fetched.items() if key[0] == co_party)
        # the dealer's reply arrives while the owners decrypt
        dealer = self._dealer_session(co_party_name, rules.rule_reservation(rule, len(applications)))
        try:
            for (owner, dataset), columns in rules.table_columns(rule).items():
                _, session_id, shares, present = self._decrypt_lookup(fetched[(owner, dataset)])
                if (owner, dataset) in household:
                    present[padding] = 1  # padding counts as present (with zero values): only we know it
                tables[(owner, dataset)] = rules.ShareTable(tuple(columns), shares)
                presence[(owner, dataset)] = present
                sessions.append({"owner": owner, "dataset": dataset, "session": session_id, "columns": list(columns)})
                if owner != co_party:  # only for the rule it approved, over exactly these rows
                    self._call(
                        owner,
                        self.party_stub(owner).ForwardShares,
                        party_pb2.ForwardRequest(
                            session_id=session_id,
                            co_party=co_party,
                            rule_name=rule.name,
                            rule=rule.model_dump_json().encode(),
                            applications=len(applications),
                            slots=slots,
                        ),
                        timeout=300,
                    )
        except BaseException:
            dealer.close()
            raise
        members = [len(a.members) for a in applications]
        params = {
            "name": rule.name,
            "rule": rule.model_dump(mode="json"),
            "applications": len(applications),
            "slots": slots,
            "tables": sessions,
            "reveal": list(reveal),
        }
        bits, _ = self._run_program(
            co_party,
            dealer,
            "rule",
            params,
            lambda p: _revealed(
                rules.rule_program(
                    p, rule, tables, len(applications), slots, 0, members, predicate_bits, reveal, revealed, presence
                )
            ),
        )
        return bits

    def predicate_bits(self, party: str, predicate: str, ids: Sequence[str]) -> np.ndarray:
        """P2: whether the owner's published predicate holds for each id, from its filter (fetched
        once per epoch) and one OPRF round; the owner learns how many ids we evaluated, we learn
        the bits and |E|."""
        key = (party, predicate)
        if key not in self._filters:
            self._filters[key] = self._fetch_filter(party, predicate)
        try:
            return self._probe(party, predicate, ids, *self._filters[key])
        except RemoteError as exc:
            if exc.code != grpc.StatusCode.FAILED_PRECONDITION:  # not an expired epoch
                raise
        self._filters[key] = self._fetch_filter(party, predicate)
        return self._probe(party, predicate, ids, *self._filters[key])

    def _fetch_filter(self, party: str, predicate: str) -> tuple[int, set[bytes]]:
        tags: set[bytes] = set()
        epoch = 0
        try:
            for chunk in self.party_stub(party).GetPredicateFilter(
                party_pb2.PredicateRequest(predicate=predicate), metadata=self._metadata()
            ):
                if chunk.total or chunk.epoch:
                    epoch = chunk.epoch
                tags.update(split_fixed(chunk.tags, 8, chunk.count))
        except grpc.RpcError as exc:
            raise RemoteError(party, exc.code(), exc.details() or "") from None
        return epoch, tags

    def _probe(self, party: str, predicate: str, ids: Sequence[str], epoch: int, tags: set[bytes]) -> np.ndarray:
        owner = self.capabilities(party).party
        client = OprfClient(domain=oprf_filter.domain(owner, predicate))
        mine, _ = self._oprf(party, client, list(ids), party_pb2.PointBatch(predicate=predicate, epoch=epoch))
        return np.array(oprf_filter.probe(tags, mine), dtype=np.uint8)

    def _oprf(
        self,
        party: str,
        client: OprfClient,
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
            query = client.blind(ids[part])
            pending.put(query)
            message = party_pb2.PointBatch(points=b"".join(query.points), count=len(query.points))
            if k == 0:
                message.MergeFrom(header)
            return message

        stub, tags, epoch = self.party_stub(party), [], None
        try:
            if len(parts) == 1:
                replies = [stub.EvaluateOprfBatch(batch(0, parts[0]), metadata=self._metadata(), timeout=600)]
            else:
                replies = stub.EvaluateOprf((batch(k, p) for k, p in enumerate(parts)), metadata=self._metadata())
            for reply in replies:  # one per batch, in order
                epoch = reply.epoch if epoch is None else epoch
                tags.extend(client.finalize(pending.get(), split_points(reply.points, reply.count)))
        except grpc.RpcError as exc:
            raise RemoteError(party, exc.code(), exc.details() or "") from None
        if len(tags) != len(ids):
            raise RemoteError(party, grpc.StatusCode.DATA_LOSS, f"{len(tags)} OPRF answers for {len(ids)} ids")
        return tags, int(epoch or 0)

    @staticmethod
    def _paillier_key(encoded: bytes) -> PaillierPublicKey:
        """An owner's table key (as its encrypted rows carry it) with a short-exponent table,
        built once per process and key (every client of the process shares it; drawing
        obfuscators is thread-safe)."""
        with _KEYS_LOCK:
            key = _KEYS.get(encoded)
            if key is None:
                key = PaillierPublicKey.from_bytes(encoded)
                # point queries draw from a small pool that a background thread keeps full
                key.use_obfuscator(
                    ObfuscatorPool(
                        _LockedObfuscator(ShortExponentObfuscator(key, window_bits=8)), capacity=POOLED_OBFUSCATORS
                    )
                )
                _KEYS[encoded] = key
            return key


def _revealed(bits: np.ndarray | None) -> np.ndarray:
    """What a program revealed to us (the requester is always the recipient of its own bits)."""
    if bits is None:
        raise RuntimeError("the program revealed nothing to the requester")
    return bits


def _own_info(dataset: Dataset, column: str) -> agg.ColumnInfo:
    spec = dataset.spec.schema_.columns[column]
    return agg.ColumnInfo(spec.type, spec.min, spec.max, dataset.labels(column) if spec.type == "category" else ())


def _declared(column: party_pb2.ColumnSchema) -> tuple[str, int | None, int | None]:
    """(type, min, max) of an owner's column as carried on shares (a category: its codes)."""
    if column.type == "category":
        return column.type, 0, max(0, len(column.categories) - 1) if column.categories else None
    return column.type, column.min if column.has_bounds else None, column.max if column.has_bounds else None


_KEYS: dict[bytes, PaillierPublicKey] = {}  # by PaillierPublicKey.to_bytes() of a table key
_KEYS_LOCK = threading.Lock()


class _LockedObfuscator:
    """One obfuscator source shared by threads (its refill buffer is not thread-safe)."""

    def __init__(self, source: ShortExponentObfuscator) -> None:
        self._source, self._lock = source, threading.Lock()
        self.public_key = source.public_key

    def next(self) -> mpz:
        with self._lock:
            return self._source.next()
