"""Loading a declared dataset into memory, validated row by row.

:func:`load_dataset` reads every row of a CSV file, an SQLite table or a PostgreSQL table,
normalises the id column with :func:`mpc.data.ids.normalize_column`, parses each declared column
strictly, and returns a :class:`Dataset` whose rows are exactly the rows that passed every check,
together with a :class:`LoadReport` that accounts for every row that did not.

Problems with the *source* (file or table missing, database unreachable, declared column absent,
undecodable file) raise :class:`DataSourceError`. Problems with *rows* never raise: each rejected
row is recorded with its 1-based data row number (the header is not counted) and excluded.

The report holds raw values from the agency's own data (including raw ids); it is meant for the
owning agency's operators and must not be sent to other parties. :meth:`Dataset.schema_view` is
the part that may be shown to others: names, types, bounds and classifications, never values.
"""

from __future__ import annotations

import csv
import re
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np
import psycopg
import psycopg.errors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from mpc.data.ids import normalize_column
from mpc.data.schema import (
    CATEGORY_MAX_LENGTH,
    ColumnSpec,
    CsvSource,
    DatasetSpec,
    PostgresSource,
    SqliteSource,
)

__all__ = [
    "DataSourceError",
    "Dataset",
    "LoadReport",
    "RowError",
    "load_dataset",
]

POSTGRES_CONNECT_TIMEOUT_S = 10
"""``connect_timeout`` used when the DSN does not set one, so an unreachable server fails fast."""

_FETCH_BATCH = 10_000
_RAW_LIMIT = 200  # longest raw value kept verbatim in a RowError
_DUPLICATE_ROWS_SHOWN = 10  # row numbers listed in a duplicate's reason
_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_FLOAT_TEXT = re.compile(r"[+-]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(\.[0-9]*)?[eE][+-]?[0-9]+)")
_TRUE = frozenset({"1", "true"})
_FALSE = frozenset({"0", "false"})


class DataSourceError(Exception):
    """The source itself cannot be read as declared.

    Raised for a missing file or table, an unreachable database, a declared column absent from
    the source, or an undecodable or malformed file. The message names the dataset, the source
    and what is missing or wrong (never a DSN, which may hold a password).
    """


@dataclass(frozen=True)
class RowError:
    """One problem with one source row.

    ``row`` is the 1-based data row number (header excluded; blank CSV lines are not counted),
    ``column`` the source column concerned (``""`` for a problem with the whole row), ``raw`` the
    raw value as text (``""`` for NULL; cut to 200 characters) and ``reason`` what is wrong.
    """

    row: int
    column: str
    raw: str
    reason: str


@dataclass
class LoadReport:
    """Accounting for every row read from a dataset's source.

    Every excluded row appears in exactly one of ``invalid_ids``, ``duplicates`` or
    ``invalid_values`` (checked in that order); a row with several bad values has one entry per
    bad column in ``invalid_values``. ``clamped`` is reserved and always 0: out-of-bounds values
    are rejected, never clamped. ``upgraded_ids`` counts legacy 15-digit resident ids that were
    upgraded to 18 digits among the loaded rows' ids.
    """

    dataset: str
    rows_read: int = 0
    rows_loaded: int = 0
    invalid_ids: list[RowError] = field(default_factory=list)
    invalid_values: list[RowError] = field(default_factory=list)
    duplicates: list[RowError] = field(default_factory=list)
    clamped: int = 0
    upgraded_ids: int = 0

    @property
    def rows_excluded(self) -> int:
        """How many source rows were not loaded."""
        return self.rows_read - self.rows_loaded

    def summary(self) -> str:
        """A one-line account with counts only (no values), suitable for logs."""
        bad_value_rows = len({error.row for error in self.invalid_values})
        return (
            f"dataset {self.dataset!r}: {self.rows_read} rows read, {self.rows_loaded} loaded; "
            f"excluded {len(self.invalid_ids)} with invalid ids, {len(self.duplicates)} duplicate-id "
            f"rows, {bad_value_rows} with invalid values"
        )


