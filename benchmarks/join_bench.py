"""Private joins and aggregates between a requester and an owner's daemon (issue 5).

Two agencies on loopback (mutual TLS, the coordinator dealing): ``alpha`` asks, ``beta`` owns.
Each holds a 100 000-row and a 1 000 000-row table (10 000 and 100 000 with ``--quick``) of opaque
ids, 70 % of them shared: alpha's rows carry a district (20 values) and a flag, beta's an amount
in 0..1 000 000.

- ``psi_100k_x_100k_s``, ``psi_1m_x_1m_s``: ECDH-PSI (intersection mode, fresh keys) end to end,
  against openmined-psi on sets of the same sizes and overlap in the same run (its setup, request,
  answer and intersection, one thread: it has no parallel mode). ``psi_owner_tags_*``: the same
  intersection against beta's per-dataset OPRF key and cached tags (like openmined's reusable
  setup message): three curve operations per id of alpha's instead of two per element on each side.
- ``aligned_shares_100k_s``: beta's amount secret-shared and aligned to alpha's 100 000 rows (P1).
- ``intersection_sum_100k_s``: how many of alpha's ids beta holds and the sum of their amounts.
- ``aggregate_1m_join_group20_s``: COUNT and SUM(amount) by alpha's district (20 groups) over the
  1 000 000 x 1 000 000 join, filtered on beta's amount, on shares; checked against plaintext.

Bytes on the wire per element (every byte crossing loopback during the step, TLS included, from
``/proc/net/dev``, divided by the rows of both tables) are printed beside each time. beta encrypts
its tables once (timed apart, cached under ``benchmarks/.state/joins``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from benchmarks.grants import for_load_test
from benchmarks.report import Result, compare, ours_only, run_peer_script
from demo.cluster import GATEWAY, LocalCluster, PartySpec
from mpc.protocols.aggregate import (
    Aggregate,
    AggregateRequest,
    ColumnInfo,
    ColumnRef,
    evaluate_plain,
)
from parties.gateway.client import ResearchClient
from parties.gateway.store import Store
from parties.requester import Client

STATE = Path(__file__).parent / ".state" / "joins"
DISTRICTS = tuple(f"D{k:02d}" for k in range(20))
T = TypeVar("T")


def _loopback_bytes() -> int:
    for line in Path("/proc/net/dev").read_text().splitlines():
        name, _, counters = line.partition(":")
        if name.strip() == "lo":
            return int(counters.split()[8])  # transmitted bytes
    return 0


def _measure(step: Callable[[], T]) -> tuple[T, float, int]:
    before, started = _loopback_bytes(), time.perf_counter()
    out = step()
    return out, time.perf_counter() - started, _loopback_bytes() - before


def _tables(
    data: Path, rows: int, label: str
) -> tuple[dict[str, Any], dict[str, Any], list[str], dict[str, Any], dict[str, int]]:
    """alpha's and beta's tables of ``rows`` rows, 70 % of the ids shared."""
    rng = np.random.default_rng(rows)
    shared = int(rows * 0.7)
    mine = [f"P{i:09d}" for i in range(rows)]
    theirs = mine[:shared] + [f"Q{i:09d}" for i in range(rows - shared)]
    districts = rng.integers(0, len(DISTRICTS), rows)
    flags = rng.integers(0, 2, rows)
    amounts = rng.integers(0, 1_000_001, rows)
    data.mkdir(parents=True, exist_ok=True)
    alpha_csv, beta_csv = data / f"alpha-{label}.csv", data / f"beta-{label}.csv"
    if not alpha_csv.exists():
        alpha_csv.write_text(
            "id,district,flag\n"
            + "".join(f"{i},{DISTRICTS[d]},{f}\n" for i, d, f in zip(mine, districts, flags, strict=True))
        )
        beta_csv.write_text("id,amount\n" + "".join(f"{i},{a}\n" for i, a in zip(theirs, amounts, strict=True)))
    alpha = {
        "name": label,
        "source": {"kind": "csv", "path": str(alpha_csv)},
        "schema": {
            "id_column": "id",
            "id_kind": "opaque",
            "columns": {
                "district": {"type": "category", "categories": list(DISTRICTS), "classification": "public"},
                "flag": {"type": "bool"},
            },
        },
    }
    beta = {
        "name": label,
        "source": {"kind": "csv", "path": str(beta_csv)},
        "schema": {
            "id_column": "id",
            "id_kind": "opaque",
            "columns": {"amount": {"type": "int", "min": 0, "max": 1_000_000}},
        },
    }
    plain_mine = {i: {"district": DISTRICTS[d], "flag": int(f)} for i, d, f in zip(mine, districts, flags, strict=True)}
    plain_theirs = {i: int(a) for i, a in zip(theirs, amounts, strict=True)}
    return alpha, beta, mine, plain_mine, plain_theirs


def _policy(
    peer: str, labels: list[str], columns: dict[str, list[str]], gateway: dict[str, list[str]]
) -> dict[str, Any]:
    grant = {"purposes": ["statistics"], "programs": ["aggregate"]}
    return for_load_test(
        {
            "peers": {
                peer: {
                    **grant,
                    "datasets": {
                        label: {"psi": True, "psi_intersection": True, "batch": True, "columns": columns}
                        for label in labels
                    },
                },
                GATEWAY: {
                    **grant,
                    "gateway": True,
                    "datasets": {label: {"batch": False, "columns": gateway} for label in labels},
                },
            }
        }
    )


STEPS = ("psi", "lookups", "aggregate", "sandbox")


def run(quick: bool, log: object = print, only: set[str] | None = None) -> list[Result]:
    say = log if callable(log) else print
    steps = set(STEPS) if only is None else only
    small, large = (10_000, 100_000) if quick else (100_000, 1_000_000)
    names = ("rows_10k", "rows_100k") if quick else ("rows_100k", "rows_1m")
    state = STATE / ("quick" if quick else "full")
    sets = {label: _tables(state / "data", rows, label) for label, rows in zip(names, (small, large), strict=True)}
    cluster = LocalCluster(
        state,
        [
            PartySpec(
                "alpha",
                [s[0] for s in sets.values()],
                _policy(
                    "beta",
                    list(names),
                    {"district": ["group_by"], "flag": ["filter"]},
                    {"district": ["group_by"], "flag": ["filter"]},
                ),
                extra={"max_points_per_request": 5_000_000},
            ),
            PartySpec(
                "beta",
                [s[1] for s in sets.values()],
                _policy(
                    "alpha",
                    list(names),
                    {"amount": ["lookup", "filter", "aggregate"]},
                    {"amount": ["filter", "aggregate"]},
                ),
                extra={"max_points_per_request": 5_000_000},
            ),
        ],
        gateway=True,
        gateway_settings={"max_epsilon_per_query": 2.0},
    )
    results: list[Result] = []
    with cluster, Client.from_config(cluster.config("alpha"), "statistics", "BENCH-JOIN") as client:
        started = time.perf_counter()
        for label in names:  # beta encrypts what is measured once, hashes and tags its ids; later runs reuse them
            client.lookup_shares("beta", label, ["amount"], [sets[label][2][0]], path="P1")
            client.psi_intersection("beta", label, sets[label][2][:1])
        client.intersection_sum("beta", names[0], ["amount"], [sets[names[0]][2][0]])
        setup = time.perf_counter() - started
        say(f"beta's set-up (its tables encrypted, or reused from an earlier run): {setup:.0f} s")
        results.append(ours_only("joins_owner_setup_s", "s", setup))

        for label, rows in zip(names, (small, large), strict=True) if "psi" in steps else ():
            ids = sets[label][2]

            def psi(ids: list[str] = ids, label: str = label) -> Any:
                return client.psi_intersection("beta", label, ids)

            def keyed(ids: list[str] = ids, label: str = label) -> Any:
                return client.psi_owner_tags("beta", label, ids)

            found, seconds, wire = _measure(psi)
            assert found.intersection == int(rows * 0.7)
            tagged, keyed_seconds, keyed_wire = _measure(keyed)
            assert tagged.matched == found.matched
            peer = run_peer_script(
                "openmined_psi_sets.py", ["--n", str(rows), "--overlap", str(int(rows * 0.7))], timeout=1800
            )
            theirs = peer.get("value")
            per, keyed_per = wire / (2 * rows), keyed_wire / (2 * rows)
            say(
                f"PSI {rows:,} x {rows:,}: fresh keys {seconds:.1f} s, {per:.0f} B/element; owner's tags "
                f"{keyed_seconds:.1f} s, "
                f"{keyed_per:.0f} B/element; openmined-psi "
                + (
                    f"{theirs:.1f} s, {peer['details']['bytes_per_element']:.0f} B/element"
                    if theirs
                    else str(peer.get("error"))
                )
            )
            size = "100k" if rows == 100_000 else "1m" if rows == 1_000_000 else f"{rows // 1000}k"
            name = str(peer.get("peer", "openmined-psi"))
            target = 4.0 if rows == 100_000 else None
            results.append(compare(f"psi_{size}_x_{size}_s", "s", seconds, name, theirs, target))
            results.append(compare(f"psi_owner_tags_{size}_x_{size}_s", "s", keyed_seconds, name, theirs, target))
            results.append(
                Result(
                    f"psi_{size}_bytes_per_element",
                    "B",
                    per,
                    "openmined-psi",
                    peer.get("details", {}).get("bytes_per_element"),
                    None,
                )
            )
            results.append(
                Result(
                    f"psi_owner_tags_{size}_bytes_per_element",
                    "B",
                    keyed_per,
                    "openmined-psi",
                    peer.get("details", {}).get("bytes_per_element"),
                    None,
                )
            )

        label, rows = names[0], small
        ids, plain_theirs = sets[label][2], sets[label][4]
        if "lookups" in steps:
            results.extend(_lookups(client, label, rows, ids, plain_theirs, say))
        if "aggregate" in steps:
            results.extend(_aggregate(client, names[1], large, sets, quick, say))
        if "sandbox" in steps:
            results.extend(_sandbox(cluster, names[1], large, quick, say))
    return results


def _lookups(
    client: Client, label: str, rows: int, ids: list[str], plain_theirs: dict[str, int], say: Any
) -> list[Result]:
    results = []
    shared, seconds, wire = _measure(lambda: client.lookup_shares("beta", label, ["amount"], ids, path="P1"))
    assert int(shared.present.sum()) == int(rows * 0.7)
    say(f"aligned shares of {rows:,} rows: {seconds:.1f} s, {wire / (2 * rows):.0f} B/element")
    results.append(ours_only(f"aligned_shares_{label[5:]}_s", "s", seconds))
    results.append(ours_only(f"aligned_shares_{label[5:]}_bytes_per_element", "B", wire / (2 * rows)))
    total, seconds, wire = _measure(lambda: client.intersection_sum("beta", label, ["amount"], ids))
    expected = sum(plain_theirs[i] for i in ids if i in plain_theirs)
    assert (total.intersection, total.sums["amount"]) == (int(rows * 0.7), expected)
    say(
        f"intersection-sum of {rows:,} x {rows:,}: {seconds:.1f} s, {wire / (2 * rows):.0f} B/element "
        f"(matches plaintext)"
    )
    results.append(ours_only(f"intersection_sum_{label[5:]}_s", "s", seconds))
    results.append(ours_only(f"intersection_sum_{label[5:]}_bytes_per_element", "B", wire / (2 * rows)))
    return results


def _aggregate(client: Client, label: str, rows: int, sets: dict[str, Any], quick: bool, say: Any) -> list[Result]:
    results = []
    request = AggregateRequest(
        initiator_dataset=label,
        peer_dataset=label,
        where="peer.amount > 1000",
        group_by=(ColumnRef.parse("initiator.district"),),
        aggregates=(Aggregate(kind="count"), Aggregate(kind="sum", column=ColumnRef.parse("peer.amount"))),
    )
    cells, seconds, wire = _measure(lambda: client.aggregate("beta", request))
    schemas = {
        "initiator": {"district": ColumnInfo("category", labels=DISTRICTS), "flag": ColumnInfo("bool")},
        "peer": {"amount": ColumnInfo("int", 0, 1_000_000)},
    }
    plain = evaluate_plain(request, schemas, sets[label][3], {i: {"amount": a} for i, a in sets[label][4].items()})  # type: ignore[arg-type]
    assert cells is not None
    correct = all(
        plain[g]["count"] == cells.cells["count"][k]
        and plain[g]["sum(peer.amount)"] == cells.cells["sum(peer.amount)"][k]
        for k, g in enumerate(cells.groups)
    )
    say(
        f"aggregate over the {rows:,} x {rows:,} join, 20 groups: {seconds:.1f} s, {wire / (2 * rows):.0f} B/element, "
        f"matches plaintext: {correct}"
    )
    assert correct
    name = "aggregate_1m_join_group20_s" if not quick else "aggregate_100k_join_group20_s"
    results.append(
        ours_only(name, "s", seconds, "<= 180" if not quick else None, seconds <= 180 if not quick else None)
    )
    results.append(ours_only(name.replace("_s", "_bytes_per_element"), "B", wire / (2 * rows)))
    return results


def _sandbox(cluster: LocalCluster, label: str, rows: int, quick: bool, say: Any) -> list[Result]:
    """COUNT and MEAN by the 20 districts over the join, end to end through the gateway's API
    (pricing, budget, the owners computing and noising, release), and the cost preview's latency."""
    store = Store(str(cluster.members[GATEWAY].state_dir / "gateway.sqlite"))
    name = f"bench-{int(time.time())}"
    token = store.add_researcher(name, 100.0)
    store.add_project(name, "statistics", 100.0, {f"alpha.{label}": ["district", "flag"], f"beta.{label}": ["amount"]})
    store.add_member(name, name)
    sql = (
        f"SELECT a.district, COUNT(*), AVG(b.amount) FROM alpha.{label} a JOIN beta.{label} b USING "
        f"(id) GROUP BY a.district"
    )
    with ResearchClient(cluster.gateway_url, token, timeout=600, ca=str(cluster.ca_path)) as research:
        research.preview(name, sql, 1.0)
        previews = []
        for _ in range(50):
            started = time.perf_counter()
            research.preview(name, sql, 1.0)
            previews.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        job = research.query(name, sql, 1.0)
        seconds = time.perf_counter() - started
    released = [r for r in job["result"]["rows"] if not r["suppressed"]]
    assert len(job["result"]["rows"]) == 20 and released
    preview_ms = float(np.median(previews))
    size = "1m" if rows == 1_000_000 else f"{rows // 1000}k"
    say(
        f"sandbox query over the {rows:,} x {rows:,} join, 20 districts, through the API: {seconds:.1f} s "
        f"({len(released)} cells released); cost preview p50 {preview_ms:.1f} ms"
    )
    return [
        ours_only(f"sandbox_query_{size}_join_group20_s", "s", seconds),
        ours_only("sandbox_cost_preview_ms", "ms", preview_ms),
    ]


if __name__ == "__main__":
    import sys

    from rich.console import Console

    from benchmarks.report import print_and_save

    console = Console(width=160)
    only = next((set(a.split("=", 1)[1].split(",")) for a in sys.argv if a.startswith("--only=")), None)
    print_and_save(
        run("--quick" in sys.argv, console.print, only), console, Path(__file__).with_name("join-results.json")
    )
