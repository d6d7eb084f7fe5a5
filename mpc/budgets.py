"""Budgets an owner keeps per requester: persistent counters over fixed time windows.

Each count is a key (what is counted: peer, purpose, kind, object) within a window (a UTC day, an
OPRF epoch, a bucket window, or forever). :meth:`BudgetLedger.spend` adds to it atomically and
refuses, without adding, when the sum would pass the limit. Counters live in SQLite in the owner's
state directory, so a restart does not reset them.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DAY_SECONDS", "BudgetExceeded", "BudgetLedger", "Charge", "Spent"]

DAY_SECONDS = 86_400.0


class BudgetExceeded(RuntimeError):
    """A limit reached; the message names the limit, the count and when the window resets."""

    def __init__(self, limit: str, message: str, resets_at: float | None) -> None:
        super().__init__(message)
        self.limit, self.resets_at = limit, resets_at


@dataclass(frozen=True)
class Charge:
    key: str
    amount: int
    limit: int
    window_seconds: float | None  # None: forever
    what: str  # the limit's name, for the message


@dataclass(frozen=True)
class Spent:
    used: int  # the count in this window, after spending
    resets_at: float | None  # when the window ends (epoch seconds); None: never


class BudgetLedger:
    """Counters in ``path`` (SQLite, WAL): ``spend(key, amount, limit, window_seconds)``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS counters (key TEXT NOT NULL, window INTEGER NOT NULL, "
            "used INTEGER NOT NULL, PRIMARY KEY (key, window))"
        )
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @staticmethod
    def window_of(now: float, window_seconds: float | None) -> tuple[int, float | None]:
        """The window number and its end: fixed windows from the epoch (UTC days for 86 400 s)."""
        if window_seconds is None:
            return 0, None
        number = math.floor(now / window_seconds)
        return number, (number + 1) * window_seconds

    def used(self, key: str, window_seconds: float | None, now: float | None = None) -> int:
        number, _ = self.window_of(time.time() if now is None else now, window_seconds)
        with self._lock:
            row = self._db.execute("SELECT used FROM counters WHERE key = ? AND window = ?", (key, number)).fetchone()
        return int(row[0]) if row else 0

    def spend(
        self, key: str, amount: int, limit: int, window_seconds: float | None, *, what: str, now: float | None = None
    ) -> Spent:
        """Add ``amount`` to ``key`` in the current window, or raise :class:`BudgetExceeded`
        (nothing added) if that would pass ``limit``. ``what`` names the limit in the message."""
        return self.spend_all([Charge(key, amount, limit, window_seconds, what)], now=now)[0]

    def spend_all(self, charges: list[Charge], now: float | None = None) -> list[Spent]:
        """Every charge, or none (one transaction): the first that would pass its limit raises."""
        moment = time.time() if now is None else now
        out = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for charge in charges:
                    number, resets_at = self.window_of(moment, charge.window_seconds)
                    row = self._db.execute(
                        "SELECT used FROM counters WHERE key = ? AND window = ?", (charge.key, number)
                    ).fetchone()
                    used = (int(row[0]) if row else 0) + charge.amount
                    if used > charge.limit:
                        when = (
                            "never resets"
                            if resets_at is None
                            else "resets at " + time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(resets_at))
                        )
                        raise BudgetExceeded(
                            charge.what,
                            f"limit {charge.what} = {charge.limit} reached "
                            f"({used - charge.amount} used, {charge.amount} more asked); "
                            f"{when}",
                            resets_at,
                        )
                    self._db.execute(
                        "INSERT INTO counters (key, window, used) VALUES (?, ?, ?) ON CONFLICT (key, window) "
                        "DO UPDATE SET used = excluded.used",
                        (charge.key, number, used),
                    )
                    out.append(Spent(used, resets_at))
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return out
