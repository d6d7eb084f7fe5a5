"""Both kernel implementations against references and the numpy kernels against the numba ones on
random inputs with the edge words; which one a call takes; the on-disk compilation cache of the
numba kernels; and a small computation that never imports numba."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpc.sharing import jit_kernels as jk
from mpc.sharing import kernels
from mpc.sharing import numpy_kernels as nk
from mpc.sharing.channel import ChannelError, InProcessChannel

words = st.lists(st.integers(0, 2**64 - 1), min_size=0, max_size=300)
EDGE_WORDS = [0, 1, 2**63 - 1, 2**63, 2**64 - 2, 2**64 - 1, 0x5555555555555555, 0xAAAAAAAAAAAAAAAA]
word = st.one_of(st.sampled_from(EDGE_WORDS), st.integers(0, 2**64 - 1))


def _array(data: st.DataObject, n: int) -> np.ndarray:
    return np.array(data.draw(st.lists(word, min_size=n, max_size=n)), dtype=np.uint64)


def _same(numpy_result: object, jit_result: object) -> None:
    """Equal results of the same dtype and shape (tuples element by element)."""
    if isinstance(numpy_result, tuple):
        assert isinstance(jit_result, tuple) and len(numpy_result) == len(jit_result)
        for a, b in zip(numpy_result, jit_result, strict=True):
            _same(a, b)
        return
    assert isinstance(numpy_result, np.ndarray) and isinstance(jit_result, np.ndarray)
    assert numpy_result.dtype == jit_result.dtype == np.uint64
    assert numpy_result.shape == jit_result.shape
    np.testing.assert_array_equal(numpy_result, jit_result)


@given(data=st.data(), n=st.integers(0, 200))
def test_numpy_kernels_equal_numba_on_word_kernels(data: st.DataObject, n: int) -> None:
    x, y, u, v, w = (_array(data, n) for _ in range(5))
    _same(nk.bitplanes(x), jk.bitplanes(x))
    mine, theirs = nk.and_open(x, y, u, v), jk.and_open(x, y, u, v)
    _same(mine, theirs)
    other = _array(data, 2 * n)
    for first in (True, False):
        _same(nk.and_close(mine, other, u, v, w, first), jk.and_close(mine, other, u, v, w, first))
    _same(nk.bit_triple_correction(x, y, u, v, w), jk.bit_triple_correction(x, y, u, v, w))
    _same(nk.beaver_correction(x, y, u, v, w), jk.beaver_correction(x, y, u, v, w))
    bits = np.array(data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)), dtype=np.uint64)
    _same(nk.pack_bits(bits), jk.pack_bits(bits))
    packed = _array(data, (n + 63) // 64)
    _same(nk.unpack_bits(packed, n), jk.unpack_bits(packed, n))
    rb0, rb1 = packed, _array(data, (n + 63) // 64)
    _same(nk.dabit_correction(rb0, rb1, x, n), jk.dabit_correction(rb0, rb1, x, n))
    for first in (True, False):
        _same(nk.b2a_combine(packed, x, first), jk.b2a_combine(packed, x, first))


@given(data=st.data(), rows=st.integers(1, 64), words_per_row=st.integers(1, 5), lowest=st.booleans())
def test_numpy_kernels_equal_numba_on_tree_kernels(
    data: st.DataObject, rows: int, words_per_row: int, lowest: bool
) -> None:
    g = _array(data, rows * words_per_row).reshape(rows, words_per_row)
    p = _array(data, rows * words_per_row).reshape(rows, words_per_row)
    _same(nk.and_tree_inputs(g), jk.and_tree_inputs(g))
    if rows < 2:
        return
    _same(nk.carry_gate_inputs(g, p, lowest), jk.carry_gate_inputs(g, p, lowest))
    pairs = rows // 2
    z = _array(data, (2 * pairs - (0 if lowest else 1)) * words_per_row)
    _same(nk.carry_merge(g, p, z, lowest), jk.carry_merge(g, p, z, lowest))


def _spy(monkeypatch: pytest.MonkeyPatch, module: ModuleType, called: list[str]) -> None:
    original = module.bitplanes

    def spy(array: np.ndarray) -> np.ndarray:
        called.append(module.__name__.rsplit(".", 1)[-1])
        return original(array)  # type: ignore[no-any-return]

    monkeypatch.setattr(module, "bitplanes", spy)


def test_the_size_and_the_process_choose_the_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small arrays take numpy, arrays of JIT_MIN_WORDS words numba; after use_jit, every size."""
    values = np.random.default_rng(3).integers(0, 2**64 - 1, 300, dtype=np.uint64, endpoint=True)
    expected = nk.bitplanes(values)
    called: list[str] = []
    _spy(monkeypatch, nk, called)
    _spy(monkeypatch, jk, called)
    monkeypatch.setattr(kernels, "_jit_ready", False)
    np.testing.assert_array_equal(kernels.bitplanes(values), expected)
    monkeypatch.setattr(kernels, "JIT_MIN_WORDS", 300)
    np.testing.assert_array_equal(kernels.bitplanes(values), expected)
    monkeypatch.setattr(kernels, "JIT_MIN_WORDS", 301)
    monkeypatch.setattr(kernels, "_jit_ready", True)  # as use_jit() leaves it
    np.testing.assert_array_equal(kernels.bitplanes(values), expected)
    assert called == ["numpy_kernels", "jit_kernels", "jit_kernels"]


