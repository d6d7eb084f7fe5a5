"""The service boundary of every daemon: identity, authorisation, limits, audit, metrics, errors.

Each RPC handler is wrapped once by :meth:`Boundary.unary` or :meth:`Boundary.streaming`. Before the
handler runs, the wrapper identifies the peer (certificate common name; revoked or expired
certificates are refused with PERMISSION_DENIED), reads the purpose code and case reference from
metadata, and applies the peer's rate limit. Whatever happens next, exactly one audit entry records
peer, method, purpose, case, protocol, row count, outcome and duration, and the caller receives a
precise gRPC status:

==========================  ==============================================
exception                   status
==========================  ==============================================
ServiceError(code, msg)     code
PolicyError                 PERMISSION_DENIED
RateLimitExceeded           RESOURCE_EXHAUSTED
BudgetExceeded              RESOURCE_EXHAUSTED, and an alert
ValueError, WireError       INVALID_ARGUMENT (malformed input)
ChannelError                ABORTED (the other party failed mid-protocol)
anything else               INTERNAL (details only in the daemon's log)
==========================  ==============================================
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import grpc
from google.protobuf.message import Message
from prometheus_client import CollectorRegistry, Counter, Histogram

from mpc.audit import AuditEvent, AuditLog
from mpc.budgets import BudgetExceeded
from mpc.policy import PURPOSE_PATTERN, PolicyError, RateLimiter, RateLimitExceeded
from mpc.sharing.channel import ChannelError
from parties.rpc.registration import Undecodable
from parties.rpc.tls import Revocations, RevocationUnavailable, peer_certificate

log = logging.getLogger("mpc.boundary")
Q = TypeVar("Q")  # what a handler receives: a request message, or an iterator of them (client streaming)
R = TypeVar("R")  # what it answers: a reply message (unary) or the element type of its reply stream


class ServiceError(Exception):
    """An error with a chosen gRPC status and a message for the caller."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Call:
    """What the boundary knows about the current request; handlers add rows and detail."""

    peer: str
    method: str
    protocol: str
    purpose: str = ""
    case: str = ""
    rows: int = 0
    detail: str = ""
    request_id: str = ""
    cert_serial: int = 0  # the peer certificate's serial: two certificates of one agency told apart

    def recorded(self, detail: str) -> str:
        """What the audit entry's detail says: the handler's detail, then the certificate's serial."""
        serial = f"cert_serial={self.cert_serial:x}" if self.cert_serial else ""
        return f"{detail[:500]} {serial}".strip()


def _status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    from parties.rpc.wire import WireError

    if isinstance(exc, ServiceError):
        return exc.code, exc.message
    if isinstance(exc, PolicyError):
        return grpc.StatusCode.PERMISSION_DENIED, str(exc)
    if isinstance(exc, RateLimitExceeded | BudgetExceeded):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)
    if isinstance(exc, WireError | ValueError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, ChannelError):
        return grpc.StatusCode.ABORTED, str(exc)
    return grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__}); see the daemon log"


def _decoded(request: Q) -> Q:
    """The request as the handler may read it: bytes that did not parse (:class:`Undecodable`) are
    refused with INVALID_ARGUMENT, for a single request at once, in a stream when they arrive."""
    if isinstance(request, Undecodable):
        raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, f"malformed request: {request.describe()}")
    if isinstance(request, Message) or not isinstance(request, Iterator):
        return request

    def checked(stream: Iterator[Any]) -> Iterator[Any]:
        for message in stream:
            if isinstance(message, Undecodable):
                raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, f"malformed message: {message.describe()}")
            yield message

    return cast("Q", checked(request))


class Metrics:
    """Per-daemon Prometheus metrics (own registry, so several daemons can share a process)."""

    def __init__(self, party: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mpc_requests", "Requests by method and outcome", ["party", "method", "outcome"], registry=self.registry
        )
        self.seconds = Histogram("mpc_request_seconds", "Request duration", ["party", "method"], registry=self.registry)
        self.rows = Counter("mpc_rows", "Rows processed by method", ["party", "method"], registry=self.registry)
        self.alerts = Counter(
            "mpc_alerts",
            "Alerts raised (budgets reached, repeated probing) by peer and kind",
            ["party", "peer", "kind"],
            registry=self.registry,
        )
        self.party = party


