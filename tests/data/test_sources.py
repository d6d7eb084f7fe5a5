"""Loading datasets from CSV, SQLite and a real PostgreSQL server, and validating their schemas.

The same row-level scenarios run against all three sources (values stored as text, so that every
backend can hold the same malformed values); typed-column behaviour is tested per backend. The
PostgreSQL tests use the server at 127.0.0.1:5432 (database ``test``), each with a uniquely named
table that is dropped afterwards. When the server is unreachable they are skipped -- unless the
environment variable ``CI`` is ``"true"``, where they fail.
"""

from __future__ import annotations

import csv
import datetime
import sqlite3
import tempfile
import tomllib
import uuid
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql
from pydantic import ValidationError

from mpc.data.ids import InvalidIdError, make_resident_id, normalize_id
from mpc.data.schema import (
    ColumnSpec,
    CsvSource,
    DatasetSchema,
    DatasetSpec,
    PostgresSource,
    SqliteSource,
)
from mpc.data.sources import Dataset, DataSourceError, RowError, load_dataset

Cell = str | int | float | bool | Decimal | None
AnySource = CsvSource | SqliteSource | PostgresSource

HEADER = ["resident_id", "age", "owner", "district", "note"]
DISTRICTS = ["Z", "A", "B", "C", "Haidian", "Chaoyang", "Dongcheng", "Xicheng", "东城", "7"]  # codes 0..9
COLUMNS: dict[str, dict[str, Any]] = {
    "age": {"type": "int", "min": 0, "max": 120, "classification": "sensitive"},
    "owner": {"type": "bool"},
    "district": {"type": "category", "categories": DISTRICTS, "classification": "public"},
}


def rid(sequence: int, birth: datetime.date = datetime.date(1980, 5, 17)) -> str:
    """A valid 18-character resident id."""
    return make_resident_id("110101", birth, sequence)


def legacy(resident_id: str) -> str:
    """The legacy 15-digit form of an 18-digit resident id born in the 1900s."""
    assert resident_id[6:8] == "19"
    return resident_id[:6] + resident_id[8:17]


def id_reason(raw: str) -> str:
    """The normaliser's reason for rejecting ``raw`` as a resident id."""
    with pytest.raises(InvalidIdError) as caught:
        normalize_id(raw, "resident_id")
    return str(caught.value)


def make_spec(
    source: AnySource,
    columns: Mapping[str, Mapping[str, Any]] = COLUMNS,
    *,
    id_column: str = "resident_id",
    id_kind: str = "resident_id",
    duplicates: str = "reject",
    name: str = "people",
) -> DatasetSpec:
    """A dataset spec validated exactly as the daemon's configuration would be."""
    return DatasetSpec.model_validate(
        {
            "name": name,
            "source": source.model_dump(),
            "schema": {
                "id_column": id_column,
                "id_kind": id_kind,
                "columns": {key: dict(value) for key, value in columns.items()},
                "duplicates": duplicates,
            },
        }
    )


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Cell]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([["" if cell is None else str(cell) for cell in row] for row in rows])


def write_sqlite(
    path: Path,
    table: str,
    header: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    types: Mapping[str, str] | None = None,
) -> None:
    types = types or {}
    columns = ", ".join(f'"{name}" {types.get(name, "TEXT")}' for name in header)
    marks = ", ".join("?" for _ in header)
    with sqlite3.connect(path) as connection:
        connection.execute(f'CREATE TABLE "{table}" ({columns})')
        connection.executemany(f'INSERT INTO "{table}" VALUES ({marks})', rows)
    connection.close()


class MakeSource(Protocol):
    """Stores a table (header + rows, optionally typed columns) and returns its source."""

    def __call__(
        self,
        header: Sequence[str],
        rows: Sequence[Sequence[Cell]],
        types: Mapping[str, str] | None = None,
    ) -> AnySource: ...


# --------------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def pg_tables(pg_dsn: str) -> Iterator[MakeSource]:
    """Creates uniquely named tables in database ``test`` and drops them afterwards."""
    created: list[sql.Composable] = []

    def make(
        header: Sequence[str],
        rows: Sequence[Sequence[Cell]],
        types: Mapping[str, str] | None = None,
    ) -> AnySource:
        types = types or {}
        name = f"mpc_test_{uuid.uuid4().hex}"
        table = sql.Identifier(name)
        definition = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(types.get(column, "text"))) for column in header
        )
        marks = sql.SQL(", ").join(sql.Placeholder() for _ in header)
        with psycopg.connect(pg_dsn) as connection:
            connection.execute(sql.SQL("CREATE TABLE {} ({})").format(table, definition))
            created.append(table)
            with connection.cursor() as cursor:
                cursor.executemany(
                    sql.SQL("INSERT INTO {} VALUES ({})").format(table, marks),
                    [list(row) for row in rows],
                )
        return PostgresSource(kind="postgres", dsn=pg_dsn, table=name)

    yield make
    with psycopg.connect(pg_dsn, autocommit=True) as connection:
        for table in created:
            connection.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))


