"""``mpc-admin``: the deployment's PKI, audit-log verification and the rules an owner approves."""

from __future__ import annotations

from pathlib import Path

import grpc
import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from rich.console import Console
from rich.table import Table

from mpc.approvals import CATALOGUE_FILE, ApprovalError, RuleApprovals
from mpc.audit import AuditHead, load_or_create_signing_key, verify_log
from mpc.protocols.rules import RuleError, load_rules
from parties.pki import ROLES, Pki, PkiError, Role

app = typer.Typer(help="Deployment administration: certificates and audit logs.", no_args_is_help=True)
pki_app = typer.Typer(help="The deployment CA and party certificates.", no_args_is_help=True)
audit_app = typer.Typer(help="Audit-log verification.", no_args_is_help=True)
app.add_typer(pki_app, name="pki")
app.add_typer(audit_app, name="audit")
console = Console()

PKI_DIR = typer.Option(Path("pki"), "--dir", "-d", help="PKI directory")


@pki_app.command("init")
def pki_init(directory: Path = PKI_DIR, common_name: str = typer.Option("mpc deployment CA", "--cn")) -> None:
    """Create the deployment CA (refuses to overwrite an existing one)."""
    try:
        pki = Pki.init(directory, common_name)
    except PkiError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    console.print(f"CA created in {directory} ({pki.ca_certificate().subject.rfc4514_string()})")


