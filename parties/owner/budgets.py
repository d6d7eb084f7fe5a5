"""The owner's budgets per requester and purpose, and the alerts they raise.

Every handler that spends something on a requester's behalf calls one method here before the
work: computations (rule and aggregate programs) per day and per case reference, OPRF
evaluations per key and epoch, ECDH-PSI ids per day, whole-table fetches per day, and fetches of
one bucket within a window. Past a limit the call fails with RESOURCE_EXHAUSTED (the boundary
maps :class:`~mpc.budgets.BudgetExceeded`) and raises an alert; a bucket fetched often, though
still within its limit, raises an alert too (repeated probing of the same ≈ k people).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from mpc.budgets import DAY_SECONDS, BudgetLedger, Charge, Spent
from mpc.policy import Limits, Policy
from parties.rpc.boundary import Call

Alert = Callable[[Call, str, str], None]  # (call, kind, detail)


class Budgets:
    def __init__(self, path: Path, policy: Policy, alert: Alert) -> None:
        self.ledger = BudgetLedger(path)
        self._policy, self._alert = policy, alert

    def close(self) -> None:
        self.ledger.close()

    def _limits(self, call: Call) -> Limits:
        return self._policy.check_purpose(call.peer, call.purpose).limits

    def _spend(self, call: Call, what: str, amount: int, limit: int, window: float | None, key: str) -> Spent:
        return self.ledger.spend(f"{call.peer}|{call.purpose}|{key}", amount, limit, window, what=what)

    def _charge(self, call: Call, what: str, amount: int, limit: int, window: float | None, key: str) -> Charge:
        return Charge(f"{call.peer}|{call.purpose}|{key}", amount, limit, window, what)

    def computation(self, call: Call, program: str) -> None:
        """One rule or aggregate program on our data (counted by every owner whose data it reads),
        against the day's and the case's limits together (a refusal spends neither)."""
        limits = self._limits(call)
        self.ledger.spend_all(
            [
                self._charge(call, "computations_per_case", 1, limits.computations_per_case, None, f"case={call.case}"),
                self._charge(call, "computations_per_day", 1, limits.computations_per_day, DAY_SECONDS, "computations"),
            ]
        )

    def oprf(self, call: Call, key: str, epoch_seconds: float, ids: int, epoch: int) -> None:
        """``ids`` evaluations of one OPRF key: counted per time window of the epoch's length
        (the previous epoch's key, still served, shares the current window's budget) and per key
        (so no key gets more than the limit over its whole life)."""
        limit = self._limits(call).oprf_per_epoch
        self.ledger.spend_all(
            [
                self._charge(call, "oprf_per_epoch", ids, limit, epoch_seconds, f"oprf={key}"),
                self._charge(call, "oprf_per_epoch", ids, limit, None, f"oprf={key}@{epoch}"),
            ]
        )

    def psi(self, call: Call, dataset: str, ids: int) -> None:
        self._spend(call, "psi_per_day", ids, self._limits(call).psi_per_day, DAY_SECONDS, f"psi={dataset}")

    def batch(self, call: Call, dataset: str) -> None:
        self._spend(call, "batch_per_day", 1, self._limits(call).batch_per_day, DAY_SECONDS, f"batch={dataset}")

    def epsilon(self, call: Call, cost: float) -> None:
        """ε of a noised release between agencies, against the peer's total budget (counted in
        millionths, so that the ledger stays in integers)."""
        grant = self._policy.check_purpose(call.peer, call.purpose)
        self._spend(
            call,
            "release_epsilon_budget",
            math.ceil(cost * 1e6),
            round(grant.release_epsilon_budget * 1e6),
            None,
            "epsilon",
        )

    def buckets(self, call: Call, dataset: str, buckets: list[int]) -> None:
        """One fetch of each of ``buckets`` (all or none, one transaction), each against its own
        limit in the window; a bucket fetched often (still within its limit) raises an alert."""
        limits = self._limits(call)
        spent = self.ledger.spend_all(
            [
                self._charge(
                    call,
                    "bucket_queries_per_window",
                    1,
                    limits.bucket_queries_per_window,
                    limits.bucket_window_hours * 3600,
                    f"bucket={dataset}/{bucket}",
                )
                for bucket in buckets
            ]
        )
        for bucket, used in zip(buckets, spent, strict=True):
            if used.used >= limits.bucket_alert_after:
                self._alert(
                    call,
                    "repeated-bucket",
                    f"dataset={dataset} bucket={bucket} fetched {used.used} times in the current "
                    f"{limits.bucket_window_hours:g} h window (refused past {limits.bucket_queries_per_window})",
                )
