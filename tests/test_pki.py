"""Deployment PKI: CA creation, issuance, revocation/CRL, and gRPC mutual TLS with the result."""

from __future__ import annotations

import ipaddress
import re
import stat
import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from parties.pki import (
    CertificateRejected,
    IssuedCertificate,
    Pki,
    PkiError,
    certificate_identity,
    fingerprint,
    load_crl_serials,
    verify_client_certificate,
)
from parties.rpc.tls import auth_properties

NOW = datetime.now(UTC)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.init(tmp_path_factory.mktemp("pki") / "ca")


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.init(tmp_path_factory.mktemp("other") / "ca", common_name="someone else's CA")


# ---------------------------------------------------------------------- CA


def test_init_layout_and_modes(tmp_path: Path) -> None:
    pki = Pki.init(tmp_path / "ca", common_name="test CA", valid_days=30)
    for name in ("ca.pem", "ca.key", "revoked.json", "crl.pem"):
        assert (tmp_path / "ca" / name).is_file(), name
    assert (tmp_path / "ca" / "issued").is_dir()
    assert mode(tmp_path / "ca" / "ca.key") == 0o600
    ca = pki.ca_certificate()
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "test CA"
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    assert ca.not_valid_after_utc - NOW < timedelta(days=31)
    ca.verify_directly_issued_by(ca)
    assert load_crl_serials(pki.crl_pem(), ca) == set()
    assert Pki(tmp_path / "ca").ca_certificate() == ca


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    pki = Pki.init(tmp_path / "ca")
    before = pki.ca_pem()
    with pytest.raises(PkiError, match="refusing to overwrite"):
        Pki.init(tmp_path / "ca")
    assert pki.ca_pem() == before == Pki(tmp_path / "ca").ca_pem()
    (tmp_path / "ca" / "ca.pem").unlink()  # a half-present CA is refused too
    with pytest.raises(PkiError, match=r"ca\.key"):
        Pki.init(tmp_path / "ca")
    assert not (tmp_path / "ca" / "ca.pem").exists()


def test_opening_a_directory_without_ca_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match=r"no CA in .*create one with mpc-admin pki init --dir"):
        Pki(tmp_path)


# ---------------------------------------------------------------------- issuance


def test_issued_certificate_fields(pki: Pki) -> None:
    issued = pki.issue("alice", hosts=("alice.agency.example", "10.1.2.3", "localhost"))
    cert_pem, key_pem = pki.load("alice")
    assert issued.cert_path.read_bytes() == cert_pem and issued.key_path.read_bytes() == key_pem
    assert mode(issued.key_path) == 0o600
    cert = x509.load_pem_x509_certificate(cert_pem)
    ca = pki.ca_certificate()

    assert cert.subject.rfc4514_string() == "CN=alice"
    assert certificate_identity(cert_pem) == "alice"
    assert cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)
    assert cert.serial_number == issued.serial
    assert fingerprint(cert_pem) == issued.fingerprint_sha256 == cert.fingerprint(hashes.SHA256()).hex()

    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    # its own name (what clients check), then only the addresses declared: no blanket loopback
    assert san.get_values_for_type(x509.DNSName) == ["alice", "alice.agency.example", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.1.2.3")]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    bare = x509.load_pem_x509_certificate(pki.load(pki.issue("bob", roles=("client",)).name)[0])
    assert bare.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    ) == ["bob"]
    assert not bare.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.IPAddress
    )
    assert list(bare.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]  # a requester that serves nothing cannot serve as anyone
    with pytest.raises(ValueError, match="roles"):
        pki.issue("carol", roles=("admin",))  # type: ignore[arg-type]
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca

    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"
    assert cert.not_valid_before_utc <= datetime.now(UTC) < cert.not_valid_after_utc
    assert cert.not_valid_after_utc == issued.not_after
    assert timedelta(days=364) < issued.not_after - NOW < timedelta(days=366)
    assert verify_client_certificate(cert_pem, ca) == "alice"


@pytest.mark.parametrize("name", ["", "Alice", "-alice", "a" * 64, "a/b", "a.b", "ali ce", "é"])
def test_invalid_names_are_refused(pki: Pki, name: str) -> None:
    with pytest.raises(ValueError, match="invalid party name"):
        pki.issue(name)


