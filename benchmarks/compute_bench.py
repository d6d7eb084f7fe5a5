"""The compute backends side by side on this machine (issue 17): the local process pool, Ray with
one node process (all cores) and Ray with two node processes (a core each), started on loopback.

- ``compute_table_prep_s_{local,ray1,ray2}``: an owner's preparation of a ``rows``-row table as
  its daemon does it on first use (:class:`parties.owner.tables.TableCache`): the OPRF tag of every
  row, then every row packed and encrypted under the table's 2048-bit Paillier key, written chunk
  by chunk to the on-disk cache. The key is generated beforehand (not timed).
- ``compute_table_prep_ray{1,2}_over_local``: Ray's time over the local pool's (target: within
  15 % on one machine, <= 1.15). The backends run in a palindrome (local, ray1, ray2, ray2, ray1,
  local) and each backend's figure is the mean of its runs: a later run in one process is slower
  whatever its backend (the machine's caches, its noise), and in a palindrome every backend's runs
  sit at the same mean position, so a drift in time cancels out of the ratios.
- ``compute_screening_ray{1,2}_over_local``: the same ratio for the screening.
- ``compute_screening_checks_per_cpu_s``: application-owner checks per CPU second of all the
  parties together (each daemon with its pool, and the requester), the local pool's run; the CPU
  split by party is printed.
- ``compute_table_prep_rows_per_s_per_core``: the local pool's throughput per core.
- ``compute_screening_s_{local,ray1,ray2}``: ``applications`` household applications of
  public-rental-housing against tax, housing and public-security (P1 at each owner), the
  requester (civil-affairs) configured for the backend, checked against the plaintext rule. The
  owners keep their local pools: agencies never share a cluster, and five clusters on two cores
  would measure nothing but contention. The owners'
  tables are encrypted once before (cached in the state directory, shared by the three runs).
- ``compute_prep_peak_rss_mb``: the preparing process's peak resident memory (``VmHWM``) and its
  local workers' (``RUSAGE_CHILDREN``).

``python -m benchmarks.compute_bench [ROWS] [APPLICATIONS]``; ``make bench`` runs a short form.
``python -m benchmarks.compute_bench prep ROWS [BACKEND...]``: table preparation alone (a large
table's time and peak memory; ``--buckets=K``: the tags and the first K buckets only, for a
table too large to encrypt whole in a session). ``python -m benchmarks.compute_bench screen APPLICATIONS
[BACKEND...]``: the screening alone (the issue's size: 100 000 applications). Both run the
backends named in a palindrome (``local ray1`` runs local, ray1, ray1, local).
``python -m benchmarks.compute_bench blind BATCHES [BACKEND...]``: the requester's OPRF blinding
alone, as a screening runs it: batches of :data:`~parties.requester.oprf.OPRF_CHUNK` ids one after
another, each cut into chunks for the backend (where a Ray task per chunk left a core idle
between batches); the machine's busy and idle CPU seconds are printed beside each run.
"""

from __future__ import annotations

import datetime
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before ray is imported: loopback only

from benchmarks.grants import for_load_test
from benchmarks.report import Result, cpu_seconds, descendants_peak_rss_mb, ours_only, peak_rss_mb
from demo.cluster import LocalCluster
from demo.deployment import household_applications, party_specs, plain_values
from demo.raycluster import loopback_ray
from demo.synthetic import generate
from mpc import parallel
from mpc.crypto.curve25519 import OprfClient
from mpc.data.ids import make_resident_id
from mpc.data.schema import DatasetSpec
from mpc.data.sources import load_dataset
from mpc.parallel import ComputeConfig
from mpc.protocols import oprf_filter
from mpc.protocols.rules import evaluate_plain, load_rules
from parties.owner.tables import TableCache
from parties.requester import Client
from parties.requester.oprf import OPRF_CHUNK

