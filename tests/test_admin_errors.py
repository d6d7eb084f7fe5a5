"""``mpc-admin`` with wrong inputs: every expected error is a message on stderr naming the file,
key or line (and the fix), with a non-zero status -- never a traceback.

One table of bad invocations (each with the status and the message it must give), run against a
small deployment on disk: a CA, an owner (``tax``, a CSV dataset), a requester that runs no daemon
(``housing``: a requests log only), the coordinator and the gateway (an audit log each), and
broken variants of each file. Also: ``audit verify`` on the requester's, the coordinator's and the
gateway's configuration, which verify the logs their state directories hold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tomli_w
from typer.testing import CliRunner

from mpc.audit import AuditEvent, AuditLog, load_or_create_signing_key
from parties.cli.admin import app
from parties.pki import Pki
from tests.data.test_sources import rid

RULES = Path(__file__).resolve().parent.parent / "rules" / "examples.toml"
TLS = {"ca": "pki/ca.pem", "cert": "pki/issued/tax.pem", "key": "pki/issued/tax.key"}
COLUMNS = {"age": {"type": "int", "min": 0, "max": 120}}


def _write(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(tomli_w.dumps(config), encoding="utf-8")
    return path


def _party(root: Path, name: str, *datasets: dict[str, Any], tls: dict[str, str] = TLS, **party: Any) -> Path:
    """A ``[party]`` configuration of ``tax`` in ``name``.toml (state in ``state/name``) declaring ``datasets``."""
    section = {"name": "tax", "state_dir": f"state/{name}", **party}
    return _write(root / f"{name}.toml", {"party": section, "tls": tls, "datasets": list(datasets)})


def _dataset(source: dict[str, Any], id_column: str = "resident_id", name: str = "income") -> dict[str, Any]:
    return {"name": name, "source": source, "schema": {"id_column": id_column, "columns": COLUMNS}}


def _signed_log(path: Path) -> None:
    """A one-entry signed log, with the state directory's signing key."""
    with AuditLog(path, load_or_create_signing_key(path.parent / "audit-signing.pem")) as log:
        log.append(AuditEvent(peer="tax", action="request:lookup"))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The deployment's files, good and broken (see the module docstring)."""
    root = tmp_path_factory.mktemp("deployment")
    Pki.init(root / "pki").issue("tax", hosts=("127.0.0.1",))
    (root / "garbled-pki").mkdir()
    (root / "garbled-pki" / "ca.pem").write_text("not a certificate\n")
    (root / "garbled-pki" / "ca.key").write_text("not a key\n")
    (root / "a-file").write_text("")

    (root / "tax.csv").write_text(f"resident_id,age\n{rid(1)},30\n")
    (root / "renamed.csv").write_text(f"rid,age\n{rid(1)},30\n")
    (root / "latin1.csv").write_bytes(f"resident_id,age\n{rid(1)},30\nM\xfcller,1\n".encode("latin-1"))
    (root / "huge-field.csv").write_text(f'resident_id,age\n"{"x" * 200_000}",1\n')
    _party(root, "tax", _dataset({"kind": "csv", "path": "tax.csv"}))
    _signed_log(root / "state" / "tax" / "audit.log")  # its daemon has run
    _party(root, "wrong-id", _dataset({"kind": "csv", "path": "renamed.csv"}))
    _party(root, "missing-csv", _dataset({"kind": "csv", "path": "gone.csv"}))
    _party(root, "latin1", _dataset({"kind": "csv", "path": "latin1.csv"}))
    _party(root, "huge-field", _dataset({"kind": "csv", "path": "huge-field.csv"}))
    _party(root, "no-table", _dataset({"kind": "sqlite", "path": "tax.csv", "table": "income"}))
    dsn = "postgresql://reader:secret@127.0.0.1:1/tax?connect_timeout=2"
    _party(root, "pg-down", _dataset({"kind": "postgres", "dsn": dsn, "table": "income"}))
    no_bounds = _dataset({"kind": "csv", "path": "tax.csv"})
    no_bounds["schema"]["columns"] = {"age": {"type": "int"}}
    _party(root, "no-bounds", no_bounds)
    _party(root, "typo", nme="x")
    _party(root, "never-ran")
    _party(root, "housing")
    _signed_log(root / "state" / "housing" / "requests.log")
    _signed_log(root / "state" / "housing" / "requests.4242.log")  # a second process's
    for name, settings in (
        ("no-coordinator", {}),
        ("coordinator-down", {"coordinator": "127.0.0.1:1"}),
        ("tls-missing", {"coordinator": "127.0.0.1:1", "tls": {**TLS, "cert": "gone.pem"}}),
    ):
        _party(root, name, **settings)
        _signed_log(root / "state" / name / "audit.log")
    _party(root, "garbled-key")
    (root / "state" / "garbled-key").mkdir(parents=True)
    (root / "state" / "garbled-key" / "audit-signing.pem").write_text("junk\n")
    _party(root, "garbled-catalogue")
    (root / "state" / "garbled-catalogue").mkdir(parents=True)
    (root / "state" / "garbled-catalogue" / "approved-rules.json").write_text("junk\n")
    coordinator = {"name": "coordinator", "state_dir": "state/coordinator"}
    _write(root / "coordinator.toml", {"coordinator": coordinator, "tls": TLS})
    _signed_log(root / "state" / "coordinator" / "audit.log")
    gateway = {"state_dir": "state/gateway", "coordinator": "127.0.0.1:7000"}
    _write(root / "gateway.toml", {"gateway": gateway, "tls": TLS})
    _signed_log(root / "state" / "gateway" / "audit.log")

    (root / "not-toml.toml").write_text("[party\n")
    (root / "binary.toml").write_bytes(b"\xff\xfe[party]\n")
    (root / "binary-rules.toml").write_bytes(b"\xff\xfe")
    (root / "not-a-key.pem").write_text("hello\n")
    (root / "backup").mkdir()
    (root / "backup" / "manifest.json").write_text("junk")
    return root


