"""HTTPS for the daemons that speak HTTP (the gateway, the requester service): uvicorn on a bound
socket in a thread, with the party's certificate from the deployment PKI; optionally asking every
caller for a client certificate issued by the deployment CA (mutual TLS), which the application
reads from the ASGI TLS extension (:func:`client_certificate`). Plain HTTP only on loopback
(:func:`check_plain_http`)."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from parties.rpc.tls import TlsConfig

__all__ = ["LOOPBACK", "HttpServer", "check_plain_http", "client_certificate"]

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
Scope = MutableMapping[str, Any]
Asgi = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def check_plain_http(listen: str, https: bool, what: str) -> None:
    """Refuse ``https = false`` unless ``listen`` is a loopback address; ``what`` says what would
    travel in the clear. Raises :class:`ValueError` (pydantic validators of the daemons' configs)."""
    host = listen.rpartition(":")[0].strip("[]")
    if not https and host not in LOOPBACK:
        raise ValueError(
            f"https = false serves {what} in plain HTTP: only on a loopback address "
            f"({', '.join(sorted(LOOPBACK))}), not on {host!r}; keep https = true"
        )


def client_certificate(scope: Scope) -> str | None:
    """The PEM client certificate the caller presented in the TLS handshake of its connection
    (verified against the deployment CA there), or None: plain HTTP, or no certificate."""
    chain = scope.get("extensions", {}).get("tls", {}).get("client_cert_chain") or []
    return str(chain[0]) if chain else None


class _ClientCertificates(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, passing each connection's client certificate on to the
    application in the ASGI TLS extension (``scope["extensions"]["tls"]["client_cert_chain"]``)."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        tls = transport.get_extra_info("ssl_object")
        der = tls.getpeercert(binary_form=True) if tls is not None else None
        if der is None:
            return
        chain = [ssl.DER_cert_to_PEM_cert(der)]
        app = cast("Asgi", self.app)

        async def with_certificate(scope: Scope, receive: Any, send: Any) -> None:
            scope.setdefault("extensions", {})["tls"] = {"client_cert_chain": chain}
            await app(scope, receive, send)

        self.app = cast("Any", with_certificate)


class HttpServer:
    """``app`` served on ``listen`` (port 0: an ephemeral one; :attr:`address` is the bound one),
    over TLS with ``tls``'s certificate unless ``tls`` is None; with ``client_certificates``,
    callers are asked for a certificate from ``tls.ca`` (a foreign or expired one fails the
    handshake; none at all is let through for the application to refuse precisely)."""

    def __init__(self, app: Any, listen: str, tls: TlsConfig | None, client_certificates: bool = False) -> None:
        self.app, self.listen, self.tls = app, listen, tls
        self.client_certificates = client_certificates and tls is not None
        self.address = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    def start(self, timeout: float = 30.0) -> None:
        host, _, port = self.listen.rpartition(":")
        # IPPROTO_TCP named explicitly: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose
        # proto says TCP, and without it every keep-alive response waits 40 ms for a delayed ACK
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), int(port)))
        sock.listen(1024)
        self.address = f"{host}:{sock.getsockname()[1]}"
        tls = self.tls
        mutual: dict[str, Any] = (
            {"ssl_ca_certs": str(tls.ca), "ssl_cert_reqs": ssl.CERT_OPTIONAL, "http": _ClientCertificates}
            if tls is not None and self.client_certificates
            else {}
        )
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                log_level="warning",
                access_log=False,
                ssl_certfile=str(tls.cert) if tls is not None else None,
                ssl_keyfile=str(tls.key) if tls is not None else None,
                **mutual,
            )
        )
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name="http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self, grace: float | None = None) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=grace or 10)

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
