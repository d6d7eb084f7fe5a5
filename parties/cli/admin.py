"""``mpc-admin``: the deployment's PKI, audit-log verification, the rules an owner approves and
the owner's load report of its datasets.

Every expected error (a file missing, unreadable or malformed, a configuration of the wrong kind,
a key or column that is wrong) ends the command with one ``error:`` message on stderr naming the
file, key or line and the fix, and a non-zero status -- never a traceback.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import NoReturn

import grpc
import typer
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mpc.approvals import CATALOGUE_FILE, ApprovalError, RuleApprovals
from mpc.audit import AuditHead, load_or_create_signing_key, verify_log
from mpc.protocols.rules import RuleError, load_rules
from parties.cli.targets import DAEMON_LOG, SIGNING_KEY, Kind, Target, load_config, signed_logs
from parties.config import ConfigError, PartyConfig
from parties.pki import ROLES, Pki, PkiError, Role, validate_name

app = typer.Typer(
    help="Deployment administration: certificates, audit logs, approved rules, backups and datasets.",
    no_args_is_help=True,
)
pki_app = typer.Typer(help="The deployment CA and party certificates.", no_args_is_help=True)
audit_app = typer.Typer(help="Audit-log verification.", no_args_is_help=True)
app.add_typer(pki_app, name="pki")
app.add_typer(audit_app, name="audit")
console = Console()

PKI_DIR = typer.Option(Path("pki"), "--dir", "-d", help="PKI directory")
BAD_INPUT = 2  # a configuration, option or input file that cannot be used


def _fail(message: str, code: int = 1) -> NoReturn:
    """End the command: ``error: MESSAGE`` on stderr, exit status ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _load(config: Path, kinds: tuple[Kind, ...], command: str) -> Target:
    """``config`` loaded (one of ``kinds``), or the command ends with the file's problem, status 2."""
    try:
        return load_config(config, kinds, command)
    except ConfigError as exc:
        _fail(str(exc), BAD_INPUT)


def _party(config: Path, command: str) -> PartyConfig:
    """An agency's (``[party]``) configuration for ``command``, or status 2 with the problem."""
    party = _load(config, ("party",), command).config
    assert isinstance(party, PartyConfig)
    return party


def _pki(directory: Path) -> Pki:
    """The deployment CA in ``directory``, or the command ends saying what is missing or unreadable."""
    if not (directory / "ca.pem").is_file():
        _fail(f"no CA in {directory} (ca.pem): create it with mpc-admin pki init --dir {directory}, or give --dir")
    try:
        return Pki(directory)
    except PkiError as exc:
        _fail(str(exc))
    except (OSError, ValueError) as exc:
        _fail(f"{directory}: the CA's ca.pem or ca.key cannot be read ({_first_line(exc)}); restore them from a backup")


def _first_line(error: BaseException) -> str:
    """The first line of an error's message."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


@pki_app.command("init")
def pki_init(directory: Path = PKI_DIR, common_name: str = typer.Option("mpc deployment CA", "--cn")) -> None:
    """Create the deployment CA (refuses to overwrite an existing one)."""
    try:
        pki = Pki.init(directory, common_name)
    except PkiError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{directory}: cannot create the CA there: {exc.strerror or exc}")
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
        issued = _pki(directory).issue(name, hosts=tuple(host), valid_days=days, roles=roles)
    except (PkiError, ValueError) as exc:
        _fail(str(exc))
    console.print(
        f"issued {name}: {issued.cert_path} (key {issued.key_path}), sha256 {issued.fingerprint_sha256[:16]}…, "
        f"valid until {issued.not_after:%Y-%m-%d}"
    )


@pki_app.command("request")
def pki_request(
    name: str,
    key: Path = typer.Option(..., help="where the private key is kept (made if missing; never leaves this machine)"),
    out: Path = typer.Option(..., "--out", help="the signing request to send to the CA"),
    host: list[str] = typer.Option([], "--host", help="an address the party serves on (DNS name or IP)"),
) -> None:
    """On the agency's own machine: make its key and a certificate signing request for NAME."""
    from parties.pki import request_certificate

    try:
        request_certificate(name, key, out, hosts=tuple(host))
    except (PkiError, ValueError) as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{exc.filename or key}: cannot be written or read: {exc.strerror or exc}")
    console.print(f"key {key} (0600, stays here); signing request {out}: send it to the CA (mpc-admin pki sign)")


