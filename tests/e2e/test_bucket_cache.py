"""A requester that keeps the buckets it fetched (the service does): the second check of the same
households sends no rows again, gives the plaintext's answers, and each owner still counts and
audits every bucket."""

from __future__ import annotations

import numpy as np

from demo.cluster import LocalCluster
from demo.synthetic import AgencyTables
from mpc.protocols.rules import Application, evaluate_plain, load_rules
from parties.requester.bucket_cache import BucketCache
from tests.e2e.conftest import ONE_OWNER_RULES, audit_entries, client_for, owner_values


def _buckets(entries: list[dict[str, object]], case: str) -> tuple[list[int], int, int]:
    """The buckets an owner served for ``case`` (in the order asked), the rows it counted, and
    how many the requester said it kept."""
    asked, rows, kept = [], 0, 0
    for e in entries:
        if e["action"] == "rpc:GetEncryptedBucket" and e.get("case") == case:
            detail = str(e["detail"])
            asked += [int(b) for b in detail.split("buckets=")[1].split("/")[0].split(",")]
            rows += int(str(e["rows"]))
            kept += int(detail.split("kept_by_requester=")[1].split()[0]) if "kept_by_requester=" in detail else 0
    return asked, rows, kept


def test_kept_buckets_are_not_sent_again_and_the_answers_match_plaintext(
    cluster: LocalCluster, tables: AgencyTables
) -> None:
    rule = load_rules(ONE_OWNER_RULES).get("household-income")
    incomes = owner_values(tables.tax, "annual_income")
    known = sorted(incomes)
    rng = np.random.default_rng(31)
    applications = [
        Application(f"K{i}", members[0], members)
        for i in range(24)
        for members in [tuple(known[int(j)] for j in rng.choice(len(known), 1 + i % 4))]
    ]
    applications.append(Application("ghost", "110105194912310019", ("110105194912310019",)))
    expected = [
        int(e) for e, _ in evaluate_plain(rule, applications, {("tax", "income", "annual_income"): incomes}, {})
    ]
    cache = BucketCache(64 << 20)
    answers = []
    with client_for(cluster, "housing", purpose="public-rental-housing") as client:
        client.bucket_cache = cache
        for case in ("KEPT-FIRST", "KEPT-AGAIN"):
            client.case = case
            answers.append(client.eligibility(rule, applications, reasons=False, path="P3").bits.tolist())
            if case == "KEPT-FIRST":
                assert (cache.hits, len(cache)) == (0, cache.misses)
    assert answers == [expected, expected] and 0 < sum(expected) < len(expected)
    entries = audit_entries(cluster, "tax")
    first, again = _buckets(entries, "KEPT-FIRST"), _buckets(entries, "KEPT-AGAIN")
    assert len(first[0]) == len(set(first[0])) == cache.misses > 1
    assert sorted(again[0]) == sorted(first[0]) and again[1] == first[1]  # every bucket counted again
    assert (first[2], again[2]) == (0, cache.hits) and cache.hits == cache.misses  # none of its rows sent again