@pytest.fixture(params=["csv", "sqlite", "postgres"])
def make_source(request: pytest.FixtureRequest, tmp_path: Path) -> MakeSource:
    """One fixture per backend; the PostgreSQL variant needs the real server."""
    counter = iter(range(1_000_000))

    def csv_source(
        header: Sequence[str],
        rows: Sequence[Sequence[Cell]],
        types: Mapping[str, str] | None = None,
    ) -> AnySource:
        path = tmp_path / f"table{next(counter)}.csv"
        write_csv(path, header, rows)
        return CsvSource(kind="csv", path=path)

    def sqlite_source(
        header: Sequence[str],
        rows: Sequence[Sequence[Cell]],
        types: Mapping[str, str] | None = None,
    ) -> AnySource:
        path = tmp_path / f"db{next(counter)}.sqlite"
        write_sqlite(path, "people", header, rows, types)
        return SqliteSource(kind="sqlite", path=path, table="people")

    if request.param == "csv":
        return csv_source
    if request.param == "sqlite":
        return sqlite_source
    maker: MakeSource = request.getfixturevalue("pg_tables")
    return maker


# --------------------------------------------------------------------------------------------------
# Row-level behaviour, identical for every backend
# --------------------------------------------------------------------------------------------------


def test_loads_valid_rows(make_source: MakeSource) -> None:
    a, b, c = rid(1), rid(2), rid(3)
    source = make_source(
        HEADER,
        [
            [a, "34", "1", "Dongcheng", "ignored"],
            [b.lower(), " 0 ", "false", " Xicheng ", "x"],  # no x in b, lower() is harmless
            [f"  {c}  ", "120", "TRUE", "Chaoyang", ""],
        ],
    )
    dataset = load_dataset(make_spec(source))

    assert dataset.ids == [a, b, c]
    assert list(dataset.columns) == ["age", "owner", "district"]
    assert dataset.columns["age"].dtype == np.int64
    assert dataset.columns["age"].tolist() == [34, 0, 120]
    assert dataset.columns["owner"].dtype == np.int64
    assert dataset.columns["owner"].tolist() == [1, 0, 1]
    assert dataset.columns["district"].dtype == object
    assert dataset.columns["district"].tolist() == ["Dongcheng", "Xicheng", "Chaoyang"]
    assert dataset.index_of(b) == 1
    assert dataset.index_of(c) == 2
    assert dataset.index_of(rid(4)) is None
    report = dataset.report
    assert (report.dataset, report.rows_read, report.rows_loaded) == ("people", 3, 3)
    assert report.invalid_ids == report.invalid_values == report.duplicates == []
    assert report.clamped == 0


def test_invalid_ids_are_reported_with_row_and_reason(make_source: MakeSource) -> None:
    good = rid(7)
    wrong_check = good[:17] + ("0" if good[17] != "0" else "1")
    bad_date = make_resident_id("110101", datetime.date(1990, 1, 1), 5).replace("19900101", "19900231")
    source = make_source(
        HEADER,
        [
            [wrong_check, "30", "0", "A", ""],
            ["", "30", "0", "A", ""],
            [good, "31", "1", "B", ""],
            ["12345", "30", "0", "A", ""],
            [bad_date, "30", "0", "A", ""],
            [good[:10] + " " + good[11:], "30", "0", "A", ""],
        ],
    )
    dataset = load_dataset(make_spec(source))

    assert dataset.ids == [good]
    assert dataset.columns["age"].tolist() == [31]
    assert dataset.report.invalid_ids == [
        RowError(1, "resident_id", wrong_check, f"check digit is {wrong_check[17]}, expected {good[17]}"),
        RowError(2, "resident_id", "", "missing id"),
        RowError(4, "resident_id", "12345", id_reason("12345")),
        RowError(5, "resident_id", bad_date, id_reason(bad_date)),
        RowError(6, "resident_id", good[:10] + " " + good[11:], id_reason(good[:10] + " " + good[11:])),
    ]
    assert "not a calendar date" in dataset.report.invalid_ids[3].reason
    assert (dataset.report.rows_read, dataset.report.rows_loaded) == (6, 1)
    assert dataset.report.invalid_values == dataset.report.duplicates == []


def test_bad_values_exclude_the_row_and_name_each_column(make_source: MakeSource) -> None:
    ids = [rid(n) for n in range(1, 10)]
    long_district = "D" * 65
    source = make_source(
        HEADER,
        [
            [ids[0], "abc", "1", "A", ""],
            [ids[1], "1.5", "1", "A", ""],
            [ids[2], "", "1", "A", ""],
            [ids[3], "40", "yes", "A", ""],
            [ids[4], "40", "1", "   ", ""],
            [ids[5], "40", "1", long_district, ""],
            [ids[6], "1_000", "2", "A\tB", ""],
            [ids[7], "٣", "1", "A", ""],  # an Arabic-Indic digit: int() would accept it
            [ids[8], "41", "0", "Z", ""],
        ],
    )
    dataset = load_dataset(make_spec(source))

    assert dataset.ids == [ids[8]]
    assert dataset.columns["age"].tolist() == [41]
    assert dataset.report.invalid_values == [
        RowError(1, "age", "abc", "not an integer"),
        RowError(2, "age", "1.5", "not an integer (has a fractional part or exponent)"),
        RowError(3, "age", "", "missing value"),
        RowError(4, "owner", "yes", "not a boolean (expected 0, 1, true or false)"),
        RowError(5, "district", "   ", "missing value"),
        RowError(6, "district", long_district, "category longer than 64 characters (65)"),
        RowError(7, "age", "1_000", "not an integer"),
        RowError(7, "owner", "2", "not a boolean (expected 0, 1, true or false)"),
        RowError(7, "district", "A\tB", "category contains control or non-printable characters"),
        RowError(8, "age", "٣", "not an integer"),
    ]
    assert (dataset.report.rows_read, dataset.report.rows_loaded) == (9, 1)
    assert dataset.report.invalid_ids == dataset.report.duplicates == []


