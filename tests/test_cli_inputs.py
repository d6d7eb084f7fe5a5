"""Fuzzing the command lines' input files: applications, ids, rules and daemon configurations,
generated and mutated. Whatever a file holds, the command ends with a clear message naming the
file (and the line, where there is one) and a non-zero status, never a traceback."""

from __future__ import annotations

import csv
import datetime
import io
from pathlib import Path

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from mpc.data.ids import make_resident_id
from mpc.protocols.rules import Application
from parties.cli.coordinator import app as coordinator_app
from parties.cli.gateway import app as gateway_app
from parties.cli.party import app as party_app
from parties.cli.query import app as query_app
from parties.requester import Client, Eligibility, RemoteError

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


EXAMPLE_RULES = Path(__file__).resolve().parents[1] / "rules" / "examples.toml"


def _eligibility(tmp: Path, applications: Path, rule: str, *rules: str) -> Result:
    """``mpc-query eligibility`` as an agency runs it (its configuration missing: whatever gets that
    far ends there, with a message too)."""
    arguments = [
        "eligibility",
        "--rule",
        rule,
        "--applicants",
        str(applications),
        *(rules or ("--rules", str(EXAMPLE_RULES))),
    ]
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


# ---------------------------------------------------------------------------------------------- malformed files
# Each case: a file with two good applications (G1: two people, G2: one) around the lines of a bad
# one; the command checks the good ones (the stand-in client below answers "eligible" for a
# household of odd size) and gives the bad one (or its line) an error row naming file and line.

PEOPLE = [make_resident_id("110101", datetime.date(1990, 1, 1), k) for k in range(80)]
WITH_X = next(p for p in PEOPLE if p.endswith("X"))
P, Q, R, S, T = PEOPLE[:5]
HEADERS = {"per-person": "application_id,resident_id,relation", "per-application": "application_id,applicant,members"}
GOOD = {
    "per-person": (f"G1,{P},applicant\nG1,{Q},member\n", f"G2,{R},applicant\n"),
    "per-application": (f"G1,{P},{Q}\n", f"G2,{R},\n"),
}
NOT_DISCLOSED = "failing clauses not disclosed by their owners"  # the stand-in discloses no clause bit
GOOD_APPLICATIONS = [Application("G1", P, (P, Q)), Application("G2", R, (R,))]
TOO_LONG = "9" * 200_000
MALFORMED: list[tuple[str, str, bytes, tuple[str, str]]] = [
    # (layout, case, the bad lines (from line 4 on per person, 3 per application), (application_id, reason))
    ("per-person", "too few fields", f"B1,{S}\n".encode(), ("B1", "line 4: 2 fields, the header has 3")),
    ("per-person", "too many fields", f"B1,{S},applicant,x\n".encode(), ("B1", "line 4: 4 fields, the header has 3")),
    ("per-person", "unclosed quote", f'B1,"{S},applicant\n'.encode(), ("B1", "line 4: an unclosed quote")),
    (
        "per-person",
        "unclosed quote, application unknown",
        f'"B1,{S},applicant\n'.encode(),
        ("", "line 4: an unclosed quote"),
    ),
    (
        "per-person",
        "field over the csv limit",
        f"B1,{TOO_LONG},applicant\n".encode(),
        ("B1", "line 4: a field longer than 131,072 characters"),
    ),
    (
        "per-person",
        "bytes that are not UTF-8",
        f"B1,{S},appl".encode() + b"\xe9" + b"cant\n",
        ("B1", "line 4: bytes that are not UTF-8 (at byte 27 of the line); save the file as UTF-8"),
    ),
    (
        "per-person",
        "bytes that are not UTF-8, application unknown",
        b"\xff\xfe" + f"B1,{S},applicant\n".encode(),
        ("", "line 4: bytes that are not UTF-8 (at byte 1 of the line); save the file as UTF-8"),
    ),
    (
        "per-person",
        "invalid id",
        b"B1,12345,applicant\n",
        ("B1", "line 4: resident_id: resident id has length 5, expected 18 (or 15 for a legacy number)"),
    ),
    (
        "per-person",
        "a member listed twice",
        f"B1,{WITH_X},applicant\nB1,{S},member\nB1,{WITH_X.lower()},member\n".encode(),
        ("B1", "line 6: the same person as on line 4 (listed twice)"),
    ),
    (
        "per-person",
        "too many members",
        "".join(f"B1,{PEOPLE[k]},{'applicant' if k == 5 else 'member'}\n" for k in range(5, 70)).encode(),
        ("B1", "line 4: 65 people in the household, at most 64"),
    ),
    (
        "per-person",
        "no applicant",
        f"B1,{S},member\n".encode(),
        ("B1", "line 4: needs exactly one applicant row, has 0"),
    ),
    (
        "per-person",
        "two applicants",
        f"B1,{S},applicant\nB1,{T},applicant\n".encode(),
        ("B1", "line 5: needs exactly one applicant row, has 2"),
    ),
    (
        "per-person",
        "a member's line broken: not checked without it",
        f"B1,{S},applicant\nB1,{T}\n".encode(),
        ("B1", "line 5: 2 fields, the header has 3"),
    ),
    (
        "per-application",
        "a member listed twice",
        f"B1,{S},{T};{T}\n".encode(),
        ("B1", "line 3: member 2 and member 1 are the same person (listed twice)"),
    ),
    (
        "per-application",
        "the applicant listed twice among the members",
        f"B1,{S},{S}|{T}|{S}\n".encode(),
        ("B1", "line 3: member 3 and applicant are the same person (listed twice)"),
    ),
    (
        "per-application",
        "too many members",
        f"B1,{S},{';'.join(PEOPLE[10:74])}\n".encode(),
        ("B1", "line 3: 65 people in the household, at most 64"),
    ),
    (
        "per-application",
        "invalid member id",
        f"B1,{S},{T};123\n".encode(),
        ("B1", "line 3: member 2: resident id has length 3, expected 18 (or 15 for a legacy number)"),
    ),
    (
        "per-application",
        "an application on two lines",
        f"B1,{S},\nB1,{T},\n".encode(),
        ("B1", "line 4: the application is on lines 3, 4: one line per application"),
    ),
    ("per-application", "unclosed quote", f'B1,{S},"{T}\n'.encode(), ("B1", "line 3: an unclosed quote")),
    ("per-application", "too few fields", f"B1,{S}\n".encode(), ("B1", "line 3: 2 fields, the header has 3")),
]


