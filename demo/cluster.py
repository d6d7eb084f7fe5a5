"""A whole deployment on loopback: fresh PKI, a coordinator and party daemons as separate processes.

Used by ``make demo``, the end-to-end tests and the benchmarks. Everything lives under one state
directory (certificates, configurations, daemon state, logs); nothing is committed. Daemons bind
127.0.0.1 on ephemeral ports and publish the bound address in ``STATE/address``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w
from cryptography import x509

from mpc.approvals import CATALOGUE_FILE, RuleApprovals
from mpc.audit import load_or_create_signing_key
from mpc.protocols.rules import Rule
from parties.pki import ROLES, Pki

COORDINATOR = "coordinator"


@dataclass
class PartySpec:
    """A party of the cluster: its datasets (DatasetSpec dicts) and policy (Policy dict).
    ``daemon=False``: no process is started (certificate and config only). Without datasets that
    is a requester-only identity (a clientAuth certificate); with datasets, a daemon the caller
    runs itself (in process, say). ``service``: a requester-only identity that runs the requester
    service (``mpc-requester serve``), so its certificate also serves, on 127.0.0.1."""

    name: str
    datasets: list[dict[str, Any]] = field(default_factory=list)
    policy: dict[str, Any] = field(default_factory=dict)
    daemon: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # more keys for the [party] section
    predicates: list[dict[str, Any]] = field(default_factory=list)  # published predicates (P2)
    service: bool = False
    compute: dict[str, Any] = field(default_factory=dict)  # its [compute] section (mpc.parallel.ComputeConfig)


@dataclass
class Running:
    name: str
    config: Path
    state_dir: Path
    process: subprocess.Popen[bytes] | None
    address: str = ""
    log: Path | None = None


class ClusterError(RuntimeError):
    pass


GATEWAY = "gateway"


class LocalCluster:
    """``gateway``: also run the researcher sandbox (HTTP on an ephemeral loopback port; the
    owners' policies must grant the party named ``gateway``), with ``gateway_settings`` for its
    ``[gateway]`` section."""

    def __init__(
        self,
        root: Path,
        parties: list[PartySpec],
        paillier_bits: int = 2048,
        gateway: bool = False,
        gateway_settings: dict[str, Any] | None = None,
    ) -> None:
        self.root = root.resolve()
        self.specs = {p.name: p for p in parties}
        self.paillier_bits = paillier_bits
        self.gateway = gateway
        self.gateway_settings = dict(gateway_settings or {})
        self.pki_dir = self.root / "pki"
        self.members: dict[str, Running] = {}

    # ------------------------------------------------------------------ files
    def _tls(self, name: str) -> dict[str, str]:
        return {
            "ca": str(self.pki_dir / "ca.pem"),
            "cert": str(self.pki_dir / "issued" / f"{name}.pem"),
            "key": str(self.pki_dir / "issued" / f"{name}.key"),
            "crl": str(self.pki_dir / "crl.pem"),
        }

    def prepare(self) -> None:
        """Create the PKI and write every configuration (idempotent for an existing root)."""
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        pki = Pki(self.pki_dir) if (self.pki_dir / "ca.pem").exists() else Pki.init(self.pki_dir)
        for name in [COORDINATOR, *self.specs, *([GATEWAY] if self.gateway else [])]:
            if not _names_itself(self.pki_dir / "issued" / f"{name}.pem", name):  # missing, or from before DNS:name
                # each daemon serves on loopback only; a requester-only identity serves nothing
                spec = self.specs.get(name)
                requester = spec is not None and not spec.daemon and not spec.datasets and not spec.service
                pki.issue(name, hosts=() if requester else ("127.0.0.1",), roles=("client",) if requester else ROLES)
        coordinator_config = {
            "coordinator": {
                "name": COORDINATOR,
                "listen": "127.0.0.1:0",
                "state_dir": str(self.root / "state" / COORDINATOR),
            },
            "tls": self._tls(COORDINATOR),
        }
        path = self.root / "config" / f"{COORDINATOR}.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(tomli_w.dumps(coordinator_config).encode())
        self.members[COORDINATOR] = Running(COORDINATOR, path, self.root / "state" / COORDINATOR, None)

    def _write_party_config(self, spec: PartySpec, coordinator_address: str) -> Running:
        state = self.root / "state" / spec.name
        config: dict[str, Any] = {
            "party": {
                "name": spec.name,
                "listen": "127.0.0.1:0",
                "state_dir": str(state),
                "coordinator": coordinator_address,
                "paillier_bits": self.paillier_bits,
                "audit_witness_seconds": 5.0,
                **spec.extra,
            },
            "tls": self._tls(spec.name),
            "datasets": spec.datasets,
            "predicates": spec.predicates,
            "policy": spec.policy or {"peers": {}},
            **({"compute": spec.compute} if spec.compute else {}),
        }
        path = self.root / "config" / f"{spec.name}.toml"
        path.write_bytes(tomli_w.dumps(config).encode())
        return Running(spec.name, path, state, None)

    # ------------------------------------------------------------------ processes
    def _spawn(self, member: Running, module: str) -> None:
        member.state_dir.mkdir(parents=True, exist_ok=True)
        (member.state_dir / "address").unlink(missing_ok=True)
        member.log = self.root / "logs" / f"{member.name}.log"
        with member.log.open("ab") as log:
            member.process = subprocess.Popen(
                [sys.executable, "-m", module, "serve", "--config", str(member.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "MPC_SUPERVISED": "1"},  # we stop them on Ctrl-C
            )

    def _await(self, member: Running, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        address_file = member.state_dir / "address"
        while time.monotonic() < deadline:
            assert member.process is not None
            if member.process.poll() is not None:
                tail = member.log.read_text(errors="replace")[-2000:] if member.log else ""
                raise ClusterError(f"{member.name} exited with {member.process.returncode}:\n{tail}")
            if address_file.exists() and address_file.read_text().strip():
                member.address = address_file.read_text().strip()
                return
            time.sleep(0.05)
        raise ClusterError(f"{member.name} did not start within {timeout:.0f} s (log: {member.log})")

    def start_party(self, name: str, timeout: float = 120.0, config: Path | None = None) -> Running:
        """(Re)start a party's daemon; with ``config``, from another configuration of the same
        party (a restored state directory, say), which it keeps until started again without."""
        member = self.members[name]
        if config is not None:
            from parties.config import load_party_config

            member.config, member.state_dir = config, load_party_config(config).party.state_dir
        self._spawn(member, "parties.cli.party")
        self._await(member, timeout)
        return member

    def restart_coordinator(self, sig: int = signal.SIGTERM, timeout: float = 120.0) -> float:
        """Stop the coordinator with ``sig`` and start it again on the address it had (the parties'
        configurations name it), from the same state directory. Returns the seconds until it serves."""
        member = self.members[COORDINATOR]
        config = tomllib.loads(member.config.read_text())
        config["coordinator"]["listen"] = member.address  # its port, no longer an ephemeral one
        member.config.write_bytes(tomli_w.dumps(config).encode())
        self.stop_party(COORDINATOR, sig)
        started = time.perf_counter()
        self._spawn(member, "parties.cli.coordinator")
        self._await(member, timeout)
        return time.perf_counter() - started

    def start(self, timeout: float = 120.0) -> None:
        self.prepare()
        coordinator = self.members[COORDINATOR]
        self._spawn(coordinator, "parties.cli.coordinator")
        self._await(coordinator, timeout)
        for spec in self.specs.values():
            self.members[spec.name] = self._write_party_config(spec, coordinator.address)
        for spec in self.specs.values():
            if spec.daemon:
                self._spawn(self.members[spec.name], "parties.cli.party")
        for spec in self.specs.values():
            if spec.daemon:
                self._await(self.members[spec.name], timeout)
        if self.gateway:
            member = self._write_gateway_config(coordinator.address)
            self.members[GATEWAY] = member
            self._spawn(member, "parties.cli.gateway")
            self._await(member, timeout)

    def _write_gateway_config(self, coordinator_address: str) -> Running:
        state = self.root / "state" / GATEWAY
        config = {
            "gateway": {
                "name": GATEWAY,
                "listen": "127.0.0.1:0",
                "state_dir": str(state),
                "coordinator": coordinator_address,
                **self.gateway_settings,
            },
            "tls": self._tls(GATEWAY),
        }
        path = self.root / "config" / f"{GATEWAY}.toml"
        path.write_bytes(tomli_w.dumps(config).encode())
        return Running(GATEWAY, path, state, None)

    @property
    def ca_path(self) -> Path:
        """The deployment CA's certificate: researchers verify the gateway's HTTPS with it."""
        return self.pki_dir / "ca.pem"

    @property
    def gateway_url(self) -> str:
        scheme = "https" if self.gateway_settings.get("https", True) else "http"
        return f"{scheme}://{self.members[GATEWAY].address}"

    def stop_party(self, name: str, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        member = self.members.get(name)
        if member is None or member.process is None or member.process.poll() is not None:
            return None if member is None or member.process is None else member.process.returncode
        member.process.send_signal(sig)
        try:
            return member.process.wait(timeout)
        except subprocess.TimeoutExpired:
            member.process.kill()
            return member.process.wait()

    def stop(self) -> None:
        for name in [n for n in self.members if n != COORDINATOR]:
            self.stop_party(name)
        self.stop_party(COORDINATOR)

    def config(self, name: str) -> Path:
        return self.members[name].config

    def approve_rule(self, rule: Rule, requester: str, purposes: list[str]) -> list[str]:
        """Each owner whose columns ``rule`` reads approves it (as ``mpc-admin rules approve``
        would) for ``requester`` and ``purposes``; running daemons pick it up. Returns the owners."""
        owners = sorted({c.owner for c in rule.clauses.values() if not c.is_predicate})
        for owner in owners:
            state = self.root / "state" / owner
            key = load_or_create_signing_key(state / "audit-signing.pem")
            RuleApprovals(state / CATALOGUE_FILE, key).approve(rule.name, rule, requester, purposes)
        return owners

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _names_itself(path: Path, name: str) -> bool:
    """Whether the certificate at ``path`` exists and carries ``DNS:name`` (what clients check)."""
    if not path.exists():
        return False
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return name in san.get_values_for_type(x509.DNSName)
