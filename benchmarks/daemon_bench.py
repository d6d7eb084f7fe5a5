"""Secret-shared comparisons between two processes over mutual TLS, the coordinator dealing.

A co-party daemon and the requester's SDK process (plus the coordinator as dealer, a third
process) on loopback; one million ``x < y`` end to end: dealer seeds and corrections, both inputs
shared, the comparison, the reveal. Best of three after a warm-up.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.report import Result, compare
from demo.cluster import LocalCluster, PartySpec
from mpc.protocols.selftest import public_values
from parties.requester import Client


def ours_comparisons_per_s(n: int, repeats: int = 3) -> float:
    policy = {"peers": {"requester": {"purposes": ["selftest"], "programs": ["selftest-compare"]}}}
    values = np.random.default_rng(11).integers(-(2**62), 2**62, n, dtype=np.int64)
    expected = (values < public_values(5, n)).astype(np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        cluster = LocalCluster(
            Path(tmp), [PartySpec("co-party", [], policy), PartySpec("requester", daemon=False)], paillier_bits=1024
        )
        with cluster, Client.from_config(cluster.config("requester"), "selftest", "bench") as client:
            client.selftest_compare("co-party", values[:1000], seed=5)  # warm-up: kernels, sessions
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                bits, _ = client.selftest_compare("co-party", values, seed=5)
                best = min(best, time.perf_counter() - start)
                assert np.array_equal(bits, expected)
    return n / best


def run(quick: bool, mpyc: tuple[str, float | None]) -> list[Result]:
    ours = ours_comparisons_per_s(100_000 if quick else 1_000_000)
    return [compare("ltz_1m_two_processes_tls", "comparisons/s", ours, mpyc[0], mpyc[1], 200)]
