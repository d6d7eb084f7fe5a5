"""``mpc-query eligibility`` against real daemons with a file holding bad rows: each bad
application gets its error row (file and line), every other one the result the plaintext rule
gives, and the exit status says that some applications are errors."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from demo.cluster import LocalCluster
from demo.synthetic import AgencyTables
from mpc.protocols.rules import Application, Rule, evaluate_plain, load_rules
from tests.e2e.conftest import ONE_OWNER_RULES, eligibility_cli, owner_values


def _expected(tables: AgencyTables, applications: list[Application]) -> dict[str, str]:
    """The plaintext rule's result for each application."""
    rule = load_rules(ONE_OWNER_RULES).get("household-income")
    incomes = {("tax", "income", "annual_income"): owner_values(tables.tax, "annual_income")}
    plain = evaluate_plain(rule, applications, incomes, {})
    return {a.reference: "eligible" if e else "not eligible" for a, (e, _) in zip(applications, plain, strict=True)}


@pytest.mark.parametrize("layout", ["per-person", "per-application"])
def test_bad_rows_are_error_rows_and_the_rest_match_the_plaintext_rule(
    cluster: LocalCluster, tables: AgencyTables, tmp_path: Path, layout: str
) -> None:
    incomes = owner_values(tables.tax, "annual_income")
    known = sorted(incomes)
    poor = [p for p in known if 0 < incomes[p] < 20_000]
    good = [
        Application("A1", known[0], (known[0], known[1])),
        Application("A2", poor[0], (poor[0],)),  # eligible
        Application("A3", poor[1], (poor[1], poor[2], "11010519491231002X")),  # the last one unknown to tax
    ]
    applicants = tmp_path / "applications.csv"
    if layout == "per-person":
        lines = ["application_id,resident_id,relation"]
        lines += [
            f"{a.reference},{m},{'applicant' if k == 0 else 'member'}"
            for a in good[:2]
            for k, m in enumerate(a.members)
        ]
        lines += [f"B1,{known[5]},applicant", f"B1,{known[5].lower()},member", f"B2,{known[6]}"]  # lines 5-7
        lines += [f"A3,{m},{'applicant' if k == 0 else 'member'}" for k, m in enumerate(good[2].members)]
        errors = {
            "B1": f"{applicants}, line 6: the same person as on line 5 (listed twice)",
            "B2": f"{applicants}, line 7: 2 fields, the header has 3",
        }
    else:
        lines = ["application_id,applicant,members"]
        lines += [f"{a.reference},{a.applicant},{'|'.join(a.members)}" for a in good[:2]]  # the applicant listed too
        lines += [f"B1,{known[5]},{known[6]};{known[6]}", f'B2,{known[6]},"{known[7]}']  # lines 4, 5
        lines += [f"A3,{good[2].applicant},{';'.join(good[2].members[1:])}"]
        errors = {
            "B1": f"{applicants}, line 4: member 2 and member 1 are the same person (listed twice)",
            "B2": f"{applicants}, line 5: an unclosed quote",
        }
    applicants.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "results.csv"
    run = eligibility_cli(cluster, "housing", _rules(tmp_path), applicants, out, f"HZ-CLI-{layout}")
    assert run.returncode == 3, run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    with out.open(newline="", encoding="utf-8") as f:
        rows = [(r["application_id"], r["result"], r["reason"]) for r in csv.DictReader(f)]
    expected = _expected(tables, good)
    assert [r[0] for r in rows] == ["A1", "A2", "B1", "B2", "A3"]
    assert {r[0]: r[2] for r in rows if r[1] == "error"} == errors
    assert {r[0]: r[1] for r in rows if r[1] != "error"} == expected
    assert len(set(expected.values())) == 2  # both outcomes occur: the rows are not all alike


def _rules(tmp: Path) -> Path:
    path = tmp / "rules.toml"
    path.write_text(ONE_OWNER_RULES, encoding="utf-8")
    return path


def _screen(cluster: LocalCluster, rules_file: Path, applicants: Path, job: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parties.cli.query", "screen", "--rule", "household-income", "--rules", str(rules_file),
         "--applicants", str(applicants), "--job", str(job), "--chunk", "7", "--config", str(cluster.config("housing")),
         "--purpose", "public-rental-housing", "--case", "SCREEN-1"],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip


def test_a_screening_job_stopped_midway_resumes_and_matches_the_plaintext_rule(
    cluster: LocalCluster, tables: AgencyTables, tmp_path: Path
) -> None:
    """``mpc-query screen`` in chunks of 7 against the real daemons: a job stopped after two chunks
    (as by a crash: recorded progress, then nothing) resumes with the same command, checks only
    the rest, and every application's row is the plaintext rule's."""
    from parties.requester import Client
    from parties.requester.screening import ScreeningJob, client_checker

    incomes = owner_values(tables.tax, "annual_income")
    known = sorted(incomes)
    applications = [Application(f"S{k:03d}", known[2 * k], (known[2 * k], known[2 * k + 1])) for k in range(30)]
    applicants = tmp_path / "applications.csv"
    lines = ["application_id,applicant,members"]
    lines += [f"{a.reference},{a.applicant},{a.members[1]}" for a in applications]
    applicants.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rules_file, job = _rules(tmp_path), tmp_path / "job"
    rule = load_rules(ONE_OWNER_RULES).get("household-income")

    class Crash(Exception):
        pass

    checked: list[int] = []
    with Client.from_config(cluster.config("housing"), "public-rental-housing", "SCREEN-1") as client:
        real = client_checker(client)

        def two_chunks(rule: Rule, part: Sequence[Application]) -> list[tuple[str, str]]:
            if len(checked) == 2:
                raise Crash
            checked.append(len(part))
            return real(rule, part)

        with pytest.raises(Crash):
            context = {
                "config": str(cluster.config("housing").resolve()),
                "purpose": "public-rental-housing",
                "case": "SCREEN-1",
            }  # as mpc-query screen names its request: the command below resumes this job
            ScreeningJob(job, applicants, rule, chunk=7, context=context).run(two_chunks)
    run = _screen(cluster, rules_file, applicants, job)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "30 applications (resumed after 14): 30 results, 0 errors" in " ".join(run.stdout.split())
    with (job / "results.csv").open(newline="", encoding="utf-8") as f:
        rows = {r["application_id"]: r["result"] for r in csv.DictReader(f)}
    assert list(rows) == [a.reference for a in applications]
    assert rows == _expected(tables, applications)
    again = _screen(cluster, rules_file, applicants, job)  # done: nothing left to check
    assert again.returncode == 0 and "resumed after 30" in " ".join(again.stdout.split())
    other = tmp_path / "other.csv"
    other.write_text("\n".join(lines[:5]) + "\n", encoding="utf-8")
    refused = _screen(cluster, rules_file, other, job)
    assert refused.returncode == 2 and "use a new --job directory" in refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr
