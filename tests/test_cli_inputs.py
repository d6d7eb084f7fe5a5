"""Fuzzing the command lines' input files: applications, ids, rules and daemon configurations,
generated and mutated. Whatever a file holds, the command ends with a clear message naming the
file (and the line, where there is one) and a non-zero status, never a traceback."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from parties.cli.coordinator import app as coordinator_app
from parties.cli.gateway import app as gateway_app
from parties.cli.party import app as party_app
from parties.cli.query import app as query_app

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
CELLS = st.one_of(
    st.sampled_from(["", "applicant", "member", "A1", "110101199003077777", "11010519491231002X", "x" * 300]),
    st.text(max_size=20),
)
FIELDS = ["application_id", "resident_id", "relation", "name", ""]


@st.composite
def csv_bytes(draw: st.DrawFn) -> bytes:
    """A CSV whose header may or may not hold the needed columns, with ragged rows, quotes,
    odd encodings and stray bytes."""
    header = draw(st.lists(st.sampled_from(FIELDS), max_size=4))
    rows = draw(st.lists(st.lists(CELLS, max_size=5), max_size=6))
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    data = text.getvalue().encode("utf-8")
    if draw(st.booleans()):  # a mutation: an unclosed quote, a NUL, bytes that are not UTF-8, a BOM
        position = draw(st.integers(0, len(data)))
        data = (
            data[:position]
            + draw(st.sampled_from([b'"', b"\x00", b"\xff\xfe", b"\xef\xbb\xbf", b"\r"]))
            + data[position:]
        )
    return data


def _clean_failure(result_exception: BaseException | None, output: str, path: Path) -> None:
    assert result_exception is None or isinstance(result_exception, SystemExit), repr(result_exception)
    assert "Traceback" not in output, output


def _eligibility(tmp: Path, applications: Path, rule: str, *rules: str) -> Result:
    """``mpc-query eligibility`` as an agency runs it (its configuration missing: whatever gets that
    far ends there, with a message too)."""
    arguments = ["eligibility", "--rule", rule, "--applicants", str(applications), *rules]
    arguments += ["--config", str(tmp / "missing.toml"), "--purpose", "public-rental-housing", "--case", "FUZZ"]
    return CliRunner().invoke(query_app, [*arguments, "--out", str(tmp / "out.csv")])


@FUZZ
@given(data=csv_bytes())
def test_applications_files_end_in_a_clear_message(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    tmp = tmp_path_factory.mktemp("apps")
    applications = tmp / "applications.csv"
    applications.write_bytes(data)
    result = _eligibility(tmp, applications, "public-rental-housing")
    _clean_failure(result.exception, result.output, applications)
    assert result.exit_code != 0
    assert "applications.csv" in result.output or "missing.toml" in result.output, result.output


@FUZZ
@given(data=csv_bytes())
def test_ids_files_end_in_a_clear_message(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    tmp = tmp_path_factory.mktemp("ids")
    ids = tmp / "ids.csv"
    ids.write_bytes(data)
    result = CliRunner().invoke(
        query_app,
        [
            "psi",
            "--peer",
            "tax",
            "--dataset",
            "income",
            "--ids",
            str(ids),
            "--config",
            str(tmp / "missing.toml"),
            "--purpose",
            "statistics",
            "--case",
            "FUZZ",
        ],
    )
    _clean_failure(result.exception, result.output, ids)
    assert result.exit_code != 0
    assert "ids.csv" in result.output or "missing.toml" in result.output, result.output


RULE_TEXTS = st.one_of(
    st.text(max_size=200),
    st.sampled_from(
        [
            "[rules.x]\nexpression = 'a AND'\n",
            "[rules.x]\nexpression = 'a'\n[rules.x.clauses.a]\nowner = 'tax'\ncompare = '<'\n",
            "[rules.x]\nexpression = 'a'\n[rules.x.clauses.a]\nowner = 'tax'\npredicate = 'p'\nvalue = 1\n",
            "rules = 5\n",
            "[rules]\n[rules.UPPER]\nexpression = 'a'\n",
        ]
    ),
)


@FUZZ
@given(text=RULE_TEXTS)
def test_rules_files_end_in_a_clear_message(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    tmp = tmp_path_factory.mktemp("rules")
    rules = tmp / "rules.toml"
    rules.write_text(text, encoding="utf-8")
    applications = tmp / "applications.csv"
    applications.write_text("application_id,resident_id,relation\nA1,110101199003077777,applicant\n")
    result = _eligibility(tmp, applications, "x", "--rules", str(rules))
    _clean_failure(result.exception, result.output, rules)
    assert result.exit_code != 0 and ("rules.toml" in result.output or "missing.toml" in result.output)


CONFIG_TEXTS = st.one_of(
    st.text(max_size=200),
    st.sampled_from(
        [
            "[party]\nname = 'tax'\n",
            "[party]\nname = 'TAX'\nstate_dir = 's'\n[tls]\nca = 'a'\ncert = 'b'\nkey = 'c'\n",
            "[party]\nname = 'tax'\nstate_dir = 's'\nlisten = 'nowhere'\n[tls]\nca = 'a'\ncert = 'b'\nkey = 'c'\n",
            "[gateway]\nlisten = '0.0.0.0:1'\nhttps = false\nstate_dir = 's'\ncoordinator = '127.0.0.1:1'\n",
            "[coordinator]\nname = 'coordinator'\n",
            "[party]\nname = 'tax'\nstate_dir = 's'\n[tls]\nca = 'a'\ncert = 'b'\nkey = 'c'\n[[datasets]]\nname = 1\n",
        ]
    ),
)


@FUZZ
@given(text=CONFIG_TEXTS, daemon=st.sampled_from(["party", "coordinator", "gateway"]))
def test_daemon_configurations_end_in_a_clear_message(
    tmp_path_factory: pytest.TempPathFactory, text: str, daemon: str
) -> None:
    """A configuration that does not load stops the daemon before it binds: exit 2, the file and key."""
    tmp = tmp_path_factory.mktemp("config")
    config = tmp / "daemon.toml"
    config.write_text(text, encoding="utf-8")
    app = {"party": party_app, "coordinator": coordinator_app, "gateway": gateway_app}[daemon]
    result = CliRunner().invoke(app, ["serve", "--config", str(config)])
    _clean_failure(result.exception, result.output, config)
    assert result.exit_code == 2 and "daemon.toml" in result.output, result.output
