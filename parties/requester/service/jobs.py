"""Batch jobs: a list of applications checked in the background, chunk by chunk, one job at a time;
progress while it runs and a row per application once done (its result, or an error with the
reason: the application's own, or the owner's that refused its chunk). Jobs live in memory: the
last ``keep`` finished ones stay available, to the caller that submitted them only."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from mpc.protocols.rules import Application, Rule, RuleError
from parties.requester import RemoteError
from parties.requester.service.checks import ApplicationError, Checker, application, error_reason, result_rows
from parties.requester.service.models import JobApplication, JobOut, ResultRow

__all__ = ["Job", "Jobs", "UnknownJob"]

log = logging.getLogger("mpc.service")


class UnknownJob(LookupError):
    """No such job for this caller (never someone else's: they are not told it exists)."""


@dataclass
class Job:
    id: str
    caller: str
    rule: Rule
    purpose: str
    case: str
    items: list[JobApplication]
    status: Literal["queued", "running", "done", "failed"] = "queued"
    done: int = 0
    error: str = ""
    created: float = field(default_factory=time.time)
    finished: float | None = None
    rows: list[ResultRow | None] = field(default_factory=list)
    set_aside: list[ResultRow] = field(
        default_factory=list
    )  # lines of an uploaded file that name no checkable application

    def describe(self) -> JobOut:
        return JobOut(
            id=self.id,
            rule=self.rule.name,
            purpose=self.purpose,
            case=self.case,
            status=self.status,
            applications=len(self.items) + len(self.set_aside),
            done=self.done + len(self.set_aside),
            errors=sum(1 for r in [*self.rows, *self.set_aside] if r is not None and r.result == "error"),
            error=self.error,
            created=self.created,
            finished=self.finished,
        )


class Jobs:
    def __init__(self, checker: Checker, chunk: int, keep: int) -> None:
        self.checker, self.chunk, self.keep = checker, chunk, keep
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="job")

    def submit(
        self,
        caller: str,
        rule: Rule,
        purpose: str,
        case: str,
        items: list[JobApplication],
        set_aside: Sequence[ResultRow] = (),
    ) -> Job:
        """Check ``items`` in the background; ``set_aside`` are error rows of an uploaded file's
        applications (or lines) that could not be read, reported with the results."""
        job = Job(
            uuid.uuid4().hex, caller, rule, purpose, case, items, rows=[None] * len(items), set_aside=list(set_aside)
        )
        with self._lock:
            self._jobs[job.id] = job
            finished = [k for k, j in self._jobs.items() if j.finished is not None]
            for k in finished[: max(0, len(finished) - self.keep)]:
                del self._jobs[k]
        self._runner.submit(self._run, job)
        return job

    def get(self, caller: str, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None or job.caller != caller:
            raise UnknownJob(f"no job {job_id!r} of {caller!r} (finished jobs are kept a while, then dropped)")
        return job

    def close(self) -> None:
        self._runner.shutdown(wait=False, cancel_futures=True)

    def _run(self, job: Job) -> None:
        job.status = "running"
        try:
            valid: list[tuple[int, Application]] = []
            seen: dict[str, int] = {}
            try:
                cap = self.checker.cap(job.rule, job.purpose, job.case)
            except RemoteError as exc:  # an owner cannot be asked: nothing can be checked
                rows = [ResultRow(reference=i.reference, result="error", reason=error_reason(exc)) for i in job.items]
                self._finish(job, range(len(job.items)), rows)
                job.status = "done"
                return
            for k, item in enumerate(job.items):
                try:
                    if item.reference in seen:
                        raise ApplicationError("reference", f"repeats applications.{seen[item.reference]}")
                    seen[item.reference] = k
                    valid.append((k, self.checker.admit(job.rule, application(item, self.checker.id_kind), cap)))
                except ApplicationError as exc:
                    self._finish(job, [k], [ResultRow(reference=item.reference, result="error", reason=str(exc))])
            cases = [job.items[k].case or job.case for k, _ in valid]
            for case in dict.fromkeys(cases):  # each owner's audit entry names the applications' own case
                mine = [entry for entry, c in zip(valid, cases, strict=True) if c == case]
                for start in range(0, len(mine), self.chunk):
                    part = mine[start : start + self.chunk]
                    self._finish(job, [k for k, _ in part], self._checked(job, case, [a for _, a in part]))
            job.status = "done"
        except Exception as exc:  # an unexpected failure: every application left gets a row saying so
            log.exception("job failed", extra={"fields": {"job": job.id}})
            job.status, job.error = "failed", f"{type(exc).__name__}: {exc}"[:500]
            left = [k for k, r in enumerate(job.rows) if r is None]
            self._finish(
                job, left, [ResultRow(reference=job.items[k].reference, result="error", reason=job.error) for k in left]
            )
        finally:
            job.finished = time.time()

    def _checked(self, job: Job, case: str, applications: Sequence[Application]) -> list[ResultRow]:
        try:
            return result_rows(job.rule, applications, self.checker.check(job.rule, job.purpose, case, applications))
        except RemoteError as exc:
            reason = error_reason(exc)
        except RuleError as exc:
            reason = str(exc)
        return [ResultRow(reference=a.reference, result="error", reason=reason) for a in applications]

    @staticmethod
    def _finish(job: Job, indices: Sequence[int], rows: Sequence[ResultRow]) -> None:
        for k, row in zip(indices, rows, strict=True):
            job.rows[k] = row
        job.done += len(rows)
