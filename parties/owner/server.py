"""The party daemon: wiring of state, datasets, policy, gRPC server, coordinator and witness."""

from __future__ import annotations

import logging
import operator
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import start_http_server

from mpc.approvals import CATALOGUE_FILE, Approval, RuleApprovals
from mpc.audit import AuditEvent
from mpc.crypto.curve25519 import OprfServer
from mpc.data.sources import Dataset, load_dataset
from mpc.files import write_atomic
from mpc.protocols import oprf_filter
from mpc.protocols.lookup import BucketIndex
from parties.config import ConfigError, PartyConfig, PredicateSpec, start_compute
from parties.owner.aggregate import JoinInitiator
from parties.owner.budgets import Budgets
from parties.owner.check import certificate_problems, grant_problems
from parties.owner.service import party_service
from parties.owner.sessions import FetchTokens, HeldResult, HeldShares, SessionShares
from parties.owner.state import PartyState
from parties.owner.status import WRITE_SECONDS, StatusCollector, write_status
from parties.owner.tables import EncryptedTable, TableCache
from parties.rpc.boundary import Boundary, Metrics, ServiceError
from parties.rpc.registration import add_service
from parties.rpc.tls import (
    OwnCertificateError,
    Revocations,
    RevocationUnavailable,
    ServerIdentityError,
    check_own_certificate,
    secure_channel,
    server_credentials,
    verify_server,
)
from parties.rpc.wire import MAX_MESSAGE_BYTES, SERVER_OPTIONS
from protos import common_pb2, coordinator_pb2, coordinator_pb2_grpc, party_pb2, party_pb2_grpc

log = logging.getLogger("mpc.party")
_PLAIN_COMPARE = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
SERVICE_NAME = "mpc.v1.Party"
UNGRANTED_RATE_PER_MINUTE = 30