@dataclass(eq=False, repr=False)
class Dataset:
    """A loaded, validated dataset held in memory by the owning agency's daemon.

    ``ids`` holds one normalised id per loaded row (unique); ``columns`` maps every declared
    column to an array aligned with ``ids``: ``int`` and ``bool`` columns as ``int64`` arrays
    (bools as 0/1), ``category`` columns as ``object`` arrays of ``str``. Columns classified
    ``secret`` are loaded (and validated) like the others; the policy layer keeps protocols away
    from them. The ``repr`` shows the name and row count only, so a dataset never lands in a log.
    """

    spec: DatasetSpec
    ids: list[str]
    columns: dict[str, np.ndarray]
    report: LoadReport
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index = {id_: position for position, id_ in enumerate(self.ids)}
        if len(self._index) != len(self.ids):
            raise ValueError(f"dataset {self.spec.name!r}: ids are not unique")
        for name, array in self.columns.items():
            if len(array) != len(self.ids):
                raise ValueError(
                    f"dataset {self.spec.name!r}: column {name!r} has {len(array)} values for {len(self.ids)} ids"
                )

    def __repr__(self) -> str:
        return f"Dataset(name={self.spec.name!r}, rows={len(self.ids)}, columns={list(self.columns)})"

    @property
    def name(self) -> str:
        """The dataset's declared name."""
        return self.spec.name

    @property
    def num_rows(self) -> int:
        """How many rows were loaded."""
        return len(self.ids)

    def labels(self, name: str) -> tuple[str, ...]:
        """A category column's declared domain, in declared order: value ``k`` is carried on shares
        as code ``k``.

        Never derived from the data (which values are present is not shown to anyone): every
        loaded value is in the domain, since loading rejects the others.
        """
        spec = self.spec.schema_.columns[name]
        if spec.type != "category":
            raise ValueError(f"dataset {self.spec.name!r}: column {name!r} is not a category column")
        return spec.domain

    def values(self, name: str) -> np.ndarray:
        """A column as int64 per row: ints and bools as loaded, categories as their codes."""
        column = self.columns[name]
        if self.spec.schema_.columns[name].type != "category":
            return column.astype(np.int64)
        code = {label: k for k, label in enumerate(self.labels(name))}
        return np.array([code[v] for v in column.tolist()], dtype=np.int64)

    def index_of(self, normalised_id: str) -> int | None:
        """The row position of an already-normalised id, or None if it is not in the dataset."""
        return self._index.get(normalised_id)

    def schema_view(self) -> dict[str, object]:
        """The declared shape of the dataset, safe to show to other parties.

        Names, types, bounds, declared category domains, classifications and descriptions only: no
        values from the data, no row count, and nothing about where the data is stored.
        """
        schema = self.spec.schema_
        columns: dict[str, object] = {}
        for name, column in schema.columns.items():
            view: dict[str, object] = {
                "type": column.type,
                "classification": column.classification,
                "description": column.description,
            }
            if column.type == "int":
                view["min"] = column.min
                view["max"] = column.max
            elif column.type == "category":
                view["categories"] = list(column.domain)  # declared, never derived from the data
            columns[name] = view
        return {
            "name": self.spec.name,
            "description": self.spec.description,
            "id_column": schema.id_column,
            "id_kind": schema.id_kind,
            "columns": columns,
        }


# --------------------------------------------------------------------------------------------------
# Reading sources into raw rows
# --------------------------------------------------------------------------------------------------


@dataclass
class _RawTable:
    """Rows projected onto (id column, declared columns...), plus rows malformed as a whole."""

    description: str
    rows: list[Sequence[object]]
    malformed: dict[int, RowError] = field(default_factory=dict)  # 0-based index -> error


def _wanted_columns(spec: DatasetSpec) -> list[str]:
    return [spec.schema_.id_column, *spec.schema_.columns]


def _project(spec: DatasetSpec, description: str, header: Sequence[str]) -> list[int]:
    """Positions in ``header`` of the id column and the declared columns, in that order."""
    positions: dict[str, list[int]] = {}
    for position, name in enumerate(header):
        positions.setdefault(name, []).append(position)
    wanted = _wanted_columns(spec)
    missing = [name for name in wanted if name not in positions]
    if missing:
        available = ", ".join(repr(name) for name in header[:30])
        if len(header) > 30:
            available += f", ... ({len(header)} in all)"
        raise DataSourceError(
            f"dataset {spec.name!r}: {description}: missing column"
            f"{'s' if len(missing) > 1 else ''} {', '.join(repr(name) for name in missing)} "
            f"(columns present: {available or 'none'})"
        )
    repeated = [name for name in wanted if len(positions[name]) > 1]
    if repeated:
        raise DataSourceError(
            f"dataset {spec.name!r}: {description}: column"
            f"{'s' if len(repeated) > 1 else ''} {', '.join(repr(name) for name in repeated)} "
            f"{'appear' if len(repeated) > 1 else 'appears'} more than once in the header"
        )
    return [positions[name][0] for name in wanted]