def test_out_of_bounds_values_are_errors_not_clamped(make_source: MakeSource) -> None:
    ids = [rid(n) for n in range(1, 6)]
    source = make_source(
        HEADER,
        [
            [ids[0], "121", "1", "A", ""],
            [ids[1], "-1", "1", "A", ""],
            [ids[2], "0", "1", "A", ""],
            [ids[3], "+120", "1", "A", ""],
            [ids[4], "9" * 40, "1", "A", ""],
        ],
    )
    dataset = load_dataset(make_spec(source))

    assert dataset.ids == [ids[2], ids[3]]
    assert dataset.columns["age"].tolist() == [0, 120]
    assert dataset.report.invalid_values == [
        RowError(1, "age", "121", "out of bounds [0, 120]"),
        RowError(2, "age", "-1", "out of bounds [0, 120]"),
        RowError(5, "age", "9" * 40, "out of bounds [0, 120]"),
    ]
    assert dataset.report.clamped == 0


def duplicate_rows() -> tuple[list[str], list[list[Cell]]]:
    """Rows 1, 3 and 5 carry one id in three spellings (18-digit, padded, legacy 15-digit)."""
    a = rid(11, datetime.date(1975, 3, 9))
    b, c = rid(12), rid(13)
    rows: list[list[Cell]] = [
        [a, "10", "0", "A", ""],
        [b, "20", "0", "A", ""],
        [f" {a} ", "30", "0", "A", ""],
        [c, "40", "0", "A", ""],
        [legacy(a), "50", "0", "A", ""],
    ]
    return [a, b, c], rows


def test_duplicates_reject_excludes_every_row_of_the_id(make_source: MakeSource) -> None:
    (a, b, c), rows = duplicate_rows()
    dataset = load_dataset(make_spec(make_source(HEADER, rows), duplicates="reject"))

    assert dataset.ids == [b, c]
    assert dataset.columns["age"].tolist() == [20, 40]
    reason = "duplicate id (rows 1, 3, 5); policy 'reject' excludes every row of it"
    assert dataset.report.duplicates == [
        RowError(1, "resident_id", a, reason),
        RowError(3, "resident_id", f" {a} ", reason),
        RowError(5, "resident_id", legacy(a), reason),
    ]
    assert dataset.index_of(a) is None
    assert (dataset.report.rows_read, dataset.report.rows_loaded) == (5, 2)


def test_duplicates_first_wins_keeps_the_first_row(make_source: MakeSource) -> None:
    (a, b, c), rows = duplicate_rows()
    dataset = load_dataset(make_spec(make_source(HEADER, rows), duplicates="first_wins"))

    assert dataset.ids == [a, b, c]
    assert dataset.columns["age"].tolist() == [10, 20, 40]
    reason = "duplicate id (rows 1, 3, 5); policy 'first_wins' keeps row 1"
    assert dataset.report.duplicates == [
        RowError(3, "resident_id", f" {a} ", reason),
        RowError(5, "resident_id", legacy(a), reason),
    ]
    assert dataset.index_of(a) == 0


def test_first_wins_never_substitutes_a_later_row(make_source: MakeSource) -> None:
    a = rid(21)
    rows: list[list[Cell]] = [[a, "999", "0", "A", ""], [a, "30", "0", "A", ""]]
    dataset = load_dataset(make_spec(make_source(HEADER, rows), duplicates="first_wins"))

    assert dataset.ids == []
    assert dataset.columns["age"].tolist() == []
    assert dataset.report.invalid_values == [RowError(1, "age", "999", "out of bounds [0, 120]")]
    assert dataset.report.duplicates == [
        RowError(2, "resident_id", a, "duplicate id (rows 1, 2); policy 'first_wins' keeps row 1")
    ]


def test_missing_columns_raise_naming_them(make_source: MakeSource) -> None:
    source = make_source(["resident_id", "age"], [[rid(1), "3"]])
    with pytest.raises(DataSourceError) as caught:
        load_dataset(make_spec(source))
    message = str(caught.value)
    assert message.startswith("dataset 'people': ")
    assert "missing columns 'owner', 'district'" in message
    assert "(columns present: 'resident_id', 'age')" in message


def test_missing_id_column_raises(make_source: MakeSource) -> None:
    source = make_source(["pid", "age", "owner", "district"], [[rid(1), "3", "0", "A"]])
    with pytest.raises(DataSourceError, match=r"missing column 'resident_id' "):
        load_dataset(make_spec(source))


def test_schema_view_never_contains_values(make_source: MakeSource) -> None:
    source = make_source(HEADER, [[rid(1), "77", "1", "Haidian", "secret note"]])
    dataset = load_dataset(make_spec(source))
    view = dataset.schema_view()

    assert view == {
        "name": "people",
        "description": "",
        "id_column": "resident_id",
        "id_kind": "resident_id",
        "columns": {
            "age": {"type": "int", "classification": "sensitive", "description": "", "min": 0, "max": 120},
            "owner": {"type": "bool", "classification": "internal", "description": ""},
            "district": {"type": "category", "classification": "public", "description": "", "categories": DISTRICTS},
        },
    }
    text = repr(view) + repr(dataset)
    for value in (rid(1), "77", "secret note"):  # "Haidian" is shown as declared, not as present
        assert value not in text


