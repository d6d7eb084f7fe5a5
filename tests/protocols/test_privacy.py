"""Differential privacy of released cells: OpenDP's calibration, the cost of a query, and repeated
releases through the secret-shared program having the mean and variance the mechanism promises."""

from __future__ import annotations

import numpy as np
import pytest

from mpc.protocols import privacy
from mpc.protocols.aggregate import Aggregate, AggregateRequest, CellShares, ColumnRef
from mpc.sharing import ring
from tests.protocols.test_aggregate import SCHEMAS, run_program

REQUEST = AggregateRequest(
    initiator_dataset="people",
    peer_dataset="income",
    group_by=(ColumnRef.parse("initiator.district"),),
    aggregates=(Aggregate(kind="count"), Aggregate(kind="sum", column=ColumnRef.parse("initiator.age"))),
    reveal_to="gateway",
    epsilon=1.0,
    gateway="gateway",
)


def test_calibration_and_cost() -> None:
    measurements = privacy.plan(REQUEST, SCHEMAS, 1.0)  # type: ignore[arg-type]
    assert [(m.cell, m.sensitivity, m.epsilon) for m in measurements] == [
        ("count", 1, 0.5),
        ("sum(initiator.age)", 120, 0.5),
    ]
    assert measurements[0].scale == pytest.approx(2.0) and measurements[1].scale == pytest.approx(240.0)
    assert privacy.cost(measurements, groups=3) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="epsilon"):
        privacy.plan(REQUEST, SCHEMAS, 0)  # type: ignore[arg-type]
    assert privacy.suppressed(np.array([9, 10, -3])).tolist() == [True, False, True]
    noise = privacy.own_noise(REQUEST, SCHEMAS)  # type: ignore[arg-type]
    assert noise is not None and noise.shape == (len(REQUEST.groups(SCHEMAS)), 2)  # type: ignore[arg-type]
    assert privacy.own_noise(REQUEST.model_copy(update={"reveal_to": "initiator", "epsilon": None}), SCHEMAS) is None  # type: ignore[arg-type]


def test_gateway_releases_need_epsilon() -> None:
    with pytest.raises(ValueError, match="give epsilon"):
        AggregateRequest(
            initiator_dataset="a", peer_dataset="b", aggregates=(Aggregate(kind="count"),), reveal_to="gateway"
        )
    with pytest.raises(ValueError, match="give epsilon"):
        AggregateRequest(
            initiator_dataset="a", peer_dataset="b", aggregates=(Aggregate(kind="count"),), gateway="gateway"
        )
    # between agencies an ε means the data's owner requires noise: allowed, and no gateway named
    assert (
        AggregateRequest(
            initiator_dataset="a", peer_dataset="b", aggregates=(Aggregate(kind="count"),), epsilon=1.0
        ).gateway
        == ""
    )
    with pytest.raises(ValueError, match="one table is released to the gateway"):
        AggregateRequest(initiator_dataset="a", aggregates=(Aggregate(kind="count"),))


def test_one_table_in_the_clear_matches_the_oracle() -> None:
    """An owner's aggregate over its own table (single-table gateway releases), vectorised."""
    import numpy as np

    from mpc.protocols.aggregate import evaluate_plain, table_cells

    rng = np.random.default_rng(5)
    rows = 500
    districts, disabled, ages = rng.integers(0, 3, rows), rng.integers(0, 2, rows), rng.integers(0, 121, rows)
    request = AggregateRequest(
        initiator_dataset="people",
        where="initiator.disabled = 1 OR initiator.age < 30",
        group_by=(ColumnRef.parse("initiator.district"),),
        reveal_to="gateway",
        epsilon=1.0,
        gateway="g",
        aggregates=(Aggregate(kind="count"), Aggregate(kind="sum", column=ColumnRef.parse("initiator.age"))),
    )
    cells = table_cells(request, SCHEMAS, {"district": districts, "disabled": disabled, "age": ages})  # type: ignore[arg-type]
    labels = ("east", "north", "west")
    mine = {
        f"p{i}": {"district": labels[d], "disabled": int(b), "age": int(a)}
        for i, (d, b, a) in enumerate(zip(districts, disabled, ages, strict=True))
    }
    expected = evaluate_plain(request, SCHEMAS, mine, {p: {} for p in mine})  # type: ignore[arg-type]
    assert [[expected[(d,)]["count"], expected[(d,)]["sum(initiator.age)"]] for d in labels] == cells.tolist()