# (arguments with {root} for the deployment, exit status, what stderr must say)
BAD: list[tuple[str, int, str]] = [
    # audit verify
    ("audit verify", 2, "give --config, or --log and --key"),
    ("audit verify --config {root}/missing.toml", 2, "{root}/missing.toml: cannot read: [Errno 2]"),
    ("audit verify --config {root}/not-toml.toml", 2, "{root}/not-toml.toml: not valid TOML: Expected ']'"),
    ("audit verify --config {root}/binary.toml", 2, "{root}/binary.toml: not UTF-8 text (byte 0); save it as UTF-8"),
    ("audit verify --config {root}/typo.toml", 2, "{root}/typo.toml: invalid configuration\n  party.nme: Extra inputs"),
    (
        "audit verify --config {root}/never-ran.toml",
        2,
        "{root}/never-ran.toml: no signed log in {root}/state/never-ran (audit.log of a daemon, requests.log of "
        "mpc-query and the SDK): tax has not run yet, or party.state_dir is not its state directory",
    ),
    (
        "audit verify --config {root}/housing.toml --against-coordinator",
        2,
        "{root}/housing.toml: tax runs no daemon (no {root}/state/housing/audit.log); the coordinator witnesses "
        "daemons' logs only: verify its requests logs without --against-coordinator",
    ),
    (
        "audit verify --config {root}/coordinator.toml --against-coordinator",
        2,
        "{root}/coordinator.toml is the coordinator's configuration: the coordinator witnesses party daemons' "
        "logs only; verify this one without --against-coordinator",
    ),
    (
        "audit verify --config {root}/no-coordinator.toml --against-coordinator",
        2,
        "{root}/no-coordinator.toml names no coordinator (party.coordinator)",
    ),
    (
        "audit verify --config {root}/tls-missing.toml --against-coordinator",
        2,
        "{root}/tls-missing.toml: a [tls] file cannot be read: {root}/gone.pem: No such file or directory",
    ),
    ("audit verify --config {root}/coordinator-down.toml --against-coordinator", 2, "coordinator: UNAVAILABLE: "),
    (
        "audit verify --log {root}/state/housing/requests.log --key {root}/state/housing/audit-signing.pem "
        "--against-coordinator",
        2,
        "--against-coordinator needs --config (for the TLS identity and address)",
    ),
    (
        "audit verify --log {root}/state/housing/requests.log --key {root}/not-a-key.pem",
        2,
        "{root}/not-a-key.pem is not an Ed25519 key in PEM: give the party's audit-signing.pem or its public key",
    ),
    (
        "audit verify --log {root}/state/housing/requests.log --key {root}/pki/issued/tax.key",
        2,
        "{root}/pki/issued/tax.key is not an Ed25519 key in PEM",
    ),
    (
        "audit verify --log {root}/state/housing/requests.log --key {root}/gone.pem",
        2,
        "{root}/gone.pem: cannot read the key: No such file or directory",
    ),
    (
        "audit verify --log {root}/gone.log --key {root}/state/housing/audit-signing.pem",
        2,
        "{root}/gone.log: cannot read the log: No such file or directory",
    ),
    (
        "audit verify --log {root}/state --key {root}/state/housing/audit-signing.pem",
        2,
        "{root}/state: cannot read the log: Is a directory",
    ),
    # approved rules
    (
        "rules list --config {root}/coordinator.toml",
        2,
        "{root}/coordinator.toml is the coordinator's configuration ([coordinator]); mpc-admin rules needs a "
        "party's ([party])",
    ),
    ("rules list --config {root}/missing.toml", 2, "{root}/missing.toml: cannot read"),
    (
        "rules list --config {root}/garbled-key.toml",
        1,
        "{root}/state/garbled-key: the approvals or the signing key audit-signing.pem cannot be read",
    ),
    (
        "rules withdraw some-rule --peer housing --config {root}/garbled-catalogue.toml",
        1,
        "{root}/state/garbled-catalogue/approved-rules.json: unreadable approvals catalogue",
    ),
    (
        "rules approve {root}/binary-rules.toml r --peer housing --purpose p --config {root}/tax.toml",
        1,
        "{root}/binary-rules.toml: not UTF-8 text (byte 0); save it as UTF-8",
    ),
    (
        "rules approve {root}/gone.toml r --peer housing --purpose p --config {root}/tax.toml",
        1,
        "[Errno 2] No such file or directory: '{root}/gone.toml'",
    ),
    (
        "rules approve " + str(RULES) + " nope --peer housing --purpose p --config {root}/tax.toml",
        1,
        "unknown rule 'nope'; known: [",
    ),
    (
        "rules approve " + str(RULES) + " public-rental-housing --peer Housing! --purpose p --config {root}/tax.toml",
        1,
        "--peer: invalid party name 'Housing!': must match",
    ),
    # the PKI
    (
        "pki issue housing --dir {root}/nopki",
        1,
        "no CA in {root}/nopki (ca.pem): create it with mpc-admin pki init --dir {root}/nopki, or give --dir",
    ),
    (
        "pki crl --dir {root}/garbled-pki",
        1,
        "{root}/garbled-pki: the CA's ca.pem or ca.key cannot be read (Unable to load PEM file.",
    ),
    ("pki init --dir {root}/pki", 1, "refusing to overwrite the existing CA in {root}/pki"),
    ("pki init --dir {root}/a-file/pki", 1, "{root}/a-file/pki: cannot create the CA there: Not a directory"),
    ("pki revoke nobody --dir {root}/pki", 1, "no certificate issued to 'nobody' in {root}/pki"),
    ("pki issue Bad_Name --dir {root}/pki", 1, "invalid party name 'Bad_Name'"),
    # the load report
    (
        "datasets check --config {root}/wrong-id.toml",
        4,
        "dataset 'income': CSV file '{root}/renamed.csv': missing column 'resident_id' (columns present: 'rid', "
        "'age') (declared in {root}/wrong-id.toml, datasets.0)",
    ),
    (
        "datasets check --config {root}/missing-csv.toml",
        4,
        "dataset 'income': CSV file '{root}/gone.csv': file not found",
    ),
    (
        "datasets check --config {root}/latin1.toml",
        4,
        "dataset 'income': CSV file '{root}/latin1.csv': not valid utf-8 text (invalid start byte)",
    ),
    (
        "datasets check --config {root}/huge-field.toml",
        4,
        "dataset 'income': CSV file '{root}/huge-field.csv': malformed CSV at line 2: field larger than field limit",
    ),
    ("datasets check --config {root}/no-table.toml", 4, "SQLite table 'income' in '{root}/tax.csv': cannot read"),
    (
        "datasets check --config {root}/pg-down.toml",
        4,
        "dataset 'income': PostgreSQL table 'income' in database 'tax' at 127.0.0.1:1: cannot connect",
    ),
    ("datasets check --config {root}/housing.toml", 2, "{root}/housing.toml declares no datasets ([[datasets]])"),
    ("datasets check --config {root}/tax.toml --dataset nope", 2, "declares no dataset 'nope'; it declares income"),
    (
        "datasets check --config {root}/no-bounds.toml",
        2,
        "{root}/no-bounds.toml: invalid configuration\n  datasets.0.schema.columns.age: Value error, int column "
        "requires both 'min' and 'max' bounds",
    ),
    ("datasets check --config {root}/gateway.toml", 2, "{root}/gateway.toml is the gateway's configuration"),
    # backup and restore
    ("backup --config {root}/coordinator.toml --to {root}/b1", 2, "mpc-admin backup needs a party's ([party])"),
    ("backup --config {root}/tax.toml --to {root}/backup", 2, "{root}/backup: not empty; a backup goes into a new"),
    (
        "restore --from {root}/backup --state {root}/s1 --config-out {root}/r.toml",
        2,
        "{root}/backup/manifest.json: not a backup manifest",
    ),
]


