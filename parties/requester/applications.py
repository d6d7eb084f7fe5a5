"""Files of applications as agencies write them, read forgivingly: every problem is reported with
its file and line, and only the applications it touches are set aside; the rest can be checked.

Two layouts, told apart by the header (column names compared without case or surrounding spaces;
other columns are ignored):

* **one row per person**: ``application_id, resident_id, relation``. Each application has
  exactly one row whose relation is ``applicant`` (any case); every other row of the application
  is a household member. The rows of one application need not be adjacent.
* **one row per application**: ``application_id, applicant, members``. ``members`` lists the
  household's members in one cell, separated by ``;`` or ``|`` (empty items are ignored); it may
  list the applicant too (once) or not. An empty cell: the applicant alone.

Declared values (``declared``: column names) are copied as raw strings, unparsed: in the
per-application layout into :attr:`Application.declared`. In the per-person layout a column
filled on the applicant's row only holds the application's value (into ``declared``, as in the
other layout); a column filled on members' rows too holds each person's value (into
``member_declared``, aligned with ``members``, the applicant first: a rule takes the applicant's
or sums the household's). Not both: a rule reads ``declared`` first, and would take the
applicant's value for the household's. An empty cell declares nothing.

The file is UTF-8 (a byte-order mark is allowed), comma-separated, one record per line (ending in
LF, CR LF or CR): a quoted field cannot span lines. Blank lines are skipped, and empty fields past the header's width
ignored. What makes an application an error (the reason names the line): a row with too few or too
many fields, an unclosed quote, a field over the csv module's size limit, bytes that are not
UTF-8, an invalid id, a person listed twice in one household, more than ``MAX_MEMBERS`` members,
not exactly one applicant row, an application on several rows of the per-application layout.
Where a broken line does not even show its application id, the line itself is the error.
A file that cannot be read or whose header lacks the columns raises :class:`ApplicationsFileError`.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mpc.data.ids import normalize_column
from mpc.protocols.rules import MAX_MEMBERS, Application

__all__ = [
    "LAYOUTS",
    "MEMBER_SEPARATORS",
    "Applications",
    "ApplicationsFileError",
    "Line",
    "MissingColumnError",
    "Problem",
    "Rejected",
    "parse_applications",
    "read_applications",
    "read_lines",
    "stream_applications",
]

Layout = Literal["per-person", "per-application"]
LAYOUTS: dict[Layout, tuple[str, str, str]] = {
    "per-person": ("application_id", "resident_id", "relation"),
    "per-application": ("application_id", "applicant", "members"),
}
MEMBER_SEPARATORS = ";|"
_SPLIT_MEMBERS = re.compile(f"[{re.escape(MEMBER_SEPARATORS)}]")


class ApplicationsFileError(ValueError):
    """The file as a whole cannot be used (unreadable, no header, columns missing); the message
    names the file (and line) and what to do."""


class MissingColumnError(ApplicationsFileError):
    """The header lacks a column the caller named."""


@dataclass(frozen=True)
class Problem:
    """What is wrong on one line."""

    line: int
    reason: str


@dataclass(frozen=True)
class Rejected:
    """An application that cannot be checked, or a line whose application cannot be told
    (``reference`` empty), with every problem found."""

    reference: str
    file: str
    problems: tuple[Problem, ...]

    def __str__(self) -> str:
        """``FILE, line N: reason; reason; line M: reason``."""
        parts = [
            p.reason if k and p.line == self.problems[k - 1].line else f"line {p.line}: {p.reason}"
            for k, p in enumerate(self.problems)
        ]
        return f"{self.file}, " + "; ".join(parts)


@dataclass(frozen=True)
class Applications:
    """A file of applications read: each application (or unattributable line) once, in the order
    of its first line."""

    file: str
    layout: Layout
    entries: tuple[Application | Rejected, ...]
    first_lines: Mapping[str, int]  # the first line of each valid application

    def reject(self, application: Application, reason: str) -> Rejected:
        """``application`` set aside for a problem found after reading (a declared value the rule
        cannot read), naming its first line."""
        return Rejected(application.reference, self.file, (Problem(self.first_lines[application.reference], reason),))

    @property
    def valid(self) -> list[Application]:
        """The applications to check."""
        return [e for e in self.entries if isinstance(e, Application)]

    @property
    def rejected(self) -> list[Rejected]:
        """The applications (and lines) that cannot be checked."""
        return [e for e in self.entries if isinstance(e, Rejected)]


@dataclass(frozen=True)
class Line:
    """One line of a CSV file: its cells by column (lower-case header names; empty when the line
    is broken) and what is wrong with it ("" when nothing); ``key`` is the cell of the key column
    wherever it could be read ("" otherwise)."""

    number: int
    cells: dict[str, str]
    key: str
    problem: str


def read_applications(path: Path, declared: Sequence[str] = ()) -> Applications:
    """The applications in the CSV file at ``path`` (either layout), with the ``declared`` columns'
    raw values; raises :class:`ApplicationsFileError` when the file cannot be used at all."""
    try:
        with path.open("rb") as f:
            return parse_applications(f, str(path), declared)
    except OSError as exc:
        raise _unreadable(path, exc) from None


def stream_applications(
    data: Iterable[bytes], file: str, declared: Sequence[str] = ()
) -> Iterator[Application | Rejected]:
    """The applications in ``data`` one by one, for a file too large to hold (a streamed
    screening): as :func:`parse_applications`, except that an application's lines must be
    adjacent (a file sorted or written by application). A line of an application whose lines
    ended before is an error of its own, naming the line; what was read before stands. Raises
    :class:`ApplicationsFileError` on the first call when the header cannot be used."""
    lines = _lines(data)
    build, columns = _layout(lines, file, declared)[1:]
    closed: set[str] = set()
    current: tuple[str, _Pending] | None = None
    for row in _cells(lines, header=columns[1], key="application_id"):
        if current is not None and row.key != current[0]:
            closed.add(current[0])
            yield build(*current, file, columns[0])
            current = None
        if not row.key or row.key in closed:
            reason = row.problem or "no application_id"
            if row.key:
                reason = (
                    f"application {row.key!r} has lines elsewhere in the file: a streamed screening needs each "
                    "application's lines together (sort the file by application_id)"
                )
            yield Rejected(row.key, file, (Problem(row.number, reason),))
            continue
        if current is None:
            current = (row.key, _Pending([], []))
        if row.problem:
            current[1].problems.append(Problem(row.number, row.problem))
        else:
            current[1].lines.append(row)
    if current is not None:
        yield build(*current, file, columns[0])


Builder = Callable[[str, "_Pending", str, dict[str, str]], Application | Rejected]


def _layout(
    lines: Iterator[tuple[int, bytes]], file: str, declared: Sequence[str]
) -> tuple[Layout, Builder, tuple[dict[str, str], list[str]]]:
    """The file's layout from its header, the builder of its applications and (declared columns
    by name, the header); raises :class:`ApplicationsFileError` when the header cannot be used."""
    header_line, header = _header(lines, file)
    layout: Layout | None = next((k for k, needed in LAYOUTS.items() if set(needed) <= set(header)), None)
    if layout is None:
        layouts = " or ".join(f"{', '.join(c)} ({k})" for k, c in LAYOUTS.items())
        raise ApplicationsFileError(
            f"{file}, line {header_line}: the header needs the columns {layouts}; it has {', '.join(header)}"
        )
    missing = [name for name in declared if name.strip().lower() not in header]
    if missing:
        raise MissingColumnError(
            f"{file}, line {header_line}: no column {missing[0]!r} for a declared value; it has {', '.join(header)}"
        )
    build: Builder = _per_person if layout == "per-person" else _per_application
    return layout, build, ({name: name.strip().lower() for name in declared}, header)


def parse_applications(data: Iterable[bytes], file: str, declared: Sequence[str] = ()) -> Applications:
    """The applications in ``data`` (the lines of a CSV file, as bytes; ``file`` names it in every
    message); see the module's description of the layouts and the problems reported."""
    lines = _lines(data)
    layout, build, (columns, header) = _layout(lines, file, declared)
    entries: list[Application | Rejected] = []
    first_lines: dict[str, int] = {}
    for item in _grouped(_cells(lines, header, "application_id"), file):
        if isinstance(item, Rejected):
            entries.append(item)
            continue
        entry = build(*item, file, columns)
        entries.append(entry)
        if isinstance(entry, Application):
            first_lines[entry.reference] = item[1].lines[0].number
    return Applications(file, layout, tuple(entries), first_lines)


def read_lines(path: Path, needed: Sequence[str], key: str) -> Iterator[Line]:
    """The lines after the header of the CSV file at ``path``, each with its cells or its problem
    (as for applications); raises :class:`ApplicationsFileError` when the file cannot be read or
    its header lacks a ``needed`` column (:class:`MissingColumnError`)."""
    try:
        with path.open("rb") as f:
            lines = _lines(f)
            header_line, header = _header(lines, str(path))
            absent = [c for c in needed if c.strip().lower() not in header]
            if absent:
                raise MissingColumnError(
                    f"{path}, line {header_line}: no column {absent[0]!r}; it has {', '.join(header)}"
                )
            yield from _cells(lines, header, key.strip().lower())
    except OSError as exc:
        raise _unreadable(path, exc) from None


def _unreadable(path: Path, exc: OSError) -> ApplicationsFileError:
    """The error for a file that cannot be opened or read."""
    return ApplicationsFileError(f"{path}: cannot read it: {exc.strerror or exc}; check the path")


# ---------------------------------------------------------------------------------------------- lines


def _lines(data: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes without the line end) of the non-blank lines, a line ending in LF, CR LF
    or CR alone; a leading BOM dropped."""
    physical = (line for chunk in data for line in chunk.rstrip(b"\r\n").split(b"\r"))
    for number, line in enumerate(physical, start=1):
        if number == 1:
            line = line.removeprefix(b"\xef\xbb\xbf")
        if line.strip():
            yield number, line


def _header(lines: Iterator[tuple[int, bytes]], file: str) -> tuple[int, list[str]]:
    """The first line's column names, stripped and lower-cased."""
    first = next(lines, None)
    if first is None:
        raise ApplicationsFileError(f"{file}: no header line (the file is empty); the first line names the columns")
    number, raw = first
    fields, problem = _split(raw)
    if problem:
        raise ApplicationsFileError(f"{file}, line {number}: the header cannot be read: {problem}")
    header = [f.strip().lower() for f in fields]
    while header and not header[-1]:
        header.pop()
    return number, header


