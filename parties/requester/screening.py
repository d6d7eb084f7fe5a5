"""A screening job: every application of a file too large to hold in memory (a province's
residents), checked in chunks with bounded memory, resumable after a crash.

Steps, per chunk of ``chunk`` applications read from the file (:func:`stream_applications`):
1. the chunk's valid applications are checked against the rule (``Client.eligibility``: the
   OPRF blinding, the owners' lookups and the program, as for any batch; the heavy curve and
   Paillier work runs on the party's compute backend, :mod:`mpc.parallel`);
2. one row per application (its result, or the error that set it aside) is appended to the job's
   ``results.csv`` and synced to disk;
3. ``progress.json`` records the applications done and the results file's length, atomically.

Run again with the same job directory, file and rule, the job truncates ``results.csv`` to the
recorded length (a chunk appended but not recorded is checked again) and resumes after the last
recorded chunk. A different file (any byte), rule, agency, purpose or case is refused (a new job
directory is needed), so that a job's results always come from one file, one rule and one
request; so is a second run while one holds the job's lock. Memory is bounded by the chunk, but
for the ids of the applications already read (the check that an application's lines are adjacent,
:func:`stream_applications`: some tens of bytes per application). What the owners learn is what they learn of
each chunk as a batch (docs/threat-model.md); a resumed chunk is a batch checked again.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from mpc.files import write_atomic
from mpc.protocols.rules import Application, Rule
from parties.requester.applications import ApplicationsFileError, Rejected, stream_applications

if TYPE_CHECKING:
    from parties.requester.client import Client as EligibilityClient

__all__ = ["HEADER", "Checker", "JobMismatchError", "ScreeningJob", "ScreeningProgress", "client_checker"]

HEADER = ("application_id", "result", "reason")
PROGRESS_FILE = "progress.json"
LOCK_FILE = ".lock"  # held by the run in progress: a second run of the same job is refused
RESULTS_FILE = "results.csv"


class JobMismatchError(ValueError):
    """The job directory holds a job of another file or rule."""


@dataclass
class ScreeningProgress:
    """What a job has done: applications (rows) written, of which results and errors, chunks."""

    applications: int = 0
    results: int = 0
    errors: int = 0
    chunks: int = 0
    resumed_from: int = 0  # applications done before this run


Checker = Callable[[Rule, Sequence[Application]], list[tuple[str, str]]]  # (result, reason) per application


def _fingerprint(path: Path, rule: Rule, declared: Sequence[str], context: Mapping[str, str]) -> dict[str, object]:
    """What identifies a job: the file's bytes (SHA-256 of all of it: a correction anywhere is a
    new job), the rule's fingerprint, the declared columns, and the caller's context (the agency,
    purpose and case its results were asked under)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return {
        "file": str(path.resolve()),
        "sha256": digest.hexdigest(),
        "rule": rule.fingerprint(),
        "declared": list(declared),
        "context": dict(context),
    }


class ScreeningJob:
    """One screening job in ``directory`` (created if missing) of ``applications`` by ``rule``."""

    def __init__(
        self,
        directory: Path,
        applications: Path,
        rule: Rule,
        declared: Sequence[str] = (),
        chunk: int = 10_000,
        context: Mapping[str, str] | None = None,
    ) -> None:
        if chunk < 1:
            raise ValueError("chunk must be at least 1")
        self.directory, self.applications, self.rule = directory, applications, rule
        self.declared, self.chunk = tuple(declared), chunk
        self.results_path = directory / RESULTS_FILE
        self._progress_path = directory / PROGRESS_FILE
        try:
            self._identity = _fingerprint(applications, rule, declared, context or {})
        except OSError as exc:
            raise ApplicationsFileError(f"{applications}: cannot read it: {exc.strerror or exc}") from None

    def _recorded(self) -> dict[str, object] | None:
        if not self._progress_path.exists():
            return None
        recorded: dict[str, object] = json.loads(self._progress_path.read_text(encoding="utf-8"))
        if recorded.get("job") != self._identity:
            raise JobMismatchError(
                f"{self.directory}: holds a job of another applications file or rule "
                f"({recorded.get('job', {})!r}); use a new --job directory"
            )
        return recorded

    def _entries(self) -> Iterator[Application | Rejected]:
        with self.applications.open("rb") as f:
            yield from stream_applications(f, str(self.applications), self.declared)

    def run(
        self,
        check: Checker,
        on_chunk: Callable[[ScreeningProgress], None] = lambda _: None,
    ) -> ScreeningProgress:
        """Check every application not done yet, chunk by chunk (see the module docstring)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with (self.directory / LOCK_FILE).open("a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise JobMismatchError(f"{self.directory}: another run of this job is in progress") from None
            return self._run_locked(check, on_chunk)

    def _run_locked(self, check: Checker, on_chunk: Callable[[ScreeningProgress], None]) -> ScreeningProgress:
        recorded = self._recorded()
        progress = ScreeningProgress()
        if recorded is None:
            write_atomic(self.results_path, [_csv_rows([HEADER])], 0o600)
            self._record(progress)
        else:
            progress = ScreeningProgress(**recorded["progress"])  # type: ignore[arg-type]
            progress.resumed_from = progress.applications
            length = int(recorded["results_bytes"])  # type: ignore[call-overload]
            size = self.results_path.stat().st_size if self.results_path.exists() else -1
            if size < length:
                raise JobMismatchError(
                    f"{self.results_path}: {'missing' if size < 0 else 'shorter than recorded'}: the job's results "
                    "were changed outside it; use a new --job directory"
                )
            with self.results_path.open("r+b") as f:  # a chunk written but not recorded goes
                f.truncate(length)
        entries = self._entries()
        for _ in islice(entries, progress.applications):  # done before: read past, not checked
            pass
        while part := list(islice(entries, self.chunk)):
            valid = [e for e in part if isinstance(e, Application)]
            checked = check(self.rule, valid) if valid else []
            if len(checked) != len(valid):
                raise RuntimeError(f"the checker answered {len(checked)} of {len(valid)} applications")
            answers = iter(checked)
            rows: list[tuple[str, str, str]] = []
            for entry in part:
                if isinstance(entry, Rejected):
                    rows.append((entry.reference, "error", str(entry)))
                else:
                    result, reason = next(answers)
                    rows.append((entry.reference, result, reason))
            with self.results_path.open("ab") as f:
                f.write(_csv_rows(rows))
                f.flush()
                os.fsync(f.fileno())
            progress.applications += len(part)
            progress.errors += sum(r[1] == "error" for r in rows)
            progress.results += sum(r[1] != "error" for r in rows)
            progress.chunks += 1
            self._record(progress)
            on_chunk(progress)
        return progress

    def _record(self, progress: ScreeningProgress) -> None:
        state = {
            "job": self._identity,
            "progress": {k: v for k, v in vars(progress).items() if k != "resumed_from"},
            "results_bytes": self.results_path.stat().st_size,
        }
        write_atomic(self._progress_path, [json.dumps(state, indent=1).encode()], 0o600)


def _csv_rows(rows: Sequence[Sequence[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


def client_checker(client: EligibilityClient, path: Literal["P1", "P3"] | None = None) -> Checker:
    """Step 1 through the requester's client: each chunk one batch, its bits and reasons as rows."""

    def check(rule: Rule, applications: Sequence[Application]) -> list[tuple[str, str]]:
        answer = client.eligibility(rule, list(applications), path=path)
        return [
            ("eligible" if bit else "not eligible", answer.reason(k, rule.clauses))
            for k, bit in enumerate(answer.bits.tolist())
        ]

    return check
