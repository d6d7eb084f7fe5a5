"""``mpc-admin datasets check``: the owner's load report, from CSV, SQLite and a real PostgreSQL.

Every refused row is listed with its row (and, for CSV, its file line), what is wrong and the
id masked: no id of the source appears in the output, not even a fragment of six characters
(a reason such as "birth date 19801317 is not a calendar date" is redacted). The PostgreSQL
case uses the server at 127.0.0.1:5432 (database ``test``) and is skipped when it is
unreachable, unless ``CI=true`` (tests/conftest.py).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
import tomli_w
from psycopg import sql
from typer.testing import CliRunner, Result

from mpc.data.masking import mask_id, redact_id_fragments
from parties.cli.admin import app
from tests.data.test_sources import legacy, rid, write_sqlite

HEADER = ["resident_id", "age", "district", "note"]
COLUMNS = {
    "age": {"type": "int", "min": 0, "max": 120},
    "district": {"type": "category", "categories": ["Dongcheng", "Xicheng"]},
}
A, B, C, E = rid(1), rid(2), rid(3), rid(5)
BAD_CHECK = rid(4)[:17] + ("0" if rid(4)[17] != "0" else "1")
BAD_DATE = rid(6)[:6] + "19801317" + rid(6)[14:]  # month 13: the reason would echo the date
EXPECTED_CHECK = rid(4)[17]

# (row, source cells); the CSV also has a blank line before row 2 and a two-line note in row 6.
ROWS: list[tuple[int, list[str]]] = [
    (1, [A, "34", "Dongcheng", ""]),
    (2, [BAD_CHECK, "20", "Xicheng", ""]),
    (3, ["12345", "20", "Xicheng", ""]),
    (4, [B, "121", "Dongcheng", ""]),
    (5, [C, "30", "Haidian", ""]),
    (6, [E, "50", "Dongcheng", "two\nlines"]),
    (7, [legacy(A), "35", "Xicheng", ""]),  # A again, in its 15-digit form
    (8, [BAD_DATE, "20", "Dongcheng", ""]),
]
DUPLICATE = "duplicate id (rows 1, 7); policy 'reject' excludes every row of it"
# (row, kind, column, shown, reason) for every source: ids masked, the date redacted
PROBLEMS = [
    (1, "duplicate id", "resident_id", mask_id(A), DUPLICATE),
    (2, "invalid id", "resident_id", mask_id(BAD_CHECK), f"check digit is {BAD_CHECK[17]}, expected {EXPECTED_CHECK}"),
    (3, "invalid id", "resident_id", "*****", "resident id has length 5, expected 18 (or 15 for a legacy number)"),
    (4, "invalid value", "age", "'121'", "out of bounds [0, 120]"),
    (5, "invalid value", "district", "'Haidian'", "not one of the column's declared categories"),
    (7, "duplicate id", "resident_id", mask_id(legacy(A)), DUPLICATE),
    (8, "invalid id", "resident_id", mask_id(BAD_DATE), "birth date ******** is not a calendar date"),
]
CSV_LINES = {1: 2, 2: 4, 3: 5, 4: 6, 5: 7, 6: 8, 7: 10, 8: 11, 9: 12}  # row -> file line
IDS = [A, B, C, E, BAD_CHECK, BAD_DATE, legacy(A), "12345"]


def write_csv(path: Path, malformed: bool = True) -> None:
    """The rows as a CSV file: a blank line after row 1, row 6's note on two lines and, with
    ``malformed``, a row 9 with two fields only (its id, B, is in no other row of the report)."""
    lines = [",".join(HEADER)]
    for row, cells in ROWS:
        lines.append(",".join(f'"{cell}"' if "\n" in cell else cell for cell in cells))
        if row == 1:
            lines.append("")
    if malformed:
        lines.append(f"{rid(9)},40")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_config(tmp_path: Path, sources: dict[str, dict[str, Any]], duplicates: str = "reject") -> Path:
    """An owner's configuration declaring one dataset per source (TLS files are not read)."""
    config = {
        "party": {"name": "tax", "state_dir": str(tmp_path / "state")},
        "tls": {"ca": "ca.pem", "cert": "tax.pem", "key": "tax.key"},
        "datasets": [
            {
                "name": name,
                "source": source,
                "schema": {
                    "id_column": "resident_id",
                    "id_kind": "resident_id",
                    "duplicates": duplicates,
                    "columns": COLUMNS,
                },
            }
            for name, source in sources.items()
        ],
    }
    path = tmp_path / "tax.toml"
    path.write_text(tomli_w.dumps(config), encoding="utf-8")
    return path


