"""Reading files of applications (parties.requester.applications): both layouts, declared values,
and what the file as a whole may lack. The table of malformed lines, through the command line, is
in tests/test_cli_inputs.py."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from mpc.data.ids import make_resident_id
from mpc.protocols.rules import MAX_MEMBERS, Application
from parties.requester.applications import (
    ApplicationsFileError,
    Problem,
    Rejected,
    parse_applications,
    read_applications,
    read_lines,
)

PEOPLE = [make_resident_id("110101", datetime.date(1990, 1, 1), k) for k in range(80)]
WITH_X = next(p for p in PEOPLE if p.endswith("X"))
P, Q, R, S = PEOPLE[:4]


def parse(text: str, declared: tuple[str, ...] = ()) -> list[Application | Rejected]:
    """The entries of a file holding ``text`` (UTF-8), named apps.csv."""
    return list(parse_applications(text.encode().splitlines(keepends=True), "apps.csv", declared).entries)


def test_one_row_per_person_puts_the_applicant_first_and_keeps_the_members_order() -> None:
    text = f"application_id,resident_id,relation\nA1,{Q},member\nA1,{P},APPLICANT\nA2,{R},applicant\nA1,{S},spouse\n"
    assert parse(text) == [Application("A1", P, (P, Q, S)), Application("A2", R, (R,))]


def test_one_row_per_application_with_the_applicant_among_the_members_or_not() -> None:
    text = (
        "application_id,applicant,members\n"
        f"A1,{P},{Q};{R}\n"  # the applicant not listed
        f"A2,{P},{Q}|{P} | {R}\n"  # listed once, anywhere; either separator, spaces around
        f"A3,{S},\n"  # alone
        f"A4,{S},;{P};;\n"  # empty items are ignored
    )
    assert parse(text) == [
        Application("A1", P, (P, Q, R)),
        Application("A2", P, (P, Q, R)),
        Application("A3", S, (S,)),
        Application("A4", S, (S, P)),
    ]


def test_ids_are_normalised_before_households_are_compared() -> None:
    """A lower-case x, full-width digits and spaces around are the same person: listed twice."""
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in Q)
    text = f"application_id,applicant,members\nA1,{WITH_X.lower()},{full_width}; {Q} \n"
    assert parse(text) == [
        Rejected("A1", "apps.csv", (Problem(2, "member 2 and member 1 are the same person (listed twice)"),))
    ]
    assert parse(f"application_id,applicant,members\nA2, {WITH_X.lower()} ,{full_width}\n") == [
        Application("A2", WITH_X, (WITH_X, Q))
    ]


def test_declared_values_per_application() -> None:
    text = f'application_id,applicant,members,Income,certificate\nA1,{P},{Q}," 12 000 ",GB-7\n'
    (application,) = parse(text, ("income", "certificate"))
    assert isinstance(application, Application)
    assert application.declared == {"income": " 12 000 ", "certificate": "GB-7"}  # as written, unparsed
    assert application.member_declared == ()


def test_declared_values_per_person_the_applicants_row_alone_or_each_persons() -> None:
    """A column filled on the applicant's row only is the application's value; one filled on
    members' rows too (even partly) is each person's, the applicant first."""
    text = (
        "application_id,resident_id,relation,income,since,certificate\n"
        f"A1,{Q},member,300,,\n"
        f"A1,{P},applicant,1200,2020-01-01,GB-7\n"
        f"A1,{R},member,0,2021-05-31, \n"
        f"A2,{S},applicant,10,2022-02-02,GB-8\n"  # alone: every value is the application's
    )
    assert parse(text, ("income", "since", "certificate")) == [
        Application(
            "A1",
            P,
            (P, Q, R),
            {"certificate": "GB-7"},
            (
                {"income": "1200", "since": "2020-01-01"},
                {"income": "300"},  # an empty cell declares nothing
                {"income": "0", "since": "2021-05-31"},
            ),
        ),
        Application("A2", S, (S,), {"income": "10", "since": "2022-02-02", "certificate": "GB-8"}),
    ]


def test_a_rule_sums_each_persons_declared_values_for_the_household() -> None:
    """What the rule makes of the two kinds: the household's sum from each person's values, the
    application's own value as it stands."""
    from mpc.protocols.rules import load_rules

    rule = load_rules(Path(__file__).resolve().parents[2] / "rules" / "examples.toml").get("declaration-audit")
    income, properties = (rule.clauses[c] for c in ("income_as_declared", "property_as_declared"))
    text = (
        "application_id,resident_id,relation,household_income,property_count\n"
        f"A1,{P},applicant,1000,2\nA1,{Q},member,250,\nA1,{R},member,5,\n"
    )
    (application,) = parse(text, ("household_income", "property_count"))
    assert isinstance(application, Application)
    assert (income.declared_value(application), properties.declared_value(application)) == (1255, 2)


def test_without_declared_columns_applications_declare_nothing() -> None:
    text = f"application_id,resident_id,relation,income\nA1,{P},applicant,5\n"
    (application,) = parse(text)
    assert isinstance(application, Application)
    assert (application.declared, application.member_declared) == ({}, ())


