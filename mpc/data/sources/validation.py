"""Validating raw rows and building the :class:`~mpc.data.sources.dataset.Dataset`.

:func:`build_dataset` checks the rows of a :class:`~mpc.data.sources.readers.RawSource`, chunk by chunk, in the
order :func:`mpc.data.sources.load_dataset` documents -- ids, then duplicates, then values -- and
records every rejected row in the :class:`~mpc.data.sources.dataset.LoadReport`. Values are
parsed strictly, one parser per column type (``int``, ``bool``, ``category``, ``date``, ``code``); a
composite key (``key_columns``) joins the normalised id and key codes into the row's id.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from mpc.data.ids import normalize_column
from mpc.data.schema import CATEGORY_MAX_LENGTH, ColumnSpec, DatasetSpec
from mpc.data.sources.dataset import Dataset, IdColumn, LineMap, LoadReport, RowError, clip_raw
from mpc.data.sources.readers import RawChunk, RawSource
from mpc.data.values import KEY_SEPARATOR, ValueParseError, code_value, composite_key, date_value, normalize_code

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
        value = str(value)
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


@dataclass
class _Candidates:
    """What the pass over the source keeps of one chunk's rows with a valid id: their row indexes,
    normalised ids (fixed-width bytes), whether every value parsed, whether the id was upgraded
    from 15 digits, and the parsed values (a placeholder where a value did not parse)."""

    rows: np.ndarray
    ids: np.ndarray
    valid: np.ndarray
    upgraded: np.ndarray
    values: list[np.ndarray]


def _column_array(values: list[int | str], column: ColumnSpec) -> np.ndarray:
    if column.type == "category":
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array
    return np.array(values, dtype=np.int64)


def _take(parts: list[np.ndarray], empty: np.ndarray) -> np.ndarray:
    """The chunks' arrays as one, each part released as soon as it is copied (the list is emptied):
    the peak is the result plus one part, not twice the result."""
    if not parts:
        return empty
    out = np.empty(sum(len(p) for p in parts), dtype=np.result_type(*parts) if empty.dtype != object else object)
    at = 0
    while parts:
        part = parts.pop(0)
        out[at : at + len(part)] = part
        at += len(part)
    return out


class _Builder:
    """The checks of :func:`build_dataset`, one chunk at a time, then the duplicates over them all."""

    def __init__(self, spec: DatasetSpec) -> None:
        self.spec, self.schema = spec, spec.schema_
        self.report = LoadReport(dataset=spec.name)
        self.columns = list(self.schema.columns.items())
        # a category value is kept as its declared label, so every row shares one string object
        self.labels = {name: {label: label for label in c.domain} for name, c in self.columns if c.type == "category"}
        self.key_positions = [1 + list(self.schema.columns).index(name) for name in self.schema.key_columns]
        self.lines = LineMap()
        self.has_lines = False
        self.chunks: list[_Candidates] = []
        self.raw_ids: dict[int, str] = {}  # raw id text of the rows where it differs from the normalised id
        self.value_errors: dict[int, list[RowError]] = {}  # by 0-based row; reported unless the row is a duplicate
        self.malformed: list[RowError] = []

    def add(self, chunk: RawChunk) -> None:
        """Steps 1 (ids, composite keys) and 3 (values) for the rows of ``chunk``."""
        report, schema = self.report, self.schema
        report.rows_read += len(chunk.rows)
        self.malformed.extend(chunk.malformed.values())
        for offset, line in enumerate(chunk.lines):
            self.lines.add(chunk.first + offset, line)
        self.has_lines = self.has_lines or bool(chunk.lines)

        # 1. Ids: normalise the chunk's column; every invalid id is recorded with its reason.
        texts: list[str | None] = []
        skipped: set[int] = set()  # malformed rows, and ids of the wrong type (recorded here)
        for offset, row in enumerate(chunk.rows):
            index = chunk.first + offset
            text = None if index in chunk.malformed else _id_text(row[0])
            if index in chunk.malformed or isinstance(text, RowError):
                if isinstance(text, RowError):
                    report.invalid_ids.append(RowError(index + 1, schema.id_column, text.raw, text.reason))
                skipped.add(offset)
                text = None
            texts.append(text)
        normalised, id_report = normalize_column(texts, schema.id_kind)
        reasons = {invalid.row: invalid.reason for invalid in id_report.invalid}
        rows: list[int] = []
        ids: list[bytes] = []
        valid: list[bool] = []
        upgraded: list[bool] = []
        parsed: list[list[int | str]] = [[] for _ in self.columns]
        for offset, norm in enumerate(normalised):
            index, raw = chunk.first + offset, texts[offset]
            if norm is None:
                if offset not in skipped:
                    reason = reasons.get(offset, "invalid id")
                    report.invalid_ids.append(RowError(index + 1, schema.id_column, _raw_text(raw), reason))
                continue
            if raw != norm:  # (kept for a duplicate's report; most ids are written as normalised)
                self.raw_ids[index] = _raw_text(raw)
            row = chunk.rows[offset]
            # 1b. A composite key: the id and the key columns' normalised codes make the row's id.
            if self.key_positions:
                key = self._composite_key(index, norm, row)
                if key is None:
                    continue
                norm = key
            # 3. Values: every declared column, strictly parsed (placeholders where one fails).
            errors: list[RowError] = []
            for position, ((name, column), target) in enumerate(zip(self.columns, parsed, strict=True), start=1):
                value = row[position]
                try:
                    parsed_value = _PARSERS[column.type](value, column)
                except _BadValue as problem:
                    errors.append(RowError(index + 1, name, _raw_text(value), str(problem)))
                    parsed_value = "" if column.type == "category" else 0
                if column.type == "category":
                    parsed_value = self.labels[name].get(str(parsed_value), parsed_value)
                target.append(parsed_value)
            if errors:
                self.value_errors[index] = errors
            rows.append(index)
            ids.append(norm.encode())
            valid.append(not errors)
            upgraded.append(schema.id_kind == "resident_id" and len((raw or "").strip()) == 15)
        self.chunks.append(
            _Candidates(
                np.array(rows, dtype=np.int64),
                np.array(ids, dtype=bytes) if ids else np.zeros(0, dtype="S1"),
                np.array(valid, dtype=bool),
                np.array(upgraded, dtype=bool),
                [_column_array(values, column) for values, (_, column) in zip(parsed, self.columns, strict=True)],
            )
        )

    def _composite_key(self, index: int, norm: str, row: Sequence[object]) -> str | None:
        """The row's id from its id and key columns; None (recorded) when a key part is invalid."""
        parts = [norm]
        for name, position in zip(self.schema.key_columns, self.key_positions, strict=True):
            try:
                parts.append(_key_part(row[position]))
            except ValueParseError as problem:
                raw = _raw_text(row[position])
                self.report.invalid_ids.append(RowError(index + 1, name, raw, f"key column {name!r}: {problem}"))
                return None
        return composite_key(*parts)

    def finish(self) -> Dataset:
        """Step 2 (duplicates, over the whole source), then the dataset of the rows left."""
        report, schema = self.report, self.schema
        chunks, self.chunks = self.chunks, []
        rows = _take([c.rows for c in chunks], np.zeros(0, dtype=np.int64))
        valid = _take([c.valid for c in chunks], np.zeros(0, dtype=bool))
        upgraded = _take([c.upgraded for c in chunks], np.zeros(0, dtype=bool))
        ids = _take([c.ids for c in chunks], np.zeros(0, dtype="S1"))
        values = [_take([c.values.pop(0) for c in chunks], _column_array([], column)) for _, column in self.columns]
        del chunks

        # 2. Duplicates, compared after normalisation, among rows with a valid id.
        dropped = np.zeros(len(ids), dtype=bool)
        for members in _repeated(ids):
            rows_text = ", ".join(str(int(rows[m]) + 1) for m in members[:_DUPLICATE_ROWS_SHOWN])
            if len(members) > _DUPLICATE_ROWS_SHOWN:
                rows_text += f", ... ({len(members)} rows in all)"
            if schema.duplicates == "reject":
                reason = f"duplicate id (rows {rows_text}); policy 'reject' excludes every row of it"
                gone = members
            else:
                reason = f"duplicate id (rows {rows_text}); policy 'first_wins' keeps row {int(rows[members[0]]) + 1}"
                gone = members[1:]
            for m in gone:
                index = int(rows[m])
                written = self.raw_ids.get(index)  # else as normalised: the id, a composite key's first part
                raw = written if written is not None else _raw_text(bytes(ids[m]).decode().split(KEY_SEPARATOR)[0])
                report.duplicates.append(RowError(index + 1, schema.id_column, raw, reason))
                dropped[m] = True
                self.value_errors.pop(index, None)  # a duplicate is reported as that alone
        for errors in self.value_errors.values():
            report.invalid_values.extend(errors)
        # Whole-row problems (CSV field-count mismatches) are value problems of the row.
        report.invalid_values.extend(self.malformed)
        for problems in (report.invalid_ids, report.duplicates, report.invalid_values):
            problems.sort(key=lambda error: error.row)

        kept = valid & ~dropped
        report.rows_loaded = int(kept.sum())
        report.upgraded_ids = int(upgraded[kept].sum())
        report.lines = self.lines if self.has_lines else None
        if report.rows_loaded < len(kept):  # (a copy of each array only when a row is refused)
            ids, values = ids[kept], [array[kept] for array in values]
        columns = {name: array for (name, _), array in zip(self.columns, values, strict=True)}
        return Dataset(spec=self.spec, ids=IdColumn(ids), columns=columns, report=report)


def _repeated(ids: np.ndarray) -> Iterator[list[int]]:
    """The positions of each id that occurs more than once, in order (rare: one sort finds them)."""
    if len(ids) < 2:
        return
    order = np.argsort(ids, kind="stable")
    ordered = ids[order]
    same = ordered[1:] == ordered[:-1]
    del ordered
    if not same.any():
        return
    members: dict[bytes, list[int]] = {}
    for k in np.flatnonzero(same).tolist():
        for position in (int(order[k]), int(order[k + 1])):
            group = members.setdefault(bytes(ids[position]), [])
            if position not in group:
                group.append(position)
    for group in members.values():
        yield sorted(group)


def build_dataset(spec: DatasetSpec, source: RawSource) -> Dataset:
    """Check ids, duplicates and values of the source's rows (see :func:`mpc.data.sources.load_dataset`),
    a chunk at a time: what is held across chunks is the candidate rows' ids and values as arrays."""
    builder = _Builder(spec)
    for chunk in source.chunks:
        builder.add(chunk)
    return builder.finish()
