"""A screening job streamed in chunks (issue 17): every application gets one row, as a one-shot
run of the plaintext rule gives it; a job that crashes resumes after its last recorded chunk and
checks nothing twice except a chunk written but not recorded; another file or rule is refused."""

from __future__ import annotations

import csv
import datetime
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpc.data.ids import make_resident_id
from mpc.protocols.rules import Application, Rule, evaluate_plain, load_rules
from parties.requester.screening import Checker, JobMismatchError, ScreeningJob
from tests.rule_texts import one_clause_rule

RULE = load_rules(one_clause_rule("one-clause", 50_000)).get("one-clause")


def resident_id(k: int) -> str:
    return make_resident_id("110101", datetime.date(1980, 1, 1) + datetime.timedelta(days=k // 400), k % 400)


def plain_checker(values: dict[str, int], calls: list[int]) -> Checker:
    """The plaintext rule as the checker; ``calls`` records each chunk's size."""

    def check(rule: Rule, applications: Sequence[Application]) -> list[tuple[str, str]]:
        calls.append(len(applications))
        table = {("tax", "income", "annual_income"): values}
        return [("eligible" if e else "not eligible", "") for e, _ in evaluate_plain(rule, applications, table, {})]

    return check


def write_file(path: Path, people: list[tuple[str, str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["application_id", "resident_id", "relation"])
        writer.writerows(people)


def city(count: int) -> tuple[list[tuple[str, str, str]], dict[str, int]]:
    people, values = [], {}
    for k in range(count):
        head, member = resident_id(2 * k), resident_id(2 * k + 1)
        people += [(f"A{k:05d}", head, "applicant"), (f"A{k:05d}", member, "spouse")]
        values[head], values[member] = (k * 7919) % 60_000, (k * 104_729) % 30_000
    return people, values


def results(job: ScreeningJob) -> list[list[str]]:
    with job.results_path.open(encoding="utf-8") as f:
        return list(csv.reader(f))


@settings(deadline=None, max_examples=15)
@given(count=st.integers(0, 60), chunk=st.integers(1, 25), crash_at=st.integers(1, 5))
def test_a_crashed_job_resumes_and_matches_a_one_shot_run(
    tmp_path_factory: pytest.TempPathFactory, count: int, chunk: int, crash_at: int
) -> None:
    root = tmp_path_factory.mktemp("job")
    people, values = city(count)
    write_file(root / "applications.csv", people)
    oneshot_calls: list[int] = []
    oneshot = ScreeningJob(root / "oneshot", root / "applications.csv", RULE, chunk=chunk)
    done = oneshot.run(plain_checker(values, oneshot_calls))
    assert done.applications == count and done.results == count and done.errors == 0
    expected = results(oneshot)
    assert len(expected) == count + 1 and [r[0] for r in expected[1:]] == [f"A{k:05d}" for k in range(count)]

    calls: list[int] = []
    inner = plain_checker(values, calls)

    def crashes(rule: Rule, applications: Sequence[Application]) -> list[tuple[str, str]]:
        if len(calls) + 1 == crash_at:
            raise KeyboardInterrupt("killed")
        return inner(rule, applications)

    job = ScreeningJob(root / "crashed", root / "applications.csv", RULE, chunk=chunk)
    chunks = -(-count // chunk)
    if crash_at <= chunks:
        with pytest.raises(KeyboardInterrupt):
            job.run(crashes)
        before = len(calls)
        again = ScreeningJob(root / "crashed", root / "applications.csv", RULE, chunk=chunk)
        resumed = again.run(plain_checker(values, calls))
        assert resumed.resumed_from == (crash_at - 1) * chunk
        assert sum(calls[before:]) == count - resumed.resumed_from  # nothing checked twice
    else:
        job.run(crashes)
    assert results(job) == expected


def test_a_chunk_written_but_not_recorded_is_checked_again(tmp_path: Path) -> None:
    people, values = city(10)
    write_file(tmp_path / "a.csv", people)
    job = ScreeningJob(tmp_path / "job", tmp_path / "a.csv", RULE, chunk=4)
    job.run(plain_checker(values, []))
    expected = results(job)
    progress = (tmp_path / "job" / "progress.json").read_text()
    # as if the crash came after the last chunk's append and before its record: an older record
    first = ScreeningJob(tmp_path / "older", tmp_path / "a.csv", RULE, chunk=4)
    calls: list[int] = []
    stop = plain_checker(values, calls)

    def two_chunks(rule: Rule, applications: Sequence[Application]) -> list[tuple[str, str]]:
        if len(calls) == 2:
            raise KeyboardInterrupt
        return stop(rule, applications)

    with pytest.raises(KeyboardInterrupt):
        first.run(two_chunks)
    with (tmp_path / "older" / "results.csv").open("a", encoding="utf-8") as f:
        f.write("A00008,eligible,half-written\n")  # appended, never recorded
    resumed = ScreeningJob(tmp_path / "older", tmp_path / "a.csv", RULE, chunk=4).run(plain_checker(values, calls))
    assert resumed.resumed_from == 8 and results(first) == expected and progress


def test_another_file_or_rule_is_refused_and_split_applications_are_errors(tmp_path: Path) -> None:
    people, values = city(6)
    write_file(tmp_path / "a.csv", [*people, people[0]])  # A00000 again, after its lines ended
    job = ScreeningJob(tmp_path / "job", tmp_path / "a.csv", RULE, chunk=3)
    done = job.run(plain_checker(values, []))
    rows = results(job)
    assert done.results == 6 and done.errors == 1
    assert rows[-1][0] == "A00000" and rows[-1][1] == "error" and "line 14" in rows[-1][2]
    assert "sort the file by application_id" in rows[-1][2]
    write_file(tmp_path / "b.csv", people)
    with pytest.raises(JobMismatchError, match="use a new --job directory"):
        ScreeningJob(tmp_path / "job", tmp_path / "b.csv", RULE, chunk=3).run(plain_checker(values, []))
    other = load_rules(one_clause_rule("one-clause", 10)).get("one-clause")
    with pytest.raises(JobMismatchError):  # the same file and rule asked under another case
        ScreeningJob(tmp_path / "job", tmp_path / "a.csv", RULE, chunk=3, context={"case": "X"}).run(
            plain_checker(values, [])
        )
    with pytest.raises(JobMismatchError):
        ScreeningJob(tmp_path / "job", tmp_path / "a.csv", other, chunk=3).run(plain_checker(values, []))


def test_a_second_run_of_a_job_in_progress_is_refused(tmp_path: Path) -> None:
    people, values = city(4)
    write_file(tmp_path / "a.csv", people)
    job = ScreeningJob(tmp_path / "job", tmp_path / "a.csv", RULE, chunk=2)
    inner = plain_checker(values, [])

    def runs_the_job_again(rule: Rule, applications: Sequence[Application]) -> list[tuple[str, str]]:
        with pytest.raises(JobMismatchError, match="another run of this job is in progress"):
            ScreeningJob(tmp_path / "job", tmp_path / "a.csv", RULE, chunk=2).run(inner)
        return inner(rule, applications)

    assert job.run(runs_the_job_again).results == 4
    (tmp_path / "job" / "results.csv").write_text("application_id,result,reason\n", encoding="utf-8")
    with pytest.raises(JobMismatchError, match="shorter than recorded"):
        ScreeningJob(tmp_path / "job", tmp_path / "a.csv", RULE, chunk=2).run(inner)