@pki_app.command("sign")
def pki_sign(
    name: str,
    request: Path = typer.Option(..., "--request", help="the agency's signing request (PEM)"),
    directory: Path = PKI_DIR,
    days: int = typer.Option(365, help="validity in days"),
    host: list[str] = typer.Option([], "--host", help="an address approved for the party (DNS name or IP)"),
    client_only: bool = typer.Option(False, "--client-only", help="a requester that serves nothing (clientAuth only)"),
) -> None:
    """On the CA's machine: certify the key in an agency's signing request as NAME, with the
    addresses approved here (the request may ask for no others). The key never comes here."""
    try:
        pem = request.read_bytes()
    except OSError as exc:
        _fail(f"{request}: cannot be read: {exc.strerror or exc}")
    try:
        roles: tuple[Role, ...] = ("client",) if client_only else ROLES
        issued = _pki(directory).sign(pem, name, hosts=tuple(host), valid_days=days, roles=roles)
    except (PkiError, ValueError) as exc:
        _fail(f"{request}: {exc}")
    console.print(
        f"signed {name}: {issued.cert_path} (sha256 {issued.fingerprint_sha256[:16]}…, valid until "
        f"{issued.not_after:%Y-%m-%d}); send it with {Path(directory) / 'ca.pem'} and crl.pem back to the agency"
    )


@pki_app.command("revoke")
def pki_revoke(name: str, directory: Path = PKI_DIR) -> None:
    """Revoke NAME's certificate and rewrite the CRL that daemons read."""
    try:
        _pki(directory).revoke(name)
    except (PkiError, ValueError) as exc:
        _fail(str(exc))
    console.print(f"revoked {name}; CRL written to {Path(directory) / 'crl.pem'}")


@pki_app.command("crl")
def pki_crl(directory: Path = PKI_DIR) -> None:
    """Renew the CRL (the same revocations, a new nextUpdate): daemons refuse every peer once
    the CRL they read has expired, so renew it before then (it is valid for 30 days)."""
    try:
        next_update = _pki(directory).renew_crl()
    except (PkiError, ValueError) as exc:
        _fail(str(exc))
    console.print(f"CRL renewed: {Path(directory) / 'crl.pem'}, valid until {next_update:%Y-%m-%d %H:%M} UTC")


def _public_key(path: Path) -> Ed25519PublicKey:
    """The Ed25519 public key in ``path`` (a signing key or a public key, PEM); status 2 otherwise."""
    key: object
    try:
        data = path.read_bytes()
        key = (
            serialization.load_pem_private_key(data, password=None)
            if b"PRIVATE KEY" in data
            else serialization.load_pem_public_key(data)
        )
    except OSError as exc:
        _fail(f"{path}: cannot read the key: {exc.strerror or exc}", BAD_INPUT)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        key = None
    if isinstance(key, Ed25519PrivateKey):
        return key.public_key()
    if isinstance(key, Ed25519PublicKey):
        return key
    _fail(f"{path} is not an Ed25519 key in PEM: give the party's {SIGNING_KEY} or its public key", BAD_INPUT)


def _logs_to_verify(config: Path | None, log: Path | None, key: Path | None) -> tuple[list[Path], Path, Target | None]:
    """The logs to verify, the key and the loaded configuration (None with --log and --key)."""
    if config is None:
        if log is None or key is None:
            _fail("give --config, or --log and --key", BAD_INPUT)
        return [log], key, None
    target = _load(config, ("party", "coordinator", "gateway"), "audit verify")
    state = target.state_dir
    logs = [log] if log is not None else signed_logs(state)
    if not logs:
        _fail(
            f"{config}: no signed log in {state} ({DAEMON_LOG} of a daemon, requests.log of mpc-query and the SDK): "
            f"{target.name} has not run yet, or {target.kind}.state_dir is not its state directory",
            BAD_INPUT,
        )
    return logs, key or state / SIGNING_KEY, target


def _witnessed_heads(target: Target | None, explicit_log: bool) -> list[AuditHead]:
    """The heads the coordinator witnessed for a party daemon's log (the first log verified)."""
    from parties.rpc.tls import secure_channel
    from protos import coordinator_pb2, coordinator_pb2_grpc

    if target is None:
        _fail("--against-coordinator needs --config (for the TLS identity and address)", BAD_INPUT)
    settings = target.config
    if not isinstance(settings, PartyConfig):
        _fail(
            f"{target.path} is the {target.kind}'s configuration: the coordinator witnesses party daemons' logs "
            "only; verify this one without --against-coordinator",
            BAD_INPUT,
        )
    if not explicit_log and not (target.state_dir / DAEMON_LOG).is_file():
        _fail(
            f"{target.path}: {target.name} runs no daemon (no {target.state_dir / DAEMON_LOG}); the coordinator "
            "witnesses daemons' logs only: verify its requests logs without --against-coordinator",
            BAD_INPUT,
        )
    if not settings.party.coordinator:
        _fail(f"{target.path} names no coordinator (party.coordinator)", BAD_INPUT)
    try:
        with secure_channel(settings.party.coordinator, settings.tls, settings.party.coordinator_name) as channel:
            reply = coordinator_pb2_grpc.CoordinatorStub(channel).GetWitnessedHeads(
                coordinator_pb2.WitnessQuery(party=settings.party.name), timeout=10
            )
    except OSError as exc:
        _fail(f"{target.path}: a [tls] file cannot be read: {exc.filename}: {exc.strerror or exc}", BAD_INPUT)
    except grpc.RpcError as exc:
        _fail(f"coordinator: {exc.code().name}: {exc.details()}", 2)
    return [AuditHead(seq=h.seq, hash=h.hash, time=h.time, signature=h.signature) for h in reply.heads]