def test_longest_valid_name(pki: Pki) -> None:
    name = "a" + "-9" * 31
    assert len(name) == 63
    assert certificate_identity(pki.load(pki.issue(name).name)[0]) == name


def test_expired_certificate_can_be_issued(pki: Pki) -> None:
    issued = pki.issue("expired", not_before=NOW - timedelta(days=30), not_after=NOW - timedelta(days=1))
    assert issued.not_after < datetime.now(UTC)
    cert_pem, _ = pki.load("expired")
    x509.load_pem_x509_certificate(cert_pem).verify_directly_issued_by(pki.ca_certificate())
    with pytest.raises(CertificateRejected) as rejected:
        verify_client_certificate(cert_pem, pki.ca_certificate())
    assert rejected.value.reason == "expired"


def test_validity_arguments_are_checked(pki: Pki) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        pki.issue("naive", not_after=datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="must be after"):
        pki.issue("backwards", not_before=NOW, not_after=NOW - timedelta(seconds=1))
    with pytest.raises(ValueError, match="invalid host"):
        pki.issue("badhost", hosts=("not a host",))


def test_load_unknown_party(pki: Pki) -> None:
    with pytest.raises(PkiError, match="no certificate issued"):
        pki.load("nobody")


# ---------------------------------------------------------------------- revocation


def test_revoke_writes_signed_crl(tmp_path: Path) -> None:
    pki = Pki.init(tmp_path / "ca")
    bob = pki.issue("bob")
    carol = pki.issue("carol")
    pki.revoke("bob")
    pki.revoke("bob")  # idempotent

    revocations = pki.revocations()
    assert [(r.serial, r.name) for r in revocations] == [(bob.serial, "bob")]
    assert datetime.fromisoformat(revocations[0].revoked_at) <= datetime.now(UTC)

    ca = pki.ca_certificate()
    assert load_crl_serials(pki.crl_pem(), ca) == {bob.serial}
    crl = x509.load_pem_x509_crl(pki.crl_pem())
    ca_key = ca.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    assert crl.is_signature_valid(ca_key)
    assert crl.get_revoked_certificate_by_serial_number(bob.serial) is not None

    def cert_of(issued: IssuedCertificate) -> x509.Certificate:
        return x509.load_pem_x509_certificate(issued.cert_path.read_bytes())

    bob_cert = cert_of(bob)
    assert pki.is_revoked(bob_cert) and not pki.is_revoked(cert_of(carol))
    with pytest.raises(CertificateRejected) as rejected:
        verify_client_certificate(bob.cert_path.read_bytes(), ca, load_crl_serials(pki.crl_pem(), ca))
    assert rejected.value.reason == "revoked"

    renewed = pki.issue("bob")  # re-issue after revocation: the new serial is good
    assert renewed.serial != bob.serial and not pki.is_revoked(cert_of(renewed))
    assert pki.is_revoked(bob_cert)
    pki.revoke("carol")
    assert load_crl_serials(pki.crl_pem(), ca) == {bob.serial, carol.serial}


def test_crl_from_another_ca_is_refused(pki: Pki, other_pki: Pki) -> None:
    with pytest.raises(ValueError, match="not the CA"):
        load_crl_serials(other_pki.crl_pem(), pki.ca_certificate())


def test_crl_with_broken_signature_is_refused(tmp_path: Path, other_pki: Pki) -> None:
    # Same issuer name, different key: only the signature tells them apart.
    impostor = Pki.init(tmp_path / "impostor", common_name="someone else's CA")
    impostor.issue("x")
    impostor.revoke("x")
    with pytest.raises(ValueError, match="signature does not verify"):
        load_crl_serials(impostor.crl_pem(), other_pki.ca_certificate())


def test_revoke_unknown_party(pki: Pki) -> None:
    with pytest.raises(PkiError):
        pki.revoke("never-issued")


def test_foreign_certificate_is_untrusted(pki: Pki, other_pki: Pki) -> None:
    other_pki.issue("mallory")
    with pytest.raises(CertificateRejected) as rejected:
        verify_client_certificate(other_pki.load("mallory")[0], pki.ca_certificate())
    assert rejected.value.reason == "untrusted"


