"""Grants for load tests. An owner's default budgets fit an agency's working day (see
``mpc.policy.Limits``); a benchmark asks for more in minutes than an agency does in a month, with
the same applicants again and again, so it raises every limit explicitly. Nothing else changes:
the checks still run on every call (their cost is in the figures)."""

from __future__ import annotations

import copy
from typing import Any

LOAD_TEST: dict[str, Any] = {
    "rate_limit_per_minute": 10_000_000,
    "limits": {
        "computations_per_day": 10**9,
        "computations_per_case": 10**9,
        "oprf_per_epoch": 10**12,
        "psi_per_day": 10**12,
        "batch_per_day": 10**9,
        "bucket_alert_after": 10**9,
        "bucket_queries_per_window": 10**9,
    },
}


def for_load_test(policy: dict[str, Any]) -> dict[str, Any]:
    """``policy`` (an owner's ``[policy]`` as a dict) with every peer's limits raised for a load test."""
    for grant in policy["peers"].values():
        grant.update(copy.deepcopy(LOAD_TEST))
    return policy