@audit_app.command("verify")
def audit_verify(
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="a party's, the coordinator's or the gateway's configuration: every signed log in its state dir",
    ),
    log: Path | None = typer.Option(None, "--log", help="audit log file (instead of --config)"),
    key: Path | None = typer.Option(None, "--key", help="Ed25519 signing key or public key PEM (with --log)"),
    against_coordinator: bool = typer.Option(
        False, "--against-coordinator", help="also check the heads the coordinator witnessed"
    ),
) -> None:
    """Report every edited, removed, inserted or reordered entry; exit 1 if any.

    With --config, every signed log in the state directory: a daemon's audit.log, and an agency's
    requests.log (and requests.PID.log) of what mpc-query and the SDK asked."""
    logs, key_path, target = _logs_to_verify(config, log, key)
    witnessed = _witnessed_heads(target, log is not None) if against_coordinator else []
    public_key = _public_key(key_path)
    failed = False
    for position, path in enumerate(logs):
        heads = witnessed if position == 0 else []  # the daemon's log comes first
        try:
            report = verify_log(path, public_key, heads)
        except OSError as exc:
            _fail(f"{path}: cannot read the log: {exc.strerror or exc}", BAD_INPUT)
        if report.ok:
            head = report.head
            console.print(
                f"[green]OK[/]: {escape(str(path))}: {report.entries} entries, chain and signatures verify"
                + (f", head seq {head.seq}" if head else "")
                + (f", consistent with {len(heads)} witnessed heads" if against_coordinator and position == 0 else ""),
                soft_wrap=True,
            )
            continue
        failed = True
        table = Table(title=f"{escape(str(path))}: {len(report.problems)} problems")
        for column in ("line", "seq", "kind", "message"):
            table.add_column(column)
        for p in report.problems:
            table.add_row(str(p.line), "-" if p.seq is None else str(p.seq), p.kind, p.message)
        console.print(table)
    if failed:
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
    """The owner's approvals catalogue, signed with its audit key (created with the state directory)."""
    state = _party(config, "rules").party.state_dir
    try:
        return RuleApprovals(state / CATALOGUE_FILE, load_or_create_signing_key(state / SIGNING_KEY))
    except (OSError, ValueError) as exc:
        _fail(f"{state}: the approvals or the signing key {SIGNING_KEY} cannot be read ({_first_line(exc)})")


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
        validate_name(peer)
    except ValueError as exc:
        _fail(f"--peer: {exc}")
    try:
        chosen = load_rules(rules_file).get(rule)
        approval = _approvals(config).approve(rule, chosen, peer, purpose)
    except UnicodeDecodeError as exc:
        _fail(f"{rules_file}: not UTF-8 text (byte {exc.start}); save it as UTF-8")
    except (RuleError, ApprovalError) as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(_first_line(exc))
    console.print(
        f"approved rule {rule} (fingerprint {approval.fingerprint[:16]}…) for {peer}, "
        f"purposes {', '.join(approval.purposes)}"
    )


@rules_app.command("withdraw")
def rules_withdraw(rule: str, peer: str = typer.Option(..., help="the requester"), config: Path = CONFIG) -> None:
    """Withdraw the approval of RULE for PEER (the daemon refuses it from then on)."""
    try:
        withdrawn = _approvals(config).withdraw(rule, peer)
    except ApprovalError as exc:
        _fail(str(exc))
    if not withdrawn:
        _fail(f"rule {rule!r} is not approved for {peer!r}")
    console.print(f"withdrew rule {rule} for {peer}")


@rules_app.command("list")
def rules_list(config: Path = CONFIG) -> None:
    """The approved rules: name, requester, purposes, fingerprint, clauses with their thresholds."""
    try:
        entries = _approvals(config).entries()
    except ApprovalError as exc:
        _fail(str(exc))
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


# ---------------------------------------------------------------------------- the owner's load report
init_app = typer.Typer(help="First configurations.", no_args_is_help=True)
app.add_typer(init_app, name="init")


