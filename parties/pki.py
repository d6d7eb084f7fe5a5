"""Deployment PKI: one CA per deployment issues every party's mutual-TLS certificate.

Everything cryptographic is done by ``cryptography`` (EC P-256 keys, ECDSA-SHA256 signatures,
X.509 building and verification); this module only decides names, lifetimes and file layout.

Layout of a PKI directory::

    ca.pem             CA certificate (self-signed, CA=true, pathlen 0)
    ca.key             CA private key, PKCS8 PEM, mode 0600
    issued/NAME.pem    party certificate, subject CN=NAME
    issued/NAME.key    party private key, PKCS8 PEM, mode 0600
    revoked.json       [{"serial": int, "name": str, "revoked_at": ISO-8601}, ...]
    crl.pem            CRL over every revoked serial, signed by the CA (rewritten on revoke)

Party certificates carry EC P-256 keys. gRPC's BoringSSL also negotiates Ed25519 certificates, but
P-256 is what every TLS stack (and every HSM an agency may later move keys to) accepts.

A party's identity is the certificate's common name (:func:`certificate_identity`), validated
against ``^[a-z0-9][a-z0-9-]{0,62}$`` at issuance so it is safe in file names, logs and metrics.

Transport note (see ``tests/test_pki.py``): with ``grpc.ssl_server_credentials(...,
require_client_auth=True)`` a foreign or expired client certificate is refused in the TLS
handshake, before any interceptor runs; revocation is not checked by gRPC at all, so the server
must compare the peer's serial with :func:`load_crl_serials` itself (:func:`verify_client_certificate`
does chain, validity window and revocation in one call).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from mpc.files import write_atomic

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
Role = Literal["server", "client"]
ROLES: tuple[Role, ...] = ("server", "client")  # a daemon both serves and calls; a requester only calls
CLOCK_SKEW = timedelta(minutes=5)
CRL_VALIDITY = timedelta(days=30)

_CA_CERT = "ca.pem"
_CA_KEY = "ca.key"
_ISSUED = "issued"
_REVOKED = "revoked.json"
_CRL = "crl.pem"


class PkiError(Exception):
    """A PKI directory is missing, incomplete, or an operation on it is not allowed."""


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate issued to one party, and where its files are."""

    name: str
    cert_path: Path
    key_path: Path
    serial: int
    fingerprint_sha256: str
    not_after: datetime


@dataclass(frozen=True)
class RevokedCertificate:
    """One line of ``revoked.json``."""

    serial: int
    name: str
    revoked_at: str


class CertificateRejected(Exception):
    """A peer certificate failed :func:`verify_client_certificate`; ``reason`` says why."""

    def __init__(self, reason: Literal["malformed", "untrusted", "expired", "revoked"], message: str) -> None:
        super().__init__(message)
        self.reason = reason


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid party name, else raise :class:`ValueError`."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"invalid party name {name[:70] if isinstance(name, str) else name!r}: must match {NAME_PATTERN.pattern} "
            "(lower-case letters, digits and '-', at most 63 characters)"
        )
    return name


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (e.g. datetime.now(UTC))")
    return value.astimezone(UTC)


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _san_entries(name: str, hosts: Iterable[str]) -> list[x509.GeneralName]:
    """``DNS:name`` (clients check that a server's certificate names the party they meant), then
    the addresses the deployment declares for it, and nothing else."""
    names: list[x509.GeneralName] = []
    seen: set[str] = set()
    for host in (name, *hosts):
        host = host.strip()
        if not host or host.lower() in seen:
            continue
        seen.add(host.lower())
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            if not re.fullmatch(r"(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?", host):
                raise ValueError(f"invalid host for subjectAltName: {host!r}") from None
            names.append(x509.DNSName(host.lower()))
    return names


