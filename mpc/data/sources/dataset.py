"""The loaded dataset and the account of its loading: :class:`Dataset`, :class:`LoadReport`, :class:`RowError`.

Problems with the *source* (file or table missing, database unreachable, declared column absent,
undecodable file) raise :class:`DataSourceError`. Problems with *rows* never raise: each rejected
row is recorded as a :class:`RowError` with its 1-based data row number (the header is not
counted) and excluded.

The report holds raw values from the agency's own data (including raw ids); it is meant for the
owning agency's operators and must not be sent to other parties. :meth:`Dataset.schema_view` is
the part that may be shown to others: names, types, bounds and classifications, never values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mpc.data.schema import DatasetSpec

__all__ = [
    "DataSourceError",
    "Dataset",
    "LoadReport",
    "RowError",
    "clip_raw",
]

_RAW_LIMIT = 200  # longest raw value kept verbatim in a RowError


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
            if column.numeric_bounds is not None:
                view["min"], view["max"] = column.numeric_bounds
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


def clip_raw(text: str) -> str:
    """``text`` as kept in :attr:`RowError.raw`: cut to 200 characters (then ``...`` appended)."""
    return text if len(text) <= _RAW_LIMIT else text[:_RAW_LIMIT] + "..."