@pytest.mark.slow
def test_repeated_releases_have_the_promised_mean_and_variance() -> None:
    """300 releases of the same table: each cell's mean is the true value and its variance twice
    the discrete Laplace variance (each party adds noise of the full scale), within 4 to 5
    standard errors (the sample variance's, for a sum of two Laplace noises: excess kurtosis 1.5).

    The table is fixed; the noise is OpenDP's, drawn from the operating system's CSPRNG, which by
    design takes no seed. Six cells' means at 4 standard errors (two-sided) and variances at 5 make
    a false failure about one run in 2 500; a failure prints the cell, mean and variance."""
    mine = {f"p{i}": {"district": ("east", "north", "west")[i % 3], "disabled": 0, "age": 20 + i} for i in range(60)}
    theirs = {f"p{i}": {"income": 1, "region": "a", "flag": 0} for i in range(0, 60, 2)}
    measurements = privacy.plan(REQUEST, SCHEMAS, 1.0)  # type: ignore[arg-type]
    matched = [p for p in mine if p in theirs]
    truth = {
        d: (
            sum(mine[p]["district"] == d for p in matched),
            sum(int(mine[p]["age"]) for p in matched if mine[p]["district"] == d),
        )
        for d in ("east", "north", "west")
    }
    releases = []
    for _ in range(300):
        first, second = run_program(REQUEST, mine, theirs, noise=lambda: privacy.noise(measurements, 3))
        assert isinstance(first, CellShares) and isinstance(second, CellShares)
        releases.append(ring.decode(first.values + second.values))
    cells = np.array(releases, dtype=np.float64)  # (releases, groups, cells)
    n = len(releases)
    for g, district in enumerate(("east", "north", "west")):
        for k, m in enumerate(measurements):
            sample = cells[:, g, k]
            variance = privacy.released_variance(m)
            assert abs(sample.mean() - truth[district][k]) < 4 * np.sqrt(variance / n), (district, m.cell)
            spread = 5 * np.sqrt(2 / (n - 1) + 1.5 / n)
            assert abs(sample.var(ddof=1) / variance - 1) < spread, (district, m.cell)


@pytest.mark.parametrize("scale", [0.7, 3.0, 40.0])
def test_the_95_percent_interval_covers_95_percent_of_repeated_releases(scale: float) -> None:
    """The interval ``value ± error_bound`` from the two owners' noise: the smallest half-width
    whose exact coverage (of the sum of two discrete Laplace noises) reaches 95 %, and the coverage
    measured over 20 000 releases, each with both parties' noise sampled by OpenDP, is within
    five standard errors of it."""
    measurement = privacy.Measurement("count", 1, 1.0, scale)
    error = privacy.error_bound(measurement)
    exact = 1 - privacy._two_noises_tail(scale, error)
    assert exact >= 0.95 > 1 - privacy._two_noises_tail(scale, error - 1) if error else exact >= 0.95
    draws = 20_000
    released = privacy.noise([measurement], draws)[:, 0] + privacy.noise([measurement], draws)[:, 0]
    measured = float(np.mean(np.abs(released) <= error))
    assert abs(measured - exact) <= 5 * np.sqrt(exact * (1 - exact) / draws), (measured, exact)


def test_the_error_of_a_huge_scale_is_computed_exactly() -> None:
    """An income sum bounded by ±10^12 at ε 1: the error is 4.11 scales (the continuous limit)."""
    measurement = privacy.Measurement("sum(peer.income)", 10**12, 1.0, 4e12)
    assert privacy.error_bound(measurement) == pytest.approx(4.1133 * 4e12, rel=1e-3)


def test_a_mean_is_clamped_to_its_bounds_and_marked() -> None:
    """MEAN = SUM / COUNT: its interval from the extreme ratios of both intervals; a mean outside
    the column's bounds (noise) is clamped, as is its interval, and marked."""
    assert privacy.mean_interval(1_000, 100, 100, 10, (1, 20)) == (10.0, (900 / 110, 1100 / 90), False)
    assert privacy.mean_interval(-2_200, 50, 100, 10, (1, 20)) == (1, (1, 1), True)
    assert privacy.mean_interval(2_200, 500, 5, 10, (1, 20)) == (20, (20, 20), True)
    assert privacy.mean_interval(50, 5, 0, 10, (1, 20)) == (None, None, False)