class Pki:
    """A deployment CA on disk; see the module docstring for the layout."""

    def __init__(self, directory: Path) -> None:
        """Open an existing PKI directory (created by :meth:`init`)."""
        self.directory = Path(directory)
        if not (self.directory / _CA_CERT).is_file() or not (self.directory / _CA_KEY).is_file():
            raise PkiError(
                f"no CA in {self.directory} (expected {_CA_CERT} and {_CA_KEY}); create one with "
                f"mpc-admin pki init --dir {self.directory}"
            )
        self._ca_cert = x509.load_pem_x509_certificate((self.directory / _CA_CERT).read_bytes())
        key = serialization.load_pem_private_key((self.directory / _CA_KEY).read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PkiError(f"{self.directory / _CA_KEY} is not an EC private key")
        self._ca_key = key

    # ------------------------------------------------------------------ creation

    @classmethod
    def init(cls, directory: Path, common_name: str = "mpc deployment CA", valid_days: int = 3650) -> Pki:
        """Create a new CA in ``directory``; refuses (:class:`PkiError`) if one already exists."""
        directory = Path(directory)
        existing = [p for p in (_CA_CERT, _CA_KEY) if (directory / p).exists()]
        if existing:
            raise PkiError(
                f"refusing to overwrite the existing CA in {directory} "
                f"({', '.join(existing)} present); remove it deliberately to start over"
            )
        if valid_days <= 0:
            raise ValueError("valid_days must be positive")
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        public_key = key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + timedelta(days=valid_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .sign(key, hashes.SHA256())
        )
        # Key first: a directory with ca.key but no ca.pem is refused by both init and open.
        key_path = directory / _CA_KEY
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(_private_pem(key))
            handle.flush()
            os.fsync(handle.fileno())
        write_atomic(directory / _CA_CERT, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        (directory / _ISSUED).mkdir(exist_ok=True)
        pki = cls(directory)
        pki._write_revocations([])
        return pki

    # ------------------------------------------------------------------ paths

    @property
    def ca_path(self) -> Path:
        """Path of the CA certificate (PEM)."""
        return self.directory / _CA_CERT

    @property
    def crl_path(self) -> Path:
        """Path of the current CRL (PEM)."""
        return self.directory / _CRL

    def cert_path(self, name: str) -> Path:
        """Path of party ``name``'s certificate."""
        return self.directory / _ISSUED / f"{validate_name(name)}.pem"

    def key_path(self, name: str) -> Path:
        """Path of party ``name``'s private key."""
        return self.directory / _ISSUED / f"{validate_name(name)}.key"

    # ------------------------------------------------------------------ issuance

    def issue(
        self,
        name: str,
        hosts: Sequence[str] = (),
        valid_days: int = 365,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        roles: Sequence[Role] = ROLES,
    ) -> IssuedCertificate:
        """Issue (or re-issue) party ``name``'s certificate and key.

        The certificate has subject ``CN=name``, subjectAltName ``DNS:name`` plus only the
        ``hosts`` the deployment declares for it (IP literals become IP entries, the rest DNS
        entries; no blanket ``localhost``), EKU serverAuth for the ``server`` role and clientAuth
        for the ``client`` role (a requester that serves nothing gets clientAuth only),
        ``CA=false`` and an EC P-256 key. ``not_before`` defaults to
        now minus 5 minutes (clock skew), ``not_after`` to now plus ``valid_days``; both may be
        set explicitly (timezone-aware), e.g. to make an already-expired certificate for tests.

        Issuing again for an existing name replaces its files (renewal); the previous
        certificate stays valid until it expires unless :meth:`revoke` was called first.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        issued = self._certify(name, key.public_key(), hosts, valid_days, not_before, not_after, roles)
        key_path = self.key_path(name)
        write_atomic(key_path, _private_pem(key), 0o600)
        return IssuedCertificate(
            issued.name, issued.cert_path, key_path, issued.serial, issued.fingerprint_sha256, issued.not_after
        )

    def sign(
        self, csr_pem: bytes, name: str, hosts: Sequence[str] = (), valid_days: int = 365, roles: Sequence[Role] = ROLES
    ) -> IssuedCertificate:
        """Certify the key of a signing request made on the agency's own machine
        (:func:`request_certificate`): the private key never reaches the CA. The CA operator names
        the party, its addresses and roles; the request must be self-signed, be for ``CN=name``, and
        ask for no other name or address than ``DNS:name`` and ``hosts``. The certificate is what
        :meth:`issue` would make (no key file is written). Raises :class:`PkiError` naming the
        problem."""
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            raise PkiError(f"not a PEM certificate signing request: {exc}") from None
        if not csr.is_signature_valid:
            raise PkiError("the signing request's signature does not verify (not made with its own key)")
        requested = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        if requested != [name]:
            raise PkiError(f"the signing request is for {requested or 'no name'}, not {name!r}")
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            asked = set(san)
        except x509.ExtensionNotFound:
            asked = set()
        extra = asked - set(_san_entries(name, hosts))
        if extra:
            raise PkiError(
                f"the signing request asks for names or addresses not approved for {name}: "
                f"{sorted(str(e.value) for e in extra)} (approve them with --host)"
            )
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey) or public_key.curve.name != "secp256r1":
            raise PkiError("the signing request's key must be an EC P-256 key")
        return self._certify(name, public_key, hosts, valid_days, None, None, roles)

    def _certify(
        self,
        name: str,
        public_key: ec.EllipticCurvePublicKey,
        hosts: Sequence[str],
        valid_days: int,
        not_before: datetime | None,
        not_after: datetime | None,
        roles: Sequence[Role],
    ) -> IssuedCertificate:
        """Sign ``public_key`` as party ``name``'s certificate and write it (see :meth:`issue`)."""
        validate_name(name)
        if not roles or set(roles) - set(ROLES):
            raise ValueError(f"roles must be some of {list(ROLES)}, not {list(roles)}")
        usages = [ExtendedKeyUsageOID.SERVER_AUTH] if "server" in roles else []
        usages += [ExtendedKeyUsageOID.CLIENT_AUTH] if "client" in roles else []
        now = _now()
        start = _aware(not_before, "not_before") if not_before is not None else now - CLOCK_SKEW
        if not_after is not None:
            end = _aware(not_after, "not_after")
        else:
            if valid_days <= 0:
                raise ValueError("valid_days must be positive")
            end = now + timedelta(days=valid_days)
        if end <= start:
            raise ValueError(f"not_after ({end.isoformat()}) must be after not_before ({start.isoformat()})")
        ca_public = self._ca_key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self._ca_cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(usages),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(_san_entries(name, hosts)), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_public), critical=False)
            .sign(self._ca_key, hashes.SHA256())
        )
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        cert_path = self.cert_path(name)
        write_atomic(cert_path, cert_pem, 0o644)
        return IssuedCertificate(
            name=name,
            cert_path=cert_path,
            key_path=self.key_path(name),
            serial=cert.serial_number,
            fingerprint_sha256=fingerprint(cert_pem),
            not_after=cert.not_valid_after_utc,
        )

    # ------------------------------------------------------------------ revocation

    def revocations(self) -> list[RevokedCertificate]:
        """The entries of ``revoked.json`` (empty if none)."""
        path = self.directory / _REVOKED
        if not path.exists():
            return []
        raw = json.loads(path.read_text(encoding="utf-8"))
        return [
            RevokedCertificate(serial=int(r["serial"]), name=str(r["name"]), revoked_at=str(r["revoked_at"]))
            for r in raw
        ]

    def revoke(self, name: str) -> None:
        """Revoke party ``name``'s current certificate: record its serial, rewrite the CRL.

        Idempotent for a certificate that is already revoked (the CRL is still rewritten).
        """
        cert_path = self.cert_path(name)
        if not cert_path.is_file():
            raise PkiError(f"no certificate issued to {name!r} in {self.directory}")
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        entries = self.revocations()
        if all(r.serial != cert.serial_number for r in entries):
            stamp = _now().isoformat(timespec="seconds").replace("+00:00", "Z")
            entries.append(RevokedCertificate(cert.serial_number, name, stamp))
        self._write_revocations(entries)

    def _write_revocations(self, entries: list[RevokedCertificate]) -> None:
        payload = [{"serial": r.serial, "name": r.name, "revoked_at": r.revoked_at} for r in entries]
        write_atomic(
            self.directory / _REVOKED,
            (json.dumps(payload, indent=2) + "\n").encode("utf-8"),
            0o644,
        )
        now = _now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self._ca_cert.subject)
            .last_update(now)
            .next_update(now + CRL_VALIDITY)
            .add_extension(x509.CRLNumber(int(now.timestamp() * 1000)), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key()),
                critical=False,
            )
        )
        for r in entries:
            revoked_at = datetime.fromisoformat(r.revoked_at.replace("Z", "+00:00"))
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(r.serial).revocation_date(revoked_at).build()
            )
        crl = builder.sign(self._ca_key, hashes.SHA256())
        write_atomic(self.crl_path, crl.public_bytes(serialization.Encoding.PEM), 0o644)

    def renew_crl(self) -> datetime:
        """Sign the CRL again with the same revocations and a new ``nextUpdate`` (daemons refuse
        every peer once the CRL they read is past it); returns the new ``nextUpdate``."""
        self._write_revocations(self.revocations())
        return _now() + CRL_VALIDITY

    def is_revoked(self, cert: x509.Certificate) -> bool:
        """Whether ``cert`` was issued by this CA and its serial is in ``revoked.json``."""
        if cert.issuer != self._ca_cert.subject:
            return False
        return any(r.serial == cert.serial_number for r in self.revocations())

    # ------------------------------------------------------------------ access

    def ca_certificate(self) -> x509.Certificate:
        """The CA certificate."""
        return self._ca_cert

    def ca_pem(self) -> bytes:
        """The CA certificate as PEM (gRPC's ``root_certificates``)."""
        return self.ca_path.read_bytes()

    def crl_pem(self) -> bytes:
        """The current CRL as PEM."""
        return self.crl_path.read_bytes()

    def load(self, name: str) -> tuple[bytes, bytes]:
        """(certificate PEM, private key PEM) of issued party ``name``."""
        cert_path, key_path = self.cert_path(name), self.key_path(name)
        if not cert_path.is_file() or not key_path.is_file():
            raise PkiError(f"no certificate issued to {name!r} in {self.directory}")
        return cert_path.read_bytes(), key_path.read_bytes()