# --------------------------------------------------------------------------------------------------
# Declared category domains
# --------------------------------------------------------------------------------------------------

DOMAIN = ["south", "north", "rare"]  # declared order, deliberately not sorted
DOMAIN_COLUMNS: dict[str, dict[str, Any]] = {
    "age": {"type": "int", "min": 0, "max": 120},
    "district": {"type": "category", "categories": DOMAIN, "classification": "public"},
}


def test_category_codes_follow_the_declared_order(make_source: MakeSource) -> None:
    ids = [rid(n) for n in range(1, 4)]
    source = make_source(
        ["resident_id", "age", "district"], [[ids[0], "1", "north"], [ids[1], "2", " south "], [ids[2], "3", "north"]]
    )
    dataset = load_dataset(make_spec(source, DOMAIN_COLUMNS))
    assert dataset.labels("district") == ("south", "north", "rare")
    assert dataset.columns["district"].tolist() == ["north", "south", "north"]
    assert dataset.values("district").tolist() == [1, 0, 1]
    assert dataset.schema_view()["columns"]["district"]["categories"] == DOMAIN  # type: ignore[index]
    with pytest.raises(ValueError, match="not a category column"):
        dataset.labels("age")


def test_an_undeclared_category_value_is_rejected_with_a_reason(make_source: MakeSource) -> None:
    ids = [rid(n) for n in range(1, 5)]
    source = make_source(
        ["resident_id", "age", "district"],
        [
            [ids[0], "1", "north"],
            [ids[1], "2", "east"],  # not declared
            [ids[2], "3", "North"],  # declared values are case-sensitive
            [ids[3], "200", "west"],  # two bad values: one entry per column
        ],
    )
    dataset = load_dataset(make_spec(source, DOMAIN_COLUMNS))
    assert dataset.ids == [ids[0]]
    reason = "not one of the column's declared categories"
    assert dataset.report.invalid_values == [
        RowError(2, "district", "east", reason),
        RowError(3, "district", "North", reason),
        RowError(4, "age", "200", "out of bounds [0, 120]"),
        RowError(4, "district", "west", reason),
    ]
    assert dataset.labels("district") == tuple(DOMAIN)  # an undeclared value never joins the domain
    assert "east" not in repr(dataset.schema_view()) and "west" not in repr(dataset.schema_view())


def test_labels_do_not_depend_on_which_values_are_present(tmp_path: Path) -> None:
    subsets = [["north"], ["south", "north"], ["rare"], []]
    seen = set()
    for k, values in enumerate(subsets):
        path = tmp_path / f"people{k}.csv"
        write_csv(
            path, ["resident_id", "age", "district"], [[rid(n + 1), "1", value] for n, value in enumerate(values)]
        )
        dataset = load_dataset(make_spec(CsvSource(kind="csv", path=path), DOMAIN_COLUMNS))
        assert dataset.num_rows == len(values)
        seen.add((dataset.labels("district"), repr(dataset.schema_view())))
    assert seen == {(tuple(DOMAIN), repr(dataset.schema_view()))}  # one answer whatever the data holds


@pytest.mark.parametrize(
    ("column", "message"),
    [
        (
            {"type": "category"},
            "category column requires 'categories', the declared list of its values (never derived from the data)",
        ),
        ({"type": "category", "categories": []}, "category column 'categories' must list at least one value"),
        (
            {"type": "category", "categories": ["a", "b", "a"]},
            "category value 'a' appears more than once in 'categories'",
        ),
        (
            {"type": "category", "categories": ["a", " "]},
            "category column 'categories' must not contain an empty or blank value",
        ),
        (
            {"type": "category", "categories": [" a"]},
            "category value ' a' in 'categories' has surrounding whitespace "
            "(loaded values are stripped, so it could never match)",
        ),
        (
            {"type": "category", "categories": ["x" * 65]},
            f"category value {'x' * 64!r}... in 'categories' is longer than 64 characters (65)",
        ),
        (
            {"type": "category", "categories": ["a\tb"]},
            "category value 'a\\tb' in 'categories' contains control or non-printable characters",
        ),
        (
            {"type": "int", "min": 0, "max": 1, "categories": ["a"]},
            "int column must not declare 'categories'; a domain applies to category columns only",
        ),
        (
            {"type": "bool", "categories": ["a"]},
            "bool column must not declare 'categories'; a domain applies to category columns only",
        ),
    ],
)
def test_category_domain_errors_name_the_column_and_key(column: dict[str, Any], message: str) -> None:
    loc, msg, kind = single_error(spec_dict({"district": column}))
    assert loc == ("schema", "columns", "district")
    assert msg == f"Value error, {message}"
    assert kind == "value_error"


def test_category_domain_must_be_strings() -> None:
    loc, _, kind = single_error(spec_dict({"district": {"type": "category", "categories": ["a", 3]}}))
    assert (loc, kind) == (("schema", "columns", "district", "categories", 1), "string_type")


