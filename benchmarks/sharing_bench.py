"""One million 64-bit secret-shared comparisons between two in-process parties."""

from __future__ import annotations

import sys
import time

import numpy as np

from benchmarks.report import Result, compare, run_peer_script
from mpc.sharing.runtime import Party, run_in_process


def ours_comparisons_per_s(n: int, repeats: int = 3) -> float:
    """End to end like SPU's simulator: dealing, sharing both inputs, ``x < y``, reveal."""
    rng = np.random.default_rng(7)
    xs = rng.integers(-(2**62), 2**62, n)
    ys = rng.integers(-(2**62), 2**62, n)

    def program(p: Party) -> np.ndarray | None:
        x = p.share(xs if p.first else None, owner=0)
        y = p.share(ys if not p.first else None, owner=1)
        return p.reveal_bits(x < y, to=0)

    run_in_process(program)  # warm-up: loads the cached numba kernels
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result, _ = run_in_process(program)
        best = min(best, time.perf_counter() - start)
        assert result is not None and np.array_equal(result, (xs < ys).astype(np.uint8))
    return n / best


def mpyc_peer(quick: bool = False) -> tuple[str, float | None]:
    """MPyC with two local parties (separate processes), from our own environment (with gmpy2)."""
    mpyc = run_peer_script("mpyc_ltz.py", ["--n", "5000" if quick else "10000"], python=sys.executable)
    if "error" in mpyc:
        return f"mpyc (not measured: {mpyc['error']})", None
    return str(mpyc.get("peer", "mpyc")), mpyc.get("value")


def run(quick: bool = False, mpyc: tuple[str, float | None] | None = None) -> list[Result]:
    n = 100_000 if quick else 1_000_000
    ours = ours_comparisons_per_s(n)
    spu = run_peer_script("spu_ltz.py", ["--n", str(n)])
    spu_name = str(spu.get("peer", "spu semi2k"))
    if "error" in spu:
        spu_name = f"spu (not measured: {spu['error']})"
    mpyc_name, mpyc_value = mpyc or mpyc_peer(quick)
    return [
        compare("ltz_1m_in_process", "comparisons/s", ours, spu_name, spu.get("value"), 1.0),
        compare("ltz_1m_in_process", "comparisons/s", ours, mpyc_name, mpyc_value),
    ]
