"""Declared dataset schemas: what an agency's daemon may load, and how each column is typed.

These pydantic models are the ``[[datasets]]`` part of a daemon's TOML configuration. A
configuration such as::

    [[datasets]]
    name = "income"
    source = { kind = "csv", path = "income.csv" }

    [datasets.schema]
    id_column = "resident_id"
    id_kind = "resident_id"
    duplicates = "reject"

    [datasets.schema.columns]
    annual_income = { type = "int", min = 0, max = 100_000_000, classification = "sensitive" }
    has_property = { type = "bool" }
    district = { type = "category", categories = ["north", "south"], classification = "public" }

validates into a :class:`DatasetSpec`. Every model forbids unknown keys, so a typo in the
configuration is an error naming the key rather than a silently ignored setting.

Integer bounds are mandatory because the secret-sharing layer carries signed values in
``[-2^62, 2^62)`` (see :mod:`mpc.sharing.ring`) and because the declared range is what noise
calibration and comparisons rely on; values outside the declared bounds are rejected at load time.
Likewise a category column declares its domain (``categories``): the values it may take, in the
order of their codes. The domain is what other parties are shown, so it must never be derived from
the data (a rare value present in the data would tell a peer that someone has it); a value outside
the declared domain is rejected at load time.
"""

from __future__ import annotations

import codecs
import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mpc.data.values import CODE_MAX, DATE_MAX, DATE_MIN

__all__ = [
    "CATEGORY_MAX_LENGTH",
    "INT_BOUND_MAX",
    "INT_BOUND_MIN",
    "Classification",
    "ColumnSpec",
    "ColumnType",
    "CsvSource",
    "DatasetSchema",
    "DatasetSpec",
    "DuplicatePolicy",
    "IdKind",
    "PostgresSource",
    "Source",
    "SqliteSource",
]

Classification = Literal["public", "internal", "sensitive", "secret"]
"""How sensitive a column is. ``secret`` columns are never usable by any protocol."""

ColumnType = Literal["int", "bool", "category", "date", "code"]
"""``int``: signed integer within declared bounds; ``bool``: 0/1; ``category``: short string key;
``date``: a calendar date, carried as days since 1970-01-01; ``code``: a certificate or licence
number or type, normalised and carried as its 62-bit hash (only equality is meaningful; see
:mod:`mpc.data.values`)."""

IdKind = Literal["resident_id", "credit_code", "opaque"]
"""How the id column is normalised (GB 11643 resident id, GB 32100 credit code, or opaque)."""

DuplicatePolicy = Literal["reject", "first_wins"]
"""What loading does with several rows carrying the same normalised id."""

INT_BOUND_MIN = -(2**62)
"""Smallest admissible ``min`` of an int column (inclusive)."""
INT_BOUND_MAX = 2**62 - 1
"""Largest admissible ``max`` of an int column (inclusive; the ring's range is ``[-2^62, 2^62)``)."""

CATEGORY_MAX_LENGTH = 64
"""Longest admissible category value, in characters."""

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_QUALIFIED_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def _check_identifier(value: str, what: str) -> str:
    if not _IDENTIFIER.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not an identifier (letters, digits, '_'; not starting with a digit)")
    return value


class ColumnSpec(BaseModel):
    """One declared column of a dataset.

    ``min`` and ``max`` are required for ``int`` columns (inclusive bounds with
    ``-2^62 <= min <= max < 2^62``) and forbidden for ``bool`` and ``category`` columns.
    ``categories`` is required for ``category`` columns and forbidden for the others: the declared
    domain, non-empty, each value unique, non-blank, printable and at most
    :data:`CATEGORY_MAX_LENGTH` characters without surrounding whitespace; value ``k`` of the list is
    carried on shares as code ``k``. When the column spec is part of a :class:`DatasetSchema`,
    pydantic's error location (``columns.<name>``) names the offending column.
    """

    model_config = ConfigDict(extra="forbid")

    type: ColumnType
    min: int | None = Field(default=None, strict=True)
    max: int | None = Field(default=None, strict=True)
    categories: list[str] | None = None
    classification: Classification = "internal"
    description: str = ""

    @model_validator(mode="after")
    def _check_bounds(self) -> ColumnSpec:
        if self.type == "int":
            missing = [key for key in ("min", "max") if getattr(self, key) is None]
            if missing:
                raise ValueError(
                    f"int column requires both 'min' and 'max' bounds; missing {', '.join(repr(k) for k in missing)}"
                )
            assert self.min is not None and self.max is not None
            if self.min > self.max:
                raise ValueError(f"int column bounds are inverted: min {self.min} > max {self.max}")
            for key, value in (("min", self.min), ("max", self.max)):
                if not INT_BOUND_MIN <= value <= INT_BOUND_MAX:
                    raise ValueError(f"int column bound {key!r} = {value} is outside [-2^62, 2^62 - 1]")
        else:
            present = [key for key in ("min", "max") if getattr(self, key) is not None]
            if present:
                raise ValueError(
                    f"{self.type} column must not declare {' or '.join(repr(k) for k in present)}; "
                    "bounds apply to int columns only"
                )
        return self

    @model_validator(mode="after")
    def _check_categories(self) -> ColumnSpec:
        if self.type != "category":
            if self.categories is not None:
                raise ValueError(
                    f"{self.type} column must not declare 'categories'; a domain applies to category columns only"
                )
            return self
        if self.categories is None:
            raise ValueError(
                "category column requires 'categories', the declared list of its values (never derived from the data)"
            )
        if not self.categories:
            raise ValueError("category column 'categories' must list at least one value")
        seen: set[str] = set()
        for value in self.categories:
            if not value.strip():
                raise ValueError("category column 'categories' must not contain an empty or blank value")
            if value != value.strip():
                raise ValueError(
                    f"category value {value!r} in 'categories' has surrounding whitespace "
                    "(loaded values are stripped, so it could never match)"
                )
            if len(value) > CATEGORY_MAX_LENGTH:
                raise ValueError(
                    f"category value {value[:CATEGORY_MAX_LENGTH]!r}... in 'categories' is longer than "
                    f"{CATEGORY_MAX_LENGTH} characters ({len(value)})"
                )
            if not value.isprintable():
                raise ValueError(
                    f"category value {value!r} in 'categories' contains control or non-printable characters"
                )
            if value in seen:
                raise ValueError(f"category value {value!r} appears more than once in 'categories'")
            seen.add(value)
        return self

    @cached_property
    def domain(self) -> tuple[str, ...]:
        """A category column's declared values in code order (empty for other types)."""
        return tuple(self.categories or ())

    @cached_property
    def domain_set(self) -> frozenset[str]:
        """:attr:`domain` as a set, for membership tests while loading."""
        return frozenset(self.domain)

    @property
    def numeric_bounds(self) -> tuple[int, int] | None:
        """The range of the integer an ``int``, ``date`` or ``code`` column is carried as on shares
        (its declared bounds; the dates 1900..2199 as day numbers; a code's 62-bit hash); None
        for ``bool`` and ``category`` columns."""
        if self.type == "int":
            assert self.min is not None and self.max is not None
            return self.min, self.max
        if self.type == "date":
            return DATE_MIN, DATE_MAX
        if self.type == "code":
            return 0, CODE_MAX
        return None

    @property
    def usable(self) -> bool:
        """Whether any protocol may use this column (every classification except ``secret``)."""
        return self.classification != "secret"


