"""The gateway daemon: the HTTP API and portal (uvicorn) on one address, its records and signed
audit log under its state directory; it talks to the agencies over mutual-TLS gRPC only."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from mpc.audit import AuditEvent
from parties.gateway.app import create_app
from parties.gateway.config import GatewayConfig
from parties.gateway.sandbox import Sandbox
from parties.gateway.store import Store
from parties.rpc.tls import check_own_certificate


class GatewayDaemon:
    def __init__(self, config: GatewayConfig) -> None:
        check_own_certificate(config.tls)
        self.config = config
        self.store = Store(config.gateway.database_url)
        self.sandbox = Sandbox(config, self.store)
        self.audit_log = self.sandbox.audit
        self.app = create_app(self.sandbox)
        self.address = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        host, _, port = self.config.gateway.listen.rpartition(":")
        # IPPROTO_TCP named explicitly: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose
        # proto says TCP, and without it every keep-alive response waits 40 ms for a delayed ACK
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        sock.listen(128)
        self.address = f"{host}:{sock.getsockname()[1]}"
        tls, https = self.config.tls, self.config.gateway.https
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                log_level="warning",
                access_log=False,
                ssl_certfile=str(tls.cert) if https else None,
                ssl_keyfile=str(tls.key) if https else None,
            )
        )
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name="http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        scheme = "https" if self.config.gateway.https else "http"
        self.audit_log.append(AuditEvent(peer="-", action="daemon:start", detail=f"listen={scheme}://{self.address}"))

    def stop(self, grace: float | None = None) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=grace or 10)
        self.audit_log.append(AuditEvent(peer="-", action="daemon:stop"))
        self.sandbox.close()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
