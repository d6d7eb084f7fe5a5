"""Mutual TLS for every channel: credentials from the deployment PKI, and the peer's identity.

A party's identity is the common name of its certificate, issued by the deployment CA
(``mpc-admin pki issue NAME``). Servers require a client certificate signed by the CA, so a foreign
or expired certificate fails the TLS handshake; revocation (the CA's CRL) and the identity are
checked per call at the service boundary, where a refusal is answered with PERMISSION_DENIED and
written to the audit log.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from pydantic import BaseModel, ConfigDict

from parties.rpc.wire import CHANNEL_OPTIONS


class TlsConfig(BaseModel):
    """``[tls]``: PEM files of the CA, this party's certificate and key, and optionally the CRL."""

    model_config = ConfigDict(extra="forbid")

    ca: Path
    cert: Path
    key: Path
    crl: Path | None = None

    def resolved(self, base: Path) -> TlsConfig:
        def fix(p: Path | None) -> Path | None:
            return None if p is None else (p if p.is_absolute() else base / p)

        return TlsConfig(ca=fix(self.ca), cert=fix(self.cert), key=fix(self.key), crl=fix(self.crl))  # type: ignore[arg-type]

    def read(self) -> tuple[bytes, bytes, bytes]:
        return self.ca.read_bytes(), self.cert.read_bytes(), self.key.read_bytes()


def common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def server_credentials(tls: TlsConfig) -> grpc.ServerCredentials:
    ca, cert, key = tls.read()
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)


def secure_channel(target: str, tls: TlsConfig, party: str | None = None) -> grpc.Channel:
    """A mutual-TLS channel to ``target``; with ``party``, gRPC also requires the server's
    certificate to name that party (its subjectAltName ``DNS:party``), whatever the address."""
    ca, cert, key = tls.read()
    credentials = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
    options = [*CHANNEL_OPTIONS, *([("grpc.ssl_target_name_override", party)] if party else [])]
    return grpc.secure_channel(target, credentials, options=options)


class ServerIdentityError(Exception):
    """The server at an address is not the party the client meant; the message names both."""


@dataclass(frozen=True)
class ServerCertificate:
    name: str
    serial: int
    sha256: str


def server_certificate(target: str, tls: TlsConfig, party: str) -> ServerCertificate:
    """One TLS handshake with ``target`` (our certificate presented, the server's verified
    against the CA for serverAuth), returning the certificate it presented."""
    host, _, port = target.rpartition(":")
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca))
    context.load_cert_chain(str(tls.cert), str(tls.key))
    context.check_hostname = False  # the name is checked below, to report both
    context.set_alpn_protocols(["h2"])
    try:
        with (
            socket.create_connection((host.strip("[]"), int(port)), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=party) as connection,
        ):
            der = connection.getpeercert(binary_form=True)
    except ssl.SSLCertVerificationError as exc:
        raise ServerIdentityError(f"the server at {target} is not {party}: {exc.verify_message}") from None
    except (OSError, ValueError) as exc:
        raise ConnectionError(f"cannot reach {party} at {target}: {exc}") from None
    if der is None:
        raise ServerIdentityError(f"the server at {target} presented no certificate")
    cert = x509.load_der_x509_certificate(der)
    return ServerCertificate(common_name(cert), cert.serial_number, cert.fingerprint(hashes.SHA256()).hex())


def verify_server(
    target: str, tls: TlsConfig, party: str, fingerprint: str | None = None, revocations: Revocations | None = None
) -> ServerCertificate:
    """Before a channel to ``party`` at ``target`` is used: the server's certificate must name
    ``party``, match the fingerprint the coordinator's directory holds for it (when given), and
    not be revoked (``revocations`` fails closed without a current CRL). Raises
    :class:`ServerIdentityError` naming what was meant and what was found."""
    found = server_certificate(target, tls, party)
    if found.name != party:
        raise ServerIdentityError(
            f"the server at {target} presented the certificate of {found.name!r} (sha256 {found.sha256[:16]}…), "
            f"not {party!r}'s"
        )
    if fingerprint and found.sha256 != fingerprint:
        raise ServerIdentityError(
            f"the server at {target} presented a certificate of {party!r} (sha256 {found.sha256[:16]}…) that the "
            f"directory does not know: {party} registered sha256 {fingerprint[:16]}…"
        )
    if revocations is not None and revocations.is_revoked(found.serial):
        raise ServerIdentityError(
            f"the server at {target} presented {party!r}'s revoked certificate (serial {found.serial:x})"
        )
    return found


