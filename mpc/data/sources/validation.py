"""Validating raw rows and building the :class:`~mpc.data.sources.dataset.Dataset`.

:func:`build_dataset` checks the rows of a :class:`~mpc.data.sources.readers.RawTable` in the
order :func:`mpc.data.sources.load_dataset` documents -- ids, then duplicates, then values -- and
records every rejected row in the :class:`~mpc.data.sources.dataset.LoadReport`. Values are
parsed strictly, one parser per column type (``int``, ``bool``, ``category``, ``date``, ``code``); a
composite key (``key_columns``) joins the normalised id and key codes into the row's id.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal

import numpy as np

from mpc.data.ids import normalize_column
from mpc.data.schema import CATEGORY_MAX_LENGTH, ColumnSpec, DatasetSpec
from mpc.data.sources.dataset import Dataset, LoadReport, RowError, clip_raw
from mpc.data.sources.readers import RawTable
from mpc.data.values import ValueParseError, code_value, composite_key, date_value, normalize_code

__all__ = [
    "build_dataset",
]

_DUPLICATE_ROWS_SHOWN = 10  # row numbers listed in a duplicate's reason
_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_FLOAT_TEXT = re.compile(r"[+-]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(\.[0-9]*)?[eE][+-]?[0-9]+)")
_TRUE = frozenset({"1", "true"})
_FALSE = frozenset({"0", "false"})


# --------------------------------------------------------------------------------------------------
# Parsing values
# --------------------------------------------------------------------------------------------------


class _BadValue(Exception):
    """A value that does not fit its declared column; the message is the reason."""


def _raw_text(value: object) -> str:
    """A raw value as text for a :class:`RowError` (``""`` for NULL)."""
    return "" if value is None else clip_raw(str(value))


def _parse_int(value: object, spec: ColumnSpec) -> int:
    """An ``int`` column's value: an integer within ``[min, max]``, else :class:`_BadValue`."""
    assert spec.min is not None and spec.max is not None
    number: int
    if value is None:
        raise _BadValue("missing value (NULL)")
    if isinstance(value, bool):
        raise _BadValue("boolean value in an int column")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise _BadValue("missing value")
        if not _INT_TEXT.fullmatch(text):
            if _FLOAT_TEXT.fullmatch(text):
                raise _BadValue("not an integer (has a fractional part or exponent)")
            raise _BadValue("not an integer")
        if len(text.lstrip("+-").lstrip("0")) > 20:
            raise _BadValue(f"out of bounds [{spec.min}, {spec.max}]")
        number = int(text)
    elif isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        if not value.is_finite() or not isinstance(exponent, int) or exponent < 0:
            raise _BadValue("not an integer (decimal value with a fractional part)")
        number = int(value)
    elif isinstance(value, float):
        raise _BadValue("not an integer (floating-point value)")
    else:
        raise _BadValue(f"not an integer ({type(value).__name__} value)")
    if not spec.min <= number <= spec.max:
        raise _BadValue(f"out of bounds [{spec.min}, {spec.max}]")
    return number


def _parse_bool(value: object, spec: ColumnSpec) -> int:
    """A ``bool`` column's value as 0 or 1 (0/1/true/false in any case, or a database boolean)."""
    if value is None:
        raise _BadValue("missing value (NULL)")
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value in (0, 1):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if not text:
            raise _BadValue("missing value")
        if text in _TRUE:
            return 1
        if text in _FALSE:
            return 0
    raise _BadValue("not a boolean (expected 0, 1, true or false)")


def _parse_category(value: object, spec: ColumnSpec) -> str:
    """A ``category`` column's value: stripped, printable, short, and in the declared domain."""
    if value is None:
        raise _BadValue("missing value (NULL)")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise _BadValue(f"not a category string ({type(value).__name__} value)")
    text = value.strip()
    if not text:
        raise _BadValue("missing value")
    if len(text) > CATEGORY_MAX_LENGTH:
        raise _BadValue(f"category longer than {CATEGORY_MAX_LENGTH} characters ({len(text)})")
    if not text.isprintable():
        raise _BadValue("category contains control or non-printable characters")
    if text not in spec.domain_set:
        raise _BadValue("not one of the column's declared categories")
    return text


def _parse_date(value: object, spec: ColumnSpec) -> int:
    """A ``date`` column's value as days since 1970-01-01 (ISO text or a database date)."""
    if value is None:
        raise _BadValue("missing value (NULL)")
    if not isinstance(value, str | dt.date):
        raise _BadValue(f"not a date ({type(value).__name__} value)")
    try:
        return date_value(value)
    except ValueParseError as problem:
        raise _BadValue(str(problem)) from None


def _parse_code(value: object, spec: ColumnSpec) -> int:
    """A ``code`` column's value as the 62-bit hash of its normalised text."""
    if value is None:
        raise _BadValue("missing value (NULL)")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _BadValue(f"not a code ({type(value).__name__} value)")
    try:
        return code_value(value)
    except ValueParseError as problem:
        raise _BadValue(str(problem)) from None


_PARSERS: dict[str, Callable[[object, ColumnSpec], int | str]] = {
    "int": _parse_int,
    "bool": _parse_bool,
    "category": _parse_category,
    "date": _parse_date,
    "code": _parse_code,
}


