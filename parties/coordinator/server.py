"""The coordinator daemon: directory, dealer of correlated randomness, witness of audit heads.

It never receives data, shares or results. The dealer hands each compute party of a session its PRG
seed (only to the party named in that role) and streams correction words to party 1. The witness
keeps every party's signed audit heads, so that a party that later rewrites its log is caught by
``mpc-admin audit verify --against-coordinator``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mpc.audit import AuditEvent, AuditHead, AuditLog, load_or_create_signing_key, verify_head
from mpc.sharing.dealer import KINDS, RESERVED_STREAM, TrustedDealer
from parties.config import ConfigError, check_address, load_toml_config
from parties.rpc import wire
from parties.rpc.boundary import Boundary, Call, Metrics, ServiceError
from parties.rpc.dealer_client import reservation_of
from parties.rpc.registration import add_service
from parties.rpc.tls import (
    OwnCertificateError,
    Revocations,
    TlsConfig,
    auth_properties,
    check_own_certificate,
    peer_certificate,
    server_credentials,
)
from parties.rpc.wire import SERVER_OPTIONS
from protos import common_pb2, coordinator_pb2

log = logging.getLogger("mpc.coordinator")
MAX_CORRECTION_WORDS = 64 * 1024 * 1024  # 512 MiB per request at most
SESSION_IDLE_SECONDS = 600.0
MAX_EXPIRED_SESSIONS = 100_000  # expired ids remembered, so that a late party is refused, not dealt new seeds


class CoordinatorSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("coordinator", pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    listen: str = "127.0.0.1:0"
    state_dir: Path
    rate_limit_per_minute: int = Field(6000, ge=1)
    shutdown_grace_seconds: float = Field(10.0, ge=0)

    @field_validator("listen")
    @classmethod
    def _address(cls, value: str) -> str:
        return check_address(value)


class CoordinatorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    coordinator: CoordinatorSection
    tls: TlsConfig


def load_coordinator_config(path: Path) -> CoordinatorConfig:
    return load_toml_config(path, CoordinatorConfig, "coordinator")


@dataclass
class _Session:
    parties: tuple[str, str]
    dealer: TrustedDealer
    last_used: float
    served: set[int] = field(default_factory=set)  # streams whose corrections party 1 has had
    lock: threading.Lock = field(default_factory=threading.Lock)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class CoordinatorService:
    """The ``mpc.v1.Coordinator`` service: each RPC runs its handler behind the daemon's boundary."""

    def __init__(self, daemon: CoordinatorDaemon) -> None:
        self.daemon = daemon

    def behaviours(self) -> dict[str, Callable[..., Any]]:
        """Each RPC's behaviour (what :func:`parties.rpc.registration.add_service` registers)."""
        b = self.daemon.boundary
        return {
            "Register": b.unary("Register", "directory")(self._register),
            "GetDirectory": b.unary("GetDirectory", "directory")(self._directory),
            "OpenSession": b.unary("OpenSession", "dealer")(self._open_session),
            "GetCorrections": b.streaming("GetCorrections", "dealer")(self._corrections),
            "WitnessAuditHead": b.unary("WitnessAuditHead", "witness")(self._witness),
            "GetWitnessedHeads": b.unary("GetWitnessedHeads", "witness")(self._witnessed),
        }

    # ------------------------------------------------------------------ handlers
    def _register(
        self, request: coordinator_pb2.Registration, context: grpc.ServicerContext, call: Call
    ) -> common_pb2.Empty:
        cert = peer_certificate(context)
        assert cert is not None
        try:
            Ed25519PublicKey.from_public_bytes(bytes.fromhex(request.audit_public_key))
        except ValueError as exc:
            raise ValueError(f"registration of {call.peer} carries a malformed key: {exc}") from exc
        pem = auth_properties(context)["x509_pem_cert"][0]
        from parties.pki import fingerprint

        entry = {
            "party": call.peer,
            "endpoint": request.endpoint,
            "certificate_sha256": fingerprint(pem),
            "audit_public_key": request.audit_public_key,
            "registered_at": _now(),
        }
        self.daemon.save_directory_entry(entry)
        call.detail = f"endpoint={request.endpoint}"
        return common_pb2.Empty()

    def _directory(
        self, request: common_pb2.Empty, context: grpc.ServicerContext, call: Call
    ) -> coordinator_pb2.Directory:
        known = coordinator_pb2.DirectoryEntry.DESCRIPTOR.fields_by_name  # entries saved before a field was retired
        return coordinator_pb2.Directory(
            parties=[
                coordinator_pb2.DirectoryEntry(**{k: v for k, v in e.items() if k in known})
                for e in self.daemon.directory().values()
            ]
        )

    def _open_session(
        self, request: coordinator_pb2.SessionRequest, context: grpc.ServicerContext, call: Call
    ) -> coordinator_pb2.SessionSeed:
        parties = tuple(request.parties)
        if len(parties) != 2 or parties[0] == parties[1]:
            raise ValueError("a session names exactly two distinct parties")
        if call.peer not in parties:
            raise ServiceError(
                grpc.StatusCode.PERMISSION_DENIED, f"{call.peer} is not a party of session {request.session_id}"
            )
        reservation = reservation_of(request.reserve)
        session = self.daemon.session(request.session_id, (parties[0], parties[1]))
        index = parties.index(call.peer)
        call.detail = f"session={request.session_id} index={index} parties={list(parties)}"
        reply = coordinator_pb2.SessionSeed(index=index, seed=session.dealer.seed_for(index))
        if index == 1:  # party 1's seed comes with the corrections of the reserved blocks
            streams = {RESERVED_STREAM[kind] for kind, size in reservation.sizes().items() if size}
            with session.lock:
                if streams & session.served:
                    raise ServiceError(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        f"the reservation of session {request.session_id} was already dealt",
                    )
                session.served |= streams
            for kind, words in session.dealer.reserved_corrections(reservation).items():
                reply.reserved.add(kind=kind, words=wire.to_message(words))
            call.rows = sum(reservation.sizes().values())
        return reply

    def _corrections(
        self, requests: Iterator[coordinator_pb2.CorrectionRequest], context: grpc.ServicerContext, call: Call
    ) -> Iterator[coordinator_pb2.CorrectionChunk]:
        session: _Session | None = None
        for request in requests:
            if session is None:
                session = self.daemon.existing_session(request.session_id)
                if session.parties[1] != call.peer:
                    raise ServiceError(
                        grpc.StatusCode.PERMISSION_DENIED,
                        f"only party 1 ({session.parties[1]}) receives corrections in {request.session_id}",
                    )
                call.detail = f"session={request.session_id}"
            if request.kind not in KINDS or not 0 <= request.size <= MAX_CORRECTION_WORDS or request.stream < 0:
                raise ValueError(
                    f"bad correction request kind={request.kind!r} size={request.size} stream={request.stream}"
                )
            with session.lock:
                if request.stream in session.served:  # two corrections of one stream would relate party 0's material
                    raise ServiceError(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        f"stream {request.stream} of session {request.session_id or '(this session)'} "
                        f"was already dealt",
                    )
                session.served.add(request.stream)
            session.last_used = time.monotonic()
            words = session.dealer.correction(request.kind, request.stream, request.size)
            call.rows += request.size
            for piece, more in wire.chunks(words):
                yield coordinator_pb2.CorrectionChunk(words=wire.to_message(piece), more=more)

    def _witness(
        self, request: common_pb2.AuditHead, context: grpc.ServicerContext, call: Call
    ) -> coordinator_pb2.WitnessReceipt:
        if request.party != call.peer:
            raise ServiceError(grpc.StatusCode.PERMISSION_DENIED, f"{call.peer} may only report its own audit head")
        entry = self.daemon.directory().get(call.peer)
        if entry is None:
            raise ServiceError(grpc.StatusCode.FAILED_PRECONDITION, f"{call.peer} has not registered")
        head = AuditHead(seq=request.seq, hash=request.hash, time=request.time, signature=request.signature)
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(entry["audit_public_key"]))
        if not verify_head(head, key):
            raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, f"audit head of {call.peer} has a bad signature")
        last = self.daemon.witnessed(call.peer)
        if last and last[-1]["seq"] > head.seq:
            raise ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{call.peer} reported seq {head.seq} after {last[-1]['seq']}: its log went backwards",
            )
        if last and last[-1]["seq"] == head.seq:
            if last[-1]["hash"] != head.hash:  # two different logs under one sequence number: a fork
                raise ServiceError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"{call.peer} reported a second head with seq {head.seq} (hash {head.hash[:16]}…, witnessed "
                    f"{last[-1]['hash'][:16]}… at {last[-1]['witnessed_at']}): its log was rewritten",
                )
            call.detail = f"seq={head.seq} unchanged"  # an idle party reporting the same head: nothing new
            return coordinator_pb2.WitnessReceipt(witnessed_at=str(last[-1]["witnessed_at"]))
        when = _now()
        self.daemon.record_head(
            call.peer,
            {"seq": head.seq, "hash": head.hash, "time": head.time, "signature": head.signature, "witnessed_at": when},
        )
        call.detail = f"seq={head.seq}"
        return coordinator_pb2.WitnessReceipt(witnessed_at=when)

    def _witnessed(
        self, request: coordinator_pb2.WitnessQuery, context: grpc.ServicerContext, call: Call
    ) -> coordinator_pb2.WitnessedHeads:
        heads = [
            common_pb2.AuditHead(
                party=request.party, seq=h["seq"], hash=h["hash"], time=h["time"], signature=h["signature"]
            )
            for h in self.daemon.witnessed(request.party)
        ]
        return coordinator_pb2.WitnessedHeads(heads=heads)


