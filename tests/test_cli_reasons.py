"""What a not-eligible result says: the failed clauses whose owners disclose them, and that the
list is incomplete where other clauses were not disclosed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mpc.protocols.rules import load_rules
from parties.cli.query import _cases
from parties.requester.results import Eligibility

RULE = load_rules(Path(__file__).resolve().parents[1] / "rules" / "examples.toml").get("public-rental-housing")


def test_a_reason_never_passes_for_the_whole_one() -> None:
    """``Eligibility.reason``, which mpc-query and the requester service both write."""

    def answer(eligible: int, disclosed: dict[str, int]) -> Eligibility:
        return Eligibility(np.array([eligible], np.uint8), {n: np.array([v], np.uint8) for n, v in disclosed.items()})

    every = {"income_per_member": 1, "no_property": 0, "local_resident": 1}
    assert answer(1, every).reason(0, RULE.clauses) == ""
    assert answer(0, every).reason(0, RULE.clauses) == "failed: no_property"
    partial = {"no_property": 0, "local_resident": 1}  # tax does not disclose its clause
    assert answer(0, partial).reason(0, RULE.clauses) == "failed: no_property; other clauses not disclosed"
    assert answer(0, {"no_property": 1}).reason(0, RULE.clauses) == "failing clauses not disclosed by their owners"


def test_cases_per_application_from_the_file(tmp_path: Path) -> None:
    with_cases = tmp_path / "a.csv"
    with_cases.write_text(
        "application_id,resident_id,relation,case\nA1,x,applicant,HZ-1\nA1,y,member,\nA2,z,applicant,\n"
        "A3,w,applicant,bad\tcase\n"
    )
    assert _cases(with_cases, "DEFAULT") == {"A1": "HZ-1"}  # empty or unusable cells: the --case
    without = tmp_path / "b.csv"
    without.write_text("application_id,resident_id,relation\nA1,x,applicant\n")
    assert _cases(without, "DEFAULT") == {}
