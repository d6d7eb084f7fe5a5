"""Peer benchmark: SecretFlow SPU secret comparison (``x < y``) throughput.

Measures how many element-wise secret-shared less-than comparisons per second
SPU 0.9.5 performs with the SEMI2K protocol, 2 parties, ring FM64, using SPU's
in-process simulator (``spu.utils.simulation.Simulator`` + ``sim_jax``): both
parties run as threads in this process and talk through an in-memory link.

Primary value: ``N / best_seconds`` over 3 timed end-to-end ``sim_jax`` calls
(after one warm-up call). An end-to-end call includes SPU compilation of the
jax function (``sim_jax`` does not cache it), secret-sharing of the inputs,
the 2-party protocol run and reconstruction of the output. ``details`` also
reports the best time of the simulator alone on a pre-compiled executable
(sharing + protocol + reconstruction, no compilation).

Inputs are int64 by default (jax x64 mode is enabled; without it jax silently
truncates int64 inputs to int32). Values are drawn from [-2**62, 2**62): SPU
compares integers via the sign of ``x - y`` in the 64-bit ring, so inputs using
the full int64 range overflow and give wrong answers. ``--dtype int32`` uses
full-range int32 values instead.

Prints exactly one JSON object on the last stdout line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

PEER = "spu 0.9.5 semi2k FM64 2PC simulator"


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.flush()
    print(json.dumps(obj), flush=True)


def _best_of(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float], Any]:
    times: list[float] = []
    out: Any = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), times, out


def run(n: int, dtype: str, repeats: int, seed: int) -> dict[str, Any]:
    import jax
    import numpy as np

    if dtype == "int64":
        jax.config.update("jax_enable_x64", True)

    import spu
    import spu.libspu as libspu
    from spu.utils import frontend as spu_fe
    from spu.utils import simulation

    peer = f"spu {spu.__version__} semi2k FM64 2PC simulator"
    config = libspu.RuntimeConfig(protocol=libspu.ProtocolKind.SEMI2K, field=libspu.FieldType.FM64)
    sim = simulation.Simulator(2, config)

    def less(x: Any, y: Any) -> Any:
        return x < y

    spu_less = simulation.sim_jax(sim, less)

    rng = np.random.default_rng(seed)
    if dtype == "int64":
        lo, hi = -(2**62), 2**62
        x = rng.integers(lo, hi, n, dtype=np.int64)
        y = rng.integers(lo, hi, n, dtype=np.int64)
    else:
        info = np.iinfo(np.int32)
        x = rng.integers(info.min, info.max, n, dtype=np.int32, endpoint=True)
        y = rng.integers(info.min, info.max, n, dtype=np.int32, endpoint=True)
    expected = x < y

    # Warm-up (also compiles once).
    t0 = time.perf_counter()
    warm = np.asarray(spu_less(x, y))
    warmup_s = time.perf_counter() - t0
    correct = bool(warm.shape == expected.shape and np.array_equal(warm.astype(bool), expected))
    pphlo = getattr(spu_less, "pphlo", "")
    secret_type = "i64" if "secret<i64>" in pphlo else ("i32" if "secret<i32>" in pphlo else "?")

    best, times, out = _best_of(lambda: np.asarray(spu_less(x, y)), repeats)
    correct = correct and bool(np.array_equal(out.astype(bool), expected))

    # Simulator only (pre-compiled executable): sharing + protocol + reconstruct.
    t0 = time.perf_counter()
    executable, _ = spu_fe.compile(
        spu_fe.Kind.JAX,
        less,
        (x, y),
        {},
        ["in0", "in1"],
        [libspu.Visibility.VIS_SECRET] * 2,
        lambda outs: [f"out{i}" for i in range(len(outs))],
    )
    compile_s = time.perf_counter() - t0
    sim_best, sim_times, sim_out = _best_of(lambda: sim(executable, x, y)[0], repeats)
    correct = correct and bool(np.array_equal(np.asarray(sim_out).astype(bool), expected))

    return {
        "peer": peer,
        "metric": "ltz_1m_in_process",
        "value": n / best,
        "unit": "comparisons/s",
        "details": {
            "n": n,
            "seconds": best,
            "seconds_all": times,
            "warmup_seconds": warmup_s,
            "correct": correct,
            "input_dtype": dtype,
            "spu_secret_type": secret_type,
            "value_range": "[-2**62, 2**62)" if dtype == "int64" else "full int32",
            "parties": 2,
            "protocol": "SEMI2K",
            "field": "FM64",
            "timed_call": "sim_jax end-to-end (compile + share + run + reconstruct)",
            "compile_seconds": compile_s,
            "sim_only_seconds": sim_best,
            "sim_only_seconds_all": sim_times,
            "sim_only_comparisons_per_s": n / sim_best,
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="number of comparisons")
    parser.add_argument("--dtype", choices=("int64", "int32"), default="int64")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        result = run(args.n, args.dtype, args.repeats, args.seed)
    except Exception as exc:
        _emit({"peer": PEER, "error": f"{type(exc).__name__}: {exc}"})
        return 0
    _emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
