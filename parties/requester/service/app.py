"""The requester service's HTTP/JSON API (FastAPI: its OpenAPI description is at ``/openapi.json``).

Every ``/v1`` route needs a client certificate of one of the configured callers (:mod:`.callers`)
and is written to the agency's signed audit log (:mod:`.auditing`). Each check is also recorded
there by the client (owners, rows, outcome), and in every owner's log.

Refusals carry ``{"detail": {"reason": ..., ...}}``: 401 without a client certificate, 403 for a
certificate that is not a caller's or an owner's refusal (``owner`` and ``status`` say whose and
which), 404 for an unknown job, 409 for results asked before the job is done, 413 for a job over
the limit, 422 for an unknown rule or an application that cannot be checked (``field`` says
where), 429/503/504 when an owner is busy, unreachable or too slow, 502 for any other owner error.
"""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any, Literal

import grpc
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from mpc.audit import AuditLog
from mpc.protocols.rules import Rule, RuleError
from parties.requester import RemoteError
from parties.requester.service.auditing import Audited
from parties.requester.service.callers import Callers
from parties.requester.service.checks import ApplicationError, Checker, application, result_row
from parties.requester.service.coalesce import Coalescer
from parties.requester.service.jobs import Job, Jobs, UnknownJob
from parties.requester.service.listing import rules_listing
from parties.requester.service.models import (
    REFERENCE,
    CheckIn,
    CheckOut,
    JobApplication,
    JobIn,
    JobOut,
    Refusal,
    ResultRow,
    RuleOut,
)

__all__ = ["create_app"]

OWNER_STATUS = {
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}  # any other owner error: 502


class _Refused(Exception):
    def __init__(self, http: int, **detail: str) -> None:
        super().__init__(detail["reason"])
        self.http, self.detail = http, detail


MAX_UPLOAD_BYTES = 64 * 1024 * 1024  # an uploaded applications file (POST /v1/jobs/csv)


async def _caller(request: Request) -> str:
    """The authenticated caller (:meth:`Callers.identify`: no I/O, so on the event loop)."""
    callers: Callers = request.app.state.callers
    return callers.identify(request)


Caller = Annotated[str, Depends(_caller)]


