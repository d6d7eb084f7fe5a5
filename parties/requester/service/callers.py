"""Who may call the service: a client certificate issued by the deployment CA (checked in the TLS
handshake), for clientAuth, not revoked (the CA's CRL; without a current one every caller is
refused), naming one of the configured callers. Refusals are HTTP 401 (no certificate) or 403
(a certificate, but not a caller's), with the reason."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass

from cryptography import x509
from fastapi import HTTPException, Request

from parties.pki import CertificateRejected, verify_client_certificate
from parties.rpc.https import client_certificate
from parties.rpc.tls import Revocations, RevocationUnavailable, TlsConfig

__all__ = ["Callers", "Refused"]

PLAIN_HTTP_CALLER = "(plain-http)"  # https = false: loopback only, callers cannot be told apart
VERIFIED_SECONDS = 60.0  # how long a certificate's verified chain is reused (validity, revocation: every call)


class Refused(HTTPException):
    """A caller refused: 401 without a certificate, 403 with one that is not a caller's, 503
    when revocation cannot be checked."""

    def __init__(self, status: int, reason: str) -> None:
        headers = {"WWW-Authenticate": "mutual-TLS"} if status == 401 else None
        super().__init__(status, {"reason": reason}, headers=headers)


@dataclass
class Callers:
    """The names allowed to call, checked against each request's client certificate; ``tls``
    None means plain HTTP (every caller is :data:`PLAIN_HTTP_CALLER`)."""

    names: Collection[str]
    tls: TlsConfig | None

    def __post_init__(self) -> None:
        if self.tls is not None:
            self._ca = x509.load_pem_x509_certificate(self.tls.ca.read_bytes())
            self._revocations = Revocations(self.tls.crl, self.tls.ca)
        # PEM -> (name, serial, valid from, valid until, verified at): a keep-alive connection's
        # certificate, verified once a minute rather than on every call
        self._verified: dict[str, tuple[str, int, dt.datetime, dt.datetime, float]] = {}
        self._lock = threading.Lock()

    def identify(self, request: Request) -> str:
        """The caller's certificate name (also kept in ``request.state.caller`` for the audit
        entry), or :class:`Refused`."""
        if self.tls is None:
            request.state.caller = PLAIN_HTTP_CALLER
            return PLAIN_HTTP_CALLER
        pem = client_certificate(request.scope)
        if pem is None:
            raise Refused(401, "present a client certificate issued by the deployment CA (mutual TLS)")
        try:
            name = self._verify(pem)
        except RevocationUnavailable as exc:
            raise Refused(503, str(exc)) from None
        except CertificateRejected as exc:
            raise Refused(403, f"client certificate {exc.reason}: {exc}") from None
        request.state.caller = name
        if name not in self.names:
            raise Refused(403, f"{name!r} is not one of this service's callers (service.callers)")
        return name

    def _verify(self, pem: str) -> str:
        """:func:`~parties.pki.verify_client_certificate` of ``pem``: the chain (issued by the CA,
        for clientAuth) at most :data:`VERIFIED_SECONDS` ago, its validity (within the CA's) and
        revocation now, on every call."""
        revoked = self._revocations.serials()
        with self._lock:
            known = self._verified.get(pem)
        now = dt.datetime.now(dt.UTC)
        if known is not None and time.monotonic() - known[4] < VERIFIED_SECONDS and known[2] <= now <= known[3]:
            name, serial = known[0], known[1]
            if serial in revoked:
                raise CertificateRejected("revoked", f"certificate serial {serial:x} is revoked")
            return name
        name = verify_client_certificate(pem, self._ca, revoked, now)
        cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
        valid_from = max(cert.not_valid_before_utc, self._ca.not_valid_before_utc)
        valid_until = min(cert.not_valid_after_utc, self._ca.not_valid_after_utc)
        with self._lock:
            if len(self._verified) >= 1024:
                self._verified.clear()
            self._verified[pem] = (name, cert.serial_number, valid_from, valid_until, time.monotonic())
        return name
