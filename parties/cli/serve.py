"""Shared ``serve`` loop of the daemons: start, publish the bound address, stop cleanly on a signal."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Protocol

from rich.console import Console

from mpc.audit import AuditLog
from parties.rpc.handshake_audit import HandshakeAuditor

console = Console(stderr=True)
PARENT_STOPS_ENV = "MPC_SUPERVISED"


class Daemon(Protocol):
    address: str
    audit_log: AuditLog

    def start(self) -> None: ...

    def stop(self, grace: float | None = None) -> None: ...


def serve(daemon: Daemon, name: str, address_file: Path) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully (in-flight requests finish or abort)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if os.environ.get(PARENT_STOPS_ENV) == "1":
        # Started by a supervisor (demo.cluster) that stops us in order on Ctrl-C: a terminal's
        # SIGINT to the whole process group must not race it.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    handshakes = HandshakeAuditor(daemon.audit_log)
    handshakes.start()
    daemon.start()
    address_file.write_text(daemon.address + "\n")
    console.print(f"{name} listening on {daemon.address}")
    # Wake up regularly: a signal delivered to another thread only runs its Python handler when the
    # main thread executes bytecode, and an untimed wait would never return.
    while not stop.wait(0.2):
        pass
    console.print(f"{name} shutting down")
    daemon.stop()
    address_file.unlink(missing_ok=True)
    handshakes.stop()