class PartyDaemon:
    """One agency's daemon. ``start()`` binds and serves; ``stop()`` drains in-flight requests."""

    def __init__(
        self,
        config: PartyConfig,
        interceptors: Sequence[grpc.ServerInterceptor] = (),
        initiator: JoinInitiator | None = None,
    ) -> None:
        """``interceptors`` see every call before the boundary (tests record transcripts this way;
        the daemon itself never writes what it receives). ``initiator`` runs the initiator's side
        of a join the gateway asks us to start (the requester's client; without it we compute
        the gateway's aggregates over our own tables only)."""
        self.config = config
        self.name = config.party.name
        try:
            identity = check_own_certificate(config.tls)
        except OwnCertificateError as exc:
            raise ConfigError(f"tls.cert: {exc}") from None
        if identity != self.name:
            raise ConfigError(
                f"party.name is {self.name!r} but the certificate {config.tls.cert} is issued to {identity!r}"
            )
        self.max_message_bytes = MAX_MESSAGE_BYTES
        self.state = PartyState(config.party.state_dir)
        self.audit_log = self.state.audit
        self.compute = start_compute(config.compute)
        self.datasets: dict[str, Dataset] = {spec.name: load_dataset(spec, config.base_dir) for spec in config.datasets}
        self.metrics = Metrics(self.name)
        self.boundary = Boundary(
            self.name,
            self.state.audit,
            Revocations(config.tls.crl, config.tls.ca),
            self.metrics,
            self._rate_limit,
            granted=lambda peer: peer in config.policy.peers,
        )
        self.server = grpc.server(
            ThreadPoolExecutor(max_workers=32, thread_name_prefix=f"{self.name}-rpc"),
            interceptors=list(interceptors),
            options=SERVER_OPTIONS,
        )
        add_service(self.server, party_service(self, initiator), party_pb2.DESCRIPTOR.services_by_name["Party"])
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        host = config.party.listen.rpartition(":")[0]
        port = self.server.add_secure_port(config.party.listen, server_credentials(config.tls))
        if port == 0:
            raise ConfigError(f"party.listen: cannot bind {config.party.listen}")
        self.address = f"{host}:{port}"
        self._coordinator: coordinator_pb2_grpc.CoordinatorStub | None = None
        self._coordinator_channel: grpc.Channel | None = None
        self._stopping = threading.Event()
        self._witness: threading.Thread | None = None
        self.sessions: SessionShares[HeldShares] = SessionShares()
        self.results: SessionShares[HeldResult] = SessionShares(ttl=600.0)  # noised cell shares awaiting the gateway
        self.fetches = FetchTokens()  # each masked decryption redeems the tokens of its own fetches
        self._peer_channels: dict[str, grpc.Channel] = {}
        self._filters: dict[tuple[str, int], list[bytes]] = {}
        self.budgets = Budgets(config.party.state_dir / "budgets.sqlite", config.policy, self.boundary.alert)
        self.approvals = RuleApprovals(
            config.party.state_dir / CATALOGUE_FILE, self.state.audit_key, self._approvals_loaded
        )
        self._dataset_master = _master_secret(config.party.state_dir / "oprf" / "datasets.key")
        self.tables = TableCache(
            config.party.state_dir / "encrypted",
            config.party.state_dir / "keys",
            config.party.paillier_bits,
            config.party.anonymity_set,
            self.oprf_key,
        )
        self._lookup_lock = threading.Lock()
        self.started = time.time()  # set again when it starts serving

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.started = time.time()
        self.server.start()
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        rows = {name: len(d.ids) for name, d in self.datasets.items()}
        invalid = {name: len(d.report.invalid_ids) for name, d in self.datasets.items()}
        duplicates = {name: len(d.report.duplicates) for name, d in self.datasets.items()}
        bad_values = {name: len(d.report.invalid_values) for name, d in self.datasets.items()}
        self.state.audit.append(
            AuditEvent(
                peer="-",
                action="daemon:start",
                rows=sum(rows.values()),
                detail=f"listen={self.address} datasets={rows} invalid_ids={invalid} duplicates={duplicates} "
                f"invalid_values={bad_values}",
            )
        )
        for problem in grant_problems(self.config) + certificate_problems(self.config):  # as `mpc-party check` says
            log.warning("configuration problem", extra={"fields": {"problem": problem.message}})
            self.state.audit.append(
                AuditEvent(peer="-", action="config:check", outcome="WARNING", detail=problem.message[:500])
            )
        status = write_status(self, self.started)
        self.metrics.registry.register(StatusCollector(self, self.started))
        threading.Thread(target=self._write_status, name=f"{self.name}-status", daemon=True).start()
        if self.config.party.metrics_listen:
            host, _, port = self.config.party.metrics_listen.rpartition(":")
            start_http_server(int(port), addr=host, registry=self.metrics.registry)
        if self.config.party.coordinator:
            registered = self._register()  # before the address is published, so the directory is current
            self._witness = threading.Thread(
                target=self._register_and_witness, args=(registered,), name=f"{self.name}-witness", daemon=True
            )
            self._witness.start()
        log.info(
            "serving",
            extra={
                "fields": {
                    "party": self.name,
                    "address": self.address,
                    "datasets": status["datasets"],
                    "peers": sorted(status["peers"]),
                    "approved_rules": [f"{a['rule']} for {a['peer']}" for a in status["approved_rules"]],
                    "certificate_days_left": status["certificate"]["days_left"],
                    "oprf_epoch": status["oprf_epoch"],
                }
            },
        )

    def _write_status(self) -> None:
        """``STATE/status.json`` again every :data:`~parties.owner.status.WRITE_SECONDS` (budgets move)."""
        while not self._stopping.wait(WRITE_SECONDS):
            try:
                write_status(self, self.started)
            except OSError as exc:  # a full disk must not stop the daemon; the next write retries
                log.warning("status not written", extra={"fields": {"error": str(exc)}})

    def stop(self, grace: float | None = None) -> None:
        """Refuse new requests, let in-flight ones finish within ``grace`` seconds, then abort them."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        grace = self.config.party.shutdown_grace_seconds if grace is None else grace
        self.health.enter_graceful_shutdown()
        in_flight = self.boundary.in_flight
        self.server.stop(grace).wait()
        self.boundary.flush()
        self.state.audit.append(
            AuditEvent(peer="-", action="daemon:stop", detail=f"grace={grace}s in_flight_at_stop={in_flight}")
        )
        self._witness_once()
        try:
            write_status(self, self.started)  # the final state, for the operator
        except OSError as exc:
            log.warning("status not written", extra={"fields": {"error": str(exc)}})
        self.budgets.close()
        if self._coordinator_channel is not None:
            self._coordinator_channel.close()
        log.info("stopped", extra={"fields": {"party": self.name}})

    def wait(self) -> None:
        self.server.wait_for_termination()

    # ------------------------------------------------------------------ coordinator
    def coordinator_stub(self) -> coordinator_pb2_grpc.CoordinatorStub:
        if not self.config.party.coordinator:
            raise ServiceError(grpc.StatusCode.FAILED_PRECONDITION, f"{self.name} has no coordinator configured")
        if self._coordinator is None:
            self._coordinator_channel = secure_channel(
                self.config.party.coordinator, self.config.tls, self.config.party.coordinator_name
            )
            self._coordinator = coordinator_pb2_grpc.CoordinatorStub(self._coordinator_channel)
        return self._coordinator

    def peer_stub(self, party: str) -> party_pb2_grpc.PartyStub:
        """A stub for another party's daemon, found in the coordinator's directory."""
        directory = self.coordinator_stub().GetDirectory(common_pb2.Empty(), timeout=10)
        entry = next((e for e in directory.parties if e.party == party), None)
        if entry is None:
            raise ServiceError(grpc.StatusCode.NOT_FOUND, f"{party!r} is not in the coordinator's directory")
        with self._lookup_lock:
            channel = self._peer_channels.get(entry.endpoint)
            if channel is None:  # the server must be the party its directory entry names
                try:
                    verify_server(
                        entry.endpoint, self.config.tls, party, entry.certificate_sha256, self.boundary.revocations
                    )
                except ServerIdentityError as exc:
                    raise ServiceError(grpc.StatusCode.UNAUTHENTICATED, str(exc)) from None
                except ConnectionError as exc:
                    raise ServiceError(grpc.StatusCode.UNAVAILABLE, str(exc)) from None
                except RevocationUnavailable as exc:
                    raise ServiceError(grpc.StatusCode.UNAVAILABLE, f"revocation cannot be checked: {exc}") from None
                channel = self._peer_channels[entry.endpoint] = secure_channel(entry.endpoint, self.config.tls, party)
        return party_pb2_grpc.PartyStub(channel)

    def _register(self) -> bool:
        registration = coordinator_pb2.Registration(
            endpoint=self.config.party.advertise or self.address,
            audit_public_key=self.state.audit_public_key_hex(),
        )
        try:
            self.coordinator_stub().Register(registration, timeout=10)
        except grpc.RpcError as exc:
            log.warning("registration failed", extra={"fields": {"error": f"{exc.code().name}: {exc.details()}"}})
            return False
        log.info("registered", extra={"fields": {"party": self.name, "coordinator": self.config.party.coordinator}})
        return True

    def _register_and_witness(self, registered: bool) -> None:
        while not registered and not self._stopping.wait(2.0):
            registered = self._register()
        while not self._stopping.wait(self.config.party.audit_witness_seconds):
            self._witness_once()

    def _witness_once(self) -> None:
        if not self.config.party.coordinator:
            return
        try:
            self.coordinator_stub().WitnessAuditHead(self.signed_head(), timeout=10)
        except grpc.RpcError as exc:
            log.warning("audit head not witnessed", extra={"fields": {"error": f"{exc.code().name}: {exc.details()}"}})

    def signed_head(self) -> common_pb2.AuditHead:
        head = self.state.audit.head()
        return common_pb2.AuditHead(
            party=self.name, seq=head.seq, hash=head.hash, time=head.time, signature=head.signature
        )

    def _approvals_loaded(self, approvals: list[Approval]) -> None:
        """A new version of the approved rules is in force: audited, names and fingerprints."""
        listed = "; ".join(f"{a.rule} {a.fingerprint[:16]} for {a.peer} {a.purposes}" for a in approvals)
        self.audit_log.append(
            AuditEvent(peer="-", action="policy:approved-rules", rows=len(approvals), detail=listed[:500] or "none")
        )

    # ------------------------------------------------------------------ helpers for handlers
    def _rate_limit(self, peer: str) -> int | None:
        """A peer's requests per minute; a certified peer without a grant gets a small allowance, so
        that its refusals cannot flood the audit log."""
        grant = self.config.policy.peers.get(peer)
        return UNGRANTED_RATE_PER_MINUTE if grant is None else grant.rate_limit_per_minute

    def require_dataset(self, name: str) -> Dataset:
        dataset = self.datasets.get(name)
        if dataset is None:
            raise ServiceError(grpc.StatusCode.NOT_FOUND, f"{self.name} has no dataset {name!r}")
        return dataset

    def bucket_bits(self, dataset: str) -> int:
        """Prefix bits of the dataset's buckets: a function of its size and the anonymity set."""
        return self.tables.bucket_bits(self.require_dataset(dataset))

    def buckets(self, dataset: str, epoch: int) -> BucketIndex:
        """OPRF tags of every row in ``epoch`` and their bucket index (computed once, cached on disk)."""
        return self.tables.buckets(self.require_dataset(dataset), epoch)

    def encrypted_table(self, dataset: str, columns: tuple[str, ...], epoch: int) -> EncryptedTable:
        """Every row of ``dataset`` encrypted at its position in ``epoch`` (computed once on every
        core and cached on disk under ``STATE/encrypted/``; served from a memory map)."""
        return self.tables.table(self.require_dataset(dataset), columns, epoch)

    # ------------------------------------------------------------------ P2 published predicates
    def predicate(self, name: str) -> PredicateSpec:
        spec = next((p for p in self.config.predicates if p.name == name), None)
        if spec is None:
            raise ServiceError(grpc.StatusCode.NOT_FOUND, f"{self.name} publishes no predicate {name!r}")
        return spec

    def current_epoch(self, spec: PredicateSpec) -> int:
        return oprf_filter.epoch_of(time.time(), spec.epoch_hours)

    def predicate_key(self, spec: PredicateSpec, epoch: int) -> OprfServer:
        """A fresh OPRF key per predicate and epoch, from a master secret in the state dir."""
        path = self.config.party.state_dir / "oprf" / "predicates.key"
        if not path.exists():
            write_atomic(path, os.urandom(32))
        return oprf_filter.epoch_key(path.read_bytes(), self.name, spec.name, epoch)

    def predicate_filter(self, spec: PredicateSpec, epoch: int) -> list[bytes]:
        """Sorted tags of the ids for which the predicate holds, for one epoch (computed once)."""
        key = (spec.name, epoch)
        with self._lookup_lock:
            cached = self._filters.get(key)
        if cached is not None:
            return cached
        data = self.require_dataset(spec.dataset)
        column = data.columns.get(spec.column)
        if column is None:
            raise ServiceError(grpc.StatusCode.FAILED_PRECONDITION, f"predicate {spec.name}: no column {spec.column}")
        holds = _PLAIN_COMPARE[spec.compare](column.astype(np.int64), spec.value)
        members = data.ids.where(holds)
        tags = oprf_filter.build_filter(self.predicate_key(spec, epoch), members)
        with self._lookup_lock:
            self._filters = {k: v for k, v in self._filters.items() if k[1] >= epoch - 1}
            self._filters[key] = tags
        return tags

    # ------------------------------------------------------------------ P1/P3 dataset keys, per epoch
    def dataset_epoch(self) -> int:
        """The current epoch of the datasets' OPRF keys (``party.oprf_epoch_hours`` long)."""
        return oprf_filter.epoch_of(time.time(), self.config.party.oprf_epoch_hours)

    def check_dataset_epoch(self, epoch: int) -> int:
        """``epoch`` if it is the current one: tags of an ended epoch select nothing any more."""
        current = self.dataset_epoch()
        if epoch != current:
            raise ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION, f"epoch {epoch} has ended (now {current}); ask again"
            )
        return epoch

    def oprf_key(self, dataset: str, epoch: int) -> OprfServer:
        """The dataset's OPRF key in ``epoch``, from the datasets' master secret in the state dir."""
        return oprf_filter.dataset_key(self._dataset_master, self.name, dataset, epoch)


def _master_secret(path: Path) -> bytes:
    """A 32-byte secret kept owner-only at ``path``, created on first start."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(path, os.urandom(32))
    return path.read_bytes()