class StandInClient:
    """The requester's client, without daemons: records what it is asked and answers "eligible"
    for a household of odd size (``fail``: every call is refused)."""

    def __init__(self) -> None:
        self.asked: list[Application] = []
        self.fail = False
        self.tls = None  # its certificate is not checked (the fixture stands in for that too)

    def close(self) -> None:
        pass

    def __enter__(self) -> StandInClient:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def eligibility(self, rule: object, applications: list[Application], path: str | None = None) -> Eligibility:
        if self.fail:
            raise RemoteError("tax", grpc.StatusCode.UNAVAILABLE, "tax is not serving")
        self.asked.extend(applications)
        return Eligibility(bits=np.array([len(a.members) % 2 for a in applications], dtype=np.uint8))


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> StandInClient:
    stand_in = StandInClient()
    monkeypatch.setattr(Client, "from_config", staticmethod(lambda *_: stand_in))
    monkeypatch.setattr("parties.rpc.tls.check_own_certificate", lambda _: "housing")
    return stand_in


def _check(tmp: Path, content: bytes, *options: str) -> tuple[Result, list[tuple[str, str, str]]]:
    """``mpc-query eligibility`` on ``content`` (as applications.csv): the run and its results file's rows."""
    applications = tmp / "applications.csv"
    applications.write_bytes(content)
    out = tmp / "results.csv"
    out.unlink(missing_ok=True)
    result = CliRunner().invoke(
        query_app,
        ["eligibility", "--rule", "public-rental-housing", "--rules", str(EXAMPLE_RULES), "--applicants",
         str(applications), "--out", str(out), "--config", str(tmp / "housing.toml"), "--purpose",
         "public-rental-housing", "--case", "HZ-1", *options],
    )  # fmt: skip
    rows = [tuple(r) for r in csv.reader(out.open(encoding="utf-8"))][1:] if out.exists() else []
    return result, rows  # type: ignore[return-value]