@init_app.command("party")
def init_party(
    name: str,
    from_csv: Path = typer.Option(..., "--from-csv", help="the register to serve (CSV with a header row)"),
    id_column: str = typer.Option(..., "--id-column", help="the column holding the person's or entity's id"),
    id_kind: str = typer.Option("resident_id", help="resident_id, credit_code or opaque"),
    out: Path = typer.Option(..., "--out", help="where to write the draft configuration (not overwritten)"),
) -> None:
    """Draft NAME's configuration from its CSV: every column declared with an inferred type; bounds
    and domains read from the data are marked REVIEW. Then `mpc-party check`."""
    from parties.owner.draft import DraftError, draft_config

    if id_kind not in ("resident_id", "credit_code", "opaque"):
        _fail(f"--id-kind must be resident_id, credit_code or opaque, not {id_kind!r}", BAD_INPUT)
    if out.exists():
        _fail(f"{out} exists: the draft is not written over a configuration; choose another --out", BAD_INPUT)
    try:
        validate_name(name)
        text = draft_config(from_csv, id_column, name, id_kind)  # type: ignore[arg-type]
        out.write_text(text, encoding="utf-8")
    except (DraftError, ValueError) as exc:
        _fail(str(exc), BAD_INPUT)
    except OSError as exc:
        _fail(f"{out}: cannot be written: {exc.strerror or exc}")
    review = text.count("# REVIEW")
    console.print(f"drafted {out}: {review} line(s) marked REVIEW; then mpc-party check --config {out}")


datasets_app = typer.Typer(help="The datasets this owner declares: what loading them does.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
ROWS_REFUSED = 3  # datasets check: some rows would not be loaded
SOURCE_UNREADABLE = 4  # datasets check: a dataset's source cannot be read as declared (the daemon would not start)


@datasets_app.command("check")
def datasets_check(
    config: Path = typer.Option(..., "--config", "-c", help="the owner's daemon configuration"),
    dataset: list[str] = typer.Option([], "--dataset", help="check only this dataset (repeatable); default: all"),
    limit: int = typer.Option(100, min=0, help="problems listed per dataset (0: all); --json lists all"),
    as_json: bool = typer.Option(False, "--json", help="the report as JSON on stdout"),
) -> None:
    """Read and validate each dataset as the daemon does at start and list every row it would
    refuse: where (row, and line for CSV), why, and the id masked (first 3 and last 2 characters).
    Exit 0: every row loads; 3: some rows are refused; 4: a source cannot be read; 2: configuration."""
    from mpc.data.sources import DataSourceError
    from mpc.data.sources.report import DatasetCheck, check_dataset, report_lines

    party = _party(config, "datasets check")
    declared = [spec.name for spec in party.datasets]
    if not declared:
        _fail(f"{config} declares no datasets ([[datasets]]): nothing to check", BAD_INPUT)
    unknown = [name for name in dataset if name not in declared]
    if unknown:
        _fail(f"{config} declares no dataset {unknown[0]!r}; it declares {', '.join(declared)}", BAD_INPUT)
    checks: list[DatasetCheck] = []
    errors: dict[str, str] = {}
    for index, spec in enumerate(party.datasets):
        if dataset and spec.name not in dataset:
            continue
        try:
            checks.append(check_dataset(spec, party.base_dir))
        except DataSourceError as exc:
            errors[spec.name] = f"{exc} (declared in {config}, datasets.{index})"
            if not as_json:
                typer.echo(f"error: {errors[spec.name]}", err=True)
            continue
        if not as_json:
            typer.echo("\n".join(report_lines(checks[-1], limit)))
    if as_json:
        reports = [{**asdict(check), "rows_refused": check.rows_refused} for check in checks]
        failures = [{"dataset": name, "error": message} for name, message in errors.items()]
        typer.echo(json.dumps({"datasets": reports + failures}, ensure_ascii=False, indent=2))
    if errors:
        raise typer.Exit(SOURCE_UNREADABLE)
    if any(check.rows_refused for check in checks):
        raise typer.Exit(ROWS_REFUSED)


@app.command("backup")
def backup(
    config: Path = CONFIG,
    to: Path = typer.Option(..., "--to", help="a new directory for the backup"),
    with_caches: bool = typer.Option(False, help="also the encrypted tables and tags (saves re-encrypting them)"),
) -> None:
    """Back up a party's state (keys, policy, approvals, budgets, audit log; caches optional),
    consistently while its daemon runs."""
    from parties.owner.backup import BackupError
    from parties.owner.backup import backup as take_backup

    try:
        taken = take_backup(config, _party(config, "backup"), to, with_caches)
    except (BackupError, OSError) as exc:
        _fail(str(exc), BAD_INPUT)
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
        _fail(str(exc), BAD_INPUT)
    console.print(
        f"restored {restored.files} files into {restored.state_dir} (audit log to seq {restored.audit_seq}) in "
        f"{restored.seconds:.2f} s; start it with: mpc-party serve --config {restored.config}"
    )


if __name__ == "__main__":
    run()
