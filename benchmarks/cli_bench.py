"""``python -m benchmarks.cli_bench``: how fast the requester's command line starts and answers.

- ``cli_help_s``: ``mpc-query --help``, a fresh process each time (median of 7). Target < 0.5 s:
  the command line imports its protocol stacks only in the command that needs them.
- ``cli_one_application_s``: ``mpc-query eligibility`` with a file of one application (a
  household of the synthetic city) against the public-rental-housing rule (three owners), a
  fresh process each time (median of 5), after one warm-up run in which the owners encrypt their
  tables. Target < 1.5 s. Each run's result file is checked against the plaintext rule.

The deployment is a coordinator and the four agency daemons of ``demo/deployment.py`` on
loopback with a small city (2 000 residents), the owners' limits raised as for every load test
(``benchmarks/grants.py``: the same applicant is asked again and again); civil-affairs asks.
"""

from __future__ import annotations

import csv
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.report import Result, ours_only, print_and_save

__all__ = ["run"]

STATE = Path(__file__).parent / ".state" / "cli"
ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "rules" / "examples.toml"
RULE, REQUESTER, PURPOSE = "public-rental-housing", "civil-affairs", "public-rental-housing"
RESIDENTS = 2_000
HELP_TARGET_S, ONE_TARGET_S = 0.5, 1.5


def _command() -> list[str]:
    """How an agency starts ``mpc-query``: the installed script next to this interpreter, else the module."""
    script = Path(sys.executable).with_name("mpc-query")
    return [str(script)] if script.exists() else [sys.executable, "-m", "parties.cli.query"]


def _environment() -> dict[str, str]:
    """This process's environment with this checkout first on the import path (a worktree's code, not an install's)."""
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT)}


def _timed(arguments: list[str]) -> float:
    """Seconds one run of ``mpc-query ARGUMENTS`` takes; raises with its output when it fails."""
    started = time.perf_counter()
    done = subprocess.run([*_command(), *arguments], capture_output=True, text=True, env=_environment(), timeout=300)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"mpc-query {arguments[0]} exited {done.returncode}: {(done.stdout + done.stderr)[-500:]}")
    return seconds


def help_seconds(runs: int = 7) -> float:
    """The median wall time of ``mpc-query --help`` in a fresh process (one discarded warm-up run)."""
    _timed(["--help"])
    return statistics.median(_timed(["--help"]) for _ in range(runs))


def one_application_seconds(runs: int = 5, say: object = print) -> float:
    """The median wall time of ``mpc-query eligibility`` for one application against a running
    deployment, each run checked against the plaintext evaluation of the rule."""
    from benchmarks.grants import for_load_test
    from demo.cluster import LocalCluster
    from demo.deployment import household_applications, party_specs, plain_values
    from demo.synthetic import generate
    from mpc.protocols.rules import evaluate_plain, load_rules

    log = say if callable(say) else print
    tables = generate(RESIDENTS, seed=7)
    rule = load_rules(RULES).get(RULE)
    application = household_applications(tables, 1)[0]
    expected = "eligible" if evaluate_plain(rule, [application], plain_values(tables), {})[0][0] else "not eligible"
    shutil.rmtree(STATE, ignore_errors=True)  # a small city: a fresh deployment is quicker than a stale one
    STATE.mkdir(parents=True)
    applicants = STATE / "one-application.csv"
    with applicants.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["application_id", "resident_id", "relation"])
        for k, member in enumerate(application.members):
            writer.writerow([application.reference, member, "applicant" if k == 0 else "member"])
    out = STATE / "results.csv"
    specs = party_specs(tables, STATE / "data")
    for spec in specs:
        for_load_test(spec.policy)  # the same applicant, again and again
    with LocalCluster(STATE, specs) as cluster:
        cluster.approve_rule(rule, REQUESTER, [PURPOSE])
        arguments = ["eligibility", "--rule", RULE, "--rules", str(RULES), "--applicants", str(applicants)]
        arguments += ["--out", str(out), "--config", str(cluster.config(REQUESTER)), "--purpose", PURPOSE]

        def once(case: str) -> float:
            seconds = _timed([*arguments, "--case", case])
            with out.open(newline="", encoding="utf-8") as f:
                got = [(r["application_id"], r["result"]) for r in csv.DictReader(f)]
            if got != [(application.reference, expected)]:
                raise AssertionError(f"mpc-query answered {got}, the plaintext rule {expected}")
            return seconds

        log(f"warm-up (the owners encrypt their tables): {once('CLI-BENCH-WARM-UP'):.1f} s")
        return statistics.median(once(f"CLI-BENCH-{k}") for k in range(runs))


def run(say: object = print) -> list[Result]:
    """Both figures, with their targets."""
    log = say if callable(say) else print
    shown = help_seconds()
    log(f"mpc-query --help: {shown:.3f} s (median)")
    one = one_application_seconds(say=log)
    log(f"mpc-query eligibility, one application: {one:.3f} s (median)")
    return [
        ours_only("cli_help_s", "s", shown, f"< {HELP_TARGET_S:g} s", shown < HELP_TARGET_S),
        ours_only("cli_one_application_s", "s", one, f"< {ONE_TARGET_S:g} s", one < ONE_TARGET_S),
    ]


def main() -> None:
    from rich.console import Console

    console = Console(width=160)
    print_and_save(run(console.print), console, Path(__file__).parent / "cli.json")


if __name__ == "__main__":
    main()