class CoordinatorDaemon:
    def __init__(self, config: CoordinatorConfig) -> None:
        self.config = config
        section = config.coordinator
        self.name = section.name
        try:
            identity = check_own_certificate(config.tls)
        except OwnCertificateError as exc:
            raise ConfigError(f"tls.cert: {exc}") from None
        if identity != self.name:
            raise ConfigError(f"coordinator.name is {self.name!r} but the certificate is issued to {identity!r}")
        section.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        (section.state_dir / "witness").mkdir(exist_ok=True)
        self.audit = AuditLog(
            section.state_dir / "audit.log",
            load_or_create_signing_key(section.state_dir / "audit-signing.pem"),
            repair_torn_tail=True,
        )
        self.audit_log = self.audit
        self.metrics = Metrics(self.name)
        self.boundary = Boundary(
            self.name,
            self.audit,
            Revocations(config.tls.crl, config.tls.ca),
            self.metrics,
            lambda peer: section.rate_limit_per_minute,
        )
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._expired: OrderedDict[str, None] = OrderedDict()
        self._directory_path = section.state_dir / "directory.json"
        self.server = grpc.server(
            ThreadPoolExecutor(max_workers=32, thread_name_prefix="coordinator-rpc"), options=SERVER_OPTIONS
        )
        add_service(
            self.server,
            CoordinatorService(self).behaviours(),
            coordinator_pb2.DESCRIPTOR.services_by_name["Coordinator"],
        )
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        port = self.server.add_secure_port(section.listen, server_credentials(config.tls))
        if port == 0:
            raise ConfigError(f"coordinator.listen: cannot bind {section.listen}")
        self.address = f"{section.listen.rpartition(':')[0]}:{port}"

    def start(self) -> None:
        self.server.start()
        for name in ("", "mpc.v1.Coordinator"):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.audit.append(AuditEvent(peer="-", action="daemon:start", detail=f"listen={self.address}"))

    def stop(self, grace: float | None = None) -> None:
        self.health.enter_graceful_shutdown()
        self.server.stop(self.config.coordinator.shutdown_grace_seconds if grace is None else grace).wait()
        self.audit.append(AuditEvent(peer="-", action="daemon:stop"))

    def wait(self) -> None:
        self.server.wait_for_termination()

    # ------------------------------------------------------------------ directory
    def directory(self) -> dict[str, dict[str, str]]:
        with self._lock:
            if not self._directory_path.exists():
                return {}
            data: dict[str, dict[str, str]] = json.loads(self._directory_path.read_text())
            return data

    def save_directory_entry(self, entry: dict[str, str]) -> None:
        with self._lock:
            data = json.loads(self._directory_path.read_text()) if self._directory_path.exists() else {}
            data[entry["party"]] = entry
            tmp = self._directory_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=2))
            tmp.replace(self._directory_path)

    # ------------------------------------------------------------------ dealer
    def session(self, session_id: str, parties: tuple[str, str]) -> _Session:
        if not session_id or len(session_id) > 64:
            raise ValueError("session_id must be 1 to 64 characters")
        now = time.monotonic()
        with self._lock:
            for sid in [s for s, v in self._sessions.items() if now - v.last_used > SESSION_IDLE_SECONDS]:
                del self._sessions[sid]
                self._expired[sid] = None
                if len(self._expired) > MAX_EXPIRED_SESSIONS:
                    self._expired.popitem(last=False)
            session = self._sessions.get(session_id)
            if session is None and session_id in self._expired:  # new seeds would not match the other party's
                raise ServiceError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"dealer session {session_id} expired after {SESSION_IDLE_SECONDS:.0f} s idle; start again",
                )
            if session is None:
                session = self._sessions[session_id] = _Session(parties, TrustedDealer(), now)
            elif session.parties != parties:
                raise ValueError(f"session {session_id} exists with other parties")
            session.last_used = now
            return session

    def existing_session(self, session_id: str) -> _Session:
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            raise ServiceError(grpc.StatusCode.NOT_FOUND, f"no dealer session {session_id!r}")
        return session

    # ------------------------------------------------------------------ witness
    def _witness_path(self, party: str) -> Path:
        from parties.pki import validate_name

        validate_name(party)  # a certificate name: nothing else can name a file here
        return self.config.coordinator.state_dir / "witness" / f"{party}.jsonl"

    def record_head(self, party: str, head: dict[str, Any]) -> None:
        with self._lock, self._witness_path(party).open("a") as f:
            f.write(json.dumps(head, sort_keys=True) + "\n")

    def witnessed(self, party: str) -> list[dict[str, Any]]:
        path = self._witness_path(party)
        with self._lock:
            if not path.exists():
                return []
            return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
