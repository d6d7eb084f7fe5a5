"""Coalescing: concurrent single checks of the same rule, purpose and household size class,
arriving within a short window, go to the owners as one batch (``service.coalesce_ms``; 0, the
default, checks each alone).

A batch costs the owners one OPRF call, one masked decryption and one program on shares instead of
one each per application, so the service answers more applications per second; each still waits
at most the window longer. What owners learn is what a batch of that many applications tells them
(the number, the buckets, the size class). Their audit logs show the batch's case reference
(``coalesced-ID``) instead of each application's, and the agency's log links every call's case to
it (the HTTP entry's detail); a batch of one keeps the call's own case reference.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field

from mpc.protocols.rules import SLOT_CLASSES, Application, Rule
from parties.requester import Eligibility
from parties.requester.service.checks import Checker

__all__ = ["Coalescer"]

Key = tuple[str, str, int]  # rule, purpose, household size class


@dataclass
class _Batch:
    case: str
    applications: list[Application] = field(default_factory=list)
    full: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    answer: Eligibility | None = None
    error: BaseException | None = None


class Coalescer:
    """At most ``IN_FLIGHT`` batches per key run at once; a check arriving meanwhile joins the next
    batch, which leaves when a batch before it is done and the window since it opened has passed,
    or at once when it holds ``most`` applications. Under load batches grow to the number of
    callers waiting; alone, a check waits the window only."""

    IN_FLIGHT = 2

    def __init__(self, checker: Checker, window_ms: float, most: int) -> None:
        self.checker, self.window, self.most = checker, window_ms / 1000, most
        self._open: dict[Key, _Batch] = {}
        self._slots: dict[Key, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    def check(self, rule: Rule, purpose: str, case: str, app: Application) -> tuple[Eligibility, int, str]:
        """``app`` checked, alone or in a batch: the batch's answer, ``app``'s index in it and the
        case reference the owners saw."""
        if self.window <= 0:
            return self.checker.check(rule, purpose, case, [app]), 0, case
        key = (rule.name, purpose, next(c for c in SLOT_CLASSES if c >= len(app.members)))
        with self._lock:
            batch = self._open.get(key)
            leader = batch is None
            if batch is None:
                batch = self._open[key] = _Batch(f"coalesced-{uuid.uuid4().hex[:16]}")
            slots = self._slots.setdefault(key, threading.BoundedSemaphore(self.IN_FLIGHT))
            index = len(batch.applications)
            batch.applications.append(app)
            if len(batch.applications) >= self.most:
                self._close(key, batch)
        if leader:
            batch.full.wait(self.window)
            with slots:  # while the batches before it run, this one keeps filling
                with self._lock:
                    self._close(key, batch)
                self._run(batch, rule, purpose, case)
        batch.done.wait()
        if batch.error is not None:
            raise batch.error
        assert batch.answer is not None
        return batch.answer, index, batch.case

    def _close(self, key: Key, batch: _Batch) -> None:
        """No more applications join ``batch`` (the caller holds the lock)."""
        if self._open.get(key) is batch:
            del self._open[key]
        batch.full.set()

    def _run(self, batch: _Batch, rule: Rule, purpose: str, case: str) -> None:
        if len(batch.applications) == 1:
            batch.case = case
        try:
            batch.answer = self.checker.check(rule, purpose, batch.case, batch.applications)
        except BaseException as exc:
            batch.error = exc
        finally:
            batch.done.set()