def _cells(lines: Iterator[tuple[int, bytes]], header: list[str], key: str) -> Iterator[Line]:
    """Each line's cells by column name, or its problem."""
    at = header.index(key) if key in header else None
    for number, raw in lines:
        fields, problem = _split(raw)
        if not problem:
            while len(fields) > len(header) and not fields[-1].strip():
                fields.pop()
            if len(fields) != len(header):
                problem = f"{len(fields)} field{'' if len(fields) == 1 else 's'}, the header has {len(header)}"
        if problem:
            yield Line(number, {}, _salvaged(raw, fields, at), problem)
        else:
            cells = dict(zip(header, fields, strict=True))
            yield Line(number, cells, cells[key].strip() if at is not None else "", "")


def _split(raw: bytes) -> tuple[list[str], str]:
    """The fields of one line, or what is wrong with it (its fields then as far as they could be read)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], f"bytes that are not UTF-8 (at byte {exc.start + 1} of the line); save the file as UTF-8"
    if '"' not in text:  # what the csv module would do, without building a reader for each line
        fields = text.split(",")
        limit = csv.field_size_limit()
        return fields, "" if all(len(f) <= limit for f in fields) else f"a field longer than {limit:,} characters"
    try:
        return next(csv.reader([text], strict=True)), ""
    except csv.Error as exc:
        return [], _csv_problem(str(exc))


def _csv_problem(message: str) -> str:
    """The csv module's complaint about one line, in words."""
    if "unexpected end of data" in message:
        return "an unclosed quote"
    limit = re.search(r"field larger than field limit \((\d+)\)", message)
    if limit:
        return f"a field longer than {int(limit.group(1)):,} characters"
    if "expected after" in message:
        return "a quote inside a field (quote the whole field and double the quotes within)"
    return f"not CSV: {message}"


def _salvaged(raw: bytes, fields: list[str], at: int | None) -> str:
    """The key cell of a broken line where it can still be told for sure, else "": from its fields
    where the line parsed (only their count is wrong), else where no quote comes before the key
    cell's end and the cell decodes."""
    if at is None:
        return ""
    if fields:
        return fields[at].strip() if at < len(fields) else ""
    parts = raw.decode("utf-8", "replace").split(",", at + 1)
    if len(parts) <= at or any('"' in part for part in parts[: at + 1]) or "\ufffd" in parts[at]:
        return ""
    return parts[at].strip()


# ---------------------------------------------------------------------------------------------- households


@dataclass
class _Pending:
    """An application being assembled: its lines in order and the problems found so far."""

    lines: list[Line]
    problems: list[Problem]


