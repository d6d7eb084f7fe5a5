"""The gateway daemon: the HTTP API and portal (uvicorn) on one address, its records and signed
audit log under its state directory; it talks to the agencies over mutual-TLS gRPC only."""

from __future__ import annotations

from mpc.audit import AuditEvent
from parties.gateway.app import create_app
from parties.gateway.config import GatewayConfig
from parties.gateway.sandbox import Sandbox
from parties.gateway.store import Store
from parties.rpc.https import HttpServer
from parties.rpc.tls import check_own_certificate


class GatewayDaemon:
    def __init__(self, config: GatewayConfig) -> None:
        check_own_certificate(config.tls)
        self.config = config
        self.store = Store(config.gateway.database_url)
        self.sandbox = Sandbox(config, self.store)
        self.audit_log = self.sandbox.audit
        self.app = create_app(self.sandbox)
        https = config.gateway.https
        self.http = HttpServer(self.app, config.gateway.listen, config.tls if https else None)
        self.address = ""

    def start(self) -> None:
        self.http.start()
        self.address = self.http.address
        self.audit_log.append(
            AuditEvent(peer="-", action="daemon:start", detail=f"listen={self.http.scheme}://{self.address}")
        )

    def stop(self, grace: float | None = None) -> None:
        self.http.stop(grace)
        self.audit_log.append(AuditEvent(peer="-", action="daemon:stop"))
        self.sandbox.close()

    def wait(self) -> None:
        self.http.wait()
