"""Peer benchmark: MPyC secure comparison (``x < y``) throughput, 2 local parties.

Measures how many secure less-than comparisons per second MPyC performs on
64-bit secure integers (``mpc.SecInt(64)``) with two parties running as
separate processes on localhost (MPyC's ``-M2`` mode, Shamir secret sharing
over a prime field, threshold t = 0 as MPyC's default for m = 2).

Party 0 inputs N values ``x`` and party 1 inputs N values ``y`` (both drawn
from [-2**62, 2**62) so that ``x - y`` fits the 64-bit comparison range). The
timed region is only the vectorised comparison ``x < y`` on secure arrays
(``secint.array``) plus ``await mpc.output(...)`` of the result bits; input
distribution is done and both parties are synchronised before the timer
starts. If secure numpy arrays are unavailable the benchmark falls back to a
list of ``secint`` values and says so in ``details["mode"]``.

Run normally, the script is a launcher: it starts itself as
``python mpyc_ltz.py -M2 --no-log -B <port>`` (MPyC then spawns party 1 as a
further process with ``-I 1``), relays the child's logging to stderr, and
prints party 0's JSON result as its own last stdout line. Benchmark settings
reach the MPyC processes through environment variables because MPyC parses
``sys.argv`` itself (and ``--n`` would be an ambiguous prefix of its
``--no-*`` flags).

Prints exactly one JSON object on the last stdout line.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

PEER = "mpyc 0.11 SecInt(64) 2 local processes (-M2)"
METRIC = "ltz_in_process_mpyc_m2"
ENV_CHILD = "MPYC_LTZ_BENCH_CHILD"
ENV_N = "MPYC_LTZ_BENCH_N"
ENV_SEED = "MPYC_LTZ_BENCH_SEED"
ENV_MODE = "MPYC_LTZ_BENCH_MODE"  # "auto" (default) or "list" to force the fallback
LO, HI = -(2**62), 2**62


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.flush()
    print(json.dumps(obj), flush=True)


# --------------------------------------------------------------------------- party


def _party_values(seed: int, party: int, n: int) -> list[int]:
    import numpy as np

    rng = np.random.default_rng([seed, party])
    return [int(v) for v in rng.integers(LO, HI, n, dtype=np.int64)]


async def _party_main(n: int, seed: int, mode: str) -> dict[str, Any] | None:
    import mpyc
    import numpy as np
    from mpyc.runtime import mpc

    secint = mpc.SecInt(64)
    await mpc.start()
    pid = mpc.pid

    # Each party knows only its own values; party 0 regenerates party 1's values
    # from the public benchmark seed solely to check the result afterwards.
    own = _party_values(seed, pid, n)
    have_arrays = hasattr(secint, "array") and not mpc.options.no_numpy
    use_arrays = have_arrays and mode != "list"

    if use_arrays:
        mine = secint.array(np.array(own if pid == 0 else [0] * n, dtype=np.int64))
        theirs = secint.array(np.array(own if pid == 1 else [0] * n, dtype=np.int64))
        x = mpc.input(mine, senders=0)
        y = mpc.input(theirs, senders=1)
    else:
        x = mpc.input([secint(v if pid == 0 else 0) for v in own], senders=0)
        y = mpc.input([secint(v if pid == 1 else 0) for v in own], senders=1)
    await mpc.barrier("inputs")
    await mpc.output(secint(0))  # one round trip: both parties ready

    t0 = time.perf_counter()
    z = x < y if use_arrays else [a < b for a, b in zip(x, y, strict=False)]
    out = await mpc.output(z)
    seconds = time.perf_counter() - t0

    await mpc.shutdown()
    if pid != 0:
        return None

    got = np.array([int(v) for v in np.asarray(out).reshape(-1)], dtype=np.int64)
    expected = np.array(_party_values(seed, 0, n)) < np.array(_party_values(seed, 1, n))
    correct = bool(got.shape == expected.shape and np.array_equal(got.astype(bool), expected))
    from mpyc import gmpy as mpyc_gmpy

    gmpy2 = not getattr(mpyc_gmpy.mpz, "__module__", "mpyc").startswith("mpyc")
    return {
        "peer": f"mpyc {mpyc.__version__} SecInt(64) 2 local processes (-M2)",
        "metric": METRIC,
        "value": n / seconds,
        "unit": "comparisons/s",
        "details": {
            "n": n,
            "seconds": seconds,
            "correct": correct,
            "mode": "secint.array (vectorised numpy)" if use_arrays else "list of secint",
            "secure_arrays_available": have_arrays,
            "parties": len(mpc.parties),
            "threshold": mpc.threshold,
            "field_bits": secint.field.order.bit_length(),
            "sec_param": mpc.options.sec_param,
            "value_range": "[-2**62, 2**62)",
            "gmpy2": gmpy2,
            "timed": "x < y + await mpc.output(result)",
        },
    }


def _child() -> int:
    n = int(os.environ[ENV_N])
    seed = int(os.environ.get(ENV_SEED, "0"))
    mode = os.environ.get(ENV_MODE, "auto")
    try:
        from mpyc.runtime import mpc  # parses MPyC flags (-M2, -I, -B, --no-log) from sys.argv

        result = mpc.run(_party_main(n, seed, mode))
    except Exception as exc:
        _emit({"peer": PEER, "error": f"{type(exc).__name__}: {exc}"})
        return 0
    if result is not None:
        _emit(result)
    return 0


# ------------------------------------------------------------------------ launcher


def _free_port_pair() -> int:
    """Return a port b such that b and b+1 are currently free on localhost."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("localhost", 0))
            base = s.getsockname()[1]
        if base >= 65535:
            continue
        try:
            with socket.socket() as s1, socket.socket() as s2:
                s1.bind(("localhost", base))
                s2.bind(("localhost", base + 1))
            return base
        except OSError:
            continue
    return 11365  # MPyC's default base port


