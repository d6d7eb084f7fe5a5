"""What the command lines say when they cannot start: one line naming the file or key and the fix,
exit status 2, never a traceback (a state directory another process holds, a certificate file
that is not there, an unknown log level)."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomli_w
from typer.testing import CliRunner, Result

from mpc.audit import AuditLog, load_or_create_signing_key
from parties.cli.coordinator import app as coordinator_app
from parties.cli.query import app as query_app
from parties.pki import Pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    Pki.init(directory).issue("coordinator", hosts=("127.0.0.1",))
    return directory


def _configuration(tmp: Path, pki: Path, cert: Path | None = None) -> Path:
    """A coordinator's configuration (state under ``tmp``)."""
    settings = {
        "coordinator": {"name": "coordinator", "listen": "127.0.0.1:0", "state_dir": str(tmp / "state")},
        "tls": {
            "ca": str(pki / "ca.pem"),
            "cert": str(cert or pki / "issued" / "coordinator.pem"),
            "key": str(pki / "issued" / "coordinator.key"),
            "crl": str(pki / "crl.pem"),
        },
    }
    path = tmp / "coordinator.toml"
    path.write_bytes(tomli_w.dumps(settings).encode())
    return path


def _serve(config: Path, *options: str) -> Result:
    result = CliRunner().invoke(coordinator_app, ["serve", "--config", str(config), *options])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return result


def test_a_state_directory_held_by_another_process_is_named_with_the_fix(tmp_path: Path, pki: Path) -> None:
    config = _configuration(tmp_path, pki)
    state = tmp_path / "state"
    held = AuditLog(state / "audit.log", load_or_create_signing_key(state / "audit-signing.pem"))
    try:
        result = _serve(config)
    finally:
        held.close()
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"audit log {state / 'audit.log'} is already open by another writer: another process runs with this state "
        f"directory (coordinator.state_dir in {config}); stop it, or give this one a state directory of its own"
    )


def test_a_certificate_file_that_is_not_there_is_named(tmp_path: Path, pki: Path) -> None:
    missing = tmp_path / "nowhere.pem"
    config = _configuration(tmp_path, pki, cert=missing)
    result = _serve(config)
    assert result.exit_code == 2
    assert (
        result.output.strip() == f"{config}: cannot read {missing}: No such file or directory; check the paths it names"
    )


def test_an_unknown_log_level_names_the_option(tmp_path: Path, pki: Path) -> None:
    result = _serve(_configuration(tmp_path, pki), "--log-level", "loud")
    assert (result.exit_code, result.output.strip()) == (
        2,
        "--log-level must be DEBUG, INFO, WARNING or ERROR, not 'loud'",
    )


def test_a_requester_whose_certificate_file_is_not_there_is_told_before_anything_is_asked(
    tmp_path: Path, pki: Path
) -> None:
    missing = tmp_path / "nowhere.pem"
    tls = {"ca": str(pki / "ca.pem"), "cert": str(missing), "key": str(pki / "issued" / "coordinator.key")}
    settings = {"party": {"name": "housing", "state_dir": str(tmp_path / "state"), "coordinator": "127.0.0.1:1"}}
    config = tmp_path / "housing.toml"
    config.write_bytes(tomli_w.dumps({**settings, "tls": tls}).encode())
    applications = tmp_path / "applications.csv"
    applications.write_text("application_id,applicant,members\nA1,110101199001010007,\n")
    rules = Path(__file__).resolve().parents[1] / "rules" / "examples.toml"
    result = CliRunner().invoke(
        query_app,
        ["eligibility", "--rule", "public-rental-housing", "--rules", str(rules), "--applicants", str(applications),
         "--out", str(tmp_path / "out.csv"), "--config", str(config), "--purpose", "p", "--case", "c"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert f"{config}: cannot read {missing}: No such file or directory; check the paths in [tls]" in result.output
