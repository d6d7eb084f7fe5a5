"""What the audit verifier reports: the kinds of problem, each problem, and the whole report.

:func:`mpc.audit.verifier.verify_log` returns a :class:`VerifyReport`; its docstring says when
each :data:`ProblemKind` is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mpc.audit.record import AuditHead

__all__ = [
    "ProblemKind",
    "VerifyProblem",
    "VerifyReport",
]

ProblemKind = Literal[
    "edited",
    "removed",
    "inserted",
    "reordered",
    "bad-signature",
    "malformed",
    "truncated-vs-witness",
    "diverges-from-witness",
]


@dataclass
class VerifyProblem:
    """One thing wrong with a log. ``line`` is 1-based (0 for problems with no line)."""

    line: int
    seq: int | None
    kind: ProblemKind
    message: str


@dataclass
class VerifyReport:
    """Result of :func:`~mpc.audit.verifier.verify_log`.

    ``entries`` is the number of lines read (blank and malformed ones included). ``head`` describes the last authentic
    entry found (seq, hash, that entry's time and its entry signature, which verifies over the
    raw hash bytes, not as an :class:`AuditHead` statement); ``None`` if there is none.
    """

    entries: int
    ok: bool
    problems: list[VerifyProblem] = field(default_factory=list)
    head: AuditHead | None = None