def _grouped(rows: Iterable[Line], file: str) -> Iterator[tuple[str, _Pending] | Rejected]:
    """Lines grouped by application, in the order of each application's first line; a broken line
    joins its application as a problem, or stands alone where its application is unknown."""
    order: list[str | Rejected] = []
    pending: dict[str, _Pending] = {}
    for row in rows:
        if not row.key:
            order.append(Rejected("", file, (Problem(row.number, row.problem or "no application_id"),)))
            continue
        if row.key not in pending:
            pending[row.key] = _Pending([], [])
            order.append(row.key)
        if row.problem:
            pending[row.key].problems.append(Problem(row.number, row.problem))
        else:
            pending[row.key].lines.append(row)
    for item in order:
        yield item if isinstance(item, Rejected) else (item, pending[item])


def _household(people: Sequence[tuple[int, str, str]]) -> tuple[list[str], list[Problem]]:
    """The normalised ids of ``people`` ((line, how the message names the person, raw id), the
    applicant first) and the problems: invalid ids, a person listed twice, too many members."""
    ids, report = normalize_column([raw for _, _, raw in people], "resident_id")
    problems = [Problem(people[bad.row][0], f"{people[bad.row][1]}: {bad.reason}") for bad in report.invalid]
    first: dict[str, int] = {}
    for k, person in enumerate(ids):
        if person is None:
            continue
        if person in first:
            line, what, _ = people[k]
            earlier_line, earlier, _ = people[first[person]]
            if earlier_line == line:
                problems.append(Problem(line, f"{what} and {earlier} are the same person (listed twice)"))
            else:
                problems.append(Problem(line, f"the same person as on line {earlier_line} (listed twice)"))
        else:
            first[person] = k
    if len(people) > MAX_MEMBERS:
        problems.append(Problem(people[0][0], f"{len(people)} people in the household, at most {MAX_MEMBERS}"))
    return [i for i in ids if i is not None], problems


def _rejected(reference: str, file: str, problems: list[Problem]) -> Rejected:
    """The application set aside, its problems in the order of their lines."""
    return Rejected(reference, file, tuple(sorted(problems, key=lambda p: p.line)))


def _per_person(reference: str, pending: _Pending, file: str, declared: dict[str, str]) -> Application | Rejected:
    """An application of the one-row-per-person layout (``declared``: name -> column)."""
    applicants = [row for row in pending.lines if row.cells["relation"].strip().lower() == "applicant"]
    ordered = applicants[:1] + [row for row in pending.lines if row not in applicants[:1]]
    ids, problems = _household([(r.number, "resident_id", r.cells["resident_id"]) for r in ordered])
    problems += pending.problems
    if len(applicants) > 1 or not (applicants or pending.problems):  # a broken line may be its applicant
        where = applicants[1].number if applicants else pending.lines[0].number
        problems.append(Problem(where, f"needs exactly one applicant row, has {len(applicants)}"))
    if problems:
        return _rejected(reference, file, problems)
    values = [_declared(r, declared) for r in ordered]
    own = {n: v for n, v in values[0].items() if not any(n in m for m in values[1:])}  # the applicant's row only
    each = tuple({n: v for n, v in m.items() if n not in own} for m in values)
    return Application(reference, ids[0], tuple(ids), own, each if any(each) else ())


def _per_application(reference: str, pending: _Pending, file: str, declared: dict[str, str]) -> Application | Rejected:
    """An application of the one-row-per-application layout (``declared``: name -> column)."""
    numbers = sorted([r.number for r in pending.lines] + [p.line for p in pending.problems])
    on = ", ".join(map(str, numbers))
    repeated = [Problem(n, f"the application is on lines {on}: one line per application") for n in numbers[1:]]
    if pending.problems or repeated:
        return _rejected(reference, file, pending.problems + repeated)
    row = pending.lines[0]
    listed = [m.strip() for m in _SPLIT_MEMBERS.split(row.cells["members"]) if m.strip()]
    people = [(row.number, "applicant", row.cells["applicant"])]
    people += [(row.number, f"member {k}", m) for k, m in enumerate(listed, start=1)]
    applicant, _ = normalize_column([row.cells["applicant"]], "resident_id")
    normalised, _ = normalize_column(listed, "resident_id")
    if applicant[0] is not None and applicant[0] in normalised:  # the applicant listed among the members
        del people[1 + normalised.index(applicant[0])]
    ids, problems = _household(people)
    if problems:
        return _rejected(reference, file, problems)
    return Application(reference, ids[0], tuple(ids), _declared(row, declared))


def _declared(row: Line, declared: dict[str, str]) -> dict[str, str]:
    """The declared values on ``row`` by name (``declared``: name -> column), as written; an empty
    cell declares nothing."""
    return {name: row.cells[column] for name, column in declared.items() if row.cells[column].strip()}
