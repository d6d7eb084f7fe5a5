"""Differential privacy of released cells (P5), with OpenDP: calibration from declared bounds,
noise that each compute party samples for its own share, and the cost of a query.

* One person is one row of the join (ids are unique by each owner's duplicates policy), so adding
  or removing a person changes one group's cells only: the COUNT vector has L1 sensitivity 1, a
  SUM vector the largest absolute value the column's declared (clamped) bounds allow.
* A query's ε is split evenly over its measurements (the COUNT vector and one SUM vector per
  summed column); each is a discrete Laplace mechanism (``opendp.measurements.make_laplace`` on
  integer vectors) whose scale OpenDP calibrates so that the measurement costs its share.
* **Each** compute party samples noise of the full scale and adds it to its share of the cells
  before they are revealed, so the released value carries two independent noises: either alone
  gives the promised ε, so one party colluding with the recipient still leaves the other's. The
  variance of a released cell is therefore twice the mechanism's (``2 * 2 * scale^2``).
* The cost is the sum of the measurements' privacy maps (sequential composition): ε. MEAN is
  SUM / COUNT of released cells (post-processing: free).
* Cells whose noisy COUNT is below the minimum cell size are suppressed (marked, not dropped).
* **Accuracy** is stated with every release, from the mechanism's scale (as OpenDP's and Tumult
  Analytics' accuracy helpers do): :func:`error_bound` is the half-width of the central 95 %
  interval of the two parties' noise together (the exact distribution of the sum of two discrete
  Laplace variables); a MEAN's interval follows from its SUM's and COUNT's, and a MEAN is clamped
  to the column's declared bounds as post-processing (:func:`mean_interval`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from mpc.protocols.aggregate import DEFAULT_MIN_CELL, AggregateRequest, Schemas

__all__ = [
    "CONFIDENCE",
    "Measurement",
    "cost",
    "error_bound",
    "mean_interval",
    "noise",
    "own_noise",
    "plan",
    "release_cost",
    "released_variance",
    "sensitivity",
    "suppressed",
]


@cache
def _opendp() -> Any:
    """OpenDP, imported on first use (the requester's processes seldom need it) with ``contrib`` on."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


CONFIDENCE = 0.95


@dataclass(frozen=True)
class Measurement:
    """One released vector (a cell kind over every group) and its mechanism."""

    cell: str  # "count" or "sum(side.column)"
    sensitivity: int  # L1, over the vector of groups
    epsilon: float  # this measurement's share of the query's ε
    scale: float  # discrete Laplace scale OpenDP calibrated for it

    def mechanism(self, groups: int) -> Any:
        dp = _opendp()
        space = dp.vector_domain(dp.atom_domain(T="i64"), size=groups), dp.l1_distance(T="i64")
        return dp.m.make_laplace(*space, scale=self.scale)


def sensitivity(request: AggregateRequest, schemas: Schemas, cell: str) -> int:
    """L1 sensitivity of one cell kind's vector: 1 for COUNT, the largest |value| for a SUM."""
    if cell == "count":
        return 1
    ref = next(c for c in request.summed() if f"sum({c})" == cell)
    low, high = schemas[ref.side][ref.column].bounds()
    return max(abs(low), abs(high), 1)


def plan(request: AggregateRequest, schemas: Schemas, epsilon: float) -> list[Measurement]:
    """The measurements of ``request`` sharing ``epsilon`` evenly, each with OpenDP's scale."""
    if not 0 < epsilon <= 100:
        raise ValueError(f"epsilon {epsilon} outside (0, 100]")
    cells = request.cells()
    share = epsilon / len(cells)
    dp = _opendp()
    space = dp.atom_domain(T="i64"), dp.absolute_distance(T="i64")
    out = []
    for cell in cells:
        d_in = sensitivity(request, schemas, cell)
        scale = d_in / share  # the discrete Laplace's calibration, checked by OpenDP's own privacy map
        if dp.m.make_laplace(*space, scale=scale).map(d_in) > share * (1 + 1e-9):
            scale = dp.binary_search_param(lambda s: dp.m.make_laplace(*space, scale=s), d_in=d_in, d_out=share)
        out.append(Measurement(cell, d_in, share, float(scale)))
    return out


def cost(measurements: list[Measurement], groups: int) -> float:
    """ε of releasing every measurement once: each mechanism's privacy map (OpenDP) at its
    sensitivity, summed (sequential composition; the groups of one vector are disjoint)."""
    return sum(float(m.mechanism(groups).map(m.sensitivity)) for m in measurements)


def noise(measurements: list[Measurement], groups: int) -> np.ndarray:
    """This party's noise, (groups, cells) int64: each measurement's mechanism applied to zeros
    (OpenDP samples the discrete Laplace noise; nothing here is hand-written sampling)."""
    out = np.zeros((groups, len(measurements)), dtype=np.int64)
    for k, m in enumerate(measurements):
        out[:, k] = np.asarray(m.mechanism(groups)([0] * groups), dtype=np.int64)
    return out


def own_noise(request: AggregateRequest, schemas: Schemas, recipient: bool = False) -> np.ndarray | None:
    """A computing party's own noise on its share of the cells, (groups, cells): for a release to
    the gateway, each party's; between agencies, where the request carries an ε (its data's owner
    requires noise), the non-``recipient``'s. None: exact cells."""
    if request.epsilon is None or (recipient and request.reveal_to != "gateway"):
        return None
    return noise(plan(request, schemas, request.epsilon), len(request.groups(schemas)))


def release_cost(request: AggregateRequest, schemas: Schemas) -> float:
    """ε spent by releasing ``request``'s cells once (0 for exact cells)."""
    if request.epsilon is None:
        return 0.0
    return cost(plan(request, schemas, request.epsilon), len(request.groups(schemas)))


def released_variance(measurement: Measurement) -> float:
    """Variance of one released cell: two independent discrete Laplace noises of this scale
    (each ≈ 2 scale² for the scales used here)."""
    return 2 * _discrete_laplace_variance(measurement.scale)


def _discrete_laplace_variance(scale: float) -> float:
    q = float(np.exp(-1.0 / scale))
    return 2 * q / (1 - q) ** 2


def _two_noises_tail(scale: float, t: int) -> float:
    """``P(|n0 + n1| > t)`` for two independent discrete Laplace noises of ``scale`` (t >= 0).

    With ``q = exp(-1/scale)`` the sum has ``P(S = k) = ((1-q)/(1+q))^2 q^|k| (|k| + (1+q^2)/(1-q^2))``;
    summing its tail gives ``2 q^(t+1) ((t+1)(1-q) + q + (1+q^2)/(1+q)) / (1+q)^2``, computed with
    ``expm1`` so that it stays exact for scales of 10^12 and more."""
    one_minus_q = -float(np.expm1(-1.0 / scale))
    q = 1.0 - one_minus_q
    tail = 2 * np.exp(-(t + 1) / scale) * ((t + 1) * one_minus_q + q + (1 + q * q) / (1 + q)) / (1 + q) ** 2
    return float(min(1.0, tail))


def error_bound(measurement: Measurement, confidence: float = CONFIDENCE) -> int:
    """The smallest ``t`` with ``P(|released - true| <= t) >= confidence`` for one released cell of
    ``measurement`` (both parties' noise): the cell's interval is ``value ± t``."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence} outside (0, 1)")
    high = 1
    while _two_noises_tail(measurement.scale, high) > 1 - confidence:
        high *= 2
    low = 0
    while low < high:  # the smallest t whose tail is within 1 - confidence
        middle = (low + high) // 2
        if _two_noises_tail(measurement.scale, middle) > 1 - confidence:
            low = middle + 1
        else:
            high = middle
    return low


def mean_interval(
    total: int, total_error: int, count: int, count_error: int, bounds: tuple[int, int]
) -> tuple[float | None, tuple[float, float] | None, bool]:
    """A MEAN released as SUM / COUNT, with its interval and whether it was clamped.

    The interval takes the extreme ratios of the SUM's and COUNT's intervals (a count under 1
    counts as 1), so it covers the mean whenever both cover theirs; both the mean and its interval
    are clamped to the column's declared ``bounds`` (post-processing: free), and ``clamped`` says
    whether the mean itself had to be. ``(None, None, False)`` where the noisy count is not positive."""
    if count <= 0:
        return None, None, False
    low, high = bounds
    mean = total / count
    counts = (max(count - count_error, 1), count + count_error)
    ratios = [(total + e) / c for e in (-total_error, total_error) for c in counts]
    interval = (min(max(min(ratios), low), high), max(min(max(ratios), high), low))
    clamped = not low <= mean <= high
    return min(max(mean, low), high), interval, clamped


def suppressed(noisy_counts: np.ndarray, min_cell: int = DEFAULT_MIN_CELL) -> np.ndarray:
    """Cells to withhold: noisy COUNT below the minimum cell size."""
    flags: np.ndarray = noisy_counts < min_cell
    return flags