@pytest.mark.parametrize(("layout", "case", "bad", "expected"), MALFORMED, ids=[f"{m[0]}: {m[1]}" for m in MALFORMED])
def test_a_malformed_application_is_an_error_row_and_the_others_are_checked(
    tmp_path: Path, client: StandInClient, layout: str, case: str, bad: bytes, expected: tuple[str, str]
) -> None:
    first, last = GOOD[layout]
    content = f"{HEADERS[layout]}\n{first}".encode() + bad + last.encode()
    result, rows = _check(tmp_path, content)
    _clean_failure(result.exception, result.output, tmp_path)
    reference, reason = expected
    applications = tmp_path / "applications.csv"
    assert rows == [
        ("G1", "not eligible", NOT_DISCLOSED),
        (reference, "error", f"{applications}, {reason}"),
        ("G2", "eligible", ""),
    ]
    assert client.asked == GOOD_APPLICATIONS
    assert result.exit_code == 3, result.output
    assert f"{applications}, {reason}" in result.output.replace("\n", "")


def test_every_application_with_a_result_exits_0(tmp_path: Path, client: StandInClient) -> None:
    first, last = GOOD["per-application"]
    result, rows = _check(tmp_path, f"{HEADERS['per-application']}\n{first}{last}".encode())
    assert (result.exit_code, rows) == (0, [("G1", "not eligible", NOT_DISCLOSED), ("G2", "eligible", "")]), (
        result.output
    )


def test_nothing_checked_exits_4(tmp_path: Path, client: StandInClient) -> None:
    header = HEADERS["per-person"]
    result, rows = _check(tmp_path, f"{header}\nB1,{S},member\n".encode() + b"\xff\n")
    applications = tmp_path / "applications.csv"
    assert rows == [
        ("B1", "error", f"{applications}, line 2: needs exactly one applicant row, has 0"),
        (
            "",
            "error",
            f"{applications}, line 3: bytes that are not UTF-8 (at byte 1 of the line); save the file as UTF-8",
        ),
    ]
    assert (result.exit_code, client.asked) == (4, []), result.output
    result, rows = _check(tmp_path, f"{header}\n\n".encode())  # no application at all
    assert (result.exit_code, rows) == (4, [])
    assert f"{applications}: no applications after the header" in result.output.replace("\n", "")


def test_owners_that_refuse_give_each_application_an_error_row_and_exit_4(
    tmp_path: Path, client: StandInClient
) -> None:
    client.fail = True
    first, last = GOOD["per-person"]
    result, rows = _check(tmp_path, f"{HEADERS['per-person']}\n{first}{last}".encode())
    assert rows == [
        ("G1", "error", "tax: UNAVAILABLE: tax is not serving"),
        ("G2", "error", "tax: UNAVAILABLE: tax is not serving"),
    ]
    assert result.exit_code == 4


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "{file}: no header line (the file is empty); the first line names the columns"),
        (
            b"id,person\n",
            "{file}, line 1: the header needs the columns application_id, resident_id, relation (per-person) or "
            "application_id, applicant, members (per-application); it has id, person",
        ),
    ],
)
def test_a_file_that_cannot_be_used_exits_2_naming_it(
    tmp_path: Path, client: StandInClient, content: bytes, message: str
) -> None:
    result, rows = _check(tmp_path, content)
    _clean_failure(result.exception, result.output, tmp_path)
    assert (result.exit_code, rows) == (2, [])
    assert message.format(file=tmp_path / "applications.csv") in result.output.replace("\n", "")


