"""The compute backend seam (mpc/parallel.py) on the local pool: results in order within a bounded
window, a chunk's exception raised as itself, a dead worker a ComputeError after which the next
batch gets a fresh pool, and configurations that name no cluster or the wrong one refused."""

from __future__ import annotations

import os
import signal

import pytest

from mpc import parallel
from mpc.parallel import ComputeConfig, ComputeError, LocalPool, split


def _square(x: int) -> int:
    return x * x


def _fails(x: int) -> int:
    raise ValueError(f"chunk {x} refused")


def _dies(x: int) -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return x


def test_split_covers_the_range_in_order() -> None:
    assert split(0, 4) == [] and split(10, 3) == [(0, 4), (4, 8), (8, 10)] and split(3, 8) == [(0, 1), (1, 2), (2, 3)]


def test_map_is_ordered_bounded_and_raises_a_chunks_exception_as_itself() -> None:
    pool = LocalPool(2)
    try:
        assert list(pool.map(_square, [(k,) for k in range(50)], window=3)) == [k * k for k in range(50)]
        assert pool.tasks == 50
        with pytest.raises(ValueError, match="chunk 0 refused"):
            list(pool.map(_fails, [(0,)]))
    finally:
        pool.close()


def test_a_dead_worker_is_a_compute_error_and_the_next_batch_gets_a_new_pool() -> None:
    pool = LocalPool(2)
    try:
        with pytest.raises(ComputeError, match="a worker process died"):
            list(pool.map(_dies, [(1,)]))
        assert list(pool.map(_square, [(3,)])) == [9]
    finally:
        pool.close()


def test_configurations_that_name_no_cluster_or_any_cluster_are_refused() -> None:
    with pytest.raises(ValueError, match="needs address"):
        ComputeConfig(backend="ray")
    with pytest.raises(ValueError, match='"auto" would join whatever cluster'):
        ComputeConfig(backend="ray", address="auto")
    with pytest.raises(ValueError, match="the local pool has none"):
        ComputeConfig(address="10.0.0.1:6379")
    local = parallel.configure(ComputeConfig())
    assert parallel.configure(ComputeConfig()) is local is parallel.backend()  # the same configuration: kept
    assert local.describe() == {"backend": "local", "workers": local.workers, "tasks": local.tasks}