@pki_app.command("issue")
def pki_issue(
    name: str,
    directory: Path = PKI_DIR,
    days: int = typer.Option(365, help="validity in days"),
    host: list[str] = typer.Option(
        [], "--host", help="an address the party serves on (DNS name or IP), as the deployment declares it"
    ),
    client_only: bool = typer.Option(False, "--client-only", help="a requester that serves nothing (clientAuth only)"),
) -> None:
    """Issue NAME's certificate: subject CN=NAME, subjectAltName DNS:NAME plus each --host."""
    try:
        roles: tuple[Role, ...] = ("client",) if client_only else ROLES
        issued = Pki(directory).issue(name, hosts=tuple(host), valid_days=days, roles=roles)
    except (PkiError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    console.print(
        f"issued {name}: {issued.cert_path} (key {issued.key_path}), sha256 {issued.fingerprint_sha256[:16]}…, "
        f"valid until {issued.not_after:%Y-%m-%d}"
    )


@pki_app.command("revoke")
def pki_revoke(name: str, directory: Path = PKI_DIR) -> None:
    """Revoke NAME's certificate and rewrite the CRL that daemons read."""
    try:
        Pki(directory).revoke(name)
    except (PkiError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    console.print(f"revoked {name}; CRL written to {Path(directory) / 'crl.pem'}")


@pki_app.command("crl")
def pki_crl(directory: Path = PKI_DIR) -> None:
    """Renew the CRL (the same revocations, a new nextUpdate): daemons refuse every peer once
    the CRL they read has expired, so renew it before then (it is valid for 30 days)."""
    try:
        next_update = Pki(directory).renew_crl()
    except (PkiError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    console.print(f"CRL renewed: {Path(directory) / 'crl.pem'}, valid until {next_update:%Y-%m-%d %H:%M} UTC")


def _public_key(path: Path) -> Ed25519PublicKey:
    data = path.read_bytes()
    if b"PRIVATE KEY" in data:
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise typer.BadParameter(f"{path} is not an Ed25519 key")
        return key.public_key()
    public = serialization.load_pem_public_key(data)
    if not isinstance(public, Ed25519PublicKey):
        raise typer.BadParameter(f"{path} is not an Ed25519 public key")
    return public


def _witnessed_heads(config: Path) -> list[AuditHead]:
    from parties.config import load_party_config
    from parties.rpc.tls import secure_channel
    from protos import coordinator_pb2, coordinator_pb2_grpc

    settings = load_party_config(config)
    if not settings.party.coordinator:
        raise typer.BadParameter(f"{config} names no coordinator")
    with secure_channel(settings.party.coordinator, settings.tls, settings.party.coordinator_name) as channel:
        reply = coordinator_pb2_grpc.CoordinatorStub(channel).GetWitnessedHeads(
            coordinator_pb2.WitnessQuery(party=settings.party.name), timeout=10
        )
    return [AuditHead(seq=h.seq, hash=h.hash, time=h.time, signature=h.signature) for h in reply.heads]


@audit_app.command("verify")
def audit_verify(
    config: Path | None = typer.Option(
        None, "--config", "-c", help="a daemon's configuration: its state dir holds log and key"
    ),
    log: Path | None = typer.Option(None, "--log", help="audit log file (instead of --config)"),
    key: Path | None = typer.Option(None, "--key", help="Ed25519 signing key or public key PEM (with --log)"),
    against_coordinator: bool = typer.Option(
        False, "--against-coordinator", help="also check the heads the coordinator witnessed"
    ),
) -> None:
    """Report every edited, removed, inserted or reordered entry; exit 1 if any."""
    if config is not None:
        from parties.config import load_party_config

        state = load_party_config(config).party.state_dir
        log, key = log or state / "audit.log", key or state / "audit-signing.pem"
    if log is None or key is None:
        raise typer.BadParameter("give --config, or --log and --key")
    witnessed: list[AuditHead] = []
    if against_coordinator:
        if config is None:
            raise typer.BadParameter("--against-coordinator needs --config (for the TLS identity and address)")
        try:
            witnessed = _witnessed_heads(config)
        except grpc.RpcError as exc:
            typer.echo(f"error: coordinator: {exc.code().name}: {exc.details()}", err=True)
            raise typer.Exit(2) from None
    report = verify_log(log, _public_key(key), witnessed)
    if report.ok:
        head = report.head
        console.print(
            f"[green]OK[/]: {report.entries} entries, chain and signatures verify"
            + (f", head seq {head.seq}" if head else "")
            + (f", consistent with {len(witnessed)} witnessed heads" if against_coordinator else "")
        )
        return
    table = Table(title=f"{log}: {len(report.problems)} problems")
    for column in ("line", "seq", "kind", "message"):
        table.add_column(column)
    for p in report.problems:
        table.add_row(str(p.line), "-" if p.seq is None else str(p.seq), p.kind, p.message)
    console.print(table)
    raise typer.Exit(1)


def run() -> None:
    app()


# ---------------------------------------------------------------------------- approved rules
rules_app = typer.Typer(
    help="The rules this owner lets requesters run on its data (by fingerprint).", no_args_is_help=True
)
app.add_typer(rules_app, name="rules")
CONFIG = typer.Option(..., "--config", "-c", help="this owner's daemon configuration (its state directory)")


def _approvals(config: Path) -> RuleApprovals:
    from parties.config import ConfigError, load_party_config

    try:
        party = load_party_config(config)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    state = party.party.state_dir  # signed with the owner's audit key (created with the state directory)
    return RuleApprovals(state / CATALOGUE_FILE, load_or_create_signing_key(state / "audit-signing.pem"))


@rules_app.command("approve")
def rules_approve(
    rules_file: Path = typer.Argument(..., help="rules file (TOML)"),
    rule: str = typer.Argument(..., help="the rule's name in that file"),
    peer: str = typer.Option(..., help="the requester that may run it"),
    purpose: list[str] = typer.Option(..., "--purpose", help="purpose code(s) it may run for"),
    config: Path = CONFIG,
) -> None:
    """Approve RULE exactly as written in RULES_FILE (clauses, thresholds, flags) for PEER and the
    purposes: the daemon then runs it for that requester; a changed threshold needs a new approval."""
    try:
        chosen = load_rules(rules_file).get(rule)
        approval = _approvals(config).approve(rule, chosen, peer, purpose)
    except (RuleError, ApprovalError, OSError) as exc:
        typer.echo(f"error: {str(exc).splitlines()[0] if isinstance(exc, OSError) else exc}", err=True)
        raise typer.Exit(1) from None
    console.print(
        f"approved rule {rule} (fingerprint {approval.fingerprint[:16]}…) for {peer}, "
        f"purposes {', '.join(approval.purposes)}"
    )


@rules_app.command("withdraw")
def rules_withdraw(rule: str, peer: str = typer.Option(..., help="the requester"), config: Path = CONFIG) -> None:
    """Withdraw the approval of RULE for PEER (the daemon refuses it from then on)."""
    if not _approvals(config).withdraw(rule, peer):
        typer.echo(f"error: rule {rule!r} is not approved for {peer!r}", err=True)
        raise typer.Exit(1)
    console.print(f"withdrew rule {rule} for {peer}")


@rules_app.command("list")
def rules_list(config: Path = CONFIG) -> None:
    """The approved rules: name, requester, purposes, fingerprint, clauses with their thresholds."""
    try:
        entries = _approvals(config).entries()
    except ApprovalError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    table = Table(title="approved rules")
    for column in ("rule", "requester", "purposes", "fingerprint", "clauses", "approved"):
        table.add_column(column)
    for a in entries:
        clauses = "; ".join(
            f"{n}: {c.predicate or f'{c.dataset}.{c.column} {c.compare} {c.value}'}"
            f"{' x members' if c.per_member else ''}"
            for n, c in a.body.clauses.items()
        )
        table.add_row(a.rule, a.peer, ", ".join(a.purposes), a.fingerprint[:16], clauses, a.approved_at)
    console.print(table)


@app.command("backup")
def backup(
    config: Path = CONFIG,
    to: Path = typer.Option(..., "--to", help="a new directory for the backup"),
    with_caches: bool = typer.Option(False, help="also the encrypted tables and tags (saves re-encrypting them)"),
) -> None:
    """Back up a party's state (keys, policy, approvals, budgets, audit log; caches optional),
    consistently while its daemon runs."""
    from parties.config import ConfigError, load_party_config
    from parties.owner.backup import BackupError
    from parties.owner.backup import backup as take_backup

    try:
        taken = take_backup(config, load_party_config(config), to, with_caches)
    except (ConfigError, BackupError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    console.print(f"backed up {taken.party} to {to}: {taken.files} files (audit log to seq {taken.audit_seq})")


@app.command("restore")
def restore(
    source: Path = typer.Option(..., "--from", help="a backup directory (mpc-admin backup)"),
    state: Path = typer.Option(..., "--state", help="the new state directory (empty)"),
    config_out: Path = typer.Option(..., "--config-out", help="where to write the restored configuration"),
) -> None:
    """Restore a party's state into a new state directory, every file checked against the
    backup's manifest; start the daemon with the configuration written to --config-out."""
    from parties.owner.backup import BackupError
    from parties.owner.backup import restore as restore_backup

    try:
        restored = restore_backup(source, state, config_out)
    except (BackupError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    console.print(
        f"restored {restored.files} files into {restored.state_dir} (audit log to seq {restored.audit_seq}) in "
        f"{restored.seconds:.2f} s; start it with: mpc-party serve --config {restored.config}"
    )


if __name__ == "__main__":
    run()
