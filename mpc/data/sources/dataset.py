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

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

import numpy as np

from mpc.data.schema import DatasetSpec

__all__ = [
    "DataSourceError",
    "Dataset",
    "IdColumn",
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
    lines: LineMap | None = None  # a CSV file's line of each row (None for databases)

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


class LineMap:
    """Where each row of a CSV file starts: the file line of a 1-based data row.

    A row usually starts on the line after the previous one; blank lines and line breaks inside
    quoted fields shift the rest. Only the shifts are kept (row, lines added), so a 10-million-row
    file costs a few bytes, not a number per row.
    """

    def __init__(self) -> None:
        self._rows: list[int] = [0]  # 0-based row from which ...
        self._shift: list[int] = [1]  # ... line = row + 1 + shift (the header is line 1)

    def add(self, row: int, line: int) -> None:
        """Record that 0-based ``row`` starts on ``line`` (rows are added in order)."""
        shift = line - row - 1
        if shift != self._shift[-1]:
            self._rows.append(row)
            self._shift.append(shift)

    def line(self, row: int) -> int:
        """The file line of 1-based data row ``row``."""
        k = int(np.searchsorted(self._rows, row - 1, side="right")) - 1
        return row + self._shift[k]


class IdColumn(Sequence[str]):
    """A dataset's normalised ids: one fixed-width array of their UTF-8 bytes (numpy ``S``), read
    as a sequence of ``str``.

    A Python list of ten million ids and a dict to find them take over 1.5 GB; this takes the
    longest id's length per row (18 bytes for resident ids). :meth:`chunks` hands the bytes out in
    slices for batch work (tags, digests); :meth:`position` finds an id by binary search in an
    order sorted on first use.
    """

    def __init__(self, array: np.ndarray) -> None:
        if array.dtype.kind != "S" or array.ndim != 1:
            raise ValueError("ids are a one-dimensional array of bytes")
        self.array = array
        self._sorted: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.array)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [i.decode() for i in self.array[index].tolist()]
        return bytes(self.array[index]).decode()

    def __iter__(self) -> Iterator[str]:
        for chunk in self.chunks():
            yield from (i.decode() for i in chunk)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, IdColumn):
            return bool(np.array_equal(self.array, other.array))
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return len(other) == len(self) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable-looking sequence: not hashable, like a list

    def __repr__(self) -> str:
        return f"IdColumn(rows={len(self)})"  # never the ids themselves

    def chunks(self, size: int = 1 << 18) -> Iterator[list[bytes]]:
        """The ids' UTF-8 bytes, ``size`` at a time (Python ``bytes``, ready to pickle or hash)."""
        for lo in range(0, len(self.array), size):
            yield self.array[lo : lo + size].tolist()

    def where(self, mask: np.ndarray) -> list[str]:
        """The ids of the rows where ``mask`` holds, in row order."""
        return [i.decode() for i in self.array[np.asarray(mask, dtype=bool)].tolist()]

    def digest(self) -> hashlib._Hash:
        """SHA-256 of the ids joined by newlines (as ``"\\n".join(ids).encode()``), fed in chunks."""
        h = hashlib.sha256()
        for k, chunk in enumerate(self.chunks()):
            if k:
                h.update(b"\n")
            h.update(b"\n".join(chunk))
        return h

    def position(self, normalised_id: str) -> int | None:
        """The row of ``normalised_id``, or None."""
        if self._sorted is None:
            self._sorted = np.argsort(self.array, kind="stable")
        key = np.array(normalised_id.encode(), dtype=self.array.dtype)
        if key.tobytes().rstrip(b"\0") != normalised_id.encode():
            return None  # longer than every id here
        k = int(np.searchsorted(self.array, key, sorter=self._sorted))
        if k < len(self.array) and self.array[self._sorted[k]] == key:
            return int(self._sorted[k])
        return None


@dataclass(eq=False, repr=False)
class Dataset:
    """A loaded, validated dataset held in memory by the owning agency's daemon.

    ``ids`` holds one normalised id per loaded row (unique, an :class:`IdColumn`); ``columns``
    maps every declared column to an array aligned with ``ids``: ``int`` and ``bool`` columns as
    ``int64`` arrays (bools as 0/1), ``category`` columns as ``object`` arrays of ``str`` (the
    declared labels themselves, shared by every row). Columns classified ``secret`` are loaded
    (and validated) like the others; the policy layer keeps protocols away from them. The
    ``repr`` shows the name and row count only, so a dataset never lands in a log.
    """

    spec: DatasetSpec
    ids: IdColumn
    columns: dict[str, np.ndarray]
    report: LoadReport

    def __post_init__(self) -> None:
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
        codes = np.zeros(len(column), dtype=np.int64)
        for k, label in enumerate(self.labels(name)):
            codes[column == label] = k
        return codes

    def index_of(self, normalised_id: str) -> int | None:
        """The row position of an already-normalised id, or None if it is not in the dataset."""
        return self.ids.position(normalised_id)

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