def _resolve(path: Path, base_dir: Path | None) -> Path:
    if path.is_absolute() or base_dir is None:
        return path
    return base_dir / path


def _clip(text: str) -> str:
    return text if len(text) <= _RAW_LIMIT else text[:_RAW_LIMIT] + "..."


def _read_csv(spec: DatasetSpec, source: CsvSource, base_dir: Path | None) -> _RawTable:
    path = _resolve(source.path, base_dir)
    description = f"CSV file {str(path)!r}"
    if not path.is_file():
        what = "is not a regular file" if path.exists() else "not found"
        raise DataSourceError(f"dataset {spec.name!r}: {description}: file {what}")
    table = _RawTable(description, [])
    reader = None
    try:
        with path.open(newline="", encoding=source.encoding) as handle:
            reader = csv.reader(handle, delimiter=source.delimiter)
            header = next(reader, None)
            if header is None:
                raise DataSourceError(f"dataset {spec.name!r}: {description}: file is empty; expected a header row")
            if header and header[0].startswith("\ufeff"):
                header[0] = header[0][1:]
            header = [name.strip() for name in header]
            positions = _project(spec, description, header)
            for fields in reader:
                if not fields:
                    continue  # a blank line is not a data row
                if len(fields) != len(header):
                    index = len(table.rows)
                    table.malformed[index] = RowError(
                        index + 1,
                        "",
                        _clip(source.delimiter.join(fields)),
                        f"row has {len(fields)} fields, header has {len(header)}",
                    )
                    table.rows.append(())
                    continue
                table.rows.append([fields[position] for position in positions])
    except UnicodeDecodeError as error:
        raise DataSourceError(
            f"dataset {spec.name!r}: {description}: not valid {source.encoding} text ({error.reason})"
        ) from error
    except csv.Error as error:
        line = reader.line_num if reader is not None else 0
        raise DataSourceError(f"dataset {spec.name!r}: {description}: malformed CSV at line {line}: {error}") from error
    except OSError as error:
        raise DataSourceError(
            f"dataset {spec.name!r}: {description}: cannot read file: {error.strerror or error}"
        ) from error
    return table


def _read_sqlite(spec: DatasetSpec, source: SqliteSource, base_dir: Path | None) -> _RawTable:
    path = _resolve(source.path, base_dir)
    description = f"SQLite table {source.table!r} in {str(path)!r}"
    if not path.is_file():
        what = "is not a regular file" if path.exists() else "not found"
        raise DataSourceError(f"dataset {spec.name!r}: {description}: database file {what}")
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        with closing(sqlite3.connect(uri, uri=True)) as connection:
            found = connection.execute(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name = ? COLLATE NOCASE",
                (source.table,),
            ).fetchone()
            if found is None:
                raise DataSourceError(f"dataset {spec.name!r}: {description}: table not found")
            # The table name is a validated identifier (schema.py), so quoting it is sufficient;
            # columns are projected in Python, so no column name is ever put into SQL text.
            cursor = connection.execute(f'SELECT * FROM "{source.table}"')
            header = [column[0] for column in cursor.description]
            positions = _project(spec, description, header)
            rows: list[Sequence[object]] = [[row[position] for position in positions] for row in cursor]
    except sqlite3.Error as error:
        raise DataSourceError(f"dataset {spec.name!r}: {description}: cannot read: {error}") from error
    return _RawTable(description, rows)


def _postgres_description(source: PostgresSource) -> str:
    """Name a PostgreSQL source by table, database, host and port, never echoing the DSN."""
    try:
        params = conninfo_to_dict(source.dsn)
    except psycopg.Error:
        return f"PostgreSQL table {source.table!r} (unparsable DSN)"
    database = params.get("dbname") or params.get("user") or "?"
    host = params.get("host") or params.get("hostaddr") or "local socket"
    port = params.get("port") or "5432"
    return f"PostgreSQL table {source.table!r} in database {database!r} at {host}:{port}"


