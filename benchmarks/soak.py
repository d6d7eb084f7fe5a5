"""``python -m benchmarks.soak``: sustained load with a fault, measured.

64 concurrent requesters (threads, each with its own client of the civil-affairs agency) mix
point queries (one application) and small batches (20 applications) of the public-rental-housing
rule against three owners for ``--seconds`` (600 by default; ``make bench`` runs a short form).
A quarter of the way in, one owner (tax) is killed with SIGKILL and started again; half way, the
coordinator is stopped and started again on its address. Every request ends in a result or a
precise error: the table of outcomes by status is printed, and every application sent gets a row
in ``results.csv`` (its result, checked against the plaintext evaluation of the rule, or the
status its request ended with), so that the per-application table shows none left without one.
After an error each requester waits a second before its next request, as a well-behaved client
does; for each fault the errors until the next one and the time of the last (how long clients saw
the fault) are printed. The latency percentiles of answered point queries and the throughput are printed; the daemons'
resident memory is sampled throughout (its growth from the first to the last third is reported);
afterwards every audit chain is verified.
"""

from __future__ import annotations

import collections
import csv
import math
import random
import signal
import threading
import time
from pathlib import Path

import numpy as np
import typer
from rich.console import Console

from benchmarks.grants import for_load_test
from benchmarks.report import Result, print_and_save
from demo.cluster import LocalCluster
from demo.deployment import household_applications, party_specs, plain_values
from demo.synthetic import generate
from mpc.audit import load_or_create_signing_key, verify_log
from mpc.protocols.rules import Application, evaluate_plain, load_rules
from parties.requester import Client, RemoteError

__all__ = ["run"]

STATE = Path(__file__).parent / ".state" / "soak"
RULES = Path(__file__).resolve().parents[1] / "rules" / "examples.toml"
KILLED = "tax"
ERROR_BACKOFF_SECONDS = 1.0


def _rss_mb(cluster: LocalCluster) -> dict[str, float]:
    out = {}
    for name, member in cluster.members.items():
        if member.process is None or member.process.poll() is not None:
            continue
        status = Path(f"/proc/{member.process.pid}/status").read_text()
        out[name] = int(next(x for x in status.splitlines() if x.startswith("VmRSS:")).split()[1]) / 1024
    return out