def _key_part(value: object) -> str:
    """One ``code`` part of a composite key, normalised (:func:`mpc.data.values.normalize_code`)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueParseError("missing value" if value is None else f"not a code ({type(value).__name__} value)")
    return normalize_code(value)


def _id_text(value: object) -> str | RowError | None:
    """The id as text for the normaliser; integers from databases are written in decimal."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return RowError(0, "", _raw_text(value), f"id must be text or an integer, got {type(value).__name__}")


# --------------------------------------------------------------------------------------------------
# Building the dataset
# --------------------------------------------------------------------------------------------------


def build_dataset(spec: DatasetSpec, table: RawTable) -> Dataset:
    """Check ids, duplicates and values of the raw rows (see :func:`mpc.data.sources.load_dataset`)."""
    schema = spec.schema_
    id_column = schema.id_column
    report = LoadReport(dataset=spec.name, rows_read=len(table.rows))
    excluded: set[int] = set(table.malformed)

    # 1. Ids: normalise the whole column; every invalid id is recorded with its reason.
    texts: list[str | None] = []
    type_errors: dict[int, RowError] = {}
    for index, row in enumerate(table.rows):
        if index in table.malformed:
            texts.append(None)
            continue
        text = _id_text(row[0])
        if isinstance(text, RowError):
            type_errors[index] = text
            texts.append(None)
        else:
            texts.append(text)
    normalised, id_report = normalize_column(texts, schema.id_kind)
    reasons = {invalid.row: invalid.reason for invalid in id_report.invalid}
    for index, norm in enumerate(normalised):
        if index in table.malformed or norm is not None:
            continue
        if index in type_errors:
            error = type_errors[index]
            report.invalid_ids.append(RowError(index + 1, id_column, error.raw, error.reason))
        else:
            raw = texts[index]
            report.invalid_ids.append(RowError(index + 1, id_column, _raw_text(raw), reasons.get(index, "invalid id")))
        excluded.add(index)

    # 1b. A composite key: the id and the key columns' normalised codes make the row's id.
    if schema.key_columns:
        positions = [1 + list(schema.columns).index(name) for name in schema.key_columns]
        for index, norm in enumerate(normalised):
            if norm is None or index in excluded:
                continue
            parts = [norm]
            for name, position in zip(schema.key_columns, positions, strict=True):
                try:
                    parts.append(_key_part(table.rows[index][position]))
                except ValueParseError as problem:
                    raw = _raw_text(table.rows[index][position])
                    report.invalid_ids.append(RowError(index + 1, name, raw, f"key column {name!r}: {problem}"))
                    excluded.add(index)
                    break
            else:
                normalised[index] = composite_key(*parts)
        report.invalid_ids.sort(key=lambda error: error.row)

    # 2. Duplicates, compared after normalisation, among rows with a valid id.
    occurrences: dict[str, list[int]] = {}
    for index, norm in enumerate(normalised):
        if norm is not None and index not in excluded:
            occurrences.setdefault(norm, []).append(index)
    for indices in occurrences.values():
        if len(indices) < 2:
            continue
        rows_text = ", ".join(str(index + 1) for index in indices[:_DUPLICATE_ROWS_SHOWN])
        if len(indices) > _DUPLICATE_ROWS_SHOWN:
            rows_text += f", ... ({len(indices)} rows in all)"
        if schema.duplicates == "reject":
            reason = f"duplicate id (rows {rows_text}); policy 'reject' excludes every row of it"
            dropped = indices
        else:
            reason = f"duplicate id (rows {rows_text}); policy 'first_wins' keeps row {indices[0] + 1}"
            dropped = indices[1:]
        for index in dropped:
            report.duplicates.append(RowError(index + 1, id_column, _raw_text(texts[index]), reason))
            excluded.add(index)
    report.duplicates.sort(key=lambda error: error.row)

    # 3. Values: every declared column of every remaining row, strictly parsed.
    column_specs = list(schema.columns.items())
    parsed: list[list[int | str]] = [[] for _ in column_specs]
    ids: list[str] = []
    loaded: list[int] = []
    for index, row in enumerate(table.rows):
        if index in excluded:
            continue
        values: list[int | str] = []
        errors: list[RowError] = []
        for position, (name, column) in enumerate(column_specs, start=1):
            value = row[position]
            try:
                values.append(_PARSERS[column.type](value, column))
            except _BadValue as problem:
                errors.append(RowError(index + 1, name, _raw_text(value), str(problem)))
        if errors:
            report.invalid_values.extend(errors)
            excluded.add(index)
            continue
        norm = normalised[index]
        assert norm is not None
        ids.append(norm)
        loaded.append(index)
        for target, value in zip(parsed, values, strict=True):
            target.append(value)

    # Whole-row problems (CSV field-count mismatches) are value problems of the row.
    report.invalid_values.extend(table.malformed.values())
    report.invalid_values.sort(key=lambda error: error.row)
    report.rows_loaded = len(ids)
    if schema.id_kind == "resident_id":
        # A valid resident id whose stripped raw text has 15 characters was upgraded to 18.
        report.upgraded_ids = sum(1 for index in loaded if len((texts[index] or "").strip()) == 15)

    columns: dict[str, np.ndarray] = {}
    for (name, column), values_list in zip(column_specs, parsed, strict=True):
        if column.type == "category":
            array = np.empty(len(values_list), dtype=object)
            array[:] = values_list
            columns[name] = array
        else:
            columns[name] = np.array(values_list, dtype=np.int64)
    return Dataset(spec=spec, ids=ids, columns=columns, report=report)
