"""The requester service as a daemon: the warm client, the API over HTTPS (callers by client
certificate) on one address, every call in the agency's signed audit log."""

from __future__ import annotations

import threading

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from mpc import parallel
from mpc.audit import AuditEvent
from mpc.protocols.rules import RuleError, load_rules
from parties.config import ConfigError
from parties.requester.bucket_cache import BucketCache
from parties.requester.service.app import create_app
from parties.requester.service.callers import Callers
from parties.requester.service.checks import Checker, SharedClient
from parties.requester.service.coalesce import Coalescer
from parties.requester.service.config import ServiceConfig
from parties.requester.service.jobs import Jobs
from parties.rpc.https import HttpServer
from parties.rpc.tls import OwnCertificateError, TlsConfig, check_own_certificate

__all__ = ["RequesterService"]


class RequesterService:
    """``start``/``stop``/``address``/``audit_log``, as the shared serve loop drives daemons."""

    def __init__(self, config: ServiceConfig) -> None:
        section, tls = config.service, config.agency.tls
        check_own_certificate(tls)
        if section.https:
            _check_serves(tls)
        try:
            rules = load_rules(section.rules)
        except RuleError as exc:
            raise ConfigError(str(exc)) from None
        self.config = config
        self.client = SharedClient.from_config(config.agency_path)
        assert isinstance(self.client, SharedClient) and self.client.audit is not None  # with the agency's log
        self.audit_log = self.client.audit
        self.client.obfuscators_on_backend = True  # the HTTP thread shares this interpreter
        if section.bucket_cache_mb:
            self.client.bucket_cache = BucketCache(section.bucket_cache_mb << 20)
        checker = Checker(self.client, rules, section.default_purpose, section.id_kind)
        self.jobs = Jobs(checker, section.job_chunk, section.keep_jobs)
        served = tls if section.https else None
        coalescer = Coalescer(
            checker, section.coalesce_ms, section.coalesce_most, section.coalesce, section.coalesce_in_flight
        )
        callers = Callers(section.callers, served)
        app = create_app(checker, coalescer, self.jobs, callers, self.audit_log, section.max_job_applications)
        self.http = HttpServer(app, section.listen, served, client_certificates=True)
        self.address = ""

    def start(self) -> None:
        # the obfuscators' workers, started now rather than by the first check (a second or two)
        threading.Thread(target=parallel.backend().warm, name="compute-warm", daemon=True).start()
        self.http.start()
        self.address = self.http.address
        callers = ", ".join(self.config.service.callers)
        self.audit_log.append(
            AuditEvent(
                peer="-", action="service:start", detail=f"listen={self.http.scheme}://{self.address} callers={callers}"
            )
        )

    def stop(self, grace: float | None = None) -> None:
        self.http.stop(grace)
        self.jobs.close()
        cache = self.client.bucket_cache
        kept = (
            f"bucket cache: {cache.hits} fetches answered from it, {cache.misses} not, {len(cache)} buckets "
            f"({cache.size >> 20} MB) kept"
            if cache is not None
            else ""
        )
        self.audit_log.append(AuditEvent(peer="-", action="service:stop", detail=kept))
        self.client.close()


def _check_serves(tls: TlsConfig) -> None:
    """Callers verify our certificate for serverAuth: one issued for calling only would fail every
    handshake, so say so before serving."""
    cert = x509.load_pem_x509_certificate(tls.cert.read_bytes())
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return
    if ExtendedKeyUsageOID.SERVER_AUTH not in usages:
        raise OwnCertificateError(
            f"our certificate {tls.cert} is for calling only (no serverAuth): callers would refuse it; issue it "
            f"again to serve, with the address callers use (mpc-admin pki issue NAME --host ADDRESS)"
        )
