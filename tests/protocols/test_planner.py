"""The lookup planner: P3 for points and small batches, P1 for large ones, policy and forcing."""

from __future__ import annotations

import pytest

from mpc.protocols.planner import plan_lookup

MILLION = 1_000_000


def test_a_point_query_takes_its_bucket() -> None:
    plan = plan_lookup(
        "tax",
        "income",
        rows=1,
        distinct=1,
        table_rows=MILLION,
        bucket_bits=9,
        rows_per_plaintext=24,
        batch_allowed=True,
    )
    assert plan.path == "P3" and plan.estimate_p3_s < 0.1 < plan.estimate_p1_s  # type: ignore[operator]
    assert "tax/income: P3 for 1 rows" in plan.describe()


def test_a_large_batch_fetches_the_whole_table() -> None:
    plan = plan_lookup(
        "tax",
        "income",
        rows=600_000,
        distinct=290_000,
        table_rows=MILLION,
        bucket_bits=9,
        rows_per_plaintext=24,
        batch_allowed=True,
    )
    assert plan.path == "P1" and "24 rows per decryption" in plan.reason
    assert plan.estimate_p1_s is not None and plan.estimate_p1_s < plan.estimate_p3_s / 10


def test_the_crossing_point_grows_with_the_table() -> None:
    def first_p1(table_rows: int) -> int:
        rows = 1
        while plan_lookup("o", "d", rows, rows, table_rows, 9, 24, True).path == "P3":
            rows *= 2
        return rows

    assert first_p1(10_000) < first_p1(MILLION) <= 8192


def test_owner_policy_and_forcing() -> None:
    refused = plan_lookup("tax", "income", 600_000, 290_000, MILLION, 9, 24, batch_allowed=False)
    assert refused.path == "P3" and refused.estimate_p1_s is None and "allows no batch lookups" in refused.reason
    forced = plan_lookup("tax", "income", 1, 1, MILLION, 9, 24, batch_allowed=True, force="P1")
    assert forced.path == "P1" and forced.reason.startswith("forced")
    with pytest.raises(PermissionError, match="allows no batch lookups"):
        plan_lookup("tax", "income", 1, 1, MILLION, 9, 24, batch_allowed=False, force="P1")