# ---------------------------------------------------------------------- helpers


def _load_pem_certificate(pem: bytes | str) -> x509.Certificate:
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    return x509.load_pem_x509_certificate(data)


def certificate_identity(pem: bytes | str) -> str:
    """The subject common name of a PEM certificate: the party's identity."""
    cert = _load_pem_certificate(pem)
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1:
        raise ValueError(f"certificate must have exactly one common name, found {len(names)}")
    value = names[0].value
    return value if isinstance(value, str) else value.decode("utf-8")


def fingerprint(pem: bytes | str) -> str:
    """Hex SHA-256 of the certificate's DER encoding."""
    return _load_pem_certificate(pem).fingerprint(hashes.SHA256()).hex()


def load_crl_serials(crl_pem: bytes, ca: x509.Certificate) -> set[int]:
    """The revoked serials of a PEM CRL, after checking it was issued and signed by ``ca``."""
    return load_crl(crl_pem, ca)[0]


def load_crl(crl_pem: bytes, ca: x509.Certificate) -> tuple[set[int], datetime | None]:
    """The revoked serials of a PEM CRL and its ``nextUpdate``, after checking it was issued and
    signed by ``ca``.

    Raises :class:`ValueError` if the CRL is not from ``ca`` or its signature does not verify.
    """
    crl = x509.load_pem_x509_crl(crl_pem)
    if crl.issuer != ca.subject:
        raise ValueError(f"CRL issuer {crl.issuer.rfc4514_string()} is not the CA")
    public_key = ca.public_key()
    if not isinstance(
        public_key,
        ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey,
    ):
        raise ValueError(f"unsupported CA key type {type(public_key).__name__}")
    if not crl.is_signature_valid(public_key):
        raise ValueError("CRL signature does not verify against the CA certificate")
    return {revoked.serial_number for revoked in crl}, crl.next_update_utc