def test_category_domain_from_toml() -> None:
    text = """
    name = "people"
    source = { kind = "csv", path = "people.csv" }
    [schema]
    id_column = "resident_id"
    [schema.columns]
    district = { type = "category", categories = ["Dongcheng", "Xicheng", "东城"], classification = "public" }
    """
    column = DatasetSpec.model_validate(tomllib.loads(text)).schema_.columns["district"]
    assert column.categories == ["Dongcheng", "Xicheng", "东城"] and column.domain == ("Dongcheng", "Xicheng", "东城")
    missing = tomllib.loads(text.replace('categories = ["Dongcheng", "Xicheng", "东城"], ', ""))
    loc, msg, _ = single_error(missing)
    assert loc == ("schema", "columns", "district") and "'categories'" in msg


# --------------------------------------------------------------------------------------------------
# CSV specifics
# --------------------------------------------------------------------------------------------------


def csv_spec(path: Path, **kwargs: Any) -> DatasetSpec:
    return make_spec(CsvSource(kind="csv", path=path, **kwargs))


def test_csv_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.csv"
    with pytest.raises(DataSourceError) as caught:
        load_dataset(csv_spec(path))
    assert str(caught.value) == f"dataset 'people': CSV file {str(path)!r}: file not found"


def test_csv_relative_path_resolves_against_base_dir(tmp_path: Path) -> None:
    write_csv(tmp_path / "people.csv", HEADER, [[rid(1), "5", "0", "A", ""]])
    dataset = load_dataset(csv_spec(Path("people.csv")), base_dir=tmp_path)
    assert dataset.ids == [rid(1)]


def test_csv_field_count_mismatch_is_a_row_error(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text(
        "resident_id,age,owner,district\n"
        f"{rid(1)},5,0,A\n"
        f"{rid(2)},6,0\n"
        "\n"  # blank lines are not data rows
        f"{rid(3)},7,1,B,extra\n"
        f"{rid(4)},8,1,C\n",
        encoding="utf-8",
    )
    dataset = load_dataset(csv_spec(path))
    assert dataset.ids == [rid(1), rid(4)]
    assert dataset.report.rows_read == 4
    assert dataset.report.invalid_values == [
        RowError(2, "", f"{rid(2)},6,0", "row has 3 fields, header has 4"),
        RowError(3, "", f"{rid(3)},7,1,B,extra", "row has 5 fields, header has 4"),
    ]


def test_csv_bom_delimiter_and_header_whitespace(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text(f"\ufeffresident_id; age ;owner;district\n{rid(1)};5;1;A\n", encoding="utf-8")
    dataset = load_dataset(csv_spec(path, delimiter=";"))
    assert dataset.ids == [rid(1)]
    assert dataset.columns["age"].tolist() == [5]


def test_csv_undecodable_and_empty_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"resident_id,age,owner,district\n\xff\xfe,1,0,A\n")
    with pytest.raises(DataSourceError, match=r"^dataset 'people': CSV file .*: not valid utf-8 text"):
        load_dataset(csv_spec(bad))
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataSourceError, match=r"file is empty; expected a header row"):
        load_dataset(csv_spec(empty))
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes(f"resident_id,age,owner,district\n{rid(1)},5,0,东城\n".encode("gbk"))
    dataset = load_dataset(csv_spec(gbk, encoding="gbk"))
    assert dataset.columns["district"].tolist() == ["东城"]


