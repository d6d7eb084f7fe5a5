"""Benchmark results: one record per (figure, peer), printed as a table and written as JSON."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULTS_PATH = Path(__file__).with_name("results.json")
PEERS_PYTHON = Path(__file__).parent / ".peers" / "venv" / "bin" / "python"
PEERS_DIR = Path(__file__).parent / "peers"


@dataclass
class Result:
    """``ratio`` > 1 means we are faster; ``peer_value`` is None when the peer could not run."""

    name: str
    unit: str
    ours: float
    peer: str
    peer_value: float | None
    ratio: float | None
    target: str | None = None
    met: bool | None = None


def ours_only(name: str, unit: str, ours: float, target: str | None = None, met: bool | None = None) -> Result:
    """A figure of ours with no peer beside it."""
    return Result(name, unit, ours, "—", None, None, target, met)


def _family(pid: int, besides: frozenset[int] = frozenset()) -> tuple[set[int], dict[int, int]]:
    """A process and its live descendants but those in ``besides`` and theirs, with each one's
    CPU ticks so far (``/proc/PID/stat``)."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended meanwhile
            continue
        child = int(stat.parent.name)
        parents[child], ticks[child] = int(fields[1]), int(fields[11]) + int(fields[12])
    family, grew = {pid}, True
    while grew:
        more = {c for c, p in parents.items() if p in family and c not in besides} - family
        family, grew = family | more, bool(more)
    return family, ticks


def cpu_seconds(pid: int, besides: frozenset[int] = frozenset()) -> float:
    """User + system CPU seconds so far of a process and of its live descendants (a daemon's
    compute pool works in child processes) but those in ``besides`` and theirs."""
    family, ticks = _family(pid, besides)
    return sum(ticks.get(p, 0) for p in family) / os.sysconf("SC_CLK_TCK")


def descendants_peak_rss_mb(pid: int | None = None) -> float:
    """The largest peak resident memory (``VmHWM``) among a process's live descendants (its
    compute pool's workers), in MB; 0 with none."""
    family, _ = _family(pid if pid is not None else os.getpid())
    peaks = []
    for p in family - {pid if pid is not None else os.getpid()}:
        try:
            peaks.append(peak_rss_mb(p))
        except (OSError, StopIteration):  # it ended meanwhile, or holds no memory (a zombie)
            continue
    return max(peaks, default=0.0)


def peak_rss_mb(pid: int | str = "self") -> float:
    """A process's peak resident memory so far (``VmHWM``), in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(x for x in status.splitlines() if x.startswith("VmHWM:")).split()[1]) / 1024


def higher_is_better(unit: str) -> bool:
    return unit.endswith("/s")


def compare(
    name: str, unit: str, ours: float, peer: str, peer_value: float | None, target_ratio: float | None = None
) -> Result:
    """Build a result; the ratio is oriented so that > 1 always means we are faster."""
    ratio = None
    if peer_value is not None and ours > 0 and peer_value > 0:
        ratio = ours / peer_value if higher_is_better(unit) else peer_value / ours
    target = None if target_ratio is None else f">= {target_ratio:g}x"
    met = None if target_ratio is None or ratio is None else ratio >= target_ratio
    return Result(name, unit, ours, peer, peer_value, ratio, target, met)


def run_peer_script(
    script: str, args: list[str], python: Path | str = PEERS_PYTHON, timeout: float = 600
) -> dict[str, Any]:
    """Run a peer script and parse its last stdout line; failures become {"error": why}."""
    if not Path(python).exists():
        return {"error": f"peer environment missing ({python}); `make peers` installs it, see its install.log"}
    try:
        proc = subprocess.run(
            [str(python), str(PEERS_DIR / script), *args], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"error": f"{script} did not finish within {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if not lines:
        return {"error": f"{script} printed nothing (exit {proc.returncode}): {proc.stderr[-300:]}"}
    try:
        parsed: dict[str, Any] = json.loads(lines[-1])
    except json.JSONDecodeError:
        return {"error": f"{script} printed no JSON: {lines[-1][:200]}"}
    return parsed


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = int(
            next(
                line.split()[1]
                for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")
            )
        )
        memory = f"{mem_kb / 2**20:.0f} GiB"
    except (OSError, StopIteration):
        memory = "unknown"
    try:
        import gmpy2

        gmp = gmpy2.mp_version()
    except ImportError:
        gmp = "missing"
    blas = subprocess.run(
        [sys.executable, "-c", "import numpy; print(numpy.__version__)"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "python": platform.python_version(),
        "numpy": blas,
        "gmp": gmp,
        "os": platform.platform(),
        "mulmod_4096_us": f"{_mulmod_speed():.2f}",
    }


def _mulmod_speed() -> float:
    """µs for one 4096-bit multiplication mod a 4096-bit modulus (the Paillier inner loop): a speed
    probe, since machines of the same description differ by more than 2x here."""
    import random
    import time

    import gmpy2

    rng = random.Random(1)
    modulus = gmpy2.mpz(rng.getrandbits(4096) | (1 << 4095) | 1)
    a, b = gmpy2.mpz(rng.getrandbits(4095)), gmpy2.mpz(rng.getrandbits(4095))
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(20_000):
            a = a * b % modulus
        best = min(best, (time.perf_counter() - start) / 20_000 * 1e6)
    return best


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def print_and_save(results: list[Result], console: Console, path: Path = RESULTS_PATH) -> None:
    table = Table(title="ours vs peers, measured in this run (ratio > 1: we are faster)")
    for column in ("figure", "unit", "ours", "peer", "peer value", "ratio", "target"):
        table.add_column(column, justify="right" if column in ("ours", "peer value", "ratio") else "left")
    for r in results:
        verdict = "" if r.target is None else f"{r.target} {'[green]met[/]' if r.met else '[red]not met[/]'}"
        table.add_row(
            r.name,
            r.unit,
            _fmt(r.ours),
            r.peer,
            _fmt(r.peer_value),
            "—" if r.ratio is None else f"{r.ratio:.2f}x",
            verdict,
        )
    console.print(table)
    path.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    console.print(f"written to {path}")
