"""An owner's load report: every row of a dataset that loading refuses, where it is and why.

:func:`check_dataset` reads and validates a dataset exactly as the daemon does at start
(:func:`~mpc.data.sources.load.read_source`, then
:func:`~mpc.data.sources.validation.build_dataset`) and turns its
:class:`~mpc.data.sources.dataset.LoadReport` into a :class:`DatasetCheck`: one
:class:`RefusedRow` per problem, with

* ``row``: the 1-based data row (the header is not counted), in the source's order -- file order
  for CSV, the order the database returned the rows for SQLite and PostgreSQL -- as the
  duplicate reasons (``rows 4, 7``) count them;
* ``line``: for a CSV file, the file line where the row starts (the header is line 1; blank lines
  and line breaks inside quoted fields count), else None;
* ``shown``: an id masked by :func:`mpc.data.masking.mask_id`; a bad value as written (quoted,
  cut to 40 characters); nothing for a row malformed as a whole (its text holds the id);
* ``reason``: the validator's reason, with any fragment of the id redacted
  (:func:`mpc.data.masking.redact_id_fragments`).

No id appears in full anywhere in a :class:`DatasetCheck`, so it may be printed, saved or mailed
by the owner's operators; the values of refused rows do appear (they are what needs fixing).
:func:`report_lines` writes it as text (``mpc-admin datasets check``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mpc.data.masking import mask_id, redact_id_fragments
from mpc.data.schema import DatasetSpec
from mpc.data.sources.dataset import LoadReport, RowError
from mpc.data.sources.load import read_source
from mpc.data.sources.validation import build_dataset

__all__ = [
    "DatasetCheck",
    "ProblemKind",
    "RefusedRow",
    "check_dataset",
    "report_lines",
]

ProblemKind = Literal["invalid id", "duplicate id", "invalid value", "malformed row"]
_VALUE_SHOWN = 40  # characters of a bad value shown


@dataclass(frozen=True)
class RefusedRow:
    """One problem with one row (see the module docstring for each field)."""

    kind: ProblemKind
    row: int
    line: int | None
    column: str
    shown: str
    reason: str

    @property
    def location(self) -> str:
        """``line 5 (row 4)`` for a CSV file, ``row 4`` for a database."""
        return f"row {self.row}" if self.line is None else f"line {self.line} (row {self.row})"


@dataclass(frozen=True)
class DatasetCheck:
    """What loading a dataset would do: counts, the duplicate policy, and every refused row."""

    dataset: str
    source: str
    rows_read: int
    rows_loaded: int
    upgraded_ids: int
    duplicates_policy: str
    problems: tuple[RefusedRow, ...]

    @property
    def rows_refused(self) -> int:
        """How many source rows would not be loaded."""
        return self.rows_read - self.rows_loaded

    def count(self, kind: ProblemKind) -> int:
        """How many rows have a problem of ``kind``."""
        return len({problem.row for problem in self.problems if problem.kind == kind})


def _value(raw: str) -> str:
    """A bad value as shown: quoted with control characters escaped, cut to 40 characters."""
    return repr(raw if len(raw) <= _VALUE_SHOWN else raw[:_VALUE_SHOWN] + "...")


def _refused(report: LoadReport) -> Iterator[RefusedRow]:
    """Every problem of ``report``, ids masked: invalid ids, duplicates, then values (each in row order)."""

    def line(error: RowError) -> int | None:
        return report.lines.line(error.row) if report.lines is not None else None

    by_id: tuple[tuple[ProblemKind, list[RowError]], ...] = (
        ("invalid id", report.invalid_ids),
        ("duplicate id", report.duplicates),
    )
    for kind, errors in by_id:
        for error in errors:
            reason = redact_id_fragments(error.reason, error.raw)
            yield RefusedRow(kind, error.row, line(error), error.column, mask_id(error.raw), reason)
    for error in report.invalid_values:
        if error.column:
            yield RefusedRow("invalid value", error.row, line(error), error.column, _value(error.raw), error.reason)
        else:  # the whole row: its text holds the id
            yield RefusedRow("malformed row", error.row, line(error), "", "", error.reason)


def check_dataset(spec: DatasetSpec, base_dir: Path | None = None) -> DatasetCheck:
    """Read and validate ``spec``'s source as the daemon would; raises
    :class:`~mpc.data.sources.dataset.DataSourceError` when the source cannot be read."""
    source = read_source(spec, base_dir)
    report = build_dataset(spec, source).report
    problems = sorted(_refused(report), key=lambda problem: problem.row)
    return DatasetCheck(
        dataset=spec.name,
        source=source.description,
        rows_read=report.rows_read,
        rows_loaded=report.rows_loaded,
        upgraded_ids=report.upgraded_ids,
        duplicates_policy=spec.schema_.duplicates,
        problems=tuple(problems),
    )


def _summary(check: DatasetCheck) -> str:
    """The dataset's first line: source, counts, and what the duplicate policy did."""
    counts = f"{check.rows_read} rows read, {check.rows_loaded} loaded"
    if check.upgraded_ids:
        counts += f" (ids upgraded from 15 digits: {check.upgraded_ids})"
    if not check.rows_refused:
        return f"dataset {check.dataset!r} ({check.source}): {counts}, none refused"
    parts = (
        (check.count("invalid id"), "with an invalid id"),
        (check.count("duplicate id"), f"with a duplicate id (policy {check.duplicates_policy!r})"),
        (check.count("invalid value"), "with invalid values"),
        (check.count("malformed row"), "malformed"),
    )
    refused = ", ".join(f"{count} {what}" for count, what in parts if count)
    return f"dataset {check.dataset!r} ({check.source}): {counts}, {check.rows_refused} refused: {refused}"


def report_lines(check: DatasetCheck, limit: int = 0) -> list[str]:
    """The report as text: a summary line, then one aligned line per problem (location, kind,
    column, masked id or value, reason); with ``limit`` > 0 at most that many, then how many
    more there are."""
    shown = check.problems[:limit] if limit > 0 else check.problems
    cells = [(p.location, p.kind, p.column, p.shown, p.reason) for p in shown]
    widths = [max((len(row[k]) for row in cells), default=0) for k in range(4)]
    lines = [_summary(check)]
    for row in cells:
        padded = "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
        lines.append(f"  {padded}  {row[4]}")
    if len(shown) < len(check.problems):
        lines.append(f"  ... {len(check.problems) - len(shown)} more problems not shown (--limit 0 shows all)")
    return lines
