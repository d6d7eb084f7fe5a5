"""Peer benchmark: OpenMined PSI between two sets of N items, end to end, in one process.

``openmined-psi`` (``private_set_intersection.python``, ECDH over P-256, single-threaded): the
server's setup message (every server item hashed and raised to its key), the client's request
(hash and blind), the server's answer and the client's intersection, all timed: what a PSI of
two N-item sets costs through its public API. ``--overlap`` items are shared.

Prints one JSON object on the last stdout line: seconds, the intersection size and the bytes of
the three messages (setup, request, response) per element.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


def run(n: int, overlap: int, fpr: float) -> dict[str, Any]:
    import private_set_intersection.python as psi

    client_items = [f"id-{i}" for i in range(n)]
    server_items = client_items[:overlap] + [f"server-only-{i}" for i in range(n - overlap)]
    client = psi.client.CreateWithNewKey(True)
    server = psi.server.CreateWithNewKey(True)
    started = time.perf_counter()
    setup = server.CreateSetupMessage(fpr=fpr, num_client_inputs=n, inputs=server_items, ds=psi.DataStructure.RAW)
    request = client.CreateRequest(client_items)
    response = server.ProcessRequest(request)
    found = client.GetIntersection(setup, response)
    seconds = time.perf_counter() - started
    wire = setup.ByteSize() + request.ByteSize() + response.ByteSize()
    return {
        "peer": f"openmined-psi {psi.__version__} (ECDH P-256, one thread)",
        "value": seconds,
        "unit": "s",
        "details": {
            "n": n,
            "intersection": len(found),
            "correct": len(found) == overlap,
            "bytes_per_element": wire / (2 * n),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--overlap", type=int, default=50_000)
    parser.add_argument("--fpr", type=float, default=1e-9)
    args = parser.parse_args()
    try:
        result = run(args.n, min(args.overlap, args.n), args.fpr)
    except Exception as exc:
        result = {"peer": "openmined-psi", "error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
