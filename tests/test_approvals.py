"""Owner-approved rules: exactly the approved rule (by fingerprint), for that requester and purpose."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from mpc.approvals import CATALOGUE_FILE, Approval, ApprovalError, RuleApprovals
from mpc.policy import PolicyError
from mpc.protocols.rules import load_rules
from tests.protocols.test_rules import EXAMPLES


def test_only_the_approved_rule_runs_for_that_requester_and_purpose(tmp_path: Path) -> None:
    approvals = RuleApprovals(tmp_path / CATALOGUE_FILE, Ed25519PrivateKey.generate())
    rule = load_rules(EXAMPLES).get("public-rental-housing")
    with pytest.raises(PolicyError, match=r"rule 'public-rental-housing' .* is not approved for 'civil-affairs'"):
        approvals.check("civil-affairs", "public-rental-housing", rule.name, rule)
    approval = approvals.approve(rule.name, rule, "civil-affairs", ["public-rental-housing"])
    assert approval.fingerprint == rule.fingerprint()
    assert approvals.check("civil-affairs", "public-rental-housing", rule.name, rule) == rule.fingerprint()
    looser = rule.model_copy(
        update={
            "clauses": {
                **rule.clauses,
                "income_per_member": rule.clauses["income_per_member"].model_copy(update={"value": 31_000}),
            }
        }
    )
    with pytest.raises(PolicyError, match="differs from the one approved"):
        approvals.check("civil-affairs", "public-rental-housing", rule.name, looser)
    with pytest.raises(PolicyError, match="not 'statistics'"):
        approvals.check("civil-affairs", "statistics", rule.name, rule)
    with pytest.raises(PolicyError, match="not approved for 'housing'"):
        approvals.check("housing", "public-rental-housing", rule.name, rule)
    assert approvals.withdraw(rule.name, "civil-affairs") and not approvals.withdraw(rule.name, "civil-affairs")
    with pytest.raises(PolicyError, match="not approved"):
        approvals.check("civil-affairs", "public-rental-housing", rule.name, rule)


def test_a_running_daemon_sees_signed_approvals_written_by_another_process(tmp_path: Path) -> None:
    path, key = tmp_path / CATALOGUE_FILE, Ed25519PrivateKey.generate()
    loaded: list[list[Approval]] = []
    daemon, admin = RuleApprovals(path, key, loaded.append), RuleApprovals(path, key)
    rule = load_rules(EXAMPLES).get("income-below-100k")
    assert daemon.entries() == []
    admin.approve(rule.name, rule, "housing", ["income-check"])
    assert [a.rule for a in daemon.entries()] == ["income-below-100k"]
    assert [[a.fingerprint for a in v] for v in loaded] == [[rule.fingerprint()]]  # the daemon audits each version
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    # a catalogue edited by hand (a looser threshold pasted in) is refused, and so is every rule
    looser = load_rules(EXAMPLES.read_text().replace("value = 100000", "value = 900000")).get("income-below-100k")
    path.write_text(path.read_text().replace(rule.fingerprint(), looser.fingerprint()).replace("100000", "900000"))
    with pytest.raises(ApprovalError, match="not signed by this owner's key"):
        daemon.entries()
    with pytest.raises(PolicyError, match=r"no rule is approved while .* not signed"):
        daemon.check("housing", "income-check", looser.name, looser)
    other = RuleApprovals(tmp_path / "other.json", Ed25519PrivateKey.generate())
    other.approve(rule.name, rule, "housing", ["income-check"])
    path.write_bytes((tmp_path / "other.json").read_bytes())  # signed, but by another key
    with pytest.raises(ApprovalError, match="not signed by this owner's key"):
        daemon.entries()
    path.write_text("{not json")
    with pytest.raises(ApprovalError, match="unreadable approvals catalogue"):
        daemon.entries()
    with pytest.raises(ApprovalError, match="purpose code"):
        admin.approve(rule.name, rule, "housing", ["Bad Purpose"])


def test_mpc_admin_rules_approve_and_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from parties.cli import admin
    from parties.cli.admin import app

    monkeypatch.setattr(admin, "console", Console(width=250))  # the table's cells on one line each

    config = tmp_path / "tax.toml"
    config.write_text(
        f'[party]\nname = "tax"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[tls]\nca = "ca.pem"\ncert = "tax.pem"\nkey = "tax.key"\n'
    )
    runner = CliRunner()
    approved = runner.invoke(
        app,
        [
            "rules",
            "approve",
            str(EXAMPLES),
            "public-rental-housing",
            "--peer",
            "civil-affairs",
            "--purpose",
            "public-rental-housing",
            "--config",
            str(config),
        ],
    )
    assert approved.exit_code == 0, approved.output
    assert "approved rule public-rental-housing (fingerprint" in approved.output
    listed = runner.invoke(app, ["rules", "list", "--config", str(config)])
    assert (
        listed.exit_code == 0
        and "civil-affairs" in listed.output
        and "annual_income < 30000 x members" in listed.output
    )
    unknown = runner.invoke(
        app,
        [
            "rules",
            "approve",
            str(EXAMPLES),
            "no-such-rule",
            "--peer",
            "x",
            "--purpose",
            "statistics",
            "--config",
            str(config),
        ],
    )
    assert unknown.exit_code == 1 and "unknown rule 'no-such-rule'" in unknown.output