def verify_client_certificate(
    pem: bytes | str,
    ca: x509.Certificate,
    revoked_serials: Iterable[int] = (),
    at: datetime | None = None,
) -> str:
    """Verify a peer's leaf certificate the way an mTLS server interceptor should; return its CN.

    Checks, with ``cryptography``'s X.509 path validation (RFC 5280 web-PKI profile, client
    policy): signed by ``ca``, inside its validity window at ``at`` (default now), EKU clientAuth;
    then that its serial is not in ``revoked_serials``. Raises :class:`CertificateRejected` with
    ``reason`` "malformed", "untrusted", "expired" or "revoked".
    """
    try:
        cert = _load_pem_certificate(pem)
    except ValueError as exc:
        raise CertificateRejected("malformed", f"unreadable certificate: {exc}") from exc
    when = _aware(at, "at") if at is not None else _now()
    if cert.issuer == ca.subject and not (cert.not_valid_before_utc <= when <= cert.not_valid_after_utc):
        raise CertificateRejected(
            "expired",
            f"certificate {cert.serial_number:x} is valid from {cert.not_valid_before_utc.isoformat()} "
            f"to {cert.not_valid_after_utc.isoformat()}, not at {when.isoformat()}",
        )
    verifier = PolicyBuilder().store(Store([ca])).time(when).build_client_verifier()
    try:
        verifier.verify(cert, [])
    except VerificationError as exc:
        raise CertificateRejected("untrusted", f"certificate not trusted: {exc}") from exc
    if cert.serial_number in set(revoked_serials):
        raise CertificateRejected("revoked", f"certificate serial {cert.serial_number:x} is revoked")
    return certificate_identity(pem)


def request_certificate(name: str, key_path: Path, csr_path: Path, hosts: Sequence[str] = ()) -> bytes:
    """On the agency's own machine: make its private key (EC P-256, written 0600 to ``key_path``;
    an existing key is kept and used) and a certificate signing request for ``CN=name`` with
    ``DNS:name`` and ``hosts`` (written to ``csr_path``), which the CA signs (:meth:`Pki.sign`)
    without ever seeing the key. Returns the request (PEM)."""
    validate_name(name)
    if key_path.exists():
        loaded = serialization.load_pem_private_key(key_path.read_bytes(), None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise PkiError(f"{key_path}: not an EC private key")
        key = loaded
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        write_atomic(key_path, _private_pem(key), 0o600)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .add_extension(x509.SubjectAlternativeName(_san_entries(name, hosts)), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = csr.public_bytes(serialization.Encoding.PEM)
    write_atomic(csr_path, pem, 0o644)
    return pem