@pytest.mark.parametrize(("arguments", "status", "message"), BAD, ids=[" ".join(b[0].split()[:2]) for b in BAD])
def test_bad_invocation_is_a_message_and_a_status(root: Path, arguments: str, status: int, message: str) -> None:
    result = CliRunner().invoke(app, arguments.format(root=root).split())
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.exit_code == status, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and message.format(root=root) in result.stderr, result.stderr
    assert "secret" not in result.stderr  # a DSN's password is never echoed
    assert len(result.stderr.splitlines()) == (2 if "invalid configuration" in message else 1)


def test_restore_refuses_a_state_directory_in_use(root: Path) -> None:
    """Restoring over the owner's own, live state directory is refused before anything is written."""
    runner = CliRunner()
    taken = runner.invoke(app, ["backup", "--config", str(root / "tax.toml"), "--to", str(root / "b2")])
    assert taken.exit_code == 0, taken.output
    state = root / "state" / "tax"
    before = sorted(path.name for path in state.iterdir())
    refused = runner.invoke(
        app, ["restore", "--from", str(root / "b2"), "--state", str(state), "--config-out", str(root / "r2.toml")]
    )
    assert refused.exit_code == 2
    assert refused.stderr == f"error: {state}: not empty; restore into a new state directory\n"
    assert sorted(path.name for path in state.iterdir()) == before and not (root / "r2.toml").exists()


@pytest.mark.parametrize(
    ("config", "logs"),
    [
        ("housing", ["requests.4242.log", "requests.log"]),  # a requester: what mpc-query asked
        ("coordinator", ["audit.log"]),
        ("gateway", ["audit.log"]),
    ],
)
def test_audit_verify_takes_any_configuration(root: Path, config: str, logs: list[str]) -> None:
    result = CliRunner().invoke(app, ["audit", "verify", "--config", str(root / f"{config}.toml")])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"OK: {root / 'state' / config / log}: 1 entries, chain and signatures verify, head seq 1" for log in logs
    ]