# ---------------------------------------------------------------------- gRPC mutual TLS


@dataclass
class _Probe:
    """Server side of the probe RPC: remembers the auth context of every call it sees."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def whoami(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        auth: dict[str, list[str]] = {k: [v.decode() for v in vs] for k, vs in auth_properties(context).items()}
        with self.lock:
            self.calls.append({"auth": auth, "identity_key": context.peer_identity_key(), "peer": context.peer()})
        return auth["x509_common_name"][0].encode()


@contextmanager
def mtls_server(pki: Pki, probe: _Probe) -> Iterator[int]:
    """A gRPC server on 127.0.0.1 requiring client certificates from ``pki``'s CA."""
    from grpc_health.v1 import health, health_pb2_grpc

    if not pki.cert_path("server").exists():
        pki.issue("server", hosts=("localhost",))
    cert_pem, key_pem = pki.load("server")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "test.Probe", {"Whoami": grpc.unary_unary_rpc_method_handler(probe.whoami)}
            ),
        )
    )
    credentials = grpc.ssl_server_credentials(
        [(key_pem, cert_pem)], root_certificates=pki.ca_pem(), require_client_auth=True
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield port
    finally:
        server.stop(None)


def _call(port: int, ca_pem: bytes, client: tuple[bytes, bytes] | None) -> tuple[str, bytes]:
    """(status name, response) of a Health.Check and a Whoami call as ``client``."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    if client is None:
        credentials = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    else:
        cert_pem, key_pem = client
        credentials = grpc.ssl_channel_credentials(ca_pem, key_pem, cert_pem)
    with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
        try:
            # types-grpcio-health-checking declares HealthStub without its methods (grpc_health has Check)
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)  # type: ignore[attr-defined]
            whoami: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary("/test.Probe/Whoami")
            response = bytes(whoami(b"", timeout=10))
        except grpc.RpcError as error:
            return error.code().name, b""
    return "OK", response


@pytest.fixture(scope="module")
def probe_server(pki: Pki, other_pki: Pki) -> Iterator[tuple[int, _Probe]]:
    probe = _Probe()
    with mtls_server(pki, probe) as port:
        yield port, probe


def test_mtls_accepts_issued_certificates(pki: Pki, probe_server: tuple[int, _Probe]) -> None:
    port, probe = probe_server
    pki.issue("client-ok")
    client = pki.load("client-ok")
    before = len(probe.calls)
    assert _call(port, pki.ca_pem(), client) == ("OK", b"client-ok")
    call = probe.calls[before]
    auth = call["auth"]
    assert auth["transport_security_type"] == ["ssl"]
    assert auth["x509_common_name"] == ["client-ok"]
    assert fingerprint(auth["x509_pem_cert"][0].encode()) == fingerprint(client[0])
    # gRPC's "peer identity" is the SAN list, not the CN: identify parties by the certificate.
    assert call["identity_key"] == "x509_subject_alternative_name"


def test_mtls_refuses_foreign_expired_and_missing_certificates_in_the_handshake(
    pki: Pki, other_pki: Pki, probe_server: tuple[int, _Probe]
) -> None:
    port, probe = probe_server
    other_pki.issue("foreign")
    pki.issue("stale", not_before=NOW - timedelta(days=9), not_after=NOW - timedelta(days=2))
    before = len(probe.calls)
    assert _call(port, pki.ca_pem(), other_pki.load("foreign"))[0] == "UNAVAILABLE"
    assert _call(port, pki.ca_pem(), pki.load("stale"))[0] == "UNAVAILABLE"
    assert _call(port, pki.ca_pem(), None)[0] == "UNAVAILABLE"
    assert len(probe.calls) == before  # the application never saw these calls


def test_mtls_does_not_check_revocation_the_server_must(pki: Pki, probe_server: tuple[int, _Probe]) -> None:
    port, probe = probe_server
    pki.issue("revoked-client")
    pki.revoke("revoked-client")
    before = len(probe.calls)
    assert _call(port, pki.ca_pem(), pki.load("revoked-client")) == ("OK", b"revoked-client")
    presented = probe.calls[before]["auth"]["x509_pem_cert"][0].encode()
    ca = pki.ca_certificate()
    with pytest.raises(CertificateRejected) as rejected:
        verify_client_certificate(presented, ca, load_crl_serials(pki.crl_pem(), ca))
    assert rejected.value.reason == "revoked"


def test_an_agency_keeps_its_key_and_the_ca_signs_its_request(tmp_path: Path) -> None:
    """``request_certificate`` makes the key and a request on the agency's machine; ``Pki.sign``
    certifies it on the CA's with the names, addresses and roles the CA operator approves. The
    key never reaches the CA's directory; the certificate carries the agency's own public key."""
    from cryptography.hazmat.primitives import serialization

    from parties.pki import request_certificate

    pki = Pki.init(tmp_path / "ca")
    agency = tmp_path / "agency"
    agency.mkdir()
    csr = request_certificate("tax", agency / "tax.key", agency / "tax.csr", hosts=["10.0.0.5"])
    assert stat.S_IMODE((agency / "tax.key").stat().st_mode) == 0o600
    issued = pki.sign(csr, "tax", hosts=["10.0.0.5"], roles=["server", "client"])
    assert not pki.key_path("tax").exists() and not list((tmp_path / "ca").rglob("*.key"))[1:]  # only the CA's own
    cert = x509.load_pem_x509_certificate(issued.cert_path.read_bytes())
    key = serialization.load_pem_private_key((agency / "tax.key").read_bytes(), None)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["tax"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    cert.verify_directly_issued_by(pki.ca_certificate())
    again = request_certificate("tax", agency / "tax.key", agency / "tax-2.csr")  # renewal keeps the key
    assert x509.load_pem_x509_csr(again).public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]

    with pytest.raises(PkiError, match=re.escape("for ['tax'], not 'housing'")):
        pki.sign(csr, "housing")
    with pytest.raises(PkiError, match=re.escape("not approved for tax: ['10.0.0.5']")):
        pki.sign(csr, "tax")  # the request asks for an address the operator did not approve
    with pytest.raises(PkiError, match="not a PEM certificate signing request"):
        pki.sign(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", "tax")
    der = bytearray(x509.load_pem_x509_csr(csr).public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x01  # a bit of the signature flipped: the request no longer proves its key
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(PkiError, match="signature does not verify"):
        pki.sign(tampered, "tax", hosts=["10.0.0.5"])


def test_pki_request_and_sign_from_the_command_line(tmp_path: Path) -> None:
    """`mpc-admin pki request` on the agency's machine, `pki sign` on the CA's: the key stays in
    the agency's directory; a request asking for an unapproved address is refused in one line."""
    from typer.testing import CliRunner

    from parties.cli.admin import app

    runner = CliRunner()
    assert runner.invoke(app, ["pki", "init", "--dir", str(tmp_path / "ca")]).exit_code == 0
    agency = tmp_path / "agency"
    agency.mkdir()
    key, csr = agency / "housing.key", agency / "housing.csr"
    made = runner.invoke(app, ["pki", "request", "housing", "--key", str(key), "--out", str(csr), "--host", "10.1.2.3"])
    assert made.exit_code == 0, made.output
    refused = runner.invoke(app, ["pki", "sign", "housing", "--request", str(csr), "--dir", str(tmp_path / "ca")])
    assert refused.exit_code == 1 and "not approved for housing: ['10.1.2.3']" in refused.output
    signed = runner.invoke(
        app, ["pki", "sign", "housing", "--request", str(csr), "--dir", str(tmp_path / "ca"), "--host", "10.1.2.3"]
    )
    assert signed.exit_code == 0, signed.output
    assert (tmp_path / "ca" / "issued" / "housing.pem").exists() and not (
        tmp_path / "ca" / "issued" / "housing.key"
    ).exists()
    missing = runner.invoke(
        app, ["pki", "sign", "housing", "--request", str(agency / "nope.csr"), "--dir", str(tmp_path / "ca")]
    )
    assert missing.exit_code == 1 and "nope.csr: cannot be read" in missing.output
