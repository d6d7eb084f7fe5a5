"""Audit entries for TLS handshakes that the server refused.

grpcio refuses a client certificate from a foreign CA, an expired one or none at all inside the TLS
handshake, before any application code runs, and offers no hook for it; gRPC core only writes a
line such as ``Handshake failed with error SSL_ERROR_SSL: ...: certificate has expired`` to the
process's stderr. :class:`HandshakeAuditor` tees file descriptor 2 through a pipe and turns each
such line into an audit entry (``tls:handshake-refused``, outcome ``UNAUTHENTICATED``, the reason).
The peer's claimed identity is not known at that point (and an unverified certificate proves
nothing), so the entry names the reason only.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading

from mpc.audit import AuditEvent, AuditLog

HANDSHAKE_FAILED = re.compile(r"Handshake failed with error (?P<error>[A-Z_]+): (?P<detail>.*)$")
REASONS = {
    "certificate has expired": "expired certificate",
    "unable to get local issuer certificate": "certificate from an unknown CA",
    "self signed certificate": "self-signed certificate",
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "no client certificate",
    "CERTIFICATE_VERIFY_FAILED": "certificate verification failed",
}


def reason_of(detail: str) -> str:
    for needle, reason in REASONS.items():
        if needle in detail:
            return reason
    return "TLS handshake failed"


class HandshakeAuditor:
    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit
        self._original: int | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        """Redirect fd 2 into a pipe; a thread copies every byte back to the original stderr."""
        self._original = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self._reader = threading.Thread(target=self._pump, args=(read_end,), name="stderr-audit", daemon=True)
        self._reader.start()

    def stop(self) -> None:
        if self._original is not None:
            os.dup2(self._original, 2)  # closes the pipe's last write end: the pump sees EOF
            os.close(self._original)
            self._original = None
        if self._reader is not None:
            # Worker processes that inherited fd 2 may keep the pipe open; the pump is a daemon
            # thread and ends with the process, so do not wait for its EOF.
            self._reader.join(timeout=0.5)

    def _pump(self, read_end: int) -> None:
        original = self._original
        assert original is not None
        pending = b""
        with os.fdopen(read_end, "rb", buffering=0) as pipe:
            while True:
                chunk = pipe.read(65536)
                if not chunk:
                    break
                with contextlib.suppress(OSError):
                    os.write(original, chunk)
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._inspect(line.decode("utf-8", "replace"))

    def _inspect(self, line: str) -> None:
        match = HANDSHAKE_FAILED.search(line)
        if match is None:
            return
        with contextlib.suppress(Exception):  # never let auditing break stderr
            self.audit.append(
                AuditEvent(
                    peer="-",
                    action="tls:handshake-refused",
                    outcome="UNAUTHENTICATED",
                    detail=f"{reason_of(match['detail'])} ({match['detail'][-200:]})",
                )
            )