def create_app(
    checker: Checker, coalescer: Coalescer, jobs: Jobs, callers: Callers, audit: AuditLog, max_job: int
) -> FastAPI:
    app = FastAPI(
        title="mpc-agencies requester service",
        version="1",
        description="Eligibility checks against other agencies' registers; no row leaves its owner.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.callers = callers
    refusals: dict[int | str, dict[str, Any]] = {
        code: {"model": Refusal, "description": text}
        for code, text in (
            (401, "no client certificate"),
            (403, "not a caller of this service, or refused by an owner"),
            (404, "no such job"),
            (409, "the job is not done"),
            (413, "more applications than a job may hold"),
            (422, "unknown rule, or an application that cannot be checked"),
            (503, "an owner cannot be reached"),
        )
    }

    app.add_middleware(Audited, log=audit, protocol="https" if callers.tls is not None else "http")

    @app.exception_handler(HTTPException)
    async def refused_caller(request: Request, exc: HTTPException) -> Response:
        """A refused caller (:class:`.callers.Refused`), the reason noted for the audit entry."""
        request.state.detail = str(exc.detail.get("reason", "") if isinstance(exc.detail, dict) else exc.detail)
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        request.state.detail = f"malformed request: {where}: {first.get('msg', '')}"
        return await request_validation_exception_handler(request, exc)

    @app.exception_handler(_Refused)
    async def refused(request: Request, exc: _Refused) -> JSONResponse:
        request.state.detail = exc.detail["reason"]
        return JSONResponse({"detail": exc.detail}, status_code=exc.http)

    def begin(request: Request, rule: str, purpose: str | None, case: str, rows: int) -> tuple[Rule, str]:
        """The rule and purpose of a call (422 naming the field otherwise), noted for the audit entry."""
        request.state.case, request.state.rows = case, rows
        try:
            chosen, request.state.purpose = checker.rule(rule), checker.purpose(purpose)
        except RuleError as exc:
            raise _Refused(422, reason=str(exc), field="rule") from None
        except ApplicationError as exc:
            raise _Refused(422, reason=exc.reason, field=exc.field) from None
        return chosen, request.state.purpose

    @app.post("/v1/check", responses=refusals, tags=["eligibility"])
    def check(body: CheckIn, request: Request, caller: Caller) -> CheckOut:
        """Check one application now. The caller learns eligible or not and the bits of the clauses
        whose owners consent (reason codes); each owner learns that one application was checked
        (its bucket of ids and the household size class), the co-party only shares."""
        rule, purpose = begin(request, body.rule, body.purpose, body.case, 1)
        try:
            submitted = checker.admit(
                rule,
                application(body, checker.id_kind, body.reference or body.case),
                checker.cap(rule, purpose, body.case),
            )
            answer, k, case = coalescer.check(rule, purpose, body.case, submitted)
        except ApplicationError as exc:
            raise _Refused(422, reason=exc.reason, field=exc.field) from None
        except RuleError as exc:
            raise _Refused(422, reason=str(exc), field="rule") from None
        except RemoteError as exc:
            raise _Refused(
                OWNER_STATUS.get(exc.code, 502), reason=exc.details, owner=exc.party, status=exc.code.name
            ) from None
        except LookupError as exc:  # an owner the coordinator's directory does not know (yet)
            raise _Refused(503, reason=str(exc)) from None
        if case != body.case:
            request.state.detail = f"checked in batch {case} of {len(answer.bits)} applications"
        row = result_row(rule, submitted, answer, k)
        clauses = {name: bool(bits[k]) for name, bits in answer.clauses.items()}
        return CheckOut(**row.model_dump(), rule=rule.name, clauses=clauses)

    @app.post("/v1/jobs", status_code=202, responses=refusals, tags=["jobs"])
    def submit(body: JobIn, request: Request, caller: Caller) -> JobOut:
        """Check a batch in the background (follow it at ``/v1/jobs/{id}``). Owners learn the number
        of applications per chunk and their household size class, as for a batch by command line."""
        rule, purpose = begin(request, body.rule, body.purpose, body.case, len(body.applications))
        if len(body.applications) > max_job:
            raise _Refused(413, reason=f"{len(body.applications)} applications: a job holds at most {max_job}")
        job = jobs.submit(caller, rule, purpose, body.case, body.applications)
        request.state.detail = f"job {job.id}"
        return job.describe()

    @app.post("/v1/jobs/csv", status_code=202, responses=refusals, tags=["jobs"])
    async def submit_csv(
        request: Request,
        caller: Caller,
        rule: str,
        case: Annotated[str, Query(pattern=REFERENCE)],
        declared: Annotated[list[str] | None, Query()] = None,
        purpose: str | None = None,
    ) -> JobOut:
        """A batch as an uploaded CSV file (the body, ``text/csv``), in either layout ``mpc-query
        eligibility`` reads (one row per person, or per application), with ``declared`` naming
        columns of declared values. A malformed line, an invalid id or a member listed twice sets
        aside only its application: its row in the results is an error naming the line."""
        from parties.requester.applications import ApplicationsFileError, Rejected, parse_applications

        declared_size = int(request.headers.get("content-length") or 0)
        if declared_size > MAX_UPLOAD_BYTES:  # refused before a byte of it is read
            raise _Refused(413, reason=f"an upload holds at most {MAX_UPLOAD_BYTES:,} bytes; split the file")
        body = await request.body()
        if len(body) > MAX_UPLOAD_BYTES:
            raise _Refused(413, reason=f"an upload holds at most {MAX_UPLOAD_BYTES:,} bytes; split the file")
        try:
            parsed = parse_applications(body.splitlines(keepends=True), "upload", declared or [])
        except ApplicationsFileError as exc:
            raise _Refused(422, reason=str(exc), field="body") from None
        items = [
            JobApplication(
                reference=a.reference,
                applicant=a.applicant,
                members=list(a.members),
                declared=dict(a.declared),
                member_declared=[dict(m) for m in a.member_declared],
                case=None,
            )
            for a in parsed.valid
        ]
        set_aside = [
            ResultRow(reference=e.reference, result="error", reason=str(e))
            for e in parsed.entries
            if isinstance(e, Rejected)
        ]
        rule_chosen, chosen_purpose = begin(request, rule, purpose, case, len(items) + len(set_aside))
        if len(items) + len(set_aside) > max_job:
            raise _Refused(413, reason=f"{len(items) + len(set_aside)} applications: a job holds at most {max_job}")
        job = jobs.submit(caller, rule_chosen, chosen_purpose, case, items, set_aside)
        request.state.detail = f"job {job.id} (uploaded CSV)"
        return job.describe()

    @app.get("/v1/jobs/{job_id}", responses=refusals, tags=["jobs"])
    def progress(job_id: str, request: Request, caller: Caller) -> JobOut:
        """The job's status and progress (applications done, errors so far)."""
        return _job(request, caller, job_id).describe()

    @app.get("/v1/jobs/{job_id}/results", responses=refusals, tags=["jobs"], response_model=list[ResultRow])
    def results(job_id: str, request: Request, caller: Caller, format: Literal["json", "csv"] = "json") -> Response:
        """A row per application, in the order submitted: eligible, not eligible (with the failed
        clauses we may see) or error (with the reason). As JSON, or CSV (``?format=csv``: columns
        application_id, result, reason, as ``mpc-query eligibility`` writes them)."""
        job = _job(request, caller, job_id)
        if job.finished is None:
            raise _Refused(409, reason=f"job {job.status}: {job.done} of {len(job.items)} applications done")
        rows = [*(r for r in job.rows if r is not None), *job.set_aside]  # an upload's unreadable lines last
        request.state.rows = len(rows)
        if format == "json":
            return JSONResponse([r.model_dump() for r in rows])
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["application_id", "result", "reason"])
        writer.writerows([r.reference, r.result, r.reason] for r in rows)
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8")

    @app.get("/v1/rules", responses=refusals, tags=["eligibility"])
    def rules(request: Request, caller: Caller, purpose: str | None = None) -> list[RuleOut]:
        """The rules this service checks against, with their fingerprints (what owners approve) and,
        per owner, whether its listing grants us the columns the rule compares. Owners publish no
        approvals: a rule an owner has not approved is refused by it when checked (``last_check``)."""
        try:
            request.state.purpose = checker.purpose(purpose)
        except ApplicationError as exc:
            raise _Refused(422, reason=exc.reason, field=exc.field) from None
        return rules_listing(checker, request.state.purpose)

    def _job(request: Request, caller: str, job_id: str) -> Job:
        try:
            job = jobs.get(caller, job_id)
        except UnknownJob as exc:
            raise _Refused(404, reason=str(exc)) from None
        request.state.purpose, request.state.case = job.purpose, job.case
        return job

    return app
