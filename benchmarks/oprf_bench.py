"""Curve25519 OPRF per element (blind, evaluate, unblind) against openmined-psi's P-256 ECDH."""

from __future__ import annotations

import time

from benchmarks.report import Result, compare, run_peer_script
from mpc.crypto.curve25519 import OprfClient, OprfServer


def ours_us_per_element(n: int, parallel: bool) -> float:
    ids = [f"{i:018d}" for i in range(n)]
    server, client = OprfServer.generate(b"bench"), OprfClient(b"bench")
    if parallel:  # start the worker processes outside the timed region
        client.blind(ids[:5000], parallel=True)
    start = time.perf_counter()
    query = client.blind(ids, parallel=parallel)
    tags = client.finalize(query, server.evaluate_blinded(query.points, parallel=parallel), parallel=parallel)
    elapsed = time.perf_counter() - start
    assert tags[:100] == server.evaluate_ids(ids[:100], parallel=False)
    return elapsed / n * 1e6


def run(quick: bool = False) -> list[Result]:
    n = 10_000 if quick else 100_000
    peer_raw = run_peer_script("openmined_psi_oprf.py", ["--n", str(n)])
    peer = str(peer_raw.get("peer", "openmined-psi"))
    peer_value = peer_raw.get("value")
    if "error" in peer_raw:
        peer = f"openmined-psi (not measured: {peer_raw['error']})"
    one_core = ours_us_per_element(n, parallel=False)
    all_cores = ours_us_per_element(n, parallel=True)
    return [
        compare("x25519_oprf_element", "us/element", all_cores, peer, peer_value),
        compare("x25519_oprf_element_one_core", "us/element", one_core, peer, peer_value),
    ]