def test_csv_repeated_declared_column_in_header(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text(f"resident_id,age,owner,district,age\n{rid(1)},5,0,A,6\n", encoding="utf-8")
    with pytest.raises(DataSourceError, match=r"column 'age' appears more than once in the header"):
        load_dataset(csv_spec(path))


# --------------------------------------------------------------------------------------------------
# SQLite specifics
# --------------------------------------------------------------------------------------------------


def test_sqlite_missing_file_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "absent.sqlite"
    spec = make_spec(SqliteSource(kind="sqlite", path=path, table="people"))
    with pytest.raises(DataSourceError) as caught:
        load_dataset(spec)
    assert str(caught.value) == (f"dataset 'people': SQLite table 'people' in {str(path)!r}: database file not found")
    assert not path.exists()


def test_sqlite_missing_table(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    write_sqlite(path, "other", HEADER, [])
    spec = make_spec(SqliteSource(kind="sqlite", path=path, table="people"))
    with pytest.raises(DataSourceError) as caught:
        load_dataset(spec)
    assert str(caught.value) == (f"dataset 'people': SQLite table 'people' in {str(path)!r}: table not found")


def test_sqlite_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    path.write_text("this is not a database\n" * 100, encoding="utf-8")
    spec = make_spec(SqliteSource(kind="sqlite", path=path, table="people"))
    with pytest.raises(DataSourceError, match=r"cannot read: file is not a database"):
        load_dataset(spec)


def test_sqlite_typed_columns(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    ids = [rid(n) for n in range(1, 6)]
    write_sqlite(
        path,
        "people",
        HEADER,
        [
            [ids[0], 42, 1, "A", None],
            [ids[1], 1.5, 0, "A", None],
            [ids[2], None, 0, "A", None],
            [ids[3], 43, 2, 7, None],
            [ids[4], 44, 0, 7, None],
        ],
        {"age": "INTEGER", "owner": "INTEGER", "district": "BLOB"},
    )
    dataset = load_dataset(make_spec(SqliteSource(kind="sqlite", path=path, table="people")))
    assert dataset.ids == [ids[0], ids[4]]
    assert dataset.columns["age"].tolist() == [42, 44]
    assert dataset.columns["district"].tolist() == ["A", "7"]
    assert dataset.report.invalid_values == [
        RowError(2, "age", "1.5", "not an integer (floating-point value)"),
        RowError(3, "age", "", "missing value (NULL)"),
        RowError(4, "owner", "2", "not a boolean (expected 0, 1, true or false)"),
    ]


def test_sqlite_integer_and_null_ids(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    write_sqlite(
        path,
        "people",
        ["pid", "score"],
        [[1001, 5], [None, 6], [2.5, 7], ["  abc ", 8]],
        {"pid": "", "score": "INTEGER"},
    )
    spec = make_spec(
        SqliteSource(kind="sqlite", path=path, table="people"),
        {"score": {"type": "int", "min": 0, "max": 10}},
        id_column="pid",
        id_kind="opaque",
    )
    dataset = load_dataset(spec)
    assert dataset.ids == ["1001", "abc"]
    assert dataset.report.invalid_ids == [
        RowError(2, "pid", "", "missing id"),
        RowError(3, "pid", "2.5", "id must be text or an integer, got float"),
    ]


# --------------------------------------------------------------------------------------------------
# PostgreSQL specifics (real server)
# --------------------------------------------------------------------------------------------------


def test_postgres_typed_columns(pg_tables: MakeSource) -> None:
    ids = [rid(n) for n in range(1, 8)]
    source = pg_tables(
        ["resident_id", "age", "owner", "district", "income", "ratio"],
        [
            [ids[0], 42, True, "A", Decimal("1000"), 0.5],
            [ids[1], None, False, "A", Decimal("1000"), 0.5],
            [ids[2], 43, None, "A", Decimal("1000"), 0.5],
            [ids[3], 44, False, None, Decimal("1000"), 0.5],
            [ids[4], 45, False, "A", Decimal("1000.50"), 0.5],
            [ids[5], 46, True, "B", Decimal("-3"), 0.5],
            [ids[6], 47, False, "C", Decimal("20"), 0.5],
        ],
        {"age": "integer", "owner": "boolean", "income": "numeric(12, 2)", "ratio": "real"},
    )
    columns = {
        **COLUMNS,
        "income": {"type": "int", "min": -10, "max": 10**6},
    }
    dataset = load_dataset(make_spec(source, columns))
    # numeric(12, 2) renders 1000 as Decimal("1000.00"): a fractional scale is not an integer.
    assert dataset.ids == []
    assert [error.row for error in dataset.report.invalid_values].count(1) == 1
    assert dataset.report.invalid_values[:4] == [
        RowError(1, "income", "1000.00", "not an integer (decimal value with a fractional part)"),
        RowError(2, "age", "", "missing value (NULL)"),
        RowError(2, "income", "1000.00", "not an integer (decimal value with a fractional part)"),
        RowError(3, "owner", "", "missing value (NULL)"),
    ]

    source = pg_tables(
        ["resident_id", "age", "owner", "district", "income", "ratio"],
        [
            [ids[0], 42, True, "A", Decimal("1000"), 0.5],
            [ids[3], 44, False, None, Decimal("1000"), 0.5],
            [ids[5], 46, True, "B", Decimal("-3"), 0.5],
            [ids[6], 47, False, "C", Decimal("-11"), 0.5],
        ],
        {"age": "smallint", "owner": "boolean", "income": "numeric(12, 0)", "ratio": "real"},
    )
    dataset = load_dataset(make_spec(source, {**columns, "ratio": {"type": "int", "min": 0, "max": 1}}))
    assert dataset.ids == []
    dataset = load_dataset(make_spec(source, columns))
    assert dataset.ids == [ids[0], ids[5]]
    assert dataset.columns["age"].tolist() == [42, 46]
    assert dataset.columns["owner"].tolist() == [1, 1]
    assert dataset.columns["income"].tolist() == [1000, -3]
    assert dataset.columns["district"].tolist() == ["A", "B"]
    assert dataset.report.invalid_values == [
        RowError(2, "district", "", "missing value (NULL)"),
        RowError(4, "income", "-11", "out of bounds [-10, 1000000]"),
    ]


def test_postgres_float_and_bool_mismatches(pg_tables: MakeSource) -> None:
    a, b = rid(1), rid(2)
    source = pg_tables(
        ["resident_id", "age", "owner", "district"],
        [[a, 1.0, 1, "A"], [b, 2.0, 0, "B"]],
        {"age": "double precision", "owner": "integer"},
    )
    dataset = load_dataset(make_spec(source))
    assert dataset.ids == []
    assert dataset.report.invalid_values == [
        RowError(1, "age", "1.0", "not an integer (floating-point value)"),
        RowError(2, "age", "2.0", "not an integer (floating-point value)"),
    ]


def test_postgres_schema_qualified_table(pg_tables: MakeSource) -> None:
    source = pg_tables(HEADER, [[rid(1), "5", "1", "A", ""]])
    assert isinstance(source, PostgresSource)
    qualified = PostgresSource(kind="postgres", dsn=source.dsn, table=f"public.{source.table}")
    dataset = load_dataset(make_spec(qualified))
    assert dataset.ids == [rid(1)]


def test_postgres_missing_table(pg_dsn: str) -> None:
    table = f"mpc_absent_{uuid.uuid4().hex}"
    spec = make_spec(PostgresSource(kind="postgres", dsn=pg_dsn, table=table))
    with pytest.raises(DataSourceError) as caught:
        load_dataset(spec)
    message = str(caught.value)
    assert message.startswith(
        f"dataset 'people': PostgreSQL table {table!r} in database 'test' at 127.0.0.1:5432: table not found"
    )


def test_postgres_unreachable_server_never_echoes_the_password() -> None:
    dsn = "postgresql://postgres:hunter2@127.0.0.1:1/test"
    spec = make_spec(PostgresSource(kind="postgres", dsn=dsn, table="people"))
    with pytest.raises(DataSourceError) as caught:
        load_dataset(spec)
    message = str(caught.value)
    assert message.startswith(
        "dataset 'people': PostgreSQL table 'people' in database 'test' at 127.0.0.1:1: cannot connect: "
    )
    assert "hunter2" not in message


def test_postgres_unparsable_dsn() -> None:
    spec = make_spec(PostgresSource(kind="postgres", dsn="host=x password=hunter2 oops", table="t"))
    with pytest.raises(DataSourceError) as caught:
        load_dataset(spec)
    assert "hunter2" not in str(caught.value)
    assert "the DSN cannot be parsed" in str(caught.value)


# --------------------------------------------------------------------------------------------------
# Schema validation
# --------------------------------------------------------------------------------------------------


def spec_dict(columns: Mapping[str, Any], **schema: Any) -> dict[str, Any]:
    return {
        "name": "people",
        "source": {"kind": "csv", "path": "people.csv"},
        "schema": {"id_column": "resident_id", "columns": dict(columns), **schema},
    }


def single_error(data: Mapping[str, Any]) -> tuple[tuple[int | str, ...], str, str]:
    """The location, message and type of the only validation error of ``data``."""
    with pytest.raises(ValidationError) as caught:
        DatasetSpec.model_validate(data)
    errors = caught.value.errors()
    assert len(errors) == 1, errors
    return errors[0]["loc"], errors[0]["msg"], errors[0]["type"]


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ({"type": "int"}, "int column requires both 'min' and 'max' bounds; missing 'min', 'max'"),
        ({"type": "int", "min": 0}, "int column requires both 'min' and 'max' bounds; missing 'max'"),
        ({"type": "int", "min": 5, "max": 4}, "int column bounds are inverted: min 5 > max 4"),
        (
            {"type": "int", "min": 0, "max": 2**62},
            "int column bound 'max' = 4611686018427387904 is outside [-2^62, 2^62 - 1]",
        ),
        (
            {"type": "int", "min": -(2**62) - 1, "max": 0},
            "int column bound 'min' = -4611686018427387905 is outside [-2^62, 2^62 - 1]",
        ),
        ({"type": "bool", "min": 0}, "bool column must not declare 'min'; bounds apply to int columns only"),
        (
            {"type": "category", "min": 0, "max": 3},
            "category column must not declare 'min' or 'max'; bounds apply to int columns only",
        ),
    ],
)
def test_column_bounds_errors_name_the_column(column: dict[str, Any], message: str) -> None:
    loc, msg, kind = single_error(spec_dict({"age": column}))
    assert loc == ("schema", "columns", "age")
    assert msg == f"Value error, {message}"
    assert kind == "value_error"


def test_extreme_bounds_are_accepted() -> None:
    spec = DatasetSpec.model_validate(
        spec_dict({"x": {"type": "int", "min": -(2**62), "max": 2**62 - 1, "classification": "secret"}})
    )
    column = spec.schema_.columns["x"]
    assert (column.min, column.max, column.classification, column.usable) == (-(2**62), 2**62 - 1, "secret", False)


@pytest.mark.parametrize(
    ("data", "loc", "kind"),
    [
        (
            spec_dict({"age": {"type": "int", "min": 0, "max": 1, "mx": 3}}),
            ("schema", "columns", "age", "mx"),
            "extra_forbidden",
        ),
        (spec_dict({"age": {"type": "bool"}}, dupes="reject"), ("schema", "dupes"), "extra_forbidden"),
        ({**spec_dict({"age": {"type": "bool"}}), "owner": "tax"}, ("owner",), "extra_forbidden"),
        (
            {**spec_dict({"age": {"type": "bool"}}), "source": {"kind": "csv", "path": "a", "sep": ";"}},
            ("source", "csv", "sep"),
            "extra_forbidden",
        ),
        (spec_dict({"age": {"type": "float"}}), ("schema", "columns", "age", "type"), "literal_error"),
        (spec_dict({"age": {"type": "int", "min": "0", "max": 1}}), ("schema", "columns", "age", "min"), "int_type"),
        (spec_dict({"age": {"type": "int", "min": 0.0, "max": 1}}), ("schema", "columns", "age", "min"), "int_type"),
        (
            spec_dict({"age": {"type": "bool", "classification": "top"}}),
            ("schema", "columns", "age", "classification"),
            "literal_error",
        ),
        (spec_dict({"age": {"type": "bool"}}, id_kind="passport"), ("schema", "id_kind"), "literal_error"),
        (spec_dict({"age": {"type": "bool"}}, duplicates="last_wins"), ("schema", "duplicates"), "literal_error"),
        (
            {**spec_dict({"age": {"type": "bool"}}), "source": {"kind": "excel", "path": "a"}},
            ("source",),
            "union_tag_invalid",
        ),
    ],
)
def test_schema_errors_name_the_bad_key(data: dict[str, Any], loc: tuple[int | str, ...], kind: str) -> None:
    assert single_error(data)[0::2] == (loc, kind)


def test_schema_structural_rules() -> None:
    loc, msg, _ = single_error(spec_dict({}))
    assert (loc, msg) == (("schema", "columns"), "Value error, a dataset schema must declare at least one column")
    loc, msg, _ = single_error(spec_dict({"resident_id": {"type": "bool"}}))
    assert loc == ("schema",)
    assert msg == "Value error, id column 'resident_id' must not also be declared in 'columns'"
    loc, msg, _ = single_error({**spec_dict({"a": {"type": "bool"}}), "name": "my-data"})
    assert loc == ("name",)
    assert "dataset name 'my-data' is not an identifier" in msg


@pytest.mark.parametrize(
    ("source", "ok"),
    [
        ({"kind": "sqlite", "path": "db", "table": "people"}, True),
        ({"kind": "sqlite", "path": "db", "table": "people; DROP TABLE x"}, False),
        ({"kind": "sqlite", "path": "db", "table": "main.people"}, False),
        ({"kind": "postgres", "dsn": "dbname=test", "table": "public.people"}, True),
        ({"kind": "postgres", "dsn": "dbname=test", "table": "a.b.c"}, False),
        ({"kind": "postgres", "dsn": "dbname=test", "table": 'people"'}, False),
        ({"kind": "postgres", "dsn": "dbname=test", "table": "1people"}, False),
        ({"kind": "csv", "path": "a.csv", "delimiter": ";;"}, False),
        ({"kind": "csv", "path": "a.csv", "delimiter": "\t", "encoding": "gb18030"}, True),
        ({"kind": "csv", "path": "a.csv", "encoding": "klingon"}, False),
    ],
)
def test_source_validation(source: dict[str, Any], ok: bool) -> None:
    data = {**spec_dict({"a": {"type": "bool"}}), "source": source}
    if ok:
        assert DatasetSpec.model_validate(data).source.kind == source["kind"]
    else:
        loc = single_error(data)[0]
        assert loc[0] == "source"
        assert loc[-1] in {"table", "delimiter", "encoding"}


def test_spec_from_toml_and_by_field_name() -> None:
    text = """
    name = "income"
    description = "annual income"
    source = { kind = "postgres", dsn = "postgresql://tax@db/tax", table = "tax.income" }

    [schema]
    id_column = "credit_code"
    id_kind = "credit_code"
    duplicates = "first_wins"

    [schema.columns]
    annual_income = { type = "int", min = 0, max = 100_000_000, classification = "sensitive" }
    has_property = { type = "bool" }
    district = { type = "category", categories = ["north", "south"], classification = "public", description = "county" }
    """
    spec = DatasetSpec.model_validate(tomllib.loads(text))
    assert isinstance(spec.source, PostgresSource)
    assert spec.source.table_parts == ("tax", "income")
    assert spec.schema_.columns["annual_income"] == ColumnSpec(
        type="int", min=0, max=100_000_000, classification="sensitive"
    )
    assert list(spec.schema_.columns) == ["annual_income", "has_property", "district"]
    assert spec.model_dump(by_alias=True)["schema"]["id_kind"] == "credit_code"
    again = DatasetSpec(
        name="income",
        source=spec.source,
        schema=DatasetSchema(id_column="credit_code", columns={"x": ColumnSpec(type="bool")}),
    )
    assert again.schema_.id_column == "credit_code"


# --------------------------------------------------------------------------------------------------
# Property: valid int columns round-trip through CSV
# --------------------------------------------------------------------------------------------------


@st.composite
def int_tables(draw: st.DrawFn) -> tuple[dict[str, tuple[int, int]], list[list[int]]]:
    """Random int columns with random bounds in [-2^62, 2^62), and rows within those bounds."""
    count = draw(st.integers(1, 4))
    bounds: dict[str, tuple[int, int]] = {}
    for index in range(count):
        low, high = sorted(draw(st.lists(st.integers(-(2**62), 2**62 - 1), min_size=2, max_size=2)))
        bounds[f"c{index}"] = (low, high)
    rows = draw(st.lists(st.tuples(*(st.integers(low, high) for low, high in bounds.values())), max_size=25))
    return bounds, [list(row) for row in rows]


@given(table=int_tables(), padded=st.booleans())
def test_valid_int_columns_round_trip_through_csv(
    table: tuple[dict[str, tuple[int, int]], list[list[int]]], padded: bool
) -> None:
    bounds, rows = table
    ids = [rid(index + 1) for index in range(len(rows))]
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "ints.csv"
        cells: list[list[Cell]] = [
            [ids[i], *(f" {value} " if padded else str(value) for value in row)] for i, row in enumerate(rows)
        ]
        write_csv(path, ["resident_id", *bounds], cells)
        columns = {name: {"type": "int", "min": low, "max": high} for name, (low, high) in bounds.items()}
        dataset: Dataset = load_dataset(make_spec(CsvSource(kind="csv", path=path), columns))

    assert dataset.ids == ids
    for position, name in enumerate(bounds):
        array = dataset.columns[name]
        assert array.dtype == np.int64
        assert array.tolist() == [row[position] for row in rows]
    report = dataset.report
    assert (report.rows_read, report.rows_loaded) == (len(rows), len(rows))
    assert report.invalid_ids == report.invalid_values == report.duplicates == []