def _read_postgres(spec: DatasetSpec, source: PostgresSource) -> _RawTable:
    description = _postgres_description(source)
    try:
        params = conninfo_to_dict(source.dsn)
    except psycopg.Error:
        raise DataSourceError(
            f"dataset {spec.name!r}: {description}: the DSN cannot be parsed (not shown: it may hold a password)"
        ) from None
    conninfo = source.dsn
    if "connect_timeout" not in params:
        conninfo = make_conninfo(conninfo, connect_timeout=POSTGRES_CONNECT_TIMEOUT_S)
    table = sql.Identifier(*source.table_parts)
    try:
        connection = psycopg.connect(conninfo)
    except psycopg.Error as error:
        raise DataSourceError(f"dataset {spec.name!r}: {description}: cannot connect: {_first_line(error)}") from error
    try:
        with connection:
            connection.read_only = True
            with connection.cursor() as cursor:
                cursor.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(table))
                header = [column.name for column in cursor.description or ()]
            _project(spec, description, header)
            selected = sql.SQL(", ").join(sql.Identifier(name) for name in _wanted_columns(spec))
            with connection.cursor(name="mpc_load_dataset") as cursor:
                cursor.itersize = _FETCH_BATCH
                cursor.execute(sql.SQL("SELECT {} FROM {}").format(selected, table))
                rows: list[Sequence[object]] = list(cursor)
    except psycopg.errors.UndefinedTable as error:
        raise DataSourceError(
            f"dataset {spec.name!r}: {description}: table not found ({_first_line(error)})"
        ) from error
    except psycopg.Error as error:
        raise DataSourceError(f"dataset {spec.name!r}: {description}: cannot read: {_first_line(error)}") from error
    return _RawTable(description, rows)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# --------------------------------------------------------------------------------------------------
# Parsing values
# --------------------------------------------------------------------------------------------------


class _BadValue(Exception):
    """A value that does not fit its declared column; the message is the reason."""


def _raw_text(value: object) -> str:
    return "" if value is None else _clip(str(value))


def _parse_int(value: object, spec: ColumnSpec) -> int:
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


_PARSERS: dict[str, Callable[[object, ColumnSpec], int | str]] = {
    "int": _parse_int,
    "bool": _parse_bool,
    "category": _parse_category,
}


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


def _build(spec: DatasetSpec, table: _RawTable) -> Dataset:
    """Check ids, duplicates and values of the raw rows (see :func:`load_dataset`)."""
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


def load_dataset(spec: DatasetSpec, base_dir: Path | None = None) -> Dataset:
    """Read, validate and load every row of ``spec``'s source.

    Relative CSV and SQLite paths resolve against ``base_dir`` (the current directory when
    None). PostgreSQL tables are read in one read-only transaction through a server-side cursor,
    with every identifier quoted by :class:`psycopg.sql.Identifier`.

    Rows are checked in this order, and a rejected row is recorded in exactly one list of the
    report and excluded from the dataset:

    1. **Id** (``report.invalid_ids``): normalised by :func:`mpc.data.ids.normalize_column`
       according to ``schema.id_kind``; a missing or invalid id is recorded with the
       normaliser's reason. Invalid ids are never loaded, matched or silently dropped.
    2. **Duplicates** (``report.duplicates``), compared after normalisation among rows with a
       valid id. With ``duplicates = "reject"`` every row of a repeated id is excluded and
       recorded (the data cannot say which row is right). With ``"first_wins"`` the first row in
       source order is kept and each later one recorded; if that first row then fails step 3, the
       id is absent altogether -- a later row never stands in for it. (Source order is file order
       for CSV, and the database's scan order for SQLite and PostgreSQL, which is not guaranteed:
       prefer ``"reject"`` for database sources.)
    3. **Values** (``report.invalid_values``, one entry per bad column): ``int`` values must be
       integers written in ASCII digits with an optional sign (surrounding whitespace allowed; no
       blanks, decimal points, exponents or underscores; database integers and integral decimals
       accepted, floats not) and lie within ``[min, max]`` -- out-of-bounds values are errors,
       never clamped; ``bool`` accepts 0/1/true/false (any case) and database booleans;
       ``category`` must be a non-empty printable string of at most 64 characters after
       stripping surrounding whitespace (database integers are accepted as their decimal text)
       and one of the column's declared ``categories`` -- a value outside the declared domain is
       an error, never added to it.
       A CSV row whose field count differs from the header's is recorded here with column ``""``.

    Raises :class:`DataSourceError` when the source cannot be read as declared: a missing file or
    table, an unreachable database, a declared column (or the id column) absent from the source
    (the message names every missing column), a column repeated in a CSV header, an empty CSV
    file, or a file that does not decode. Source columns not declared in the schema are ignored.
    """
    source = spec.source
    if isinstance(source, CsvSource):
        table = _read_csv(spec, source, base_dir)
    elif isinstance(source, SqliteSource):
        table = _read_sqlite(spec, source, base_dir)
    else:
        table = _read_postgres(spec, source)
    return _build(spec, table)