class DatasetSchema(BaseModel):
    """The id column and the declared value columns of a dataset.

    ``columns`` maps source column names to their specs; it must be non-empty and must not
    contain ``id_column``. ``duplicates`` chooses what loading does with repeated ids (see
    :func:`mpc.data.sources.load_dataset`).
    """

    model_config = ConfigDict(extra="forbid")

    id_column: str = Field(min_length=1)
    id_kind: IdKind = "resident_id"
    columns: dict[str, ColumnSpec]
    duplicates: DuplicatePolicy = "reject"
    # A composite key: the id together with these ``code`` columns identifies a row (a holder and
    # a certificate number, a credit code and a licence type); a lookup names all of its parts.
    key_columns: list[str] = Field(default_factory=list)

    @field_validator("columns")
    @classmethod
    def _check_columns(cls, columns: dict[str, ColumnSpec]) -> dict[str, ColumnSpec]:
        if not columns:
            raise ValueError("a dataset schema must declare at least one column")
        empty = [name for name in columns if not name.strip()]
        if empty:
            raise ValueError("column names must not be empty or blank")
        return columns

    @model_validator(mode="after")
    def _check_id_not_a_column(self) -> DatasetSchema:
        if self.id_column in self.columns:
            raise ValueError(f"id column {self.id_column!r} must not also be declared in 'columns'")
        return self

    @model_validator(mode="after")
    def _check_key_columns(self) -> DatasetSchema:
        for name in self.key_columns:
            column = self.columns.get(name)
            if column is None or column.type != "code":
                raise ValueError(f"key column {name!r} must be declared in 'columns' with type 'code'")
        if len(set(self.key_columns)) != len(self.key_columns):
            raise ValueError("a key column is listed twice in 'key_columns'")
        return self


class CsvSource(BaseModel):
    """A CSV file with a header row, read with the :mod:`csv` module."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["csv"]
    path: Path
    delimiter: str = ","
    encoding: str = "utf-8"

    @field_validator("delimiter")
    @classmethod
    def _check_delimiter(cls, value: str) -> str:
        if len(value) != 1 or value in {'"', "\r", "\n"}:
            raise ValueError(f"delimiter must be a single character other than a quote or newline, got {value!r}")
        return value

    @field_validator("encoding")
    @classmethod
    def _check_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown text encoding {value!r}") from None
        return value


class SqliteSource(BaseModel):
    """A table (or view) in an SQLite database file, opened read-only."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["sqlite"]
    path: Path
    table: str

    @field_validator("table")
    @classmethod
    def _check_table(cls, value: str) -> str:
        return _check_identifier(value, "table name")


class PostgresSource(BaseModel):
    """A table (or view) in a PostgreSQL database, read through psycopg 3 in a read-only transaction.

    ``table`` is an identifier, optionally schema-qualified (``"schema.table"``). ``dsn`` is a libpq
    connection string or URI; it may carry a password, so it is never echoed in error messages.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["postgres"]
    dsn: str = Field(min_length=1)
    table: str

    @field_validator("table")
    @classmethod
    def _check_table(cls, value: str) -> str:
        if not _QUALIFIED_IDENTIFIER.fullmatch(value):
            raise ValueError(f"table {value!r} is not an identifier or a schema-qualified identifier ('schema.table')")
        return value

    @property
    def table_parts(self) -> tuple[str, ...]:
        """The table name split into its (schema, table) or (table,) parts."""
        return tuple(self.table.split("."))


Source = Annotated[CsvSource | SqliteSource | PostgresSource, Field(discriminator="kind")]
"""Where a dataset's rows come from, chosen by the ``kind`` key."""


class DatasetSpec(BaseModel):
    """A named dataset: where to read it and its declared schema.

    The schema is given under the key ``schema`` (the Python attribute is ``schema_`` because
    ``schema`` is a pydantic method name); either spelling is accepted when constructing.
    """

    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True)

    name: str
    source: Source
    schema_: DatasetSchema = Field(alias="schema")
    description: str = ""

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return _check_identifier(value, "dataset name")