def run(
    seconds: float = 600.0, clients: int = 64, residents: int = 20_000, say: object = print, kill: bool = True
) -> list[Result]:
    log = say if callable(say) else print
    state = STATE / str(residents)
    tables = generate(residents, seed=7)
    specs = party_specs(tables, state / "data")
    for spec in specs:
        for_load_test(spec.policy)
    rule = load_rules(RULES).get("public-rental-housing")
    applications = household_applications(tables, 4_000)
    expected = {
        a.reference: e
        for a, (e, _) in zip(applications, evaluate_plain(rule, applications, plain_values(tables), {}), strict=True)
    }
    rows: list[tuple[str, str, str]] = []  # (request, application, result or status): one per application sent
    outcomes: collections.Counter[str] = collections.Counter()
    examples: dict[str, str] = {}  # the latest message per status
    late: collections.Counter[str] = collections.Counter()
    sent = [0]  # applications sent, each in a request that ended with an outcome
    latencies: list[float] = []
    ended: list[tuple[float, str]] = []  # (monotonic time, outcome) of every request
    fault_times: list[tuple[str, float]] = []  # (fault, monotonic time it began)
    lock = threading.Lock()
    rss: list[tuple[float, dict[str, float]]] = []
    with LocalCluster(state, specs) as cluster:
        cluster.approve_rule(rule, "civil-affairs", ["public-rental-housing"])
        with Client.from_config(cluster.config("civil-affairs"), "public-rental-housing", "SOAK-SETUP") as client:
            started = time.perf_counter()
            client.check_eligibility(rule, applications[:20])  # the owners encrypt their tables
            log(f"set-up: {time.perf_counter() - started:.0f} s ({residents:,} residents, 3 owners)")
        deadline = time.monotonic() + seconds

        def worker(k: int) -> None:
            generator = random.Random(k)
            with Client.from_config(cluster.config("civil-affairs"), "public-rental-housing", f"SOAK-{k}") as client:
                while time.monotonic() < deadline:
                    size = 1 if generator.random() < 0.8 else 20
                    start = generator.randrange(0, len(applications) - size)
                    part: list[Application] = applications[start : start + size]
                    began = time.perf_counter()
                    bits: list[bool] = []
                    try:
                        bits = [bool(b) for b in client.check_eligibility(rule, part)]
                        outcome = "OK"
                    except RemoteError as exc:
                        outcome = exc.code.name
                        with lock:
                            examples[outcome] = str(exc)[:300]  # the latest
                    except Exception as exc:  # counted: the soak shows what escapes, it does not stop
                        outcome = type(exc).__name__
                    request = f"{k}-{began:.6f}"
                    with lock:
                        if outcome == "OK":
                            rows.extend(
                                (request, a.reference, "eligible" if b else "not eligible")
                                for a, b in zip(part, bits, strict=False)
                            )
                            rows.extend((request, a.reference, "NO RESULT") for a in part[len(bits) :])
                        else:
                            rows.extend((request, a.reference, outcome) for a in part)
                        outcomes[f"{'point' if size == 1 else 'batch'} {outcome}"] += 1
                        if time.monotonic() > deadline - seconds / 3:  # the last third: long after the restarts
                            late[outcome] += 1
                        ended.append((time.monotonic(), outcome))
                        sent[0] += len(part)
                        if size == 1 and outcome == "OK":
                            latencies.append((time.perf_counter() - began) * 1000)
                    if outcome != "OK":
                        time.sleep(ERROR_BACKOFF_SECONDS)  # as a well-behaved client does before it retries

        threads = [threading.Thread(target=worker, args=(k,), name=f"soak-{k}") for k in range(clients)]
        for t in threads:
            t.start()
        faults = [(seconds / 4, "owner"), (seconds / 2, "coordinator")] if kill else []
        begun = time.monotonic()
        while any(t.is_alive() for t in threads):
            time.sleep(5)
            rss.append((time.monotonic() - begun, _rss_mb(cluster)))
            if faults and time.monotonic() - begun >= faults[0][0]:
                at, fault = faults.pop(0)
                fault_times.append((fault, time.monotonic()))
                if fault == "owner":
                    cluster.stop_party(KILLED, signal.SIGKILL)
                    restarted = time.perf_counter()
                    cluster.start_party(KILLED)
                    back = time.perf_counter() - restarted
                    log(f"{KILLED} killed (SIGKILL) at {at:.0f} s, serving again after {back:.1f} s")
                else:
                    back = cluster.restart_coordinator()
                    log(f"coordinator stopped at {at:.0f} s, serving again on its address after {back:.1f} s")
        for t in threads:
            t.join()
    daemons = ["coordinator", *(s.name for s in specs if s.daemon)]
    verified = {
        name: verify_log(
            state / "state" / name / "audit.log",
            load_or_create_signing_key(state / "state" / name / "audit-signing.pem").public_key(),
        ).ok
        for name in daemons
    }
    total = sum(outcomes.values())
    with (state / "results.csv").open("w", newline="") as f:
        csv.writer(f).writerows([("request", "application", "result"), *rows])
    per_application: collections.Counter[str] = collections.Counter()
    for _, reference, result in rows:
        if result in ("eligible", "not eligible"):
            right = (result == "eligible") == expected[reference]
            per_application["result, as the plaintext evaluation" if right else "result, WRONG"] += 1
        else:
            per_application[f"precise error ({result})" if result.isupper() and result != "NO RESULT" else result] += 1
    without_row = sent[0] - len(rows)
    log(
        f"{total:,} requests ({sent[0]:,} applications) from {clients} clients in {seconds:.0f} s: "
        f"{total / seconds:.1f}/s; each ended with one of these outcomes:"
    )
    for outcome, count in sorted(outcomes.items()):
        log(f"  {outcome}: {count:,}")
    log(f"in the last third (long after both restarts): {dict(late)}")
    log(f"{sent[0]:,} applications sent, one row each in {state / 'results.csv'}:")
    for outcome, count in sorted(per_application.items()):
        log(f"  {outcome}: {count:,}")
    log(f"  without a row: {without_row:,}")
    for outcome, message in sorted(examples.items()):
        log(f"  e.g. {outcome}: {message}")
    bounds = [t for _, t in fault_times] + [math.inf]
    for (fault, began_at), until in zip(fault_times, bounds[1:], strict=True):
        errors = [t for t, o in ended if began_at <= t < until and o != "OK"]
        seen_for = max(errors, default=began_at) - began_at
        log(f"after the {fault} fault: {len(errors):,} requests ended in an error, the last {seen_for:.1f} s after it")
    p50, p99 = (float(np.percentile(latencies, q)) for q in (50, 99)) if latencies else (float("nan"),) * 2
    log(f"point queries answered: p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    first = [r for t, r in rss if t <= seconds / 3]
    last = [r for t, r in rss if t >= 2 * seconds / 3]
    growth = {
        name: max(r.get(name, 0.0) for r in last) / max(1.0, max(r.get(name, 0.0) for r in first))
        for name in (first[-1] if first else {})
        if name != KILLED  # restarted: its memory starts again
    }
    log("RSS growth, last third over first third: " + ", ".join(f"{n} {g:.2f}x" for n, g in sorted(growth.items())))
    log(f"audit chains verify: {verified}")
    escaped = sum(c for o, c in outcomes.items() if not o.split()[1].isupper())
    unanswered = without_row + sum(c for o, c in per_application.items() if o in ("NO RESULT", "result, WRONG"))
    return [
        Result("soak_requests_per_s", "requests/s", total / seconds, "—", None, None),
        Result("soak_point_p50_ms", "ms", p50, "—", None, None),
        Result("soak_point_p99_ms", "ms", p99, "—", None, None),
        Result("soak_requests_without_a_status", "requests", float(escaped), "—", None, None, "0", escaped == 0),
        Result(
            "soak_applications_without_a_right_row",
            "applications",
            float(unanswered),
            "—",
            None,
            None,
            "0",
            unanswered == 0,
        ),
        Result("soak_max_rss_growth", "x", max(growth.values(), default=1.0), "—", None, None),
        Result("soak_audit_chains_verify", "daemons", float(sum(verified.values())), "—", None, None),
    ]


def main(
    seconds: float = typer.Option(600.0, help="how long the load runs"),
    clients: int = typer.Option(64, help="concurrent requesters"),
    residents: int = typer.Option(20_000, help="the synthetic city's size"),
    kill: bool = typer.Option(True, help="kill and restart an owner, then restart the coordinator"),
) -> None:
    console = Console(width=160)
    results = run(seconds, clients, residents, console.print, kill)
    print_and_save(results, console, Path(__file__).parent / "soak.json")


if __name__ == "__main__":
    typer.run(main)
