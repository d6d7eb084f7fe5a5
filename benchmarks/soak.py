"""``python -m benchmarks.soak``: sustained load with a fault, measured.

64 concurrent requesters (threads, each with its own client of the civil-affairs agency) mix
point queries (one application) and small batches (20 applications) of the public-rental-housing
rule against three owners for ``--seconds`` (600 by default; ``make bench`` runs a short form).
A third of the way in, one owner (tax) is killed with SIGKILL and started again. Every request
ends in a result or a precise error: the table of outcomes by status is printed, with the
latency percentiles of answered point queries and the throughput; the daemons' resident memory
is sampled throughout (its growth from the first to the last third is reported); afterwards
every audit chain is verified. The coordinator is not restarted yet: LocalCluster restarts a
daemon on a new port, and the parties' configurations name the coordinator's address.
"""

from __future__ import annotations

import collections
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
from demo.deployment import household_applications, party_specs
from demo.synthetic import generate
from mpc.audit import load_or_create_signing_key, verify_log
from mpc.protocols.rules import Application, load_rules
from parties.requester import Client, RemoteError

__all__ = ["run"]

STATE = Path(__file__).parent / ".state" / "soak"
RULES = Path(__file__).resolve().parents[1] / "rules" / "examples.toml"
KILLED = "tax"


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
    outcomes: collections.Counter[str] = collections.Counter()
    examples: dict[str, str] = {}  # the latest message per status
    late: collections.Counter[str] = collections.Counter()
    nonlocal_asked = [0]  # applications sent, each in a request that ended with an outcome
    latencies: list[float] = []
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
                    try:
                        client.check_eligibility(rule, part)
                        outcome = "OK"
                    except RemoteError as exc:
                        outcome = exc.code.name
                        with lock:
                            examples[outcome] = str(exc)[:300]  # the latest
                    except Exception as exc:  # counted: the soak shows what escapes, it does not stop
                        outcome = type(exc).__name__
                    with lock:
                        outcomes[f"{'point' if size == 1 else 'batch'} {outcome}"] += 1
                        if time.monotonic() > deadline - seconds / 3:  # the last third: long after the restart
                            late[outcome] += 1
                        nonlocal_asked[0] += len(part)
                        if size == 1 and outcome == "OK":
                            latencies.append((time.perf_counter() - began) * 1000)

        threads = [threading.Thread(target=worker, args=(k,), name=f"soak-{k}") for k in range(clients)]
        for t in threads:
            t.start()
        killed_at = seconds / 3
        begun, killed = time.monotonic(), not kill
        while any(t.is_alive() for t in threads):
            time.sleep(5)
            rss.append((time.monotonic() - begun, _rss_mb(cluster)))
            if not killed and time.monotonic() - begun >= killed_at:
                cluster.stop_party(KILLED, signal.SIGKILL)
                restarted = time.perf_counter()
                cluster.start_party(KILLED)
                back = time.perf_counter() - restarted
                log(f"{KILLED} killed (SIGKILL) at {killed_at:.0f} s, serving again after {back:.1f} s")
                killed = True
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
    log(
        f"{total:,} requests ({nonlocal_asked[0]:,} applications) from {clients} clients in {seconds:.0f} s: "
        f"{total / seconds:.1f}/s; each ended with one of these outcomes:"
    )
    for outcome, count in sorted(outcomes.items()):
        log(f"  {outcome}: {count:,}")
    log(f"in the last third (the killed owner long back): {dict(late)}")
    for outcome, message in sorted(examples.items()):
        log(f"  e.g. {outcome}: {message}")
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
    return [
        Result("soak_requests_per_s", "requests/s", total / seconds, "—", None, None),
        Result("soak_point_p50_ms", "ms", p50, "—", None, None),
        Result("soak_point_p99_ms", "ms", p99, "—", None, None),
        Result("soak_requests_without_a_status", "requests", float(escaped), "—", None, None, "0", escaped == 0),
        Result("soak_max_rss_growth", "x", max(growth.values(), default=1.0), "—", None, None),
        Result("soak_audit_chains_verify", "daemons", float(sum(verified.values())), "—", None, None),
    ]


def main(
    seconds: float = typer.Option(600.0, help="how long the load runs"),
    clients: int = typer.Option(64, help="concurrent requesters"),
    residents: int = typer.Option(20_000, help="the synthetic city's size"),
    kill: bool = typer.Option(True, help="kill and restart an owner a third of the way in"),
) -> None:
    console = Console(width=160)
    results = run(seconds, clients, residents, console.print, kill)
    print_and_save(results, console, Path(__file__).parent / "soak.json")


if __name__ == "__main__":
    typer.run(main)
