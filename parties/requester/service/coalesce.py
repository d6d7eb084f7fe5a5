"""Coalescing (``service.coalesce``, on by default): concurrent single checks of the same rule,
purpose and household size class go to the owners as one batch when they would otherwise queue.

At most ``in_flight`` round trips per key run at once (one by default: measured on two cores, one
batch of everyone waiting costs less CPU per application than two half-size batches side by side,
and answered more applications per second). A check that finds a free slot and no batch waiting
runs at once, alone, under its own case reference: a caller on its own sees the latency, and the
owners the audit entries, of a service that does not coalesce. A check that finds every slot
taken joins the batch waiting for the next free slot (``most`` applications at most; a full batch
waits, and the next check opens another). With ``window_ms`` > 0 a batch also waits that long
from its opening, or until it is full, even when a slot is free.

A batch costs the owners one OPRF call, one masked decryption and one program on shares instead of
one each per application, so the service answers more applications per second under load. What
owners learn is what a batch of that many applications tells them (the number, the buckets, the
size class). Their audit logs show the batch's case reference (``coalesced-ID``) instead of each
application's, and the agency's log links every call's case to it (the HTTP entry's detail); a
batch of one keeps the call's own case reference.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

from mpc.protocols.rules import SLOT_CLASSES, Application, Rule
from parties.requester import Eligibility
from parties.requester.service.checks import Checker

__all__ = ["Coalescer"]

Key = tuple[str, str, int]  # rule, purpose, household size class


@dataclass
class _Batch:
    case: str
    opened: float  # time.monotonic()
    applications: list[Application] = field(default_factory=list)
    full: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    answer: Eligibility | None = None
    error: BaseException | None = None


@dataclass
class _Key:
    running: int = 0  # round trips of this key in flight (batches and checks alone)
    waiting: deque[_Batch] = field(default_factory=deque)  # batches waiting for a slot, oldest first
    open: _Batch | None = None  # the one new checks join (the last of ``waiting``, unless full)


class Coalescer:
    """Checks through ``checker``, alone or in batches (see the module); ``enabled`` False checks
    each alone, however many run at once."""

    IN_FLIGHT = 1  # one round trip per key at a time: under load its batches grow to everyone waiting

    def __init__(
        self, checker: Checker, window_ms: float, most: int, enabled: bool = True, in_flight: int = IN_FLIGHT
    ) -> None:
        self.checker, self.window, self.most = checker, window_ms / 1000, most
        self.enabled, self.in_flight = enabled, in_flight
        self._keys: dict[Key, _Key] = {}
        self._changed = threading.Condition()

    def check(self, rule: Rule, purpose: str, case: str, app: Application) -> tuple[Eligibility, int, str]:
        """``app`` checked, alone or in a batch: the batch's answer, ``app``'s index in it and the
        case reference the owners saw."""
        if not self.enabled:
            return self.checker.check(rule, purpose, case, [app]), 0, case
        key = (rule.name, purpose, next(c for c in SLOT_CLASSES if c >= len(app.members)))
        with self._changed:
            state = self._keys.setdefault(key, _Key())
            alone = not state.waiting and state.running < self.in_flight and (self.window <= 0 or not state.running)
            if alone:
                state.running += 1
            else:
                batch, index, leader = self._join(state, app)
        if alone:
            try:
                return self.checker.check(rule, purpose, case, [app]), 0, case
            finally:
                self._release(state)
        if leader:
            self._lead(state, batch)
            try:
                self._run(batch, rule, purpose, case)
            finally:
                self._release(state)
        batch.done.wait()
        if batch.error is not None:
            raise batch.error
        assert batch.answer is not None
        return batch.answer, index, batch.case

    def _join(self, state: _Key, app: Application) -> tuple[_Batch, int, bool]:
        """``app`` in the open batch (a new one if none): the batch, ``app``'s index in it, and
        whether this check opened it (and so leads it). The caller holds the lock."""
        batch, leader = state.open, state.open is None
        if batch is None:
            batch = state.open = _Batch(f"coalesced-{uuid.uuid4().hex[:16]}", time.monotonic())
            state.waiting.append(batch)
        batch.applications.append(app)
        if len(batch.applications) >= self.most:
            batch.full, state.open = True, None
            self._changed.notify_all()
        return batch, len(batch.applications) - 1, leader

    def _lead(self, state: _Key, batch: _Batch) -> None:
        """Wait until ``batch`` is the oldest waiting, a slot is free and it is full or its window
        has passed; then it takes the slot and no more checks join it."""
        with self._changed:
            while True:
                left = batch.opened + self.window - time.monotonic()
                if state.waiting[0] is batch and state.running < self.in_flight and (batch.full or left <= 0):
                    break
                self._changed.wait(left if left > 0 and not batch.full else None)
            state.waiting.popleft()
            if state.open is batch:
                state.open = None
            state.running += 1
            self._changed.notify_all()  # the next waiting batch is now the oldest

    def _release(self, state: _Key) -> None:
        with self._changed:
            state.running -= 1
            self._changed.notify_all()

    def _run(self, batch: _Batch, rule: Rule, purpose: str, case: str) -> None:
        if len(batch.applications) == 1:
            batch.case = case
        try:
            batch.answer = self.checker.check(rule, purpose, batch.case, batch.applications)
        except BaseException as exc:
            batch.error = exc
        finally:
            batch.done.set()
