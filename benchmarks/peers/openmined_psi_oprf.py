"""Peer benchmark: OpenMined PSI per-element cost of its ECDH-OPRF style work.

Uses ``openmined-psi`` (``private_set_intersection.python``), whose protocol is
ECDH-based PSI over P-256 (client blinds H(x)^a, server raises to its key b,
client unblinds and matches against the server's setup message). For N client
elements it times, through the library's public Python API:

* ``client.CreateRequest(items)``       - client hashing to the curve + blinding
* ``server.ProcessRequest(request)``    - server exponentiation of every element
* ``client.GetIntersection(setup, resp)`` - client unblinding + lookup

against a small server set (1000 items, 500 of which overlap the client set)
encoded with ``DataStructure.RAW``. ``server.CreateSetupMessage`` is timed
separately and excluded from the value.

Value: (request + process + get_intersection seconds) / N * 1e6 in
microseconds per client element. Each phase's time includes the wrapper's
protobuf serialise/parse round trips, which are part of the public API.

Prints exactly one JSON object on the last stdout line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

PEER = "openmined-psi 2.0.6 (ECDH P-256, reveal_intersection=True)"


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.flush()
    print(json.dumps(obj), flush=True)


def run(n: int, server_size: int, overlap: int, fpr: float) -> dict[str, Any]:
    if overlap > min(n, server_size):
        raise ValueError("overlap must not exceed the client or server set size")
    import private_set_intersection.python as psi

    peer = f"openmined-psi {psi.__version__} (ECDH P-256, reveal_intersection=True)"
    client_items = [f"element-{i}" for i in range(n)]
    # Overlap: the first `overlap` client items; the rest are server-only items.
    server_items = client_items[:overlap] + [f"server-only-{i}" for i in range(server_size - overlap)]

    client = psi.client.CreateWithNewKey(True)
    server = psi.server.CreateWithNewKey(True)

    t0 = time.perf_counter()
    setup = server.CreateSetupMessage(fpr=fpr, num_client_inputs=n, inputs=server_items, ds=psi.DataStructure.RAW)
    setup_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    request = client.CreateRequest(client_items)
    request_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    response = server.ProcessRequest(request)
    process_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    intersection = client.GetIntersection(setup, response)
    intersect_s = time.perf_counter() - t0

    found = sorted(int(i) for i in intersection)
    correct = found == list(range(overlap))
    total = request_s + process_s + intersect_s
    return {
        "peer": peer,
        "metric": "oprf_element",
        "value": total / n * 1e6,
        "unit": "us/element",
        "details": {
            "n": n,
            "server_items": server_size,
            "expected_intersection": overlap,
            "intersection_size": len(found),
            "correct": correct,
            "create_request_seconds": request_s,
            "process_request_seconds": process_s,
            "get_intersection_seconds": intersect_s,
            "total_seconds": total,
            "setup_seconds_excluded": setup_s,
            "per_phase_us_per_element": {
                "create_request": request_s / n * 1e6,
                "process_request": process_s / n * 1e6,
                "get_intersection": intersect_s / n * 1e6,
            },
            "request_bytes": request.ByteSize(),
            "response_bytes": response.ByteSize(),
            "setup_bytes": setup.ByteSize(),
            "data_structure": "RAW",
            "fpr": fpr,
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="number of client elements")
    parser.add_argument("--server-items", type=int, default=1000)
    parser.add_argument("--overlap", type=int, default=500)
    parser.add_argument("--fpr", type=float, default=1e-9)
    args = parser.parse_args()
    overlap = min(args.overlap, args.n, args.server_items)
    try:
        result = run(args.n, args.server_items, overlap, args.fpr)
    except Exception as exc:
        _emit({"peer": PEER, "error": f"{type(exc).__name__}: {exc}"})
        return 0
    _emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