@dataclass(frozen=True)
class PeerCertificate:
    name: str
    serial: int
    not_after: dt.datetime


def auth_properties(context: grpc.ServicerContext) -> Mapping[str, Sequence[bytes]]:
    """The call's auth context: each property's values (``x509_pem_cert``: the verified client
    certificate, PEM). types-grpcio declares one ``bytes`` per property; gRPC gives a list of them."""
    return cast("Mapping[str, Sequence[bytes]]", context.auth_context())


def peer_certificate(context: grpc.ServicerContext) -> PeerCertificate | None:
    """The verified client certificate of the current call, or None without one."""
    pems = auth_properties(context).get("x509_pem_cert")
    if not pems:
        return None
    cert = x509.load_pem_x509_certificate(pems[0])
    return PeerCertificate(common_name(cert), cert.serial_number, cert.not_valid_after_utc)


class RevocationUnavailable(Exception):
    """No current CRL: revocation cannot be checked, so every peer is refused (fail closed)."""


class Revocations:
    """Serials revoked by the CA's CRL file; reloaded when the file changes.

    Fails closed: without a CRL configured, with the file missing or unreadable, or past its
    ``nextUpdate``, every check raises :class:`RevocationUnavailable` (the boundary answers
    UNAVAILABLE, naming the file and ``mpc-admin pki crl``, and audits it) instead of treating
    nothing as revoked."""

    def __init__(self, crl: Path | None, ca: Path) -> None:
        self._crl, self._ca = crl, ca
        self._mtime = -1.0
        self._serials: set[int] = set()
        self._next_update: dt.datetime | None = None
        self._lock = threading.Lock()

    def serials(self) -> set[int]:
        renew = "the CA renews it with `mpc-admin pki crl --dir PKI`"
        if self._crl is None:
            raise RevocationUnavailable(f"no CRL configured (tls.crl): every peer is refused until one is; {renew}")
        try:
            mtime = self._crl.stat().st_mtime
        except OSError:
            raise RevocationUnavailable(f"the CRL {self._crl} is missing: every peer is refused; {renew}") from None
        with self._lock:
            if mtime != self._mtime:
                from parties.pki import load_crl

                ca = x509.load_pem_x509_certificate(self._ca.read_bytes())
                try:
                    self._serials, self._next_update = load_crl(self._crl.read_bytes(), ca)
                except (OSError, ValueError) as exc:
                    raise RevocationUnavailable(f"the CRL {self._crl} cannot be used ({exc}); {renew}") from None
                self._mtime = mtime
            if self._next_update is not None and self._next_update < dt.datetime.now(dt.UTC):
                raise RevocationUnavailable(
                    f"the CRL {self._crl} expired at {self._next_update.isoformat(timespec='seconds')} "
                    f"(its nextUpdate): every peer is refused; {renew}"
                )
            return set(self._serials)

    def is_revoked(self, serial: int) -> bool:
        return serial in self.serials()


class OwnCertificateError(ValueError):
    """Our own certificate would be refused by every peer (expired, foreign CA, revoked)."""


def check_own_certificate(tls: TlsConfig) -> str:
    """Verify our certificate as a peer's TLS stack will (issued by the CA, within its validity)
    and return its identity.

    Peers refuse a foreign or expired certificate inside the TLS handshake, where the only thing a
    client sees is a closed socket; checking first turns that into a precise error. Revocation is
    left to the peer, which answers it itself (PERMISSION_DENIED, with an audit entry).
    """
    from parties.pki import CertificateRejected, verify_client_certificate

    ca = x509.load_pem_x509_certificate(tls.ca.read_bytes())
    try:
        return verify_client_certificate(tls.cert.read_bytes(), ca)
    except CertificateRejected as exc:
        raise OwnCertificateError(f"our certificate {tls.cert} is {exc.reason}: {exc}") from None
