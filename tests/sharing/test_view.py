"""A party's whole view does not depend on the other party's secret input (statistical test).

The view of a party is its own share and every message it receives while computing comparisons,
equality, multiplication and B2A, up to (not including) the final reveal. We run the same program
with two very different secrets and compare the byte distributions of the two views with a
chi-square homogeneity test, and the per-bit-position frequencies with a two-proportion test.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2_contingency, norm

from mpc.sharing import boolean
from mpc.sharing.channel import InProcessChannel, RecordingChannel
from mpc.sharing.runtime import Party, run_in_process

BATCH = 4096
ALPHA = 1e-4  # per test; a sound implementation fails with probability ~ALPHA


def view_of(observer: int, secret: int) -> np.ndarray:
    """Everything ``observer`` sees while the other party's secret is ``secret`` (repeated)."""
    left, right = InProcessChannel.pair()
    recorders = [RecordingChannel(left), RecordingChannel(right)]
    owner = 1 - observer
    shares: list[np.ndarray] = []

    def program(p: Party) -> None:
        x = p.share(np.full(BATCH, secret) if p.index == owner else None, owner=owner)
        if p.index == observer:
            shares.append(x.value.copy())
        below = boolean.ltz(x - 1000)
        zero = boolean.eqz(x)
        square = x * x
        both = below & zero
        _ = boolean.b2a(below | both).value + square.value

    run_in_process(program, channels=(recorders[0], recorders[1]))
    received = [payload.view(np.uint8) for _, payload in recorders[observer].received]
    return np.concatenate([shares[0].view(np.uint8), *received])


@pytest.mark.parametrize("observer", [0, 1])
def test_view_is_independent_of_the_secret(observer: int) -> None:
    view_a = view_of(observer, secret=-(2**61))  # negative, non-zero
    view_b = view_of(observer, secret=0)  # zero: flips both the ltz and eqz results
    assert view_a.shape == view_b.shape

    # Byte histograms: homogeneity of the two views, and both close to uniform.
    hist_a = np.bincount(view_a, minlength=256)
    hist_b = np.bincount(view_b, minlength=256)
    _, p_value, _, _ = chi2_contingency(np.vstack([hist_a, hist_b]))
    assert p_value > ALPHA, f"views differ in byte distribution (p = {p_value:.2e})"

    # Bit-position frequencies: the same in both views (Bonferroni over 64 positions).
    bits_a = np.unpackbits(view_a[: len(view_a) // 8 * 8]).reshape(-1, 64).mean(axis=0)
    bits_b = np.unpackbits(view_b[: len(view_b) // 8 * 8]).reshape(-1, 64).mean(axis=0)
    rows = len(view_a) // 8
    pooled = (bits_a + bits_b) / 2
    z = np.abs(bits_a - bits_b) / np.sqrt(pooled * (1 - pooled) * 2 / rows)
    assert z.max() < norm.isf(ALPHA / 2 / 64), f"bit frequencies differ (max z = {z.max():.2f})"
    assert np.abs(bits_a - 0.5).max() < 0.01