def test_numba_loads_in_the_background_after_many_small_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[bool] = []
    monkeypatch.setattr(kernels, "_jit_ready", False)
    monkeypatch.setattr(kernels, "_small_calls", kernels.JIT_AFTER_CALLS - 2)
    monkeypatch.setattr(kernels, "_load_in_background", lambda: started.append(True))
    one = np.ones(1, dtype=np.uint64)
    kernels.unpack_bits(one, 1)
    assert started == []
    kernels.unpack_bits(one, 1)  # the JIT_AFTER_CALLS-th
    kernels.unpack_bits(one, 1)
    assert started == [True]


@pytest.mark.parametrize("module", [nk, jk], ids=["numpy", "numba"])
@given(values=words)
def test_bitplanes_is_a_transpose(module: ModuleType, values: list[int]) -> None:
    array = np.array(values, dtype=np.uint64)
    planes = module.bitplanes(array)
    n = len(values)
    assert planes.shape == (64, (n + 63) // 64)
    for j in (0, 1, 31, 32, 62, 63):
        expected = module.pack_bits((array >> np.uint64(j)) & np.uint64(1)) if n else np.zeros(0, np.uint64)
        np.testing.assert_array_equal(planes[j], expected)


@pytest.mark.parametrize("module", [nk, jk], ids=["numpy", "numba"])
@given(bits=st.lists(st.integers(0, 1), max_size=300))
def test_pack_unpack_roundtrip(module: ModuleType, bits: list[int]) -> None:
    array = np.array(bits, dtype=np.uint64)
    packed = module.pack_bits(array)
    np.testing.assert_array_equal(module.unpack_bits(packed, len(bits)), array)
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
        "kernels.use_jit()  # every kernel loaded, then the numba path for every size\n"
        "from mpc.sharing.runtime import run_in_process\n"
        "from mpc.sharing import boolean\n"
        "run_in_process(lambda p: p.reveal(boolean.b2a(boolean.ltz(p.share([1, -2] if p.first else None, 0))\n"
        "    & boolean.eqz(p.share([0, 3] if p.first else None, 0))), 0))\n"
        "names = ['_bitplanes', 'and_open', 'and_close', 'carry_gate_inputs', 'carry_merge', 'and_tree_inputs',\n"
        "         'bit_triple_correction', 'beaver_correction', 'dabit_correction', 'unpack_bits', 'pack_bits',\n"
        "         'b2a_combine']\n"
        "jit = kernels.jit()\n"
        "print(sum(sum(getattr(jit, n).stats.cache_hits.values()) for n in names),\n"
        "      sum(sum(getattr(jit, n).stats.cache_misses.values()) for n in names))\n"
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


def test_a_small_computation_never_imports_numba() -> None:
    """Comparisons, equality and B2A of a few values, dealer included, stay on the numpy path."""
    script = (
        "import sys\n"
        "from mpc.sharing.runtime import run_in_process\n"
        "from mpc.sharing.boolean import b2a, eqz, ltz\n"
        "def program(p):\n"
        "    x = p.share([1, -2, 0, 2**62 - 1, -(2**62)] if p.first else None, 0)\n"
        "    return p.reveal(b2a(ltz(x)), 0), p.reveal(b2a(eqz(x)), 0)\n"
        "print([a.tolist() for a in run_in_process(program)[0]], 'numba' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["[[0,", "1,", "0,", "0,", "1],", "[0,", "0,", "1,", "0,", "0]]", "False"], (
        done.stdout
    )