def check(config: Path, *flags: str) -> Result:
    return CliRunner().invoke(app, ["datasets", "check", "--config", str(config), *flags])


def assert_no_id_shown(output: str) -> None:
    """No id, and no run of six of its characters, appears in ``output``."""
    for value in IDS:
        assert value not in output
        for start in range(len(value) - 5):
            assert value[start : start + 6] not in output, (value, output)


def problem_lines(output: str) -> list[list[str]]:
    """The report's problem lines, split into their cells (separated by two or more spaces)."""
    return [re.split(r"\s{2,}", line.strip()) for line in output.splitlines() if line.startswith("  ")]


def json_problems(result: Result) -> list[tuple[Any, ...]]:
    (dataset,) = json.loads(result.stdout)["datasets"]
    return [tuple(p.values()) for p in dataset["problems"]]


# ------------------------------------------------------------------------------------------ masking


def test_mask_keeps_three_and_two_characters_and_the_length() -> None:
    assert mask_id("110101198005170012") == "110*************12"
    assert mask_id("  110101800517001 ") == "110**********01"  # stripped first
    assert mask_id("12345678901") == "***********"  # under 12 characters: all masked
    assert mask_id("") == mask_id("   ") == "(empty)"
    assert mask_id("ab\tdefghijklmn\x00") == "ab?**********n?"
    assert mask_id("x" * 64) == "xxx********************xx (64 characters)"


def test_reasons_lose_what_they_copy_from_the_id() -> None:
    assert redact_id_fragments("birth date 19801317 is not a calendar date", BAD_DATE) == (
        "birth date ******** is not a calendar date"
    )
    # a legacy id's reason writes its date with the century added, and hyphens
    assert redact_id_fragments("birth date 1880-05-17 is before 1900-01-01", "110101800517001") == (
        "birth date ********** is before 1900-01-01"
    )
    assert redact_id_fragments("address code 010101 must start with a digit 1-8", "010101198005170012") == (
        "address code ****** must start with a digit 1-8"
    )
    org = "91350100M000100Y43"
    assert redact_id_fragments(f"embedded organisation code {org[8:17]} has check character 0", org) == (
        "embedded organisation code ********* has check character 0"
    )
    assert redact_id_fragments("check digit is 5, expected 7", BAD_CHECK) == "check digit is 5, expected 7"
    assert redact_id_fragments("id has length 3", "abc") == "id has length 3"


# ------------------------------------------------------------------------------------------ CSV


def test_csv_report_lists_every_refused_row_with_its_line_and_reason(tmp_path: Path) -> None:
    write_csv(tmp_path / "tax.csv")
    result = check(write_config(tmp_path, {"income": {"kind": "csv", "path": "tax.csv"}}))

    assert result.exit_code == 3, result.output
    assert result.stderr == ""
    summary = result.stdout.splitlines()[0]
    assert summary == (
        f"dataset 'income' (CSV file {str(tmp_path / 'tax.csv')!r}): 9 rows read, 1 loaded, 8 refused: "
        "3 with an invalid id, 2 with a duplicate id (policy 'reject'), 2 with invalid values, 1 malformed"
    )
    expected = [[f"line {CSV_LINES[row]} (row {row})", *rest] for row, *rest in PROBLEMS]
    expected.append(["line 12 (row 9)", "malformed row", "row has 2 fields, header has 4"])
    assert problem_lines(result.stdout) == expected
    assert_no_id_shown(result.output)


def test_csv_report_as_json_and_under_first_wins(tmp_path: Path) -> None:
    write_csv(tmp_path / "tax.csv", malformed=False)
    config = write_config(tmp_path, {"income": {"kind": "csv", "path": "tax.csv"}}, duplicates="first_wins")
    result = check(config, "--json")

    assert result.exit_code == 3, result.output
    (dataset,) = json.loads(result.stdout)["datasets"]
    assert (dataset["rows_read"], dataset["rows_loaded"], dataset["rows_refused"]) == (8, 2, 6)
    assert dataset["duplicates_policy"] == "first_wins"
    kept = "duplicate id (rows 1, 7); policy 'first_wins' keeps row 1"
    expected = [
        (kind, row, CSV_LINES[row], column, shown, kept if kind == "duplicate id" else reason)
        for row, kind, column, shown, reason in PROBLEMS
        if row != 1  # the first row of A is kept
    ]
    assert json_problems(result) == expected
    assert_no_id_shown(result.output)


