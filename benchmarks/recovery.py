"""``python -m benchmarks.recovery``: how long an owner with a 1-million-row table takes to come back.

The tax bureau's daemon holds an income table of ``--rows`` rows (1 000 000 by default; the
synthetic city of ``demo/deployment.py``, its first ``rows`` income records); civil-affairs asks
``income-below-100k`` (one owner). Set-up: a point query (the owner computes every row's OPRF tag
and encrypts one bucket) and a batch of 1 000 applications forced onto P1 (the owner encrypts the
whole table); both are cached on disk. Then the owner is stopped and backed up twice
(``mpc-admin backup``, without and ``--with-caches``), and for each backup in turn restored into a
new state directory (``mpc-admin restore``, every file checked against the manifest), started,
and asked the same point query and then the same batch: the recovery time is restore + start +
first answer. Every answer is checked against the plaintext rule.
"""

from __future__ import annotations

import dataclasses
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console

from benchmarks.grants import for_load_test
from benchmarks.report import Result, print_and_save
from demo.cluster import LocalCluster, PartySpec
from demo.deployment import household_applications, party_specs, plain_values
from demo.synthetic import generate
from mpc.protocols.rules import Application, evaluate_plain, load_rules
from parties.config import load_party_config
from parties.owner.backup import backup, restore
from parties.requester import Client

__all__ = ["run"]

STATE = Path(__file__).parent / ".state" / "recovery"
RULES = Path(__file__).resolve().parents[1] / "rules" / "examples.toml"
OWNER, REQUESTER, PURPOSE = "tax", "civil-affairs", "public-rental-housing"
BATCH = 1_000


def _timed(step: Callable[[], object]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def run(rows: int = 1_000_000, say: object = print) -> list[Result]:
    log = say if callable(say) else print
    state = STATE / str(rows)
    tables = generate(rows * 3 // 2, seed=11)  # about 69 % of residents have an income record
    if len(tables.tax) < rows:
        raise RuntimeError(f"the synthetic city has {len(tables.tax):,} income records, fewer than {rows:,}")
    tables = dataclasses.replace(tables, tax=tables.tax[:rows])
    owner = next(s for s in party_specs(tables, state / "data") if s.name == OWNER)
    for_load_test(owner.policy)
    rule = load_rules(RULES).get("income-below-100k")
    applications = household_applications(tables, BATCH)
    expected = [e for e, _ in evaluate_plain(rule, applications, plain_values(tables), {})]
    results: list[Result] = []

    def ask(cluster: LocalCluster, part: list[Application], path: str | None) -> None:
        with Client.from_config(cluster.config(REQUESTER), PURPOSE, "RECOVERY") as client:
            bits = client.check_eligibility(rule, part, path="P1" if path == "P1" else None)
        if [bool(b) for b in bits] != expected[: len(part)]:
            raise AssertionError("an answer differs from the plaintext evaluation of the rule")

    with LocalCluster(state, [owner, PartySpec(REQUESTER, daemon=False)]) as cluster:
        assert cluster.approve_rule(rule, REQUESTER, [PURPOSE]) == [OWNER]
        point = _timed(lambda: ask(cluster, applications[:1], None))
        batch = _timed(lambda: ask(cluster, applications, "P1"))
        log(f"set-up of {rows:,} rows: first point query {point:.1f} s (tags), first P1 batch {batch:.1f} s (table)")
        original = cluster.config(OWNER)
        if cluster.stop_party(OWNER, signal.SIGTERM) != 0:
            raise RuntimeError(f"{OWNER} did not stop cleanly")
        config = load_party_config(original)
        backups = state / "backups"
        shutil.rmtree(backups, ignore_errors=True)
        try:
            for with_caches in (False, True):
                label = "with caches" if with_caches else "without caches"
                target = backups / label.replace(" ", "-")
                taken = _timed(lambda: backup(original, config, target, with_caches))  # noqa: B023
                restored_state = backups / f"state-{target.name}"
                restored_config = original.with_name(f"{OWNER}-{target.name}.toml")
                restoring = _timed(lambda: restore(target, restored_state, restored_config))  # noqa: B023
                starting = _timed(lambda: cluster.start_party(OWNER, config=restored_config))  # noqa: B023
                first_point = _timed(lambda: ask(cluster, applications[:1], None))
                first_batch = _timed(lambda: ask(cluster, applications, "P1"))
                recovery = restoring + starting + first_point
                log(
                    f"{label}: backup {taken:.1f} s ({_size_mb(target):,.0f} MiB); restore {restoring:.1f} s, "
                    f"start {starting:.1f} s, first point answer {first_point:.1f} s (recovered in {recovery:.1f} s), "
                    f"first P1 batch of {BATCH:,} {first_batch:.1f} s"
                )
                key = "with_caches" if with_caches else "without_caches"
                results += [
                    Result(f"recovery_{rows // 1000}k_{key}_to_first_point_s", "s", recovery, "—", None, None),
                    Result(
                        f"recovery_{rows // 1000}k_{key}_to_first_batch_s", "s", recovery + first_batch, "—", None, None
                    ),
                    Result(f"recovery_{rows // 1000}k_{key}_backup_mib", "MiB", _size_mb(target), "—", None, None),
                ]
                cluster.stop_party(OWNER, signal.SIGTERM)
        finally:
            cluster.start_party(OWNER, config=original)
    return results


def main(rows: int = typer.Option(1_000_000, help="rows of the owner's table")) -> None:
    console = Console(width=160)
    results = run(rows, console.print)
    print_and_save(results, console, Path(__file__).parent / "recovery.json")


if __name__ == "__main__":
    typer.run(main)