def test_declared_values_reach_the_applications(tmp_path: Path, client: StandInClient) -> None:
    content = f"application_id,resident_id,relation,Income\nA1,{Q},member,7\nA1,{P},applicant, 12 000\n".encode()
    result, rows = _check(tmp_path, content, "--declared", "income")
    assert (result.exit_code, rows) == (0, [("A1", "not eligible", NOT_DISCLOSED)]), result.output
    assert client.asked == [Application("A1", P, (P, Q), {}, ({"income": " 12 000"}, {"income": "7"}))]
    result, rows = _check(tmp_path, content, "--declared", "certificate")
    assert result.exit_code == 2
    assert "no column 'certificate' for a declared value" in result.output


def test_rules_are_required_and_a_missing_rules_file_is_named(tmp_path: Path, client: StandInClient) -> None:
    first, last = GOOD["per-person"]
    applications = tmp_path / "applications.csv"
    applications.write_text(f"{HEADERS['per-person']}\n{first}{last}")
    missing = tmp_path / "rules.toml"
    base = ["eligibility", "--rule", "x", "--applicants", str(applications), "--config", "c.toml"]
    base += ["--purpose", "p", "--case", "c"]
    result = CliRunner().invoke(query_app, base)
    assert result.exit_code == 2 and "--rules" in result.output
    result = CliRunner().invoke(query_app, [*base, "--rules", str(missing)])
    _clean_failure(result.exception, result.output, missing)
    assert result.exit_code == 2
    assert (
        f"{missing}: cannot read it: No such file or directory; --rules names the rules file"
        in result.output.replace("\n", "")
    )


def _psi(tmp: Path, ids: bytes, *options: str) -> Result:
    """``mpc-query psi`` with ``ids`` as ids.csv (the configuration missing: it ends there at the latest)."""
    path = tmp / "ids.csv"
    path.write_bytes(ids)
    arguments = ["psi", "--peer", "tax", "--dataset", "income", "--ids", str(path), *options]
    return CliRunner().invoke(
        query_app, [*arguments, "--config", str(tmp / "missing.toml"), "--purpose", "s", "--case", "c"]
    )


def test_an_ids_file_without_the_id_column_names_the_option(tmp_path: Path) -> None:
    result = _psi(tmp_path, b"person_id\n" + P.encode() + b"\n")
    _clean_failure(result.exception, result.output, tmp_path)
    assert result.exit_code == 2
    assert (
        f"{tmp_path / 'ids.csv'}, line 1: no column 'resident_id'; it has person_id; --column names the id column"
        in result.output.replace("\n", "")
    )
    assert _psi(tmp_path, b"person_id\n", "--kind", "passport").output.strip() == (
        "--kind must be one of resident_id, credit_code, opaque, not 'passport'"
    )


def test_bad_lines_and_invalid_ids_of_an_ids_file_are_named_and_left_out(tmp_path: Path) -> None:
    result = _psi(tmp_path, f'name,resident_id\na,{P}\nb,"{Q}\nc,12345\nd,{R}\n'.encode())
    ids = tmp_path / "ids.csv"
    output = result.output.replace("\n", "")
    assert f"{ids}, line 3: an unclosed quote{ids}, line 4: invalid id: resident id has length 5" in output
    assert result.exit_code == 2 and "missing.toml" in output  # it went on to the configuration


def test_a_declared_value_the_rule_cannot_read_is_an_error_row_naming_the_application_line(
    tmp_path: Path, client: StandInClient
) -> None:
    content = (
        "application_id,applicant,members,household_income,property_count\n"
        f'A1,{P},{Q},"12,000",0\nA2,{R},,abc,0\nA3,{S},,100,\n'
    ).encode()
    declared = ["--declared", "household_income", "--declared", "property_count"]
    result, rows = _check(tmp_path, content, *declared, "--rule", "declaration-audit")
    applications = tmp_path / "applications.csv"
    assert rows == [
        ("A1", "not eligible", NOT_DISCLOSED),
        ("A2", "error", f"{applications}, line 3: clause income_as_declared: declared 'household_income': not an "
         "integer: 'abc'"),
        ("A3", "error", f"{applications}, line 4: clause property_as_declared: declared 'property_count' is missing"),
    ]  # fmt: skip
    assert client.asked == [Application("A1", P, (P, Q), {"household_income": "12,000", "property_count": "0"})]
    assert result.exit_code == 3, result.output