def test_a_clean_dataset_exits_0_and_limit_cuts_the_listing(tmp_path: Path) -> None:
    (tmp_path / "clean.csv").write_text(f"resident_id,age,district\n{A},1,Xicheng\n{legacy(B)},2,Dongcheng\n")
    write_csv(tmp_path / "tax.csv")
    config = write_config(
        tmp_path, {"clean": {"kind": "csv", "path": "clean.csv"}, "income": {"kind": "csv", "path": "tax.csv"}}
    )

    clean = check(config, "--dataset", "clean")
    assert clean.exit_code == 0, clean.output
    assert clean.stdout.splitlines() == [
        f"dataset 'clean' (CSV file {str(tmp_path / 'clean.csv')!r}): 2 rows read, 2 loaded "
        "(ids upgraded from 15 digits: 1), none refused"
    ]
    both = check(config, "--limit", "2")
    assert both.exit_code == 3
    assert both.stdout.splitlines()[0].startswith("dataset 'clean'")
    assert [cells[0] for cells in problem_lines(both.stdout)] == [
        "line 2 (row 1)",
        "line 4 (row 2)",
        "... 6 more problems not shown (--limit 0 shows all)",
    ]


# ------------------------------------------------------------------------------------------ databases


def expected_db_problems() -> list[tuple[Any, ...]]:
    return [(kind, row, None, column, shown, reason) for row, kind, column, shown, reason in PROBLEMS]


def test_sqlite_report_lists_rows(tmp_path: Path) -> None:
    write_sqlite(tmp_path / "tax.sqlite", "income", HEADER, [cells for _, cells in ROWS])
    config = write_config(tmp_path, {"income": {"kind": "sqlite", "path": "tax.sqlite", "table": "income"}})

    result = check(config)
    assert result.exit_code == 3, result.output
    assert [cells[0] for cells in problem_lines(result.stdout)] == [f"row {row}" for row, *_ in PROBLEMS]
    assert_no_id_shown(result.output)
    as_json = check(config, "--json")
    assert as_json.exit_code == 3 and json_problems(as_json) == expected_db_problems()


@pytest.fixture
def pg_table(pg_dsn: str) -> Iterator[str]:
    """The rows in a uniquely named table of database ``test``, dropped afterwards."""
    name = f"mpc_check_{uuid.uuid4().hex}"
    table = sql.Identifier(name)
    columns = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(column)) for column in HEADER)
    rows: Sequence[list[str]] = [cells for _, cells in ROWS]
    with psycopg.connect(pg_dsn) as connection:
        connection.execute(sql.SQL("CREATE TABLE {} ({})").format(table, columns))
        with connection.cursor() as cursor:  # one statement: rows come back in insertion order
            cursor.executemany(sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s)").format(table), rows)
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))


def test_postgres_report_lists_rows(tmp_path: Path, pg_dsn: str, pg_table: str) -> None:
    config = write_config(tmp_path, {"income": {"kind": "postgres", "dsn": pg_dsn, "table": pg_table}})

    result = check(config, "--json")
    assert result.exit_code == 3, result.output
    (dataset,) = json.loads(result.stdout)["datasets"]
    assert dataset["source"] == f"PostgreSQL table {pg_table!r} in database 'test' at 127.0.0.1:5432"
    assert (dataset["rows_read"], dataset["rows_loaded"]) == (8, 1)
    assert json_problems(result) == expected_db_problems()
    text = check(config)
    assert [cells[0] for cells in problem_lines(text.stdout)] == [f"row {row}" for row, *_ in PROBLEMS]
    assert_no_id_shown(result.output + text.output)


# ------------------------------------------------------------------------------------------ unreadable sources


def test_an_unreadable_source_is_one_line_and_exit_4(tmp_path: Path) -> None:
    (tmp_path / "renamed.csv").write_text(f"rid,age,district\n{A},1,Xicheng\n")
    write_csv(tmp_path / "tax.csv")
    config = write_config(
        tmp_path, {"income": {"kind": "csv", "path": "tax.csv"}, "renamed": {"kind": "csv", "path": "renamed.csv"}}
    )

    result = check(config)
    assert result.exit_code == 4  # worse than the refused rows of the other dataset, which are still listed
    assert result.stdout.startswith("dataset 'income'")
    assert result.stderr.splitlines() == [
        f"error: dataset 'renamed': CSV file {str(tmp_path / 'renamed.csv')!r}: missing column 'resident_id' "
        f"(columns present: 'rid', 'age', 'district') (declared in {config}, datasets.1)"
    ]
    as_json = check(config, "--json", "--dataset", "renamed")
    assert as_json.exit_code == 4
    assert json.loads(as_json.stdout)["datasets"] == [
        {"dataset": "renamed", "error": result.stderr.removeprefix("error: ").strip()}
    ]