class QuietRefusals:
    """Refusals of peers without any grant: the first ``per_window`` in each window are audited one
    by one, the rest only counted and audited as one ``audit:suppressed`` entry (when the peer's
    next window begins, or the daemon stops), so that a certified stranger cannot make the owner
    write an fsync'ed entry per call."""

    def __init__(self, per_window: int = 5, window_seconds: float = 60.0) -> None:
        self.per_window, self.window = per_window, window_seconds
        self._state: dict[str, tuple[float, int, int]] = {}  # peer -> (window start, written, suppressed)
        self._lock = threading.Lock()

    def admit(self, peer: str) -> tuple[bool, tuple[float, int] | None]:
        """Whether to audit this refusal one by one, and a finished window's (start, suppressed
        count) to report first."""
        now = time.monotonic()
        with self._lock:
            start, written, suppressed = self._state.get(peer, (now, 0, 0))
            report = None
            if now - start >= self.window:
                report = (start, suppressed) if suppressed else None
                start, written, suppressed = now, 0, 0
            write = written < self.per_window
            self._state[peer] = (start, written + write, suppressed + (not write))
            return write, report

    def drain(self) -> list[tuple[str, float, int]]:
        """Every window's suppressed count not yet reported: (peer, start, count)."""
        with self._lock:
            pending = [(peer, start, n) for peer, (start, _, n) in self._state.items() if n]
            self._state.clear()
            return pending


