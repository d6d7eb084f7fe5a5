"""Shared ``serve`` loop of the daemons: start, publish the bound address, stop cleanly on a signal;
and what a daemon that cannot start says (one line naming the file or key, and the fix)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from rich.console import Console

from mpc.audit import AuditLog, AuditLogError
from mpc.data.sources import DataSourceError
from mpc.files import write_atomic
from parties import logs
from parties.cli.cells import fail
from parties.config import ConfigError
from parties.rpc.handshake_audit import HandshakeAuditor
from parties.rpc.tls import OwnCertificateError

console = Console(stderr=True)
PARENT_STOPS_ENV = "MPC_SUPERVISED"
D = TypeVar("D")


class Daemon(Protocol):
    address: str
    audit_log: AuditLog

    def start(self) -> None: ...

    def stop(self, grace: float | None = None) -> None: ...


def configure_logs(level: str) -> None:
    """Log JSON lines to stderr at ``level``; an unknown level stops the command naming the option."""
    try:
        logs.configure(level)
    except ValueError:
        fail(f"--log-level must be DEBUG, INFO, WARNING or ERROR, not {level!r}")


def open_daemon(make: Callable[[], D], config: Path, section: str) -> D:
    """The daemon ``make`` builds from the configuration file ``config``. What is expected to go
    wrong (the configuration, a file it names, our certificate, a dataset, the state directory held
    by another process) stops the command with one line naming the file or key and the fix, exit status 2."""
    try:
        return make()
    except AuditLogError as exc:
        if "already open" not in str(exc):
            fail(f"{config}: {exc}")
        fail(
            f"{exc}: another process runs with this state directory ({section}.state_dir in {config}); stop it, "
            "or give this one a state directory of its own"
        )
    except (ConfigError, OwnCertificateError, DataSourceError) as exc:
        fail(str(exc) if str(config) in str(exc) else f"{config}: {exc}")
    except OSError as exc:  # a certificate, key or CRL file the configuration names
        fail(f"{config}: cannot read {exc.filename}: {exc.strerror or exc}; check the paths it names")


def serve(daemon: Daemon, name: str, address_file: Path) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully (in-flight requests finish or abort); an
    address that cannot be bound stops the command saying so."""
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
    try:
        daemon.start()
    except OSError as exc:
        handshakes.stop()
        fail(f"{name} cannot listen: {exc.strerror or exc}; is another process on that address?")
    write_atomic(address_file, [(daemon.address + "\n").encode()], 0o644)  # a reader never sees it half written
    console.print(f"{name} listening on {daemon.address}")
    # Wake up regularly: a signal delivered to another thread only runs its Python handler when the
    # main thread executes bytecode, and an untimed wait would never return.
    while not stop.wait(0.2):
        pass
    console.print(f"{name} shutting down")
    daemon.stop()
    address_file.unlink(missing_ok=True)
    handshakes.stop()
