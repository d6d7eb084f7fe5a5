"""Reading a dataset's source into raw rows: one reader per source (CSV, SQLite, PostgreSQL).

Each reader opens its source, checks that the id column and every declared column are present
(:class:`~mpc.data.sources.dataset.DataSourceError` naming the missing ones otherwise), and
returns a :class:`RawSource`: its rows projected onto (id column, declared columns...), in
source order, without parsing any value, handed out in chunks of :data:`CHUNK_ROWS` rows, so
that a table of ten million rows is never held whole as Python objects. Values are checked by
:mod:`mpc.data.sources.validation`.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from mpc.data.schema import CsvSource, DatasetSpec, PostgresSource, SqliteSource
from mpc.data.sources.dataset import DataSourceError, RowError, clip_raw

__all__ = [
    "CHUNK_ROWS",
    "POSTGRES_CONNECT_TIMEOUT_S",
    "RawChunk",
    "RawSource",
    "read_csv",
    "read_postgres",
    "read_sqlite",
]

POSTGRES_CONNECT_TIMEOUT_S = 10
"""``connect_timeout`` used when the DSN does not set one, so an unreachable server fails fast."""

CHUNK_ROWS = 65_536
"""Rows read (and held as Python objects) at a time; also the database readers' fetch size."""


@dataclass
class RawChunk:
    """Consecutive rows projected onto (id column, declared columns...), plus rows malformed as a
    whole (kept as empty rows).

    ``first`` is the 0-based index of the chunk's first row in the source. ``lines`` holds, for
    a CSV file, the file line on which each row starts (the header is line 1; blank lines and
    line breaks inside quoted fields are counted); it is empty for databases, whose rows have no
    line.
    """

    first: int
    rows: list[Sequence[object]] = field(default_factory=list)
    malformed: dict[int, RowError] = field(default_factory=dict)  # 0-based index in the source -> error
    lines: list[int] = field(default_factory=list)


@dataclass
class RawSource:
    """A source being read: its description and its rows, chunk by chunk (read once)."""

    description: str
    chunks: Iterator[RawChunk]


# --------------------------------------------------------------------------------------------------
# Shared by the readers
# --------------------------------------------------------------------------------------------------


def _wanted_columns(spec: DatasetSpec) -> list[str]:
    """The id column, then the declared columns, in declared order."""
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
    """``path``, resolved against ``base_dir`` when it is relative and ``base_dir`` is given."""
    if path.is_absolute() or base_dir is None:
        return path
    return base_dir / path


# --------------------------------------------------------------------------------------------------
# The readers
# --------------------------------------------------------------------------------------------------


def read_csv(spec: DatasetSpec, source: CsvSource, base_dir: Path | None) -> RawSource:
    """Read a CSV file: header (BOM and surrounding blanks dropped), then every non-blank line.

    A line whose field count differs from the header's is kept as an empty row and recorded in
    ``RawChunk.malformed``.
    """
    path = _resolve(source.path, base_dir)
    description = f"CSV file {str(path)!r}"
    if not path.is_file():
        what = "is not a regular file" if path.exists() else "not found"
        raise DataSourceError(f"dataset {spec.name!r}: {description}: file {what}")
    return RawSource(description, _csv_chunks(spec, source, path, description))


def _csv_chunks(spec: DatasetSpec, source: CsvSource, path: Path, description: str) -> Iterator[RawChunk]:
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
            chunk = RawChunk(0)
            next_line = reader.line_num + 1
            for fields in reader:
                line, next_line = next_line, reader.line_num + 1
                if not fields:
                    continue  # a blank line is not a data row
                chunk.lines.append(line)
                if len(fields) != len(header):
                    index = chunk.first + len(chunk.rows)
                    chunk.malformed[index] = RowError(
                        index + 1,
                        "",
                        clip_raw(source.delimiter.join(fields)),
                        f"row has {len(fields)} fields, header has {len(header)}",
                    )
                    chunk.rows.append(())
                else:
                    chunk.rows.append([fields[position] for position in positions])
                if len(chunk.rows) == CHUNK_ROWS:
                    yield chunk
                    chunk = RawChunk(chunk.first + CHUNK_ROWS)
            if chunk.rows:
                yield chunk
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


def _in_chunks(rows: Iterator[Sequence[object]], positions: list[int] | None = None) -> Iterator[RawChunk]:
    """Database rows (projected onto ``positions`` when given) in chunks of :data:`CHUNK_ROWS`."""
    chunk = RawChunk(0)
    for row in rows:
        chunk.rows.append(row if positions is None else [row[position] for position in positions])
        if len(chunk.rows) == CHUNK_ROWS:
            yield chunk
            chunk = RawChunk(chunk.first + CHUNK_ROWS)
    if chunk.rows:
        yield chunk


def read_sqlite(spec: DatasetSpec, source: SqliteSource, base_dir: Path | None) -> RawSource:
    """Read every row of an SQLite table or view, opening the database file read-only."""
    path = _resolve(source.path, base_dir)
    description = f"SQLite table {source.table!r} in {str(path)!r}"
    if not path.is_file():
        what = "is not a regular file" if path.exists() else "not found"
        raise DataSourceError(f"dataset {spec.name!r}: {description}: database file {what}")
    return RawSource(description, _sqlite_chunks(spec, source, path, description))


def _sqlite_chunks(spec: DatasetSpec, source: SqliteSource, path: Path, description: str) -> Iterator[RawChunk]:
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
            yield from _in_chunks(cursor, _project(spec, description, header))
    except sqlite3.Error as error:
        raise DataSourceError(f"dataset {spec.name!r}: {description}: cannot read: {error}") from error


def _postgres_description(source: PostgresSource) -> str:
    """Name a PostgreSQL source by table, database, host and port, never echoing the DSN."""
    import psycopg  # imported where a database is read: the requester's processes never need it
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(source.dsn)
    except psycopg.Error:
        return f"PostgreSQL table {source.table!r} (unparsable DSN)"
    database = params.get("dbname") or params.get("user") or "?"
    host = params.get("host") or params.get("hostaddr") or "local socket"
    port = params.get("port") or "5432"
    return f"PostgreSQL table {source.table!r} in database {database!r} at {host}:{port}"


def read_postgres(spec: DatasetSpec, source: PostgresSource) -> RawSource:
    """Read the declared columns of a PostgreSQL table in one read-only transaction.

    Rows come through a server-side cursor in batches; identifiers are quoted by
    :class:`psycopg.sql.Identifier`. A DSN without ``connect_timeout`` gets
    :data:`POSTGRES_CONNECT_TIMEOUT_S`.
    """
    description = _postgres_description(source)
    return RawSource(description, _postgres_chunks(spec, source, description))


def _postgres_chunks(spec: DatasetSpec, source: PostgresSource, description: str) -> Iterator[RawChunk]:
    import psycopg
    import psycopg.errors
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

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
                cursor.itersize = CHUNK_ROWS
                cursor.execute(sql.SQL("SELECT {} FROM {}").format(selected, table))
                yield from _in_chunks(cursor)
    except psycopg.errors.UndefinedTable as error:
        raise DataSourceError(
            f"dataset {spec.name!r}: {description}: table not found ({_first_line(error)})"
        ) from error
    except psycopg.Error as error:
        raise DataSourceError(f"dataset {spec.name!r}: {description}: cannot read: {_first_line(error)}") from error


def _first_line(error: BaseException) -> str:
    """The first line of an error's message (its type name when the message is empty)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
