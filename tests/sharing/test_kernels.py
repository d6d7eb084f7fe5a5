"""numba kernels against numpy references, and the on-disk compilation cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from mpc.sharing import kernels
from mpc.sharing.channel import ChannelError, InProcessChannel

words = st.lists(st.integers(0, 2**64 - 1), min_size=0, max_size=300)


@given(values=words)
def test_bitplanes_is_a_transpose(values: list[int]) -> None:
    array = np.array(values, dtype=np.uint64)
    planes = kernels.bitplanes(array)
    n = len(values)
    assert planes.shape == (64, (n + 63) // 64)
    for j in (0, 1, 31, 32, 62, 63):
        expected = kernels.pack_bits((array >> np.uint64(j)) & np.uint64(1)) if n else np.zeros(0, np.uint64)
        np.testing.assert_array_equal(planes[j], expected)


@given(bits=st.lists(st.integers(0, 1), max_size=300))
def test_pack_unpack_roundtrip(bits: list[int]) -> None:
    array = np.array(bits, dtype=np.uint64)
    packed = kernels.pack_bits(array)
    np.testing.assert_array_equal(kernels.unpack_bits(packed, len(bits)), array)
    np.testing.assert_array_equal(
        np.unpackbits(packed.view(np.uint8), bitorder="little")[: len(bits)], array.astype(np.uint8)
    )


def test_dealer_corrections_make_valid_correlations() -> None:
    from mpc.sharing.dealer import TrustedDealer

    dealer = TrustedDealer()
    c0, c1 = dealer.correlations_for(0), dealer.correlations_for(1)
    u0, v0, w0 = c0.bit_triples(100)
    u1, v1, w1 = c1.bit_triples(100)
    np.testing.assert_array_equal(w0 ^ w1, (u0 ^ u1) & (v0 ^ v1))
    a0, b0, d0 = c0.beaver_triples(100)
    a1, b1, d1 = c1.beaver_triples(100)
    np.testing.assert_array_equal(d0 + d1, (a0 + a1) * (b0 + b1))
    rb0, ra0 = c0.dabits(130)
    rb1, ra1 = c1.dabits(130)
    np.testing.assert_array_equal(ra0 + ra1, kernels.unpack_bits(rb0 ^ rb1, 130))


def test_channel_reports_peer_and_step() -> None:
    left, right = InProcessChannel.pair(("tax", "housing"))
    left.send("ltz#1", np.zeros(1, np.uint64))
    import pytest

    with pytest.raises(ChannelError, match="tax is out of step: expected 'mul#1', received 'ltz#1'"):
        right.recv("mul#1")
    with pytest.raises(ChannelError, match="no message from tax at step 'x'"):
        right.recv("x", timeout=0.05)
    left.abort("disk full")
    with pytest.raises(ChannelError, match="tax aborted the session before step 'y': disk full"):
        right.recv("y")


def test_compiled_kernels_are_cached_on_disk(tmp_path: Path) -> None:
    """A second process loads every kernel from the cache instead of compiling it again."""
    script = (
        "import numpy as np\n"
        "from mpc.sharing import kernels\n"
        "from mpc.sharing.runtime import run_in_process\n"
        "from mpc.sharing import boolean\n"
        "run_in_process(lambda p: p.reveal(boolean.b2a(boolean.ltz(p.share([1, -2] if p.first else None, 0))\n"
        "    & boolean.eqz(p.share([0, 3] if p.first else None, 0))), 0))\n"
        "names = ['_bitplanes', 'and_open', 'and_close', 'carry_gate_inputs', 'carry_merge', 'and_tree_inputs',\n"
        "         'bit_triple_correction', 'dabit_correction', 'b2a_combine']\n"
        "print(sum(sum(getattr(kernels, n).stats.cache_hits.values()) for n in names),\n"
        "      sum(sum(getattr(kernels, n).stats.cache_misses.values()) for n in names))\n"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    runs = [
        subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        ).stdout.split()
        for _ in range(2)
    ]
    first_hits, first_misses = map(int, runs[0])
    second_hits, second_misses = map(int, runs[1])
    assert first_misses > 0 and first_hits == 0
    assert second_misses == 0 and second_hits >= first_misses
