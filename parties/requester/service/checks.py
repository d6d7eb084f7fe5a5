"""Applications in, result rows out: the service's calls of the warm client.

An application from the API becomes a :class:`~mpc.protocols.rules.Application` (ids normalised,
the applicant first, declared values passed through as written) or an :class:`ApplicationError`
naming the field. Every check runs on the one warm client (:class:`SharedClient`: connections, keys,
directory and caches shared), with the call's purpose and case reference; what owners and the
co-party learn is what :meth:`~parties.requester.Client.eligibility` says, per call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from mpc.data.ids import IdKind, normalize_column
from mpc.protocols.rules import MAX_MEMBERS, Application, Rule, RuleError, RuleSet
from parties.requester import Client, Eligibility, RemoteError
from parties.requester.service.models import ApplicationIn, ResultRow

__all__ = ["ApplicationError", "Checker", "SharedClient", "application", "error_reason", "result_row", "result_rows"]


class ApplicationError(ValueError):
    """An application the service cannot check; ``field`` is where (``members.2``, say)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


def application(item: ApplicationIn, kind: IdKind, reference: str | None = None) -> Application:
    """The application as the rules take it: ids normalised (``kind``), the applicant first,
    every member once; the declared values as written."""
    household = item.members or [item.applicant]
    if item.member_declared and len(item.member_declared) != len(household):
        raise ApplicationError(
            "member_declared", f"{len(item.member_declared)} entries for {len(household)} members: align them"
        )
    ids, report = normalize_column([item.applicant, *household], kind)
    if report.invalid:
        bad = report.invalid[0]
        raise ApplicationError("applicant" if bad.row == 0 else f"members.{bad.row - 1}", f"invalid id: {bad.reason}")
    applicant, members = str(ids[0]), [str(i) for i in ids[1:]]
    seen: dict[str, int] = {}
    for k, member in enumerate(members):
        if member in seen:
            raise ApplicationError(f"members.{k}", f"the same person as members.{seen[member]}: list each member once")
        seen[member] = k
    if applicant not in seen:
        raise ApplicationError("members", "lists the whole household: the applicant must be one of them")
    first = seen[applicant]
    order = [first, *(k for k in range(len(members)) if k != first)]
    declared = tuple(dict(item.member_declared[k]) for k in order) if item.member_declared else ()
    return Application(
        reference if reference is not None else item.reference,
        applicant,
        tuple(members[k] for k in order),
        dict(item.declared),
        declared,
    )


class SharedClient(Client):
    """The service's one client, used by many calls at once: the purpose and case reference (what
    it sends owners as metadata and records in the agency's log) are each thread's own; everything
    else is shared by all calls."""

    _call = threading.local()

    @property
    def purpose(self) -> str:
        return str(getattr(self._call, "purpose", ""))

    @purpose.setter
    def purpose(self, value: str) -> None:
        self._call.purpose = value

    @property
    def case(self) -> str:
        return str(getattr(self._call, "case", ""))

    @case.setter
    def case(self, value: str) -> None:
        self._call.case = value


class Checker:
    """The warm client, the rules it checks against, and the last outcome seen per rule."""

    def __init__(self, client: SharedClient, rules: RuleSet, default_purpose: str | None, id_kind: IdKind) -> None:
        self.client, self.rules = client, rules
        self.default_purpose, self.id_kind = default_purpose, id_kind
        self.last: dict[str, str] = {}  # rule name -> outcome of its last check, with the time
        self._lock = threading.Lock()

    def rule(self, name: str) -> Rule:
        """A rule of the rules file (:class:`~mpc.protocols.rules.RuleError` naming the known ones)."""
        return self.rules.get(name)

    def purpose(self, given: str | None) -> str:
        purpose = given or self.default_purpose
        if not purpose:
            raise ApplicationError("purpose", "give a purpose code: the service has no default_purpose")
        return purpose

    def for_call(self, purpose: str, case: str) -> Client:
        """The warm client, carrying ``purpose`` and ``case`` in this thread."""
        self.client.purpose, self.client.case = purpose, case
        return self.client

    def cap(self, rule: Rule, purpose: str, case: str) -> int:
        """The most members per household that every owner of the rule's columns accepts."""
        owners = {c.owner for c in rule.clauses.values() if not c.is_predicate}
        client = self.for_call(purpose, case)
        return min((client.listing(o).max_household or MAX_MEMBERS for o in owners), default=MAX_MEMBERS)

    @staticmethod
    def admit(rule: Rule, app: Application, cap: int) -> Application:
        """``app`` if the owners accept its household and it declares what ``rule`` reads, else
        :class:`ApplicationError` naming the field."""
        if len(app.members) > cap:
            raise ApplicationError("members", f"{len(app.members)} members: the owners accept at most {cap}")
        problem = rule.declared_problem(app)
        if problem is not None:
            raise ApplicationError("declared", problem)
        return app

    def check(self, rule: Rule, purpose: str, case: str, applications: Sequence[Application]) -> Eligibility:
        """One eligibility round trip for ``applications`` under ``purpose`` and ``case`` (recorded
        in the agency's audit log by the client); raises what the client raises."""
        client = self.for_call(purpose, case)
        reasons = any(c.reveal for c in rule.clauses.values())  # else no owner is asked for its consent
        try:
            answer = client.eligibility(rule, applications, reasons=reasons)
        except RemoteError as exc:
            self._seen(rule.name, f"refused by {exc.party}: {exc.code.name}: {exc.details}")
            raise
        except RuleError as exc:
            self._seen(rule.name, f"refused: {exc}")
            raise
        self._seen(rule.name, "accepted by every owner")
        return answer

    def _seen(self, rule: str, outcome: str) -> None:
        with self._lock:
            self.last[rule] = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {outcome}"[:500]


def result_rows(rule: Rule, applications: Sequence[Application], answer: Eligibility) -> list[ResultRow]:
    """A row per application (:func:`result_row`)."""
    return [result_row(rule, app, answer, k) for k, app in enumerate(applications)]


def result_row(rule: Rule, app: Application, answer: Eligibility, k: int) -> ResultRow:
    """The ``k``-th application of ``answer``: eligible, or not eligible with the failed clauses
    the owners disclose, saying so when other clauses were not disclosed (as ``mpc-query
    eligibility`` words it: nobody gives a citizen part of the reason as the whole one)."""
    eligible = bool(answer.bits[k])
    reason = answer.reason(k, rule.clauses)
    return ResultRow(reference=app.reference, result="eligible" if eligible else "not eligible", reason=reason)


def error_reason(exc: RemoteError) -> str:
    return f"{exc.party}: {exc.code.name}: {exc.details}"