def test_header_bom_blank_lines_crlf_and_trailing_empty_fields_are_forgiven(tmp_path: Path) -> None:
    path = tmp_path / "apps.csv"
    path.write_bytes(
        b"\xef\xbb\xbf Application_ID ,RESIDENT_ID,relation,,\r\n\r\n"
        + f"A1,{P},applicant,,\r\n   \r\nA1,{Q},member\r\n".encode()
    )
    batch = read_applications(path)
    assert batch.layout == "per-person"
    assert batch.entries == (Application("A1", P, (P, Q)),)


def test_lines_may_end_in_a_carriage_return_alone() -> None:
    data = [f"application_id,applicant,members\rA1,{P},\rA2,{Q},{R}\r".encode()]
    batch = parse_applications(data, "apps.csv")
    assert batch.entries == (Application("A1", P, (P,)), Application("A2", Q, (Q, R)))


def test_a_broken_line_of_an_application_sets_the_whole_application_aside() -> None:
    """It is not checked without the member whose line could not be read."""
    text = f'application_id,resident_id,relation\nA1,{P},applicant\nA1,"{Q},member\nA2,{R},applicant\n'
    assert parse(text) == [
        Rejected("A1", "apps.csv", (Problem(3, "an unclosed quote"),)),
        Application("A2", R, (R,)),
    ]


def test_several_problems_of_one_application_are_all_named() -> None:
    text = f"application_id,resident_id,relation\nA1,{P},applicant\nA1,123,member\nA1,{P},member\nA1,{Q}\n"
    (rejected,) = parse(text)
    assert str(rejected) == (
        "apps.csv, line 3: resident_id: resident id has length 3, expected 18 (or 15 for a legacy number); "
        "line 4: the same person as on line 2 (listed twice); line 5: 2 fields, the header has 3"
    )


def test_a_household_of_max_members_is_accepted_one_more_is_not() -> None:
    def household(size: int) -> str:
        rows = [f"A1,{PEOPLE[k]},{'applicant' if k == 0 else 'member'}\n" for k in range(size)]
        return "application_id,resident_id,relation\n" + "".join(rows)

    (full,) = parse(household(MAX_MEMBERS))
    assert isinstance(full, Application) and len(full.members) == MAX_MEMBERS
    assert parse(household(MAX_MEMBERS + 1)) == [
        Rejected("A1", "apps.csv", (Problem(2, f"{MAX_MEMBERS + 1} people in the household, at most {MAX_MEMBERS}"),))
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "apps.csv: no header line (the file is empty); the first line names the columns"),
        (
            b"id,person,role\nA1,x,applicant\n",
            "apps.csv, line 1: the header needs the columns application_id, resident_id, relation (per-person) or "
            "application_id, applicant, members (per-application); it has id, person, role",
        ),
        (
            b"\n\xff\xfeapplication_id\n",
            "apps.csv, line 2: the header cannot be read: bytes that are not UTF-8 (at byte 1 of the line); save the "
            "file as UTF-8",
        ),
        (
            b"application_id,resident_id,relation\n",
            None,  # a header alone is a file without applications, not an error of the file
        ),
    ],
)
def test_a_file_that_cannot_be_used_raises_naming_the_file_and_line(content: bytes, message: str | None) -> None:
    if message is None:
        assert parse_applications([content], "apps.csv").entries == ()
        return
    with pytest.raises(ApplicationsFileError) as raised:
        parse_applications(content.splitlines(keepends=True), "apps.csv")
    assert str(raised.value) == message


def test_a_declared_column_the_file_lacks_is_an_error_of_the_file() -> None:
    with pytest.raises(ApplicationsFileError, match=r"apps.csv, line 1: no column 'income' for a declared value"):
        parse_applications([b"application_id,applicant,members\n"], "apps.csv", ["income"])


def test_a_missing_file_is_named_with_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.csv"
    with pytest.raises(ApplicationsFileError) as raised:
        read_applications(missing)
    assert str(raised.value) == f"{missing}: cannot read it: No such file or directory; check the path"


def test_read_lines_gives_each_line_its_cells_or_its_problem(tmp_path: Path) -> None:
    path = tmp_path / "ids.csv"
    path.write_bytes(b'name,Resident_ID\nx,1\n"y,2\nz,3,4\n\n,5\n')
    lines = list(read_lines(path, ["resident_id"], "resident_id"))
    assert [(line.number, line.cells, line.key, line.problem) for line in lines] == [
        (2, {"name": "x", "resident_id": "1"}, "1", ""),
        (3, {}, "", "an unclosed quote"),
        (4, {}, "3", "3 fields, the header has 2"),
        (6, {"name": "", "resident_id": "5"}, "5", ""),
    ]
    with pytest.raises(ApplicationsFileError, match=r"ids.csv, line 1: no column 'id'; it has name, resident_id"):
        list(read_lines(path, ["id"], "id"))