def _launch(n: int, seed: int, timeout: float, mode: str) -> dict[str, Any]:
    # Only locate mpyc here: importing it parses sys.argv with MPyC's own parser.
    if importlib.util.find_spec("mpyc") is None:
        return {"peer": PEER, "error": "mpyc is not installed"}

    port = _free_port_pair()
    cmd = [sys.executable, os.path.abspath(__file__), "-M2", "--no-log", "-B", str(port)]
    env = dict(os.environ, **{ENV_CHILD: "1", ENV_N: str(n), ENV_SEED: str(seed), ENV_MODE: mode})
    print(f"launching: {' '.join(cmd)}", file=sys.stderr)
    # New session so that party 0 and the party 1 it spawns can be killed together.
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"peer": PEER, "error": f"MPyC parties did not finish within {timeout} s"}
    finally:
        with contextlib.suppress(OSError):  # reap a lingering party 1; the group may be gone
            os.killpg(proc.pid, signal.SIGTERM)

    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    if stderr:
        sys.stderr.write(stderr)
    for ln in lines[:-1]:
        print(ln, file=sys.stderr)
    if not lines:
        return {"peer": PEER, "error": f"party 0 printed nothing (exit code {proc.returncode})"}
    try:
        result = json.loads(lines[-1])
    except json.JSONDecodeError:
        return {"peer": PEER, "error": f"party 0 last line not JSON: {lines[-1][:200]}"}
    if isinstance(result, dict) and "details" in result:
        result["details"]["mpyc_flags"] = cmd[2:]
    return result


def main() -> int:
    if os.environ.get(ENV_CHILD) == "1":
        return _child()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="number of comparisons")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds before giving up")
    parser.add_argument(
        "--mode", choices=("auto", "list"), default="auto", help="'list' forces the list-of-secint fallback"
    )
    args = parser.parse_args()
    _emit(_launch(args.n, args.seed, args.timeout, args.mode))
    return 0


if __name__ == "__main__":
    sys.exit(main())
