"""The requester's client: talk to owners' daemons with this agency's certificate.

    client = Client.from_config("housing.toml", purpose="public-rental-housing", case="HZ-2026-0001")
    result = client.psi_cardinality("tax", "income", my_ids)

Every call carries the purpose code and case reference as metadata; owners check them against
their policy and write them to their audit logs. Party names resolve to endpoints through the
coordinator's directory. The client holds the connections, caches and our own audit log; each
operation is a thin call into the driver of its protocol (:mod:`parties.requester.psi`,
``oprf``, ``lookup``, ``eligibility``, ``aggregate``, ``programs``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import grpc
import numpy as np

from mpc.audit import AuditEvent, AuditLog, AuditLogError, load_or_create_signing_key
from mpc.protocols import aggregate as agg
from mpc.protocols import planner, psi, rules
from parties.config import PartyConfig, load_party_config, start_compute
from parties.requester import aggregate, eligibility, lookup, oprf, programs
from parties.requester import psi as psi_driver
from parties.requester.aggregate import AggregateOutcome
from parties.requester.bucket_cache import BucketCache
from parties.requester.results import Eligibility, IntersectionSum, Progress, PsiResult, RemoteError, SharedLookup
from parties.rpc.tls import (
    OwnCertificateError,
    Revocations,
    RevocationUnavailable,
    ServerIdentityError,
    TlsConfig,
    check_own_certificate,
    secure_channel,
    verify_server,
)
from protos import common_pb2, coordinator_pb2_grpc, party_pb2, party_pb2_grpc

if TYPE_CHECKING:
    from mpc.data.sources import Dataset  # our own datasets, loaded when a join needs them

__all__ = ["SCHEMA_SECONDS", "Client", "OneReply"]

log = logging.getLogger("mpc.sdk")
SCHEMA_SECONDS = 30.0  # how long an owner's dataset schemas are reused
DIRECTORY_SECONDS = 5.0  # how long the coordinator's directory (parties' addresses) is reused

Q_contra = TypeVar("Q_contra", contravariant=True)
R_co = TypeVar("R_co", covariant=True)
Q = TypeVar("Q")
R = TypeVar("R")


class OneReply(Protocol[Q_contra, R_co]):
    """A stub method with one reply: unary (``grpc.UnaryUnaryMultiCallable[Q, R]``, the request) or
    client-streaming (``grpc.StreamUnaryMultiCallable``, ``Q`` an iterator of requests)."""

    def __call__(
        self, request: Q_contra, /, *, timeout: float | None = ..., metadata: tuple[tuple[str, str], ...] | None = ...
    ) -> R_co: ...


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
        coordinator_name: str = "coordinator",
    ) -> None:
        self.name, self.tls, self.coordinator = name, tls, coordinator
        self.coordinator_name = coordinator_name  # the name the coordinator's certificate must carry
        self.purpose, self.case = purpose, case
        self.audit = audit
        self.config = config  # our own datasets and policy (aggregates over a join with our data)
        # owners' table keys' short-exponent tables, kept for our next process (see lookup.table_key)
        self.obfuscator_cache: Path | None = config.party.state_dir / "obfuscators" if config is not None else None
        # obfuscators kept ready per owner key for the masks of point queries (a command line,
        # which checks its file and exits, keeps fewer: lookup.table_key)
        self.pooled_obfuscators = lookup.POOLED_OBFUSCATORS
        self.obfuscators_on_backend = False  # the service computes them on its compute backend's workers
        # P3 buckets' encrypted rows kept for the next fetch of the same bucket (a warm service
        # sets one; a script or command line, which rarely fetches a bucket twice, keeps none)
        self.bucket_cache: BucketCache | None = None
        self._own: dict[str, Dataset] = dict(datasets or {})  # a daemon acting as requester passes its own
        self._channels: dict[str, grpc.Channel] = {}
        self._endpoints: dict[str, str] = {}
        self._directory_read = 0.0  # when the directory was last read (monotonic)
        self._fingerprints: dict[str, str] = {}  # each party's certificate, as the directory holds it
        self._revocations = Revocations(tls.crl, tls.ca)
        self._capabilities: dict[str, party_pb2.Capabilities] = {}
        self.filters: dict[tuple[str, str], tuple[int, set[bytes]]] = {}  # P2: (epoch, tags) per predicate
        self._schemas: dict[str, tuple[float, party_pb2.DatasetList]] = {}

    @classmethod
    def from_config(cls, path: str | Path, purpose: str = "", case: str = "") -> Client:
        config = load_party_config(Path(path))
        start_compute(config.compute)
        return cls(
            config.party.name,
            config.tls,
            config.party.coordinator,
            purpose,
            case,
            _requests_log(config.party.state_dir),
            config,
            coordinator_name=config.party.coordinator_name,
        )

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
        if self.audit is not None:
            _release_requests_log(self.audit)
            self.audit = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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

    # ------------------------------------------------------------------ connections (drivers use these)
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """What every call carries: our purpose code and case reference."""
        return (("x-purpose", self.purpose), ("x-case", self.case))

    def _channel(self, target: str, party: str | None = None, verify: bool = False) -> grpc.Channel:
        """The channel to ``target``. With ``party``, the server's certificate must name it (gRPC
        checks on every connection); with ``verify`` also, before the first use, that it is the
        certificate the directory holds for ``party`` and not revoked."""
        if not self._channels:
            try:
                check_own_certificate(self.tls)
            except OwnCertificateError as exc:
                raise RemoteError("(local)", grpc.StatusCode.UNAUTHENTICATED, str(exc)) from None
        key = f"{party or ''}@{target}"
        if key not in self._channels:
            if party is not None and verify:
                try:
                    verify_server(target, self.tls, party, self._fingerprints.get(party), self._revocations)
                except ServerIdentityError as exc:
                    raise RemoteError(party, grpc.StatusCode.UNAUTHENTICATED, str(exc)) from None
                except ConnectionError as exc:
                    raise RemoteError(party, grpc.StatusCode.UNAVAILABLE, str(exc)) from None
                except RevocationUnavailable as exc:
                    raise RemoteError(
                        "(local)", grpc.StatusCode.UNAVAILABLE, f"revocation cannot be checked: {exc}"
                    ) from None
            self._channels[key] = secure_channel(target, self.tls, party)
        return self._channels[key]

    def coordinator_stub(self) -> coordinator_pb2_grpc.CoordinatorStub:
        if not self.coordinator:
            raise ValueError("no coordinator configured")
        return coordinator_pb2_grpc.CoordinatorStub(self._channel(self.coordinator, self.coordinator_name))

    def endpoint(self, party: str) -> str:
        """A party's address: ``host:port`` as given, or a name looked up in the directory (again
        after ``DIRECTORY_SECONDS``: a daemon restarted elsewhere is found without a new client)."""
        if ":" in party:
            return party
        if party in self._endpoints and time.monotonic() - self._directory_read < DIRECTORY_SECONDS:
            return self._endpoints[party]
        self._directory_read = time.monotonic()
        try:
            directory = self.coordinator_stub().GetDirectory(common_pb2.Empty(), metadata=self.metadata(), timeout=10)
        except grpc.RpcError as exc:
            raise RemoteError("coordinator", exc.code(), exc.details() or "") from None
        self._endpoints.update({str(e.party): str(e.endpoint) for e in directory.parties})
        self._fingerprints.update({str(e.party): str(e.certificate_sha256) for e in directory.parties})
        if party in self._endpoints:
            return self._endpoints[party]
        raise LookupError(f"party {party!r} is not in the coordinator's directory")

    def party_stub(self, party: str) -> party_pb2_grpc.PartyStub:
        """A stub for ``party``: by name, its directory entry's address, the server verified to be
        that party (:meth:`_channel`); by ``host:port``, whichever certified party serves there."""
        if ":" in party:
            return party_pb2_grpc.PartyStub(self._channel(party))
        return party_pb2_grpc.PartyStub(self._channel(self.endpoint(party), party, verify=True))

    def call(self, party: str, method: OneReply[Q, R], request: Q, timeout: float) -> R:
        """One unary (or client-streaming) call of ``party``'s ``method`` with our metadata; a
        refusal or failure surfaces as :class:`RemoteError`."""
        try:
            return method(request, metadata=self.metadata(), timeout=timeout)
        except grpc.RpcError as exc:
            raise RemoteError(party, exc.code(), exc.details() or "") from None

    def capabilities(self, party: str) -> party_pb2.Capabilities:
        """The party's protocols, keys and limits (asked once per client)."""
        reply = self._capabilities.get(party)
        if reply is None:
            reply = self.call(party, self.party_stub(party).GetCapabilities, common_pb2.Empty(), timeout=10)
            self._capabilities[party] = reply
        return reply

    def list_datasets(self, party: str) -> party_pb2.DatasetList:
        """What the owner grants us, asked now."""
        return self.call(party, self.party_stub(party).ListDatasets, common_pb2.Empty(), timeout=10)

    def listing(self, party: str) -> party_pb2.DatasetList:
        """What the owner grants us (asked at most every ``SCHEMA_SECONDS``; a table that changed
        meanwhile is caught by its layout check)."""
        asked, listing = self._schemas.get(party, (0.0, None))
        if listing is None or time.monotonic() - asked > SCHEMA_SECONDS:
            listing = self.list_datasets(party)
            self._schemas[party] = (time.monotonic(), listing)
        return listing

    def schema(self, party: str, dataset: str) -> party_pb2.DatasetSchema:
        """The dataset's schema as the owner grants it to us."""
        schema = next((d for d in self.listing(party).datasets if d.name == dataset), None)
        if schema is None:
            raise RemoteError(party, grpc.StatusCode.NOT_FOUND, f"{party} grants us no dataset {dataset!r}")
        return schema

    def forget_schema(self, party: str) -> None:
        """Ask the owner again next time (its epoch ended, or its table changed)."""
        self._schemas.pop(party, None)

    def own_dataset(self, name: str) -> Dataset:
        """One of our own datasets, loaded from our configuration (once per client)."""
        if name not in self._own:
            if self.config is None:
                raise ValueError("this client has no configuration of its own datasets (use Client.from_config)")
            spec = next((d for d in self.config.datasets if d.name == name), None)
            if spec is None:
                raise LookupError(f"{self.name} has no dataset {name!r} in its configuration")
            from mpc.data.sources import load_dataset

            self._own[name] = load_dataset(spec, self.config.base_dir)
        return self._own[name]

    # ------------------------------------------------------------------ P1: PSI
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

    def set_intersection(
        self, party: str, dataset: str, ids: Sequence[str], mode: psi.Mode, progress: Progress | None = None
    ) -> PsiResult:
        """ECDH-PSI with fresh keys, streamed in chunks (:func:`parties.requester.psi.set_intersection`);
        ``progress`` is called with (points done, points in all)."""
        with self._recorded(f"psi-{mode}", party, len(ids), "P1"):
            return psi_driver.set_intersection(self, party, dataset, ids, mode, progress)

    def psi_owner_tags(self, party: str, dataset: str, ids: Sequence[str]) -> PsiResult:
        """PSI against the owner's per-dataset OPRF key (:func:`parties.requester.psi.owner_tags_intersection`);
        needs the batch grant."""
        with self._recorded("psi-owner-tags", party, len(ids), "P1"):
            return psi_driver.owner_tags_intersection(self, party, dataset, ids)

    # ------------------------------------------------------------------ P2: published predicates
    def predicate_bits(self, party: str, predicate: str, ids: Sequence[str]) -> np.ndarray:
        """Whether the owner's published predicate holds for each id (:func:`parties.requester.oprf.predicate_bits`)."""
        return oprf.predicate_bits(self, party, predicate, ids)

    # ------------------------------------------------------------------ P3: private lookup
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
        return lookup.plan(self, party, dataset, columns, rows, distinct, force)

    def lookup_shares(
        self,
        party: str,
        dataset: str,
        columns: Sequence[str],
        ids: Sequence[str | None],
        path: planner.Path | None = None,
    ) -> SharedLookup:
        """Secret-share the owner's ``columns`` of each id (None: a padding row) with the owner
        (:func:`parties.requester.lookup.share`)."""
        return lookup.share(self, party, dataset, columns, ids, path)

    # ------------------------------------------------------------------ P4: eligibility
    def eligibility(
        self,
        rule: rules.Rule,
        applications: Sequence[rules.Application],
        reasons: bool = True,
        path: planner.Path | None = None,
    ) -> Eligibility:
        """One bit per application, with ``reasons`` the bits of the clauses flagged ``reveal``
        whose owners consent (reason codes for citizens), and each owner's lookup path (planned
        unless ``path`` forces one); recorded in our own audit log (counts only)."""
        with self._recorded("eligibility", ",".join(rule.owners()), len(applications), "P1/P2/P3/P4"):
            reveal: list[str] = []
            if reasons:
                consent = {owner: self.list_datasets(owner).reveal_clauses for owner in rule.owners()}
                reveal = [n for n, c in rule.clauses.items() if c.reveal and consent[c.owner]]
            return eligibility.check(self, rule, applications, reveal, path)

    def check_eligibility(
        self, rule: rules.Rule, applications: Sequence[rules.Application], path: planner.Path | None = None
    ) -> np.ndarray:
        """One bit per application (:meth:`eligibility` without reasons)."""
        return self.eligibility(rule, applications, reasons=False, path=path).bits

    # ------------------------------------------------------------------ P5: aggregates over a join
    def aggregate(self, peer: str, request: agg.AggregateRequest) -> agg.AggregateResult | None:
        """COUNT / SUM / MEAN per group over our dataset joined with the peer's
        (:func:`parties.requester.aggregate.run`). Returns the cells when they are revealed to
        us, None when the request reveals them to the peer (which keeps them)."""
        if request.reveal_to == "gateway":
            raise ValueError("cells for the gateway are released through the gateway (mpc-gateway), not here")
        with self._recorded("aggregate", peer, 0, "P1/P5"):
            result = aggregate.run(self, peer, request).result
            assert not isinstance(result, agg.CellShares)
            return result

    def aggregate_shares(self, peer: str, request: agg.AggregateRequest) -> AggregateOutcome:
        """For the gateway the request names: our share of every cell plus our own noise
        (:attr:`~parties.requester.aggregate.AggregateOutcome.result`), the session the peer keeps
        its share under, and the rows computed on (the intersection)."""
        with self._recorded("aggregate", peer, 0, "P1/P5"):
            outcome = aggregate.run(self, peer, request)
            assert isinstance(outcome.result, agg.CellShares)
            return outcome

    def intersection_sum(
        self, party: str, dataset: str, columns: Sequence[str], ids: Sequence[str], min_cell: int = agg.DEFAULT_MIN_CELL
    ) -> IntersectionSum:
        """Private join and compute (:func:`parties.requester.aggregate.intersection_sum`)."""
        with self._recorded("intersection-sum", party, len(ids), "P1/P5"):
            return aggregate.intersection_sum(self, party, dataset, columns, ids, min_cell)

    # ------------------------------------------------------------------ selftest
    def selftest_compare(self, party: str, values: np.ndarray, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
        """Secret-shared ``values < public_values(seed)`` with ``party`` as co-party
        (:func:`parties.requester.programs.selftest_compare`)."""
        return programs.selftest_compare(self, party, values, seed)


# Every client of one process records into one log per agency (appends are thread-safe); a
# second process of the agency, finding the file locked, records into requests.PID.log instead:
# requests are never silently unrecorded, and each file verifies on its own.
_REQUEST_LOGS: dict[Path, tuple[AuditLog, int]] = {}
_REQUEST_LOGS_LOCK = threading.Lock()


def _requests_log(state: Path) -> AuditLog:
    """The agency's signed log of what it asked (``STATE/requests.log``, shared by the clients of
    this process), or ``STATE/requests.PID.log`` when another process holds that one. Raises
    :class:`AuditLogError` (the client does not run unrecorded) when neither can be opened."""
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = (state / "requests.log").resolve()
    with _REQUEST_LOGS_LOCK:
        shared = _REQUEST_LOGS.get(path)
        if shared is not None:
            _REQUEST_LOGS[path] = (shared[0], shared[1] + 1)
            return shared[0]
        key = load_or_create_signing_key(state / "audit-signing.pem")
        try:
            opened = AuditLog(path, key, repair_torn_tail=True)
        except AuditLogError as exc:
            if "already open" not in str(exc):
                raise
            own = state / f"requests.{os.getpid()}.log"
            log.warning(
                "requests.log is held by another process: recording into its own file",
                extra={"fields": {"log": str(own)}},
            )
            opened = AuditLog(own, key, repair_torn_tail=True)
        _REQUEST_LOGS[path] = (opened, 1)
        return opened


def _release_requests_log(audit: AuditLog) -> None:
    with _REQUEST_LOGS_LOCK:
        for path, (shared, users) in list(_REQUEST_LOGS.items()):
            if shared is audit:
                if users > 1:
                    _REQUEST_LOGS[path] = (shared, users - 1)
                    return
                del _REQUEST_LOGS[path]
        audit.close()
