"""The owner's persistent budgets: atomic, refusing without spending, per window, surviving a restart."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mpc.budgets import DAY_SECONDS, BudgetExceeded, BudgetLedger

NOON = 1_780_000_000.0  # some instant; windows are fixed from the epoch


def test_spends_up_to_the_limit_then_refuses_without_spending(tmp_path: Path) -> None:
    ledger = BudgetLedger(tmp_path / "b.sqlite")
    assert ledger.spend("p|x|oprf", 7, 10, DAY_SECONDS, what="oprf_per_epoch", now=NOON).used == 7
    with pytest.raises(BudgetExceeded) as refused:
        ledger.spend("p|x|oprf", 4, 10, DAY_SECONDS, what="oprf_per_epoch", now=NOON)
    assert refused.value.limit == "oprf_per_epoch"
    assert "limit oprf_per_epoch = 10 reached (7 used, 4 more asked); resets at" in str(refused.value)
    assert ledger.used("p|x|oprf", DAY_SECONDS, now=NOON) == 7  # the refused request spent nothing
    assert ledger.spend("p|x|oprf", 3, 10, DAY_SECONDS, what="oprf_per_epoch", now=NOON).used == 10


def test_a_new_window_starts_from_zero_and_forever_never_resets(tmp_path: Path) -> None:
    ledger = BudgetLedger(tmp_path / "b.sqlite")
    spent = ledger.spend("k", 5, 5, DAY_SECONDS, what="per_day", now=NOON)
    assert spent.resets_at is not None and NOON < spent.resets_at <= NOON + DAY_SECONDS
    assert ledger.spend("k", 5, 5, DAY_SECONDS, what="per_day", now=spent.resets_at).used == 5
    assert ledger.spend("case", 1, 1, None, what="per_case", now=NOON).resets_at is None
    with pytest.raises(BudgetExceeded, match="never resets"):
        ledger.spend("case", 1, 1, None, what="per_case", now=NOON + 365 * DAY_SECONDS)


def test_counts_survive_a_restart(tmp_path: Path) -> None:
    first = BudgetLedger(tmp_path / "b.sqlite")
    first.spend("k", 9, 10, DAY_SECONDS, what="per_day", now=NOON)
    first.close()
    again = BudgetLedger(tmp_path / "b.sqlite")
    with pytest.raises(BudgetExceeded):
        again.spend("k", 2, 10, DAY_SECONDS, what="per_day", now=NOON)


def test_concurrent_spending_never_passes_the_limit(tmp_path: Path) -> None:
    ledger = BudgetLedger(tmp_path / "b.sqlite")
    granted: list[int] = []

    def spend() -> None:
        for _ in range(50):
            try:
                ledger.spend("k", 1, 120, DAY_SECONDS, what="per_day", now=NOON)
                granted.append(1)
            except BudgetExceeded:
                pass

    threads = [threading.Thread(target=spend) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 120 and ledger.used("k", DAY_SECONDS, now=NOON) == 120