class Boundary:
    """Wraps the (bound) handlers of one daemon: ``handler(request, context, call)``. ``rate_limit``
    maps a peer name to its requests per minute (None: no limit applies); ``granted`` says whether
    a peer holds any grant here (refusals of the others are audited in aggregate past a few)."""

    def __init__(
        self,
        party: str,
        audit: AuditLog,
        revocations: Revocations,
        metrics: Metrics,
        rate_limit: Callable[[str], int | None],
        granted: Callable[[str], bool] = lambda peer: True,
    ) -> None:
        self.party = party
        self.audit = audit
        self.revocations = revocations
        self.metrics = metrics
        self._rate_limit = rate_limit
        self._granted = granted
        self._quiet = QuietRefusals()
        self._limiter = RateLimiter()
        self._in_flight = 0
        self._lock = threading.Lock()

    def flush(self) -> None:
        """Audit the refusals still counted in aggregate (the daemon calls this when it stops)."""
        for peer, start, count in self._quiet.drain():
            self._suppressed(peer, start, count)

    def _suppressed(self, peer: str, start: float, count: int) -> None:
        self.audit.append(
            AuditEvent(
                peer=peer,
                action="audit:suppressed",
                rows=count,
                outcome="REFUSED",
                detail=(
                    f"{count} further refused calls of {peer}, which holds no grant here, in the "
                    f"{self._quiet.window:.0f} s from {time.monotonic() - start:.0f} s ago: counted, "
                    f"not written one by one"
                ),
            )
        )

    @property
    def in_flight(self) -> int:
        """Requests currently being handled (graceful shutdown waits for them)."""
        return self._in_flight

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    # ------------------------------------------------------------------ before the handler
    def _open(self, context: grpc.ServicerContext, call: Call) -> None:
        """Fill ``call`` from the TLS identity and metadata, then refuse what must be refused."""
        cert = peer_certificate(context)
        metadata = {k: v for k, v in (context.invocation_metadata() or ())}
        call.peer = cert.name if cert else "-"
        call.cert_serial = cert.serial if cert else 0
        call.purpose = str(metadata.get("x-purpose", ""))[:200]
        call.case = str(metadata.get("x-case", ""))[:200]
        if cert is None or not cert.name:
            raise ServiceError(grpc.StatusCode.UNAUTHENTICATED, "no client certificate identity")
        try:
            revoked = self.revocations.is_revoked(cert.serial)
        except RevocationUnavailable as exc:
            raise ServiceError(grpc.StatusCode.UNAVAILABLE, f"revocation cannot be checked: {exc}") from None
        if revoked:
            raise ServiceError(
                grpc.StatusCode.PERMISSION_DENIED, f"certificate of {cert.name!r} (serial {cert.serial:x}) is revoked"
            )
        if cert.not_after < dt.datetime.now(dt.UTC):
            raise ServiceError(grpc.StatusCode.UNAUTHENTICATED, f"certificate of {cert.name!r} has expired")
        if call.purpose and not PURPOSE_PATTERN.match(call.purpose):
            raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, f"malformed purpose code {call.purpose[:80]!r}")
        if len(call.case) > 128 or not call.case.isprintable():
            raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, "case reference must be ≤ 128 printable characters")
        limit = self._rate_limit(cert.name)
        if limit is not None:
            self._limiter.take(cert.name, limit)

    # ------------------------------------------------------------------ alerts
    def alert(self, call: Call, kind: str, detail: str) -> None:
        """Abnormal access: an ``alert:KIND`` audit entry, the ``mpc_alerts`` counter and a
        warning line in the daemon log, whatever the call's outcome."""
        self.audit.append(
            AuditEvent(
                peer=call.peer,
                action=f"alert:{kind}",
                purpose=call.purpose,
                case=call.case,
                protocol=call.protocol,
                rows=call.rows,
                outcome="ALERT",
                detail=call.recorded(detail),
            )
        )
        self.metrics.alerts.labels(self.party, call.peer, kind).inc()
        log.warning(
            "alert",
            extra={
                "fields": {
                    "kind": kind,
                    "peer": call.peer,
                    "method": call.method,
                    "purpose": call.purpose,
                    "case": call.case,
                    "detail": detail[:300],
                }
            },
        )

    # ------------------------------------------------------------------ after the handler
    def _close(self, call: Call, started: float, outcome: str, detail: str) -> None:
        seconds = time.perf_counter() - started
        self.audit.append(
            AuditEvent(
                peer=call.peer,
                action=f"rpc:{call.method}",
                purpose=call.purpose,
                case=call.case,
                protocol=call.protocol,
                rows=call.rows,
                outcome=outcome,
                detail=call.recorded(detail or call.detail),
                duration_ms=round(seconds * 1000, 3),
            )
        )
        self.metrics.requests.labels(self.party, call.method, outcome).inc()
        self.metrics.seconds.labels(self.party, call.method).observe(seconds)
        if call.rows:
            self.metrics.rows.labels(self.party, call.method).inc(call.rows)
        log.info(
            "request",
            extra={
                "fields": {
                    "peer": call.peer,
                    "method": call.method,
                    "purpose": call.purpose,
                    "case": call.case,
                    "rows": call.rows,
                    "outcome": outcome,
                    "ms": round(seconds * 1000, 1),
                    "request_id": call.request_id,
                }
            },
        )

    def _begin(self, call: Call) -> None:
        """A streaming call admitted by the boundary: ``rpc-begin:METHOD`` (outcome ``BEGIN``), so
        that a stream that never ends (a crash, a kill) still left a trace; its ``rpc:METHOD``
        entry follows when it ends, whatever the outcome."""
        self.audit.append(
            AuditEvent(
                peer=call.peer,
                action=f"rpc-begin:{call.method}",
                purpose=call.purpose,
                case=call.case,
                protocol=call.protocol,
                outcome="BEGIN",
                detail=call.recorded(f"request {call.request_id}"),
            )
        )

    def _fail(self, context: grpc.ServicerContext, call: Call, started: float, exc: BaseException) -> None:
        code, message = _status_for(exc)
        if isinstance(exc, BudgetExceeded):
            self.alert(call, "budget", f"{call.method}: {message}")
        if code == grpc.StatusCode.INTERNAL:
            log.exception("handler failed", extra={"fields": {"request_id": call.request_id}})
            message = f"{message} (request {call.request_id})"
        if call.peer != "-" and not self._granted(call.peer):  # a stranger: audited in aggregate past a few
            write, report = self._quiet.admit(call.peer)
            if report is not None:
                self._suppressed(call.peer, *report)
            if not write:
                self.metrics.requests.labels(self.party, call.method, code.name).inc()
                context.abort(code, message)
        self._close(call, started, code.name, message)
        context.abort(code, message)

    def unary(
        self, method: str, protocol: str = ""
    ) -> Callable[[Callable[[Q, grpc.ServicerContext, Call], R]], Callable[[Q, grpc.ServicerContext], R]]:
        """``handler(request, context, call)`` as the gRPC behaviour ``run(request, context)``."""

        def wrap(handler: Callable[[Q, grpc.ServicerContext, Call], R]) -> Callable[[Q, grpc.ServicerContext], R]:
            @functools.wraps(handler)
            def run(request: Q, context: grpc.ServicerContext) -> R:
                started = time.perf_counter()
                call = Call(peer="-", method=method, protocol=protocol, request_id=uuid.uuid4().hex[:12])
                self._enter()
                try:
                    self._open(context, call)
                    result = handler(_decoded(request), context, call)
                except Exception as exc:
                    self._fail(context, call, started, exc)
                    raise  # not reached: abort raises
                finally:
                    self._leave()
                self._close(call, started, "OK", "")
                return result

            return run

        return wrap

    def streaming(
        self, method: str, protocol: str = ""
    ) -> Callable[
        [Callable[[Q, grpc.ServicerContext, Call], Iterator[R]]], Callable[[Q, grpc.ServicerContext], Iterator[R]]
    ]:
        """The same for a handler that streams its replies."""

        def wrap(
            handler: Callable[[Q, grpc.ServicerContext, Call], Iterator[R]],
        ) -> Callable[[Q, grpc.ServicerContext], Iterator[R]]:
            @functools.wraps(handler)
            def run(request: Q, context: grpc.ServicerContext) -> Iterator[R]:
                started = time.perf_counter()
                call = Call(peer="-", method=method, protocol=protocol, request_id=uuid.uuid4().hex[:12])
                self._enter()
                try:
                    self._open(context, call)
                    self._begin(call)  # a stream may run for minutes: the log shows it from the start
                    yield from handler(_decoded(request), context, call)
                except GeneratorExit:  # the client went away mid-stream
                    self._close(call, started, "CANCELLED", "client cancelled the stream")
                    raise
                except Exception as exc:
                    self._fail(context, call, started, exc)
                    raise
                else:
                    self._close(call, started, "OK", "")
                finally:
                    self._leave()

            return run

        return wrap
