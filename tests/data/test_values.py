"""Dates and codes as ring integers (both sides the same way), and datasets keyed by several
columns, loaded from CSV, SQLite and the real PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpc.data.sources import load_dataset
from mpc.data.values import (
    CODE_MAX,
    KEY_SEPARATOR,
    ValueParseError,
    code_value,
    composite_key,
    date_value,
    normalize_code,
    number_value,
)
from tests.data.test_sources import MakeSource, make_source, make_spec, pg_tables, rid  # noqa: F401

CERTIFICATE_COLUMNS = {
    "certificate_number": {"type": "code"},
    "certificate_type": {"type": "code"},
    "valid_to": {"type": "date"},
}


def test_dates_count_days_from_1970_in_every_spelling() -> None:
    assert date_value("1970-01-01") == 0
    assert (
        date_value("2026-12-02")
        == date_value("20261202")
        == date_value("2026/12/02")
        == date_value("\uff12\uff10\uff12\uff16-12-02")
    )
    assert date_value(dt.date(2026, 12, 2)) == date_value(dt.datetime(2026, 12, 2, 23, 59)) == 20_789
    assert date_value("1969-12-31") == -1
    for bad in ("2026-02-30", "02/12/2026", "", "1899-12-31", "2200-01-01"):
        with pytest.raises(ValueParseError):
            date_value(bad)


def test_codes_compare_after_normalisation_only() -> None:
    assert normalize_code(" zj-0001 ") == normalize_code("\uff3a\uff2a-0001") == "ZJ-0001"
    assert code_value("zj-0001") == code_value("ZJ-0001 ") != code_value("ZJ-0002")
    for bad in ("", "  ", "a\x00b", "x" * 65):
        with pytest.raises(ValueParseError):
            normalize_code(bad)


@given(st.text(min_size=1, max_size=64).filter(lambda t: t.strip() and t.isprintable()))
def test_a_code_hashes_into_the_ring(text: str) -> None:
    try:
        value = code_value(text)
    except ValueParseError:
        return  # normalisation made it empty, long or unprintable: refused, never mis-hashed
    assert 0 <= value <= CODE_MAX


def test_numbers_allow_separators_and_refuse_decimals() -> None:
    assert (
        number_value("12,345") == number_value(" 12 345 ") == number_value("\uff11\uff12\uff13\uff14\uff15") == 12_345
    )
    assert number_value("-7") == -7
    for bad in ("12.5", "1e3", "", "twelve", "9" * 20):
        with pytest.raises(ValueParseError):
            number_value(bad)


def test_a_composite_key_names_holder_and_certificate(make_source: MakeSource) -> None:  # noqa: F811
    """Rows keyed by holder and certificate number: one holder may hold several certificates, the
    same number twice for one holder is a duplicate, a missing number is an invalid key with its
    row; dates and codes load as their ring integers."""
    a, b = rid(1), rid(2)
    source = make_source(
        ["holder", "certificate_number", "certificate_type", "valid_to"],
        [
            [a, "ZJ-1", "ELECTRICIAN", "2027-06-30"],
            [a, "zj-2 ", "plumber", "2025-01-01"],
            [b, "ZJ-1", "ELECTRICIAN", "2030-01-01"],
            [b, "", "ELECTRICIAN", "2030-01-01"],
            [b, "zj-3", "ELECTRICIAN", "2030-01-01"],
            [b, "ZJ-3", "ELECTRICIAN", "2031-01-01"],
        ],
    )
    spec = make_spec(source, CERTIFICATE_COLUMNS, id_column="holder")
    spec.schema_.key_columns.append("certificate_number")
    dataset = load_dataset(spec)
    assert dataset.ids == [composite_key(a, "ZJ-1"), composite_key(a, "ZJ-2"), composite_key(b, "ZJ-1")]
    assert all(KEY_SEPARATOR in i for i in dataset.ids)
    assert dataset.columns["certificate_type"].tolist() == [
        code_value("ELECTRICIAN"),
        code_value("PLUMBER"),
        code_value("ELECTRICIAN"),
    ]
    assert dataset.columns["valid_to"].tolist() == [date_value("2027-06-30"), date_value("2025-01-01"), 21_915]
    report = dataset.report
    assert [(e.row, e.column) for e in report.invalid_ids] == [(4, "certificate_number")]
    assert "key column 'certificate_number'" in report.invalid_ids[0].reason
    assert [e.row for e in report.duplicates] == [5, 6]
    assert [e.raw for e in report.duplicates] == [b, b]  # the id as written, not the composite key


def test_a_key_column_must_be_a_declared_code(tmp_path: object) -> None:
    from pydantic import ValidationError

    from mpc.data.schema import DatasetSchema

    with pytest.raises(ValidationError, match="key column 'valid_to' must be declared in 'columns' with type 'code'"):
        DatasetSchema.model_validate(
            {"id_column": "holder", "columns": CERTIFICATE_COLUMNS, "key_columns": ["valid_to"]}
        )