RULES = Path(__file__).resolve().parents[1] / "rules" / "examples.toml"
BACKENDS = {"local": (0, 0), "ray1": (1, os.cpu_count() or 1), "ray2": (2, max((os.cpu_count() or 2) // 2, 1))}


def _palindrome(backends: list[str]) -> list[str]:
    """``backends`` then the same reversed: each backend's runs sit at the same mean position (one
    backend alone runs once: nothing to compare)."""
    return backends + backends[::-1] if len(backends) > 1 else backends


def _timed(
    backends: list[str], work: Callable[[dict[str, object]], float], say: Callable[[str, str, float], None]
) -> dict[str, float]:
    """The mean time of ``work`` on each of ``backends``, run in a palindrome; ``say(backend,
    "run k/n", seconds)`` after each run."""
    runs: dict[str, list[float]] = {}
    order = _palindrome(backends)
    for k, backend in enumerate(order, 1):
        runs.setdefault(backend, []).append(_on(backend, work))
        say(backend, f"run {k}/{len(order)}", runs[backend][-1])
    return {b: sum(v) / len(v) for b, v in runs.items()}


def _on(backend: str, work: Callable[[dict[str, object]], float]) -> float:
    """``work(compute section)`` with the process's backend set to ``backend``."""
    nodes, cpus = BACKENDS[backend]
    if not nodes:
        parallel.configure(ComputeConfig()).warm()
        return work({})
    with loopback_ray(nodes, cpus) as cluster:
        section: dict[str, object] = {"backend": "ray", "address": cluster.address}
        parallel.configure(ComputeConfig.model_validate(section)).warm()
        return work(section)


def _register_csv(rows: int, path: Path) -> None:
    """A residents register of ``rows`` valid, distinct resident ids and a 0/1 column, written as
    it is generated (a 5 000 000-row register never sits whole in this process before it loads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    start = datetime.date(1950, 1, 1)
    with path.open("w", encoding="utf-8") as f:
        f.write("resident_id,local_resident\n")
        for k in range(rows):
            area = ("110101", "110102", "110105", "110106")[k % 4]
            person = k // 4
            birth = start + datetime.timedelta(days=person // 1000)
            f.write(f"{make_resident_id(area, birth, person % 1000)},{(k * 7) % 10 != 0:d}\n")


def _prepare_table(rows: int, data: Path, buckets: int | None = None) -> Callable[[dict[str, object]], float]:
    """An owner's preparation of a ``rows``-row register (public-security's, one row per resident);
    with ``buckets``, the tags and the encryption of the first ``buckets`` buckets only (a table
    too large to encrypt in a session: its memory is reached before the encryption, whose chunks
    are of a fixed size)."""
    _register_csv(rows, data / "residents.csv")
    spec = {
        "name": "residents",
        "source": {"kind": "csv", "path": str(data / "residents.csv")},
        "schema": {"id_column": "resident_id", "columns": {"local_resident": {"type": "bool"}}},
    }
    dataset = load_dataset(DatasetSpec.model_validate(spec))
    columns = ("local_resident",)

    def work(_: dict[str, object]) -> float:
        with tempfile.TemporaryDirectory(prefix="prep-", dir=data) as state:
            cache = TableCache(
                Path(state) / "encrypted",
                Path(state) / "keys",
                2048,
                1024,
                lambda name, epoch: oprf_filter.dataset_key(bytes(32), "public-security", name, epoch),
            )
            cache.private_key(dataset, columns, 1)  # the key: generated once, not timed
            started = time.perf_counter()
            table = cache.table(dataset, columns, 1)
            table.ensure(range(min(buckets if buckets is not None else len(table.done), len(table.done))))
            return time.perf_counter() - started

    return work


def _screening(
    residents: int, applications: int, root: Path, cpu_split: list[dict[str, float]]
) -> Callable[[dict[str, object]], float]:
    tables = generate(residents, seed=8)
    rule = load_rules(RULES).get("public-rental-housing")
    batch = household_applications(tables, applications)
    expected = [int(e) for e, _ in evaluate_plain(rule, batch, plain_values(tables), {})]

    def work(compute: dict[str, object]) -> float:
        # a year-long OPRF epoch: a day's boundary (00:00 UTC) between the warm-up and the timed run
        # would make every owner tag and encrypt its table again inside the timing (it did once)
        specs = party_specs(tables, root / "data", extra={"oprf_epoch_hours": 24 * 365})
        for spec in specs:
            for_load_test(spec.policy)
            if spec.name == "civil-affairs":  # the screening party; each owner would use a cluster of its own
                spec.compute = dict(compute)
        with LocalCluster(root, specs) as cluster:
            cluster.approve_rule(rule, "civil-affairs", ["public-rental-housing"])
            with Client.from_config(cluster.config("civil-affairs"), "public-rental-housing", "BENCH-RAY") as client:
                client.check_eligibility(rule, batch[:20], path="P1")  # owners' tables: encrypted once, then cached
                started, cpu = time.perf_counter(), _party_cpu(cluster)
                bits = client.check_eligibility(rule, batch, path="P1")
                elapsed = time.perf_counter() - started
                spent = {k: v - cpu.get(k, 0.0) for k, v in _party_cpu(cluster).items()}
                cpu_split.append({k: round(v, 2) for k, v in spent.items() if v > 0.05})
        assert bits.tolist() == expected, "screening differs from the plaintext rule"
        return elapsed

    return work


def _party_cpu(cluster: LocalCluster) -> dict[str, float]:
    """CPU seconds so far of each daemon (with its pool) and of this process (the requester, with
    its local workers; the daemons are its children too, and not counted in it)."""
    daemons = {n: m.process.pid for n, m in cluster.members.items() if m.process is not None}
    out = {n: cpu_seconds(pid) for n, pid in daemons.items()}
    out["requester"] = cpu_seconds(os.getpid(), frozenset(daemons.values()))
    return out


def _peak_rss_mb() -> tuple[float, float]:
    """This process's peak RSS, and the largest of its workers' (live ones, and those ended)."""
    ended = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return peak_rss_mb(), max(ended, descendants_peak_rss_mb())


def run(quick: bool, log: object = print, rows: int | None = None, applications: int | None = None) -> list[Result]:
    say = log if callable(log) else print
    rows = rows or (10_000 if quick else 50_000)
    applications = applications or (1_000 if quick else 5_000)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="compute-bench-") as scratch:
        seconds = prepare_only(rows, list(BACKENDS), say, scratch=Path(scratch))
        own, children = _peak_rss_mb()
        for backend, value in seconds.items():
            results.append(ours_only(f"compute_table_prep_s_{backend}", "s", value))
        for backend in ("ray1", "ray2"):
            ratio = seconds[backend] / seconds["local"]
            results.append(ours_only(f"compute_table_prep_{backend}_over_local", "x", ratio, "<= 1.15", ratio <= 1.15))
        per_core = rows / seconds["local"] / (os.cpu_count() or 1)
        results.append(ours_only("compute_table_prep_rows_per_s_per_core", "rows/s", per_core))
        results.append(ours_only("compute_prep_peak_rss_mb", "MB", max(own, children)))

        results += screen(applications, list(BACKENDS), say, Path(scratch))
    parallel.configure(ComputeConfig())
    return results


def screen(
    applications: int, backends: list[str], say: Callable[[str], None] = print, scratch: Path | None = None
) -> list[Result]:
    """The screening of ``applications`` on each of ``backends`` (the first is the reference), run
    in a palindrome; each backend's figure is the mean of its runs."""
    residents = max(applications * 3, 20_000)
    size = f"{applications:,} applications x 3 owners ({residents:,} residents)"
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="compute-bench-") as own:
        cpu_split: list[dict[str, float]] = []
        screening = _screening(residents, applications, (scratch or Path(own)) / "screening", cpu_split)
        checks_per_cpu_s: list[float] = []

        def ran(backend: str, which: str, seconds: float) -> None:
            say(f"screening, {size}, {backend} ({which}): {seconds:.1f} s; CPU seconds by party: {cpu_split[-1]}")
            if backend == "local":
                checks_per_cpu_s.append(applications * 3 / sum(cpu_split[-1].values()))

        screened = _timed(backends, screening, ran)
        for backend, value in screened.items():
            say(f"screening, {size}, {backend}: {value:.1f} s (mean)")
            results.append(ours_only(f"compute_screening_s_{backend}", "s", value))
        if checks_per_cpu_s:
            per_core = sum(checks_per_cpu_s) / len(checks_per_cpu_s)
            say(f"  {per_core:,.0f} application-owner checks per CPU second, all parties together (local)")
            results.append(ours_only("compute_screening_checks_per_cpu_s", "checks/s", per_core))
        for backend in backends[1:]:
            ratio = screened[backend] / screened[backends[0]]
            say(f"  {backend} over {backends[0]}: {ratio:.2f}")
            results.append(ours_only(f"compute_screening_{backend}_over_local", "x", ratio, "<= 1.15", ratio <= 1.15))
    parallel.configure(ComputeConfig())
    return results


def blind(batches: int, backends: list[str], say: Callable[[str], None] = print) -> dict[str, float]:
    """``batches`` OPRF blindings of :data:`OPRF_CHUNK` ids each, one after another, on each of
    ``backends`` (palindrome, means)."""
    start = datetime.date(1960, 1, 1)
    ids = [make_resident_id("110101", start + datetime.timedelta(days=k // 1000), k % 1000) for k in range(OPRF_CHUNK)]
    client = OprfClient(domain=b"compute-bench")

    def work(_: dict[str, object]) -> float:
        started, (busy, idle) = time.perf_counter(), _machine_cpu()
        for _batch in range(batches):
            client.blind(ids)
        elapsed, (busy_after, idle_after) = time.perf_counter() - started, _machine_cpu()
        say(f"  machine: {busy_after - busy:.1f} CPU-s busy, {idle_after - idle:.1f} CPU-s idle")
        return elapsed

    seconds = _compared(f"OPRF blinding, {batches} x {OPRF_CHUNK:,} ids", backends, work, say)
    parallel.configure(ComputeConfig())
    return seconds


def _compared(
    what: str,
    backends: list[str],
    work: Callable[[dict[str, object]], float],
    say: Callable[[str], None],
    rate: Callable[[float], str] = lambda _: "",
) -> dict[str, float]:
    """:func:`_timed`, each run and each backend's mean printed as ``what`` (with ``rate(mean)``),
    and each backend's ratio to the first."""

    def ran(backend: str, which: str, seconds: float) -> None:
        say(f"{what}, {backend} ({which}): {seconds:.2f} s")

    seconds = _timed(backends, work, ran)
    for backend, value in seconds.items():
        say(f"{what}, {backend}: {value:.2f} s (mean{rate(value)})")
        if backend != backends[0]:
            say(f"  {backend} over {backends[0]}: {value / seconds[backends[0]]:.2f}")
    return seconds


def _machine_cpu() -> tuple[float, float]:
    """The machine's busy and idle CPU seconds so far (all cores, ``/proc/stat``)."""
    with open("/proc/stat", encoding="ascii") as f:
        user, nice, system, idle, iowait, irq, softirq = (int(v) for v in f.readline().split()[1:8])
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, (idle + iowait) / tick


def prepare_only(
    rows: int,
    backends: list[str],
    log: Callable[[str], None] = print,
    buckets: int | None = None,
    scratch: Path | None = None,
) -> dict[str, float]:
    """Table preparation alone at ``rows`` rows on ``backends`` (a large table's time and memory),
    run in a palindrome: the mean time of each; with ``buckets``, of the first ``buckets`` buckets
    only."""
    with tempfile.TemporaryDirectory(prefix="compute-bench-") as own:
        prep = _prepare_table(rows, (scratch or Path(own)) / "prep", buckets)
        seconds = _compared(
            f"table preparation, {rows:,} rows", backends, prep, log, lambda mean: f"; {rows / mean:,.0f} rows/s"
        )
        own_rss, children = _peak_rss_mb()
        log(f"peak RSS: this process {own_rss:.0f} MB, local workers {children:.0f} MB")
    parallel.configure(ComputeConfig())
    return seconds


if __name__ == "__main__":
    if sys.argv[1:2] == ["prep"]:  # python -m benchmarks.compute_bench prep ROWS [BACKEND...] [--buckets K]
        names = [a for a in sys.argv[3:] if not a.startswith("--buckets")]
        first = [int(a.split("=", 1)[1]) for a in sys.argv[3:] if a.startswith("--buckets=")]
        prepare_only(int(sys.argv[2]), names or ["local"], print, first[0] if first else None)
    elif sys.argv[1:2] == ["blind"]:  # python -m benchmarks.compute_bench blind BATCHES [BACKEND...]
        blind(int(sys.argv[2]), sys.argv[3:] or list(BACKENDS))
    elif sys.argv[1:2] == ["screen"]:  # python -m benchmarks.compute_bench screen APPLICATIONS BACKEND...
        for r in screen(int(sys.argv[2]), sys.argv[3:] or list(BACKENDS)):
            print(r)
    else:  # python -m benchmarks.compute_bench [ROWS] [APPLICATIONS]
        for r in run(False, print, *[int(a) for a in sys.argv[1:3]]):
            print(r)
